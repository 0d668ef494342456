//! The layer list the quantizer works on: a [`Model`] of opt-core's families (MLP, LeNet-5,
//! the quickstart CNN) read out into plain float weights, with batch norms folded into the
//! convolution before them and ReLUs attached to the layer they follow. Its float forward pass
//! (on any burn backend) reports every layer's output, which is what calibration observes.

use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear, PaddingConfig2d};
use burn::tensor::backend::Backend;
use burn::tensor::module::{conv2d, max_pool2d};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Tensor, TensorData};
use opt_core::model::{InputShape, Model};
use serde::{Deserialize, Serialize};

use crate::error::{QuantError, Result};

/// A convolution (square kernel, groups 1) with its bias and an optional ReLU after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConvLayer {
    /// Module path (`conv1`, `blocks.0.conv`).
    pub name: String,
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel height and width.
    pub kernel: usize,
    /// Stride in both directions.
    pub stride: usize,
    /// Zero padding on every side.
    pub padding: usize,
    /// `[out, in, k, k]` row-major.
    pub weight: Vec<f32>,
    /// One per output channel (zeros when the layer has none).
    pub bias: Vec<f32>,
    /// Whether a ReLU follows.
    pub relu: bool,
}

/// A fully connected layer with an optional ReLU after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearLayer {
    /// Module path (`fc1`, `layers.0`).
    pub name: String,
    /// Input features.
    pub inputs: usize,
    /// Output features.
    pub outputs: usize,
    /// `[out, in]` row-major (PyTorch's layout; burn stores the transpose).
    pub weight: Vec<f32>,
    /// One per output.
    pub bias: Vec<f32>,
    /// Whether a ReLU follows.
    pub relu: bool,
}

/// One step of the forward pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Layer {
    /// See [`ConvLayer`].
    Conv(ConvLayer),
    /// Max-pooling, square window, stride equal to the window, no padding.
    MaxPool {
        /// Window size and stride.
        size: usize,
    },
    /// See [`LinearLayer`]; the input is flattened first (channel-major, as burn's flatten).
    Linear(LinearLayer),
}

impl Layer {
    /// The module path of a layer with weights.
    pub fn name(&self) -> Option<&str> {
        match self {
            Layer::Conv(c) => Some(&c.name),
            Layer::Linear(l) => Some(&l.name),
            Layer::MaxPool { .. } => None,
        }
    }
}

/// A model as a list of float layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FloatGraph {
    /// Shape of one input image.
    pub input: InputShape,
    /// The layers in order; the last is the classifier head.
    pub layers: Vec<Layer>,
}

fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .expect("float tensor data converts to f32")
}

fn unsupported(layer: &str, problem: impl Into<String>) -> QuantError {
    QuantError::Unsupported {
        layer: layer.into(),
        problem: problem.into(),
    }
}

/// The zero padding on every side of a convolution with a `kernel`-sized square kernel, or
/// `None` when it is not the same on every side.
pub fn conv_padding<B: Backend>(c: &Conv2d<B>, kernel: usize) -> Option<usize> {
    match c.padding {
        PaddingConfig2d::Valid => Some(0),
        PaddingConfig2d::Explicit(t, l, b, r) if t == l && l == b && b == r => Some(t),
        PaddingConfig2d::Same if c.stride[0] == 1 && kernel % 2 == 1 => Some(kernel / 2),
        _ => None,
    }
}

fn conv<B: Backend>(
    name: &str,
    c: &Conv2d<B>,
    bn: Option<&BatchNorm<B>>,
    relu: bool,
) -> Result<Layer> {
    let [out_channels, in_channels, kh, kw] = c.weight.val().dims();
    if kh != kw || c.stride[0] != c.stride[1] || c.dilation != [1, 1] || c.groups != 1 {
        return Err(unsupported(
            name,
            format!(
                "kernel {kh}x{kw}, stride {:?}, dilation {:?}, groups {}; the int8 path runs \
                 square kernels with equal strides, no dilation and groups 1",
                c.stride, c.dilation, c.groups
            ),
        ));
    }
    let padding = conv_padding(c, kh)
        .ok_or_else(|| unsupported(name, format!("padding {:?} is not symmetric", c.padding)))?;
    let mut weight = host(c.weight.val());
    let mut bias = match &c.bias {
        Some(b) => host(b.val()),
        None => vec![0.0; out_channels],
    };
    if let Some(bn) = bn {
        // y = gamma (conv(x) + b - mean) / sqrt(var + eps) + beta, folded into the conv.
        let (gamma, beta) = (host(bn.gamma.val()), host(bn.beta.val()));
        let (mean, var) = (host(bn.running_mean.value()), host(bn.running_var.value()));
        let per = in_channels * kh * kw;
        for o in 0..out_channels {
            let s = gamma[o] / (var[o] + bn.epsilon as f32).sqrt();
            weight[o * per..(o + 1) * per]
                .iter_mut()
                .for_each(|w| *w *= s);
            bias[o] = (bias[o] - mean[o]) * s + beta[o];
        }
    }
    Ok(Layer::Conv(ConvLayer {
        name: name.into(),
        in_channels,
        out_channels,
        kernel: kh,
        stride: c.stride[0],
        padding,
        weight,
        bias,
        relu,
    }))
}

fn linear<B: Backend>(name: &str, l: &Linear<B>, relu: bool) -> Layer {
    let [inputs, outputs] = l.weight.val().dims();
    // burn stores [in, out]; the kernels want each output's weights contiguous.
    let weight = host(l.weight.val().transpose());
    let bias = match &l.bias {
        Some(b) => host(b.val()),
        None => vec![0.0; outputs],
    };
    Layer::Linear(LinearLayer {
        name: name.into(),
        inputs,
        outputs,
        weight,
        bias,
        relu,
    })
}

impl FloatGraph {
    /// Reads `model` (taking images of shape `input`) into a layer list.
    ///
    /// # Errors
    /// [`QuantError::Unsupported`] for a convolution the int8 path cannot run.
    pub fn from_model<B: Backend>(model: &Model<B>, input: InputShape) -> Result<Self> {
        let pool = Layer::MaxPool { size: 2 };
        let layers = match model {
            Model::Mlp(m) => {
                let last = m.layers.len() - 1;
                m.layers
                    .iter()
                    .enumerate()
                    .map(|(i, l)| linear(&format!("layers.{i}"), l, i < last))
                    .collect()
            }
            Model::Lenet5(m) => vec![
                conv("conv1", &m.conv1, None, false)?,
                pool.clone(),
                conv("conv2", &m.conv2, None, false)?,
                pool,
                linear("fc1", &m.fc1, true),
                linear("fc2", &m.fc2, false),
            ],
            Model::Cnn(m) => {
                let mut v = Vec::new();
                for (i, b) in m.blocks.iter().enumerate() {
                    v.push(conv(
                        &format!("blocks.{i}.conv"),
                        &b.conv,
                        Some(&b.bn),
                        true,
                    )?);
                    v.push(pool.clone());
                }
                v.push(linear("fc", &m.fc, true));
                v.push(linear("head", &m.head, false));
                v
            }
        };
        Ok(Self { input, layers })
    }

    /// The output shape (`[c, h, w]`, or `[features, 1, 1]` after a linear layer) of every
    /// layer, given the input shape.
    pub fn shapes(&self) -> Vec<[usize; 3]> {
        let mut s = [self.input.channels, self.input.height, self.input.width];
        self.layers
            .iter()
            .map(|l| {
                s = match l {
                    Layer::Conv(c) => {
                        let o = |x: usize| (x + 2 * c.padding - c.kernel) / c.stride + 1;
                        [c.out_channels, o(s[1]), o(s[2])]
                    }
                    Layer::MaxPool { size } => [s[0], s[1] / size, s[2] / size],
                    Layer::Linear(l) => [l.outputs, 1, 1],
                };
                s
            })
            .collect()
    }

    /// The float forward pass on `B`, calling `tap(i, values)` with the output of every layer
    /// `i` that has weights (after its ReLU), batch-major. Returns the logits `[n, classes]`.
    ///
    /// # Shapes
    /// - images: `[n, channels, height, width]`, normalized as the model was trained
    pub fn forward<B: Backend>(
        &self,
        images: Tensor<B, 4>,
        tap: &mut dyn FnMut(usize, &[f32]),
    ) -> Vec<f32> {
        let device = images.device();
        let n = images.dims()[0];
        let mut x = images;
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            x = match layer {
                Layer::Conv(c) => {
                    let k = c.kernel;
                    let w = Tensor::<B, 4>::from_data(
                        TensorData::new(c.weight.clone(), [c.out_channels, c.in_channels, k, k]),
                        &device,
                    );
                    let b = Tensor::<B, 1>::from_data(
                        TensorData::new(c.bias.clone(), [c.out_channels]),
                        &device,
                    );
                    let opts = ConvOptions::new([c.stride; 2], [c.padding; 2], [1, 1], 1);
                    let y = conv2d(x, w, Some(b), opts);
                    if c.relu {
                        burn::tensor::activation::relu(y)
                    } else {
                        y
                    }
                }
                Layer::MaxPool { size } => {
                    max_pool2d(x, [*size; 2], [*size; 2], [0, 0], [1, 1], false)
                }
                Layer::Linear(l) => {
                    let flat = x.reshape([n as i32, -1]);
                    let w = Tensor::<B, 2>::from_data(
                        TensorData::new(l.weight.clone(), [l.outputs, l.inputs]),
                        &device,
                    );
                    let b = Tensor::<B, 1>::from_data(
                        TensorData::new(l.bias.clone(), [l.outputs]),
                        &device,
                    );
                    let y = flat.matmul(w.transpose()) + b.unsqueeze::<2>();
                    let y = if l.relu {
                        burn::tensor::activation::relu(y)
                    } else {
                        y
                    };
                    y.reshape([n, l.outputs, 1, 1])
                }
            };
            if layer.name().is_some() && i != last {
                tap(i, &host(x.clone()));
            }
        }
        host(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;
    use opt_core::model::{Classifier, ModelSpec};
    use opt_core::test_util::{TestBackend, device};

    #[test]
    fn every_family_reads_out_and_matches_the_model() {
        let input = InputShape {
            channels: 1,
            height: 28,
            width: 28,
        };
        for family in ["mlp", "lenet5", "cnn"] {
            let spec = ModelSpec::preset(family, input, 10).unwrap();
            let model: Model<TestBackend> = spec.init(&device());
            let g = FloatGraph::from_model(&model, input).unwrap();
            let x =
                Tensor::<TestBackend, 4>::random([3, 1, 28, 28], Distribution::Default, &device());
            let want = host(model.forward(x.clone()));
            let mut taps = Vec::new();
            let got = g.forward(x, &mut |i, v| taps.push((i, v.len())));
            assert_eq!(got.len(), want.len());
            for (a, b) in got.iter().zip(&want) {
                assert!(
                    (a - b).abs() < 1e-3 * (1.0 + b.abs()),
                    "{family}: {a} vs {b}"
                );
            }
            let shapes = g.shapes();
            for (i, len) in taps {
                assert_eq!(
                    len,
                    3 * shapes[i].iter().product::<usize>(),
                    "{family} layer {i}"
                );
            }
            assert_eq!(shapes.last().unwrap(), &[10, 1, 1]);
        }
    }
}
