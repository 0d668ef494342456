//! Serializable model descriptions with every width explicit, and their analytic cost.
//!
//! MAC convention: one multiply-accumulate = 1 MAC, counted for convolutions
//! (`out_h * out_w * out_c * in_c / groups * k_h * k_w`) and linear layers (`in * out`) per
//! image; bias additions, batch norm, activations and pooling count 0. Parameters are counted as
//! PyTorch does: weights, biases and batch-norm scale and shift, not batch-norm running statistics.

use serde::{Deserialize, Serialize};

use burn::tensor::backend::Backend;

use super::arch::Architecture;
use super::groups::{ChannelGroup, check_group_widths};
use super::limits::{MAX_SIDE, at_most, positive};
use super::nets::Model;
use crate::error::{CoreError, Result};

/// Shape of one input image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputShape {
    /// Channels (1 for grayscale).
    pub channels: usize,
    /// Height in pixels.
    pub height: usize,
    /// Width in pixels.
    pub width: usize,
}

/// An architecture with all widths written out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "arch", rename_all = "snake_case", deny_unknown_fields)]
pub enum Arch {
    /// Fully connected network with ReLU between layers; `[300, 100]` is LeNet-300-100.
    Mlp {
        /// Widths of the hidden layers.
        #[serde(default = "default_mlp_hidden")]
        hidden: Vec<usize>,
    },
    /// Caffe LeNet-5 as in Deep Compression: conv 5x5, max-pool 2, conv 5x5, max-pool 2,
    /// fc + ReLU, fc; no activation after the convolutions.
    Lenet5 {
        /// Output channels of the first convolution (20).
        #[serde(default = "default_conv1")]
        conv1: usize,
        /// Output channels of the second convolution (50).
        #[serde(default = "default_conv2")]
        conv2: usize,
        /// Width of the hidden fully connected layer (500).
        #[serde(default = "default_fc1")]
        fc1: usize,
    },
    /// Small modern CNN: per block conv 3x3 (padding 1, no bias) + batch norm + ReLU +
    /// max-pool 2, then fc + ReLU and a linear head. The quickstart default.
    Cnn {
        /// Output channels of each block.
        #[serde(default = "default_cnn_blocks")]
        blocks: Vec<usize>,
        /// Width of the hidden fully connected layer.
        #[serde(default = "default_cnn_fc")]
        fc: usize,
    },
}

fn default_mlp_hidden() -> Vec<usize> {
    vec![300, 100]
}
fn default_conv1() -> usize {
    20
}
fn default_conv2() -> usize {
    50
}
fn default_fc1() -> usize {
    500
}
fn default_cnn_blocks() -> Vec<usize> {
    vec![16, 32, 64]
}
fn default_cnn_fc() -> usize {
    128
}

/// A model: its input, its number of classes and its architecture (opt-core's families by
/// default; opt-arch adds MobileNet and EfficientNet through the [`Architecture`] trait).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec<A = Arch> {
    /// Shape of one input image.
    pub input: InputShape,
    /// Number of output classes.
    pub classes: usize,
    /// The architecture.
    pub arch: A,
}

/// What a layer is, for cost accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerKind {
    /// 2-D convolution.
    Conv2d,
    /// Batch normalization.
    BatchNorm,
    /// Fully connected layer.
    Linear,
}

/// One layer's name, output shape (per image) and cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerCost {
    /// The layer's path in the module (`conv1`, `blocks.0.conv`).
    pub name: String,
    /// Kind of layer.
    pub kind: LayerKind,
    /// Output shape of one image (`[c, h, w]` or `[features]`).
    pub output: Vec<usize>,
    /// Parameters (PyTorch convention).
    pub params: u64,
    /// Multiply-accumulates per image.
    pub macs: u64,
}

/// Output size of a convolution or pooling along one axis.
pub fn conv_out(size: usize, kernel: usize, stride: usize, padding: usize) -> usize {
    (size + 2 * padding).saturating_sub(kernel) / stride + 1
}

impl ModelSpec<Arch> {
    /// The spec of a family with its canonical widths (`mlp` = LeNet-300-100, `lenet5`, `cnn`).
    pub fn preset(family: &str, input: InputShape, classes: usize) -> Result<Self> {
        let arch = match family {
            "mlp" => Arch::Mlp {
                hidden: default_mlp_hidden(),
            },
            "lenet5" => Arch::Lenet5 {
                conv1: default_conv1(),
                conv2: default_conv2(),
                fc1: default_fc1(),
            },
            "cnn" => Arch::Cnn {
                blocks: default_cnn_blocks(),
                fc: default_cnn_fc(),
            },
            other => {
                return Err(CoreError::invalid(
                    "model.arch",
                    other,
                    "unknown architecture; use one of mlp, lenet5, cnn",
                ));
            }
        };
        let spec = Self {
            input,
            classes,
            arch,
        };
        spec.validate()?;
        Ok(spec)
    }
}

impl<A: Architecture> ModelSpec<A> {
    /// Every layer with parameters, in forward order, with its output shape and cost.
    pub fn layers(&self) -> Vec<LayerCost> {
        self.arch.layers(self.input, self.classes)
    }

    /// Parameters (PyTorch convention); saturates at `u64::MAX` for a spec that
    /// [`Self::validate`] refuses.
    pub fn params(&self) -> u64 {
        self.layers()
            .iter()
            .fold(0u64, |a, l| a.saturating_add(l.params))
    }

    /// Multiply-accumulates per image; saturates like [`Self::params`].
    pub fn macs(&self) -> u64 {
        self.layers()
            .iter()
            .fold(0u64, |a, l| a.saturating_add(l.macs))
    }

    /// A one-line description (`lenet5 conv1=20 conv2=50 fc1=500`).
    pub fn describe(&self) -> String {
        self.arch.describe()
    }
}

impl Architecture for Arch {
    type Model<B: Backend> = Model<B>;

    fn family(&self) -> String {
        match self {
            Arch::Mlp { .. } => "mlp",
            Arch::Lenet5 { .. } => "lenet5",
            Arch::Cnn { .. } => "cnn",
        }
        .into()
    }

    fn describe(&self) -> String {
        match self {
            Arch::Mlp { hidden } => format!("mlp hidden={hidden:?}"),
            Arch::Lenet5 { conv1, conv2, fc1 } => {
                format!("lenet5 conv1={conv1} conv2={conv2} fc1={fc1}")
            }
            Arch::Cnn { blocks, fc } => format!("cnn blocks={blocks:?} fc={fc}"),
        }
    }

    fn validate(&self, input: InputShape, _classes: usize) -> Result<()> {
        match self {
            Arch::Mlp { hidden } => {
                at_most("hidden", hidden.len(), 64)?;
                for (i, &h) in hidden.iter().enumerate() {
                    positive(&format!("hidden[{i}]"), h)?;
                }
            }
            Arch::Lenet5 { conv1, conv2, fc1 } => {
                positive("conv1", *conv1)?;
                positive("conv2", *conv2)?;
                positive("fc1", *fc1)?;
                let side = |s: usize| (s.saturating_sub(4) / 2).saturating_sub(4) / 2;
                if input.height < 16 || input.width < 16 {
                    return Err(CoreError::invalid(
                        "model.arch",
                        "lenet5",
                        format!(
                            "lenet5 needs images of at least 16x16, got {}x{} (side after the convolutions: {})",
                            input.height,
                            input.width,
                            side(input.height.min(input.width))
                        ),
                    ));
                }
            }
            Arch::Cnn { blocks, fc } => {
                if blocks.is_empty() {
                    return Err(CoreError::invalid(
                        "model.blocks",
                        "[]",
                        "a cnn needs at least one block",
                    ));
                }
                for (i, &c) in blocks.iter().enumerate() {
                    positive(&format!("blocks[{i}]"), c)?;
                }
                positive("fc", *fc)?;
                // Each block halves the image: 2^blocks pixels per side at least.
                let min = u32::try_from(blocks.len())
                    .ok()
                    .and_then(|n| 1usize.checked_shl(n))
                    .filter(|&m| m <= MAX_SIDE);
                if !min.is_some_and(|m| input.height >= m && input.width >= m) {
                    let need = min.map_or_else(
                        || format!("more than {MAX_SIDE}x{MAX_SIDE}"),
                        |m| format!("{m}x{m}"),
                    );
                    return Err(CoreError::invalid(
                        "model.blocks",
                        format!("{blocks:?}"),
                        format!(
                            "{} pooling blocks need images of at least {need}, got {}x{}; use fewer blocks",
                            blocks.len(),
                            input.height,
                            input.width
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn layers(&self, input: InputShape, classes: usize) -> Vec<LayerCost> {
        let mut out = Vec::new();
        let InputShape {
            channels,
            height,
            width,
        } = input;
        let conv = |out: &mut Vec<LayerCost>,
                    name: String,
                    cin: usize,
                    cout: usize,
                    k: usize,
                    h: usize,
                    w: usize,
                    bias: bool| {
            out.push(LayerCost {
                name,
                kind: LayerKind::Conv2d,
                output: vec![cout, h, w],
                params: (cout * cin * k * k + if bias { cout } else { 0 }) as u64,
                macs: (h * w * cout * cin * k * k) as u64,
            });
        };
        let linear = |out: &mut Vec<LayerCost>, name: String, i: usize, o: usize| {
            out.push(LayerCost {
                name,
                kind: LayerKind::Linear,
                output: vec![o],
                params: (i * o + o) as u64,
                macs: (i * o) as u64,
            });
        };
        match self {
            Arch::Mlp { hidden } => {
                let mut prev = channels * height * width;
                for (i, &h) in hidden.iter().chain(std::iter::once(&classes)).enumerate() {
                    linear(&mut out, format!("layers.{i}"), prev, h);
                    prev = h;
                }
            }
            Arch::Lenet5 { conv1, conv2, fc1 } => {
                let (h1, w1) = (conv_out(height, 5, 1, 0), conv_out(width, 5, 1, 0));
                conv(&mut out, "conv1".into(), channels, *conv1, 5, h1, w1, true);
                let (h2, w2) = (conv_out(h1 / 2, 5, 1, 0), conv_out(w1 / 2, 5, 1, 0));
                conv(&mut out, "conv2".into(), *conv1, *conv2, 5, h2, w2, true);
                linear(&mut out, "fc1".into(), conv2 * (h2 / 2) * (w2 / 2), *fc1);
                linear(&mut out, "fc2".into(), *fc1, classes);
            }
            Arch::Cnn { blocks, fc } => {
                let (mut c, mut h, mut w) = (channels, height, width);
                for (i, &b) in blocks.iter().enumerate() {
                    conv(&mut out, format!("blocks.{i}.conv"), c, b, 3, h, w, false);
                    out.push(LayerCost {
                        name: format!("blocks.{i}.bn"),
                        kind: LayerKind::BatchNorm,
                        output: vec![b, h, w],
                        params: 2 * b as u64,
                        macs: 0,
                    });
                    (c, h, w) = (b, h / 2, w / 2);
                }
                linear(&mut out, "fc".into(), c * h * w, *fc);
                linear(&mut out, "head".into(), *fc, classes);
            }
        }
        out
    }

    fn build<B: Backend>(&self, input: InputShape, classes: usize, device: &B::Device) -> Model<B> {
        super::nets::build(self, input, classes, device)
    }

    fn channel_groups(&self, input: InputShape, _classes: usize) -> Option<Vec<ChannelGroup>> {
        let mut groups = Vec::new();
        match self {
            Arch::Mlp { hidden } => {
                for (i, &h) in hidden.iter().enumerate() {
                    let name = format!("layers.{i}");
                    groups.push(
                        ChannelGroup::new(&name, h)
                            .linear_out(&name)
                            .linear_in(&format!("layers.{}", i + 1), 1)
                            .build(),
                    );
                }
            }
            Arch::Lenet5 { conv1, conv2, fc1 } => {
                let side = |s: usize| ((s - 4) / 2 - 4) / 2;
                let area = side(input.height) * side(input.width);
                groups.push(
                    ChannelGroup::new("conv1", *conv1)
                        .conv_out("conv1", true)
                        .conv_in("conv2")
                        .build(),
                );
                groups.push(
                    ChannelGroup::new("conv2", *conv2)
                        .conv_out("conv2", true)
                        .linear_in("fc1", area)
                        .build(),
                );
                groups.push(
                    ChannelGroup::new("fc1", *fc1)
                        .linear_out("fc1")
                        .linear_in("fc2", 1)
                        .build(),
                );
            }
            Arch::Cnn { blocks, fc } => {
                let shrink = 1usize << blocks.len();
                let area = (input.height / shrink) * (input.width / shrink);
                for (i, &b) in blocks.iter().enumerate() {
                    let conv = format!("blocks.{i}.conv");
                    let mut g = ChannelGroup::new(&conv, b);
                    g.conv_out(&conv, false).norm(&format!("blocks.{i}.bn"));
                    if i + 1 < blocks.len() {
                        g.conv_in(&format!("blocks.{}.conv", i + 1));
                    } else {
                        g.linear_in("fc", area);
                    }
                    groups.push(g);
                }
                groups.push(
                    ChannelGroup::new("fc", *fc)
                        .linear_out("fc")
                        .linear_in("head", 1)
                        .build(),
                );
            }
        }
        Some(groups)
    }

    fn with_group_widths(
        &self,
        input: InputShape,
        classes: usize,
        widths: &[usize],
    ) -> Result<Self> {
        let groups = self.channel_groups(input, classes).unwrap_or_default();
        check_group_widths(&groups, widths)?;
        Ok(match self {
            Arch::Mlp { .. } => Arch::Mlp {
                hidden: widths.to_vec(),
            },
            Arch::Lenet5 { .. } => Arch::Lenet5 {
                conv1: widths[0],
                conv2: widths[1],
                fc1: widths[2],
            },
            Arch::Cnn { blocks, .. } => Arch::Cnn {
                blocks: widths[..blocks.len()].to_vec(),
                fc: widths[blocks.len()],
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_util::MNIST;

    #[test]
    fn reference_parameter_counts() {
        assert_eq!(
            ModelSpec::preset("mlp", MNIST, 10).unwrap().params(),
            266_610
        );
        assert_eq!(
            ModelSpec::preset("lenet5", MNIST, 10).unwrap().params(),
            431_080
        );
    }

    #[test]
    fn lenet5_macs_by_hand() {
        // conv1 24*24*20*25 + conv2 8*8*50*20*25 + fc1 800*500 + fc2 500*10
        let expect = 288_000 + 1_600_000 + 400_000 + 5_000;
        assert_eq!(
            ModelSpec::preset("lenet5", MNIST, 10).unwrap().macs(),
            expect
        );
    }

    #[test]
    fn spec_round_trips_and_rejects_unknown_fields() {
        let spec = ModelSpec::preset("cnn", MNIST, 10).unwrap();
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<ModelSpec>(&json).unwrap(), spec);
        let bad = json.replace("\"fc\"", "\"fcc\"");
        assert!(serde_json::from_str::<ModelSpec>(&bad).is_err());
    }

    #[test]
    fn validation_names_the_key() {
        let mut spec = ModelSpec::preset("lenet5", MNIST, 10).unwrap();
        spec.arch = Arch::Lenet5 {
            conv1: 0,
            conv2: 50,
            fc1: 500,
        };
        assert!(
            spec.validate()
                .unwrap_err()
                .to_string()
                .contains("model.conv1")
        );
        let small = InputShape {
            channels: 1,
            height: 4,
            width: 4,
        };
        let e = ModelSpec::preset("cnn", small, 10).unwrap_err().to_string();
        assert!(e.contains("at least 8x8"), "{e}");
        assert!(
            ModelSpec::preset("resnet", MNIST, 10)
                .unwrap_err()
                .to_string()
                .contains("mlp, lenet5, cnn")
        );
    }
}
