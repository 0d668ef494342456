//! Explicit architecture specs: every block's channels, kernel, stride, squeeze-excitation and
//! residual written out, so a pruned network is still a plain spec. Validation names the
//! offending key; [`layers`](MobileNetSpec::layers) gives each layer's analytic cost.
//!
//! MAC convention (as opt-core): one multiply-accumulate = 1 MAC, counted for convolutions
//! (`out_h * out_w * out_c * in_c / groups * k * k`, the squeeze-excitation 1x1 convolutions on
//! their 1x1 input included) and linear layers (`in * out`); batch norm, activations, pooling,
//! the squeeze-excitation scaling and residual additions count 0. Parameters are counted as
//! PyTorch does (batch-norm running statistics excluded).

use opt_core::model::{InputShape, LayerCost, LayerKind, conv_out};
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

/// Accumulates layer costs while walking a network's shapes.
pub(crate) struct Costs {
    pub layers: Vec<LayerCost>,
    pub hw: (usize, usize),
}

impl Costs {
    pub fn new(input: InputShape) -> Self {
        Self {
            layers: Vec::new(),
            hw: (input.height, input.width),
        }
    }

    /// A convolution with "same" padding on the current feature map.
    #[allow(clippy::too_many_arguments)]
    fn conv(
        &mut self,
        name: String,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        groups: usize,
        bias: bool,
    ) {
        let p = (k - 1) / 2;
        let (h, w) = (
            conv_out(self.hw.0, k, stride, p),
            conv_out(self.hw.1, k, stride, p),
        );
        self.hw = (h, w);
        let weights = (cout * (cin / groups) * k * k) as u64;
        self.layers.push(LayerCost {
            name,
            kind: LayerKind::Conv2d,
            output: vec![cout, h, w],
            params: weights + if bias { cout as u64 } else { 0 },
            macs: weights * (h * w) as u64,
        });
    }

    /// Convolution + batch norm under `{name}.conv` and `{name}.bn`.
    pub fn conv_bn(
        &mut self,
        name: &str,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        groups: usize,
    ) {
        self.conv(format!("{name}.conv"), cin, cout, k, stride, groups, false);
        let (h, w) = self.hw;
        self.layers.push(LayerCost {
            name: format!("{name}.bn"),
            kind: LayerKind::BatchNorm,
            output: vec![cout, h, w],
            params: 2 * cout as u64,
            macs: 0,
        });
    }

    /// Squeeze-excitation: two 1x1 convolutions with bias on the pooled 1x1 map.
    fn se(&mut self, name: &str, channels: usize, squeeze: usize) {
        let hw = self.hw;
        self.hw = (1, 1);
        self.conv(format!("{name}.fc1"), channels, squeeze, 1, 1, 1, true);
        self.conv(format!("{name}.fc2"), squeeze, channels, 1, 1, 1, true);
        self.hw = hw;
    }

    pub fn linear(&mut self, name: &str, i: usize, o: usize) {
        self.layers.push(LayerCost {
            name: name.into(),
            kind: LayerKind::Linear,
            output: vec![o],
            params: (i * o + o) as u64,
            macs: (i * o) as u64,
        });
    }
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

    /// Every layer with parameters in forward order, named as the module reports them.
    pub fn layers(&self, input: InputShape, classes: usize) -> Vec<LayerCost> {
        let mut c = Costs::new(input);
        c.conv_bn("stem", input.channels, self.stem, 3, self.stem_stride, 1);
        let mut last = self.stem;
        for (i, (cin, b)) in self.blocks().into_iter().enumerate() {
            last = b.out;
            let name = format!("blocks.{i}");
            let hidden = b.expanded.unwrap_or(cin);
            if let Some(e) = b.expanded {
                c.conv_bn(&format!("{name}.expand"), cin, e, 1, 1, 1);
            }
            c.conv_bn(
                &format!("{name}.depthwise"),
                hidden,
                hidden,
                b.kernel,
                b.stride,
                hidden,
            );
            if let Some(s) = b.se {
                c.se(&format!("{name}.se"), hidden, s);
            }
            c.conv_bn(&format!("{name}.project"), hidden, b.out, 1, 1, 1);
        }
        c.conv_bn("head", last, self.head, 1, 1, 1);
        let features = match self.hidden {
            Some(h) => {
                c.linear("hidden", self.head, h);
                h
            }
            None => self.head,
        };
        c.linear("classifier", features, classes);
        c.layers
    }
}

impl MobileNetV1Spec {
    /// The product of all strides.
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

    /// Every layer with parameters in forward order.
    pub fn layers(&self, input: InputShape, classes: usize) -> Vec<LayerCost> {
        let mut c = Costs::new(input);
        c.conv_bn("stem", input.channels, self.stem, 3, self.stem_stride, 1);
        let mut prev = self.stem;
        for (i, b) in self.blocks.iter().enumerate() {
            c.conv_bn(
                &format!("blocks.{i}.depthwise"),
                prev,
                prev,
                3,
                b.stride,
                prev,
            );
            c.conv_bn(&format!("blocks.{i}.pointwise"), prev, b.out, 1, 1, 1);
            prev = b.out;
        }
        c.linear("classifier", prev, classes);
        c.layers
    }
}
