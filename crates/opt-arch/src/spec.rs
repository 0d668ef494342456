//! Explicit architecture specs: every block's channels, kernel, stride, squeeze-excitation and
//! residual written out, so a pruned network is still a plain spec. Validation names the
//! offending key. Each spec lowers to a model graph (`lower.rs`), from which its costs,
//! channel groups and PyTorch names are computed.

use opt_core::model::InputShape;
use opt_core::{CoreError, Result};
use serde::{Deserialize, Serialize};

use crate::activation::Activation;

/// One inverted residual block (its input channels are the previous block's output).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockSpec {
    /// Channels after the 1x1 expansion; absent for no expansion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expanded: Option<usize>,
    /// Output channels.
    pub out: usize,
    /// Depthwise kernel size.
    pub kernel: usize,
    /// Depthwise stride.
    pub stride: usize,
    /// Squeeze-excitation channels; absent for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub se: Option<usize>,
    /// Activation after the expansion and the depthwise convolution.
    pub act: Activation,
    /// Whether the block adds its input to its output.
    pub residual: bool,
}

/// MobileNetV2, MobileNetV3 and EfficientNet: stem, stages of inverted residual blocks, a 1x1
/// head convolution, global average pooling, an optional hidden linear layer, the classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MobileNetSpec {
    /// Output channels of the 3x3 stem convolution.
    pub stem: usize,
    /// Stride of the stem (2 for ImageNet-sized inputs, 1 with the small-input stem).
    pub stem_stride: usize,
    /// Blocks grouped by stage (EfficientNet's PyTorch names follow the stages).
    pub stages: Vec<Vec<BlockSpec>>,
    /// Output channels of the last 1x1 convolution.
    pub head: usize,
    /// Width of the hidden linear layer before the classifier (MobileNetV3 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden: Option<usize>,
    /// Dropout before the classifier.
    pub dropout: f64,
    /// Largest stochastic-depth probability (EfficientNet: 0.2, growing linearly with depth).
    #[serde(default)]
    pub drop_path: f64,
    /// Batch-norm epsilon.
    pub bn_eps: f64,
    /// Batch-norm momentum (PyTorch's convention).
    pub bn_momentum: f64,
}

/// One MobileNetV1 depthwise-separable block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeparableSpec {
    /// Output channels of the pointwise convolution.
    pub out: usize,
    /// Stride of the depthwise convolution.
    pub stride: usize,
}

/// MobileNetV1: stem, depthwise-separable blocks, global average pooling, classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MobileNetV1Spec {
    /// Output channels of the 3x3 stem convolution.
    pub stem: usize,
    /// Stride of the stem.
    pub stem_stride: usize,
    /// The depthwise-separable blocks.
    pub blocks: Vec<SeparableSpec>,
    /// Dropout before the classifier.
    pub dropout: f64,
    /// Batch-norm epsilon.
    pub bn_eps: f64,
}

fn invalid(key: String, value: impl std::fmt::Display, problem: impl Into<String>) -> CoreError {
    CoreError::invalid(format!("model.{key}"), value, problem.into())
}

/// A width between 1 and opt-core's bound (checked before anything is computed from it).
fn at_least_one(key: String, v: usize) -> Result<()> {
    opt_core::model::positive(&key, v)
}

/// The most blocks a MobileNet or EfficientNet spec may have (B7 has 55).
const MAX_BLOCKS: usize = 512;

fn check_stride(key: String, v: usize) -> Result<()> {
    if v != 1 && v != 2 {
        return Err(invalid(key, v, "stride must be 1 or 2"));
    }
    Ok(())
}

fn check_rate(key: &str, v: f64) -> Result<()> {
    if !(0.0..1.0).contains(&v) {
        return Err(invalid(key.into(), v, "must be in [0, 1)"));
    }
    Ok(())
}

/// The input must be at least as large as the product of all strides.
fn check_total_stride(input: InputShape, stride: usize, family: &str) -> Result<()> {
    if input.height < stride || input.width < stride {
        return Err(invalid(
            "input".into(),
            format!("{}x{}", input.height, input.width),
            format!(
                "the image is smaller than {family}'s total stride {stride}; use larger images, \
                 or the small-input stem (`small_input = true`), which divides the stride by 4"
            ),
        ));
    }
    Ok(())
}

impl MobileNetSpec {
    /// All blocks in forward order with their input channels.
    pub fn blocks(&self) -> Vec<(usize, &BlockSpec)> {
        let mut prev = self.stem;
        let mut out = Vec::new();
        for b in self.stages.iter().flatten() {
            out.push((prev, b));
            prev = b.out;
        }
        out
    }

    /// The product of all strides (saturating).
    pub fn total_stride(&self) -> usize {
        self.blocks()
            .iter()
            .fold(self.stem_stride, |a, (_, b)| a.saturating_mul(b.stride))
    }

    /// Checks every width and rate, residual flags and the input size; errors name the key.
    pub fn validate(&self, input: InputShape, family: &str) -> Result<()> {
        at_least_one("stem".into(), self.stem)?;
        check_stride("stem_stride".into(), self.stem_stride)?;
        if self.stages.iter().all(|s| s.is_empty()) {
            return Err(invalid("stages".into(), "[]", "needs at least one block"));
        }
        opt_core::model::at_most("stages", self.stages.iter().map(Vec::len).sum(), MAX_BLOCKS)?;
        let mut prev = self.stem;
        for (s, stage) in self.stages.iter().enumerate() {
            for (j, b) in stage.iter().enumerate() {
                let key = |k: &str| format!("stages[{s}][{j}].{k}");
                at_least_one(key("out"), b.out)?;
                if let Some(e) = b.expanded {
                    at_least_one(key("expanded"), e)?;
                }
                if let Some(e) = b.se {
                    at_least_one(key("se"), e)?;
                }
                if b.kernel % 2 == 0 || b.kernel > 7 {
                    return Err(invalid(
                        key("kernel"),
                        b.kernel,
                        "kernel must be 1, 3, 5 or 7",
                    ));
                }
                check_stride(key("stride"), b.stride)?;
                if b.residual && (b.stride != 1 || prev != b.out) {
                    return Err(invalid(
                        key("residual"),
                        true,
                        format!(
                            "a residual block needs stride 1 and as many outputs as inputs, got stride {} and {prev} -> {}",
                            b.stride, b.out
                        ),
                    ));
                }
                prev = b.out;
            }
        }
        at_least_one("head".into(), self.head)?;
        if let Some(h) = self.hidden {
            at_least_one("hidden".into(), h)?;
        }
        check_rate("dropout", self.dropout)?;
        check_rate("drop_path", self.drop_path)?;
        if self.bn_eps.is_nan() || self.bn_eps <= 0.0 {
            return Err(invalid("bn_eps".into(), self.bn_eps, "must be positive"));
        }
        if !(self.bn_momentum > 0.0 && self.bn_momentum <= 1.0) {
            return Err(invalid(
                "bn_momentum".into(),
                self.bn_momentum,
                "must be in (0, 1]",
            ));
        }
        check_total_stride(input, self.total_stride(), family)
    }
}

impl MobileNetV1Spec {
    /// The product of all strides (saturating).
    pub fn total_stride(&self) -> usize {
        self.blocks
            .iter()
            .fold(self.stem_stride, |a, b| a.saturating_mul(b.stride))
    }

    /// Checks every width, stride and rate and the input size.
    pub fn validate(&self, input: InputShape) -> Result<()> {
        at_least_one("stem".into(), self.stem)?;
        check_stride("stem_stride".into(), self.stem_stride)?;
        if self.blocks.is_empty() {
            return Err(invalid("blocks".into(), "[]", "needs at least one block"));
        }
        opt_core::model::at_most("blocks", self.blocks.len(), MAX_BLOCKS)?;
        for (i, b) in self.blocks.iter().enumerate() {
            at_least_one(format!("blocks[{i}].out"), b.out)?;
            check_stride(format!("blocks[{i}].stride"), b.stride)?;
        }
        check_rate("dropout", self.dropout)?;
        if self.bn_eps.is_nan() || self.bn_eps <= 0.0 {
            return Err(invalid("bn_eps".into(), self.bn_eps, "must be positive"));
        }
        check_total_stride(input, self.total_stride(), "mobilenet_v1")
    }
}
