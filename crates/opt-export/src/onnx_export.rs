//! ONNX files of optkit models: the float layer list ([`FloatGraph`]: batch norms folded into
//! the convolutions, ReLUs after their layers) as plain `Conv`/`MaxPool`/`Flatten`/`Gemm`/
//! `Relu` nodes, and the int8 model ([`QuantModel`]) in QDQ form: every int8 weight is an
//! `int8` initializer read through `DequantizeLinear` (per output channel, `axis = 0`), and
//! every activation the integer path rounds to 8 bits passes through `QuantizeLinear` →
//! `DequantizeLinear` with the calibrated scale and zero point, so a runtime that fuses the
//! pattern runs integer kernels and one that does not computes the same values in float.
//!
//! Both files take the normalized images (`(pixel / 255 − mean) / std`, float32,
//! `[batch, c, h, w]`) and return logits. The int8 model's first layer reads exactly these
//! values: its input map is the normalization itself, so 8-bit images need no rounding there.

use opt_quant::QuantModel;
use opt_quant::graph::{FloatGraph, Layer};
use opt_quant::observer::QParams;
use opt_quant::qmodel::{QLayer, QWeights};
use prost::Message;

use crate::onnx_graph::{Geometry, GraphBuilder, INPUT, OUTPUT, attr_int, model};
use crate::onnx_proto::data_type;

/// What the exported file says about the model.
#[derive(Debug, Clone, Default)]
pub struct OnnxMeta {
    /// Model name (the candidate).
    pub name: String,
    /// Class names in label order.
    pub class_names: Vec<String>,
    /// Mean of the pixels scaled to [0, 1].
    pub mean: f32,
    /// Their standard deviation.
    pub std: f32,
}

impl OnnxMeta {
    fn props(&self, kind: &str) -> Vec<(&'static str, String)> {
        vec![
            ("optkit.kind", kind.into()),
            ("optkit.class_names", self.class_names.join(",")),
            ("optkit.normalization.mean", self.mean.to_string()),
            ("optkit.normalization.std", self.std.to_string()),
            (
                "optkit.input",
                "(pixel / 255 - mean) / std, float32 [batch, channels, height, width]".into(),
            ),
        ]
    }
}

/// A float layer's weights and geometry.
struct Parts<'a> {
    geometry: Geometry,
    name: &'a str,
    weight: &'a [f32],
    bias: &'a [f32],
    relu: bool,
}

fn parts_of(layer: &Layer) -> Option<Parts<'_>> {
    match layer {
        Layer::Conv(c) => Some(Parts {
            geometry: Geometry::Conv {
                out_channels: c.out_channels,
                in_channels: c.in_channels,
                kernel: c.kernel,
                stride: c.stride,
                padding: c.padding,
            },
            name: &c.name,
            weight: &c.weight,
            bias: &c.bias,
            relu: c.relu,
        }),
        Layer::Linear(l) => Some(Parts {
            geometry: Geometry::Linear {
                inputs: l.inputs,
                outputs: l.outputs,
            },
            name: &l.name,
            weight: &l.weight,
            bias: &l.bias,
            relu: l.relu,
        }),
        Layer::MaxPool { .. } => None,
    }
}

/// A float layer with float32 weights; `x` is its input value.
fn float_layer(b: &mut GraphBuilder, x: &str, layer: &Layer, index: usize) -> String {
    match (parts_of(layer), layer) {
        (Some(p), _) => {
            let dims = p.geometry.weight_dims();
            let w = b.floats(&format!("{}.weight", p.name), &dims, p.weight);
            b.layer(p.name, x, p.geometry, &w, p.bias, p.relu)
        }
        (None, Layer::MaxPool { size }) => b.max_pool(x, index, *size),
        (None, _) => unreachable!("every layer but max-pooling has weights"),
    }
}

/// The ONNX model of a float layer list.
pub fn float_onnx(graph: &FloatGraph, meta: &OnnxMeta) -> Vec<u8> {
    let mut b = GraphBuilder::default();
    let mut x = INPUT.to_string();
    for (i, layer) in graph.layers.iter().enumerate() {
        x = float_layer(&mut b, &x, layer, i);
    }
    b.finish_as(OUTPUT);
    let classes = graph.shapes().last().map_or(0, |s| s[0]);
    let g = b.build(&meta.name, input_dims(graph.input), classes);
    model(
        g,
        "optkit float model: batch norms folded into the convolutions",
        &meta.props("float32"),
    )
    .encode_to_vec()
}

fn input_dims(s: opt_core::model::InputShape) -> [usize; 3] {
    [s.channels, s.height, s.width]
}

/// `QuantizeLinear` → `DequantizeLinear` of `x` with the activation parameters `q` (uint8).
fn fake_quant(b: &mut GraphBuilder, x: &str, name: &str, q: QParams) -> String {
    let s = b.floats(&format!("{name}.out.scale"), &[], &[q.scale]);
    let zp = q.zero_point.round().clamp(0.0, 255.0) as u8;
    let z = b.initializer(
        &format!("{name}.out.zero_point"),
        data_type::UINT8,
        &[],
        vec![zp],
    );
    let codes = b.node(
        "QuantizeLinear",
        &[x, &s, &z],
        &format!("{name}.out.quantized"),
        vec![],
    );
    b.node(
        "DequantizeLinear",
        &[&codes, &s, &z],
        &format!("{name}.out.dequantized"),
        vec![],
    )
}

/// An int8 layer: its codes as an int8 initializer, dequantized per output channel; its
/// output rounded to 8 bits unless it is the head.
fn int8_layer(b: &mut GraphBuilder, x: &str, w: &QWeights, geometry: Geometry) -> String {
    let name = &w.name;
    let codes = b.initializer(
        &format!("{name}.weight.int8"),
        data_type::INT8,
        &geometry.weight_dims(),
        w.codes.iter().map(|&c| c as u8).collect(),
    );
    let rows = w.scales.len() as i64;
    let scales = b.floats(&format!("{name}.weight.scale"), &[rows], &w.scales);
    let zeros = b.initializer(
        &format!("{name}.weight.zero_point"),
        data_type::INT8,
        &[rows],
        vec![0; w.scales.len()],
    );
    let weight = b.node(
        "DequantizeLinear",
        &[&codes, &scales, &zeros],
        &format!("{name}.weight"),
        vec![attr_int("axis", 0)],
    );
    let y = b.layer(name, x, geometry, &weight, &w.bias, w.relu);
    match w.output {
        Some(q) => fake_quant(b, &y, name, q),
        None => y,
    }
}

/// The ONNX model of an int8 model in QDQ form.
pub fn qdq_onnx(model_q: &QuantModel, meta: &OnnxMeta) -> Vec<u8> {
    let mut b = GraphBuilder::default();
    let mut x = INPUT.to_string();
    for (i, layer) in model_q.layers.iter().enumerate() {
        x = match layer {
            QLayer::Conv {
                w,
                in_channels,
                kernel,
                stride,
                padding,
                ..
            } => {
                let g = Geometry::Conv {
                    out_channels: w.scales.len(),
                    in_channels: *in_channels,
                    kernel: *kernel,
                    stride: *stride,
                    padding: *padding,
                };
                int8_layer(&mut b, &x, w, g)
            }
            QLayer::Linear { w, packed } => {
                let g = Geometry::Linear {
                    inputs: packed.k,
                    outputs: w.scales.len(),
                };
                int8_layer(&mut b, &x, w, g)
            }
            QLayer::MaxPool { size } => b.max_pool(&x, i, *size),
            QLayer::Float { layer, output } => {
                let y = float_layer(&mut b, &x, layer, i);
                match (output, layer.name()) {
                    (Some(q), Some(name)) => fake_quant(&mut b, &y, name, *q),
                    _ => y,
                }
            }
        };
    }
    b.finish_as(OUTPUT);
    let g = b.build(&meta.name, input_dims(model_q.input), model_q.classes());
    model(
        g,
        "optkit int8 model in QDQ form: int8 weights per output channel, uint8 activations",
        &meta.props("int8-qdq"),
    )
    .encode_to_vec()
}
