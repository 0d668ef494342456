//! Serializable model descriptions with every width explicit. Their analytic cost comes from
//! the graph they lower to (see [`crate::graph`] for the MAC and parameter conventions).

use serde::{Deserialize, Serialize};

use burn::tensor::backend::Backend;

use super::arch::Architecture;
use super::groups::{ChannelGroup, check_group_widths};
use super::limits::{MAX_SIDE, at_most, positive};
use super::nets::Model;
use crate::error::{CoreError, Result};
use crate::graph::Graph;

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
    /// The model graph (see [`Architecture::graph`]).
    pub fn graph(&self) -> Graph {
        self.arch.graph(self.input, self.classes)
    }

    /// Every layer with parameters, in forward order, with its output shape and cost, from
    /// the graph ([`Graph::layers`]); empty for a spec whose graph [`Self::validate`] refuses.
    /// The names are the module paths the forward pass reports to a
    /// [`LayerObserver`](super::nets::LayerObserver).
    pub fn layers(&self) -> Vec<LayerCost> {
        self.graph().layers().unwrap_or_default()
    }

    /// The channel groups structured pruning may shrink, in a fixed order (see
    /// [`ChannelGroup`] and [`Graph::channel_groups`]).
    pub fn channel_groups(&self) -> Result<Vec<ChannelGroup>> {
        self.graph().channel_groups()
    }

    /// PyTorch module names for our module paths (`stem.conv` -> `features.0.0`), used to
    /// read and write PyTorch-named safetensors files; `None` keeps our names.
    pub fn torch_modules(&self) -> Option<Vec<(String, String)>> {
        self.graph().torch_modules()
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

    fn graph(&self, input: InputShape, classes: usize) -> crate::graph::Graph {
        self.lower(input, classes)
    }

    fn build<B: Backend>(&self, input: InputShape, classes: usize, device: &B::Device) -> Model<B> {
        super::nets::build(self, input, classes, device)
    }

    fn with_group_widths(
        &self,
        input: InputShape,
        classes: usize,
        widths: &[usize],
    ) -> Result<Self> {
        let groups = self.lower(input, classes).channel_groups()?;
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
