//! The int8 model file (`model.int8`): what a quantized model is saved as, in its integer
//! form, so it reloads without the float weights and runs the same codes bit for bit.
//!
//! Layout: the magic `OPTKQINT`, a little-endian `u32` version (1), a `u32` header length, the
//! JSON header (input shape and map, every layer's kind, sizes, ReLU and output map; the
//! payload length), the payload, and a CRC-32 of everything before it. Per layer with weights
//! the payload holds its int8 codes (`out · in · k · k` or `out · in` bytes), then one float32
//! scale and one float32 bias per output, little-endian; a layer kept in float (`"float":
//! true` in the header) holds float32 weights and biases instead.

use opt_core::framed::{Cursor, FrameError, f32_bytes, read_framed, write_framed};
use opt_core::model::InputShape;
use serde::{Deserialize, Serialize};

use crate::error::{QuantError, Result};
use crate::graph::{ConvLayer, Layer, LinearLayer};
use crate::kernels::Isa;
use crate::observer::QParams;
use crate::qmodel::{QLayer, QWeights, QuantModel};

/// First bytes of an int8 model file.
pub const MAGIC: &[u8; 8] = b"OPTKQINT";
/// Version of the layout this optkit writes and reads.
pub const VERSION: u32 = 1;
/// The most values one layer may output per image (a file claiming more is refused before the
/// model runs).
const MAX_ACTIVATION: usize = 1 << 26;

/// File name of an int8 model in a model folder (named by opt-core, which knows every model
/// file a folder may hold).
pub const INT8_FILE: &str = opt_core::artifact::INT8_FILE;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum LayerHeader {
    Conv {
        name: String,
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        relu: bool,
        output: Option<QParams>,
        /// Kept in float: float32 weights instead of codes and scales.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        float: bool,
    },
    MaxPool {
        size: usize,
    },
    Linear {
        name: String,
        inputs: usize,
        outputs: usize,
        relu: bool,
        output: Option<QParams>,
        /// Kept in float: float32 weights instead of codes and scales.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        float: bool,
    },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    input: InputShape,
    input_params: QParams,
    layers: Vec<LayerHeader>,
    payload_bytes: usize,
}

/// A layer's stored weights: codes and scales, or float32 for a layer kept in float.
enum Stored {
    Codes(QWeights),
    Float {
        weight: Vec<f32>,
        bias: Vec<f32>,
        relu: bool,
        output: Option<QParams>,
    },
}

fn push_f32s(out: &mut Vec<u8>, v: &[f32]) {
    out.extend(f32_bytes(v));
}

/// Encodes `model` into the int8 file format.
pub fn encode(model: &QuantModel) -> Vec<u8> {
    let mut payload = Vec::new();
    let mut layers = Vec::new();
    for l in &model.layers {
        let w = match l {
            QLayer::Conv {
                w,
                in_channels,
                kernel,
                stride,
                padding,
                ..
            } => {
                layers.push(LayerHeader::Conv {
                    name: w.name.clone(),
                    in_channels: *in_channels,
                    out_channels: w.scales.len(),
                    kernel: *kernel,
                    stride: *stride,
                    padding: *padding,
                    relu: w.relu,
                    output: w.output,
                    float: false,
                });
                w
            }
            QLayer::Linear { w, packed } => {
                layers.push(LayerHeader::Linear {
                    name: w.name.clone(),
                    inputs: packed.k,
                    outputs: packed.cols,
                    relu: w.relu,
                    output: w.output,
                    float: false,
                });
                w
            }
            QLayer::Float { layer, output } => {
                let output = *output;
                match layer {
                    Layer::Conv(c) => {
                        layers.push(LayerHeader::Conv {
                            name: c.name.clone(),
                            in_channels: c.in_channels,
                            out_channels: c.out_channels,
                            kernel: c.kernel,
                            stride: c.stride,
                            padding: c.padding,
                            relu: c.relu,
                            output,
                            float: true,
                        });
                        push_f32s(&mut payload, &c.weight);
                        push_f32s(&mut payload, &c.bias);
                    }
                    Layer::Linear(l) => {
                        layers.push(LayerHeader::Linear {
                            name: l.name.clone(),
                            inputs: l.inputs,
                            outputs: l.outputs,
                            relu: l.relu,
                            output,
                            float: true,
                        });
                        push_f32s(&mut payload, &l.weight);
                        push_f32s(&mut payload, &l.bias);
                    }
                    Layer::MaxPool { .. } => unreachable!("pooling is never a float layer"),
                }
                continue;
            }
            QLayer::MaxPool { size } => {
                layers.push(LayerHeader::MaxPool { size: *size });
                continue;
            }
        };
        payload.extend(w.codes.iter().map(|&c| c as u8));
        push_f32s(&mut payload, &w.scales);
        push_f32s(&mut payload, &w.bias);
    }
    let header = serde_json::to_vec(&Header {
        input: model.input,
        input_params: model.input_params,
        layers,
        payload_bytes: payload.len(),
    })
    .expect("a header of strings and numbers always serializes");
    write_framed(MAGIC, VERSION, &header, &payload, true)
}

/// Decodes an int8 model file; `path` names it in errors. Every inconsistency (truncation, a
/// checksum mismatch, missing or non-positive scales, sizes that do not chain) is an error.
pub fn decode(bytes: &[u8], path: &str) -> Result<QuantModel> {
    let corrupt = |problem: String| QuantError::Corrupt {
        path: path.to_string(),
        problem,
    };
    let (header, payload) = read_framed(bytes, MAGIC, VERSION, true).map_err(|e| match e {
        FrameError::Corrupt(what) => corrupt(format!(
            "not a readable optkit int8 model: {what}; quantize the model again"
        )),
        FrameError::Version(v) => {
            corrupt(format!("version {v}; this optkit reads version {VERSION}"))
        }
    })?;
    let header: Header = serde_json::from_slice(header)
        .map_err(|e| corrupt(format!("header is not valid ({e})")))?;
    if payload.len() != header.payload_bytes {
        return Err(corrupt(format!(
            "payload has {} bytes, the header says {}",
            payload.len(),
            header.payload_bytes
        )));
    }
    let mut cursor = Cursor::new(payload);
    let mut take = |len: usize, what: &str| {
        cursor
            .take(len, what)
            .map_err(|e| corrupt(format!("{e} (missing)")))
    };
    let mut weights = |name: &str,
                       outs: usize,
                       per: usize,
                       relu: bool,
                       output: Option<QParams>,
                       float: bool|
     -> Result<Stored> {
        let n = outs
            .checked_mul(per)
            .filter(|&n| n > 0 && n <= 1 << 31)
            .ok_or_else(|| {
                corrupt(format!(
                    "layer {name} has impossible sizes ({outs} x {per})"
                ))
            })?;
        let floats = |b: &[u8]| -> Vec<f32> {
            b.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        };
        if let Some(q) = output.filter(|q| !(q.scale.is_finite() && q.scale > 0.0)) {
            return Err(corrupt(format!(
                "layer {name} has output scale {}",
                q.scale
            )));
        }
        if float {
            let weight = floats(take(4 * n, &format!("layer {name} float weights"))?);
            let bias = floats(take(4 * outs, &format!("layer {name} biases"))?);
            if weight.iter().chain(&bias).any(|v| !v.is_finite()) {
                return Err(corrupt(format!("layer {name} has a non-finite weight")));
            }
            return Ok(Stored::Float {
                weight,
                bias,
                relu,
                output,
            });
        }
        let codes: Vec<i8> = take(n, &format!("layer {name} codes"))?
            .iter()
            .map(|&b| b as i8)
            .collect();
        let scales = floats(take(4 * outs, &format!("layer {name} scales"))?);
        let bias = floats(take(4 * outs, &format!("layer {name} biases"))?);
        if let Some(s) = scales.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(corrupt(format!(
                "layer {name} has scale {s}; scales must be positive"
            )));
        }
        Ok(Stored::Codes(QWeights {
            name: name.to_string(),
            codes,
            scales,
            bias,
            relu,
            output,
        }))
    };
    let mut layers = Vec::new();
    let mut shape = [
        header.input.channels,
        header.input.height,
        header.input.width,
    ];
    let pixels = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if pixels.is_none_or(|n| n == 0 || n > MAX_ACTIVATION)
        || !(header.input_params.scale.is_finite() && header.input_params.scale > 0.0)
    {
        return Err(corrupt(format!(
            "input {shape:?} with scale {} is not an image optkit quantizes",
            header.input_params.scale
        )));
    }
    for l in header.layers {
        layers.push(match l {
            LayerHeader::Conv { name, in_channels, out_channels, kernel, stride, padding, relu, output, float } => {
                // Every size is checked before it is used: the file may come from anyone.
                let padded = |x: usize| padding.checked_mul(2).and_then(|p| x.checked_add(p));
                let fits = |x: usize| padded(x).is_some_and(|p| p >= kernel);
                let per = in_channels.checked_mul(kernel).and_then(|v| v.checked_mul(kernel));
                if in_channels != shape[0] || kernel == 0 || stride == 0 || !fits(shape[1]) || !fits(shape[2]) || per.is_none() {
                    return Err(corrupt(format!(
                        "layer {name} ({in_channels} channels, kernel {kernel}) does not fit its input {shape:?}"
                    )));
                }
                let w = weights(&name, out_channels, per.unwrap_or(0), relu, output, float)?;
                let o = |x: usize| (padded(x).unwrap_or(0) - kernel) / stride + 1;
                shape = [out_channels, o(shape[1]), o(shape[2])];
                if shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).is_none_or(|n| n > MAX_ACTIVATION) {
                    return Err(corrupt(format!(
                        "layer {name} makes an output of {shape:?} values per image, more than \
                         {MAX_ACTIVATION}"
                    )));
                }
                match w {
                    Stored::Codes(w) => QuantModel::conv(w, in_channels, kernel, stride, padding),
                    Stored::Float { weight, bias, relu, output } => QLayer::Float {
                        layer: Layer::Conv(ConvLayer { name, in_channels, out_channels, kernel, stride, padding, weight, bias, relu }),
                        output,
                    },
                }
            }
            LayerHeader::MaxPool { size } => {
                if size == 0 || shape[1] < size || shape[2] < size {
                    return Err(corrupt(format!("max-pool {size} does not fit its input {shape:?}")));
                }
                shape = [shape[0], shape[1] / size, shape[2] / size];
                QLayer::MaxPool { size }
            }
            LayerHeader::Linear { name, inputs, outputs, relu, output, float } => {
                if inputs != shape.iter().product::<usize>() || outputs > MAX_ACTIVATION {
                    return Err(corrupt(format!(
                        "layer {name} takes {inputs} inputs but its input {shape:?} has {}",
                        shape.iter().product::<usize>()
                    )));
                }
                let w = weights(&name, outputs, inputs, relu, output, float)?;
                shape = [outputs, 1, 1];
                match w {
                    Stored::Codes(w) => QuantModel::linear(w, inputs),
                    Stored::Float { weight, bias, relu, output } => QLayer::Float {
                        layer: Layer::Linear(LinearLayer { name, inputs, outputs, weight, bias, relu }),
                        output,
                    },
                }
            }
        });
    }
    match layers.last() {
        Some(QLayer::Linear { w, .. }) if w.output.is_none() => {}
        Some(QLayer::Float {
            layer: Layer::Linear(_),
            output: None,
        }) => {}
        _ => {
            return Err(corrupt(
                "the last layer must be a linear head with float output".into(),
            ));
        }
    }
    cursor.finish().map_err(corrupt)?;
    Ok(QuantModel {
        input: header.input,
        input_params: header.input_params,
        layers,
        isa: Isa::detect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::FloatGraph;
    use crate::observer::TensorStats;
    use crate::qmodel::{ActivationScheme, Granularity};
    use opt_core::data::Normalization;
    use opt_core::model::{Model, ModelSpec};
    use opt_core::test_util::{TestBackend, device};

    fn lenet() -> QuantModel {
        lenet_with(&[])
    }

    fn lenet_with(float_layers: &[String]) -> QuantModel {
        let input = InputShape {
            channels: 1,
            height: 28,
            width: 28,
        };
        let spec = ModelSpec::preset("lenet5", input, 10).unwrap();
        let model: Model<TestBackend> = spec.init(&device());
        let graph = FloatGraph::from_model(&model, input).unwrap();
        let stats: Vec<Option<TensorStats>> = graph
            .layers
            .iter()
            .map(|l| {
                l.name().map(|n| {
                    let mut s = TensorStats::new(n);
                    s.observe_range(&[-2.0, 3.0]).unwrap();
                    s
                })
            })
            .collect();
        let norm = Normalization {
            mean: 0.3,
            std: 0.35,
        };
        QuantModel::build_mixed(
            &graph,
            norm,
            &stats,
            Granularity::PerChannel,
            ActivationScheme::default(),
            float_layers,
        )
        .unwrap()
    }

    /// Layers kept in float (here a convolution and the head) save as float32 and reload to
    /// the same outputs.
    #[test]
    fn mixed_models_round_trip() {
        let float = vec!["conv2".to_string(), "fc2".to_string()];
        let q = lenet_with(&float);
        assert_eq!(q.float_layers().count(), 2);
        let bytes = encode(&q);
        let back = decode(&bytes, "m").unwrap();
        let names: Vec<&str> = back.float_layers().filter_map(|(l, _)| l.name()).collect();
        assert_eq!(names, ["conv2", "fc2"]);
        let pixels: Vec<u8> = (0..2 * 784).map(|i| (i * 13 % 256) as u8).collect();
        assert_eq!(q.forward(&pixels, 2, 1), back.forward(&pixels, 2, 1));
        assert_eq!(q.params(), lenet().params());
        // conv2's 25,000 and fc2's 5,000 weights cost 4 bytes instead of 1 (less their 60
        // scales).
        assert!(bytes.len() > encode(&lenet()).len() + 3 * 30_000 - 4 * 60);
    }

    #[test]
    fn round_trips_to_identical_outputs_at_a_quarter_of_the_float_size() {
        let q = lenet();
        let bytes = encode(&q);
        let back = decode(&bytes, "m").unwrap();
        let pixels: Vec<u8> = (0..2 * 784).map(|i| (i * 7 % 256) as u8).collect();
        assert_eq!(q.forward(&pixels, 2, 1), back.forward(&pixels, 2, 1));
        let float_bytes = 4 * q.params();
        assert!(
            bytes.len() * 10 < float_bytes * 3,
            "{} vs {float_bytes}",
            bytes.len()
        );
    }

    #[test]
    fn damage_is_an_error_that_names_the_file() {
        let bytes = encode(&lenet());
        for cut in [0, 7, 19, bytes.len() / 2, bytes.len() - 1] {
            let e = decode(&bytes[..cut], "m.int8").unwrap_err().to_string();
            assert!(e.contains("m.int8"), "{cut}: {e}");
        }
        let mut flipped = bytes.clone();
        flipped[bytes.len() / 2] ^= 1;
        assert!(
            decode(&flipped, "m")
                .unwrap_err()
                .to_string()
                .contains("checksum")
        );
        // A header whose layer lost its scales (payload shorter than the header says, with a
        // valid checksum) is refused by name.
        let header_len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
        let mut short = bytes[..16 + header_len].to_vec();
        short.extend_from_slice(&bytes[16 + header_len..bytes.len() - 4 - 40]);
        let mut crc = flate2::Crc::new();
        crc.update(&short);
        short.extend_from_slice(&crc.sum().to_le_bytes());
        let e = decode(&short, "m").unwrap_err().to_string();
        assert!(e.contains("payload has"), "{e}");
    }
}
