//! The inverted residual block in its three published forms, one module:
//!
//! - MobileNetV2 (Sandler et al. 2018): 1x1 expansion + ReLU6, 3x3 depthwise + ReLU6, linear 1x1
//!   projection (the "linear bottleneck"), residual add when the shapes allow;
//! - MobileNetV3 (Howard et al. 2019): the same with 3x3 or 5x5 depthwise kernels, ReLU or
//!   hard-swish, and an optional squeeze-excitation gated by a hard-sigmoid;
//! - EfficientNet's MBConv (Tan & Le 2019): SiLU, squeeze-excitation with a sigmoid gate on
//!   every block, and stochastic depth on the residual branch.
//!
//! The expansion is optional (absent when the expansion ratio is 1) and the residual is an
//! explicit flag, so a pruned block keeps its structure whatever its widths become.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Tensor, backend::Backend};
use opt_core::model::LayerObserver;

use crate::activation::Activation;
use crate::conv_bn_act::{ConvBnAct, ConvBnActConfig};
use crate::squeeze_excitation::{SqueezeExcitation, SqueezeExcitationConfig};
use crate::stochastic_depth::stochastic_depth;

/// Configuration of an [`InvertedResidual`] block.
#[derive(Config, Debug)]
pub struct InvertedResidualConfig {
    /// Input channels.
    pub input: usize,
    /// Channels after the 1x1 expansion; `None` for no expansion (the depthwise convolution
    /// then runs on the input channels).
    pub expanded: Option<usize>,
    /// Output channels.
    pub output: usize,
    /// Depthwise kernel size (3 or 5).
    #[config(default = 3)]
    pub kernel: usize,
    /// Depthwise stride.
    #[config(default = 1)]
    pub stride: usize,
    /// Activation after the expansion and the depthwise convolution.
    #[config(default = "Activation::Relu6")]
    pub activation: Activation,
    /// Squeeze-excitation width; `None` for no squeeze-excitation.
    pub se: Option<usize>,
    /// Activation inside the squeeze-excitation.
    #[config(default = "Activation::Relu")]
    pub se_activation: Activation,
    /// Gate of the squeeze-excitation.
    #[config(default = "Activation::Hardsigmoid")]
    pub se_gate: Activation,
    /// Add the input to the output (needs stride 1 and `input == output`).
    #[config(default = false)]
    pub residual: bool,
    /// Stochastic-depth probability of the residual branch (training only).
    #[config(default = 0.0)]
    pub drop_path: f64,
    /// Batch-norm epsilon.
    #[config(default = 1e-5)]
    pub bn_eps: f64,
    /// Batch-norm momentum (PyTorch's convention).
    #[config(default = 0.1)]
    pub bn_momentum: f64,
}

impl InvertedResidualConfig {
    /// A MobileNetV2 block: expansion ratio `t` (1 = no expansion), ReLU6, no squeeze-excitation.
    pub fn mobilenet_v2(input: usize, output: usize, stride: usize, t: usize) -> Self {
        Self::new(input, output)
            .with_expanded((t != 1).then_some(input * t))
            .with_stride(stride)
            .with_residual(stride == 1 && input == output)
    }

    /// A MobileNetV3 block: `se` squeeze channels (if any) with a hard-sigmoid gate and ReLU
    /// inside, batch norm with MobileNetV3's epsilon 0.001 and momentum 0.01.
    pub fn mobilenet_v3(
        input: usize,
        expanded: usize,
        output: usize,
        kernel: usize,
        stride: usize,
        se: Option<usize>,
        activation: Activation,
    ) -> Self {
        Self::new(input, output)
            .with_expanded((expanded != input).then_some(expanded))
            .with_kernel(kernel)
            .with_stride(stride)
            .with_activation(activation)
            .with_se(se)
            .with_residual(stride == 1 && input == output)
            .with_bn_eps(1e-3)
            .with_bn_momentum(0.01)
    }

    /// An EfficientNet MBConv block: expansion ratio `t`, SiLU, squeeze-excitation of
    /// `max(1, input / 4)` channels with a sigmoid gate, stochastic depth `drop_path`.
    pub fn mbconv(
        input: usize,
        output: usize,
        kernel: usize,
        stride: usize,
        t: usize,
        drop_path: f64,
    ) -> Self {
        Self::new(input, output)
            .with_expanded((t != 1).then_some(input * t))
            .with_kernel(kernel)
            .with_stride(stride)
            .with_activation(Activation::Silu)
            .with_se(Some((input / 4).max(1)))
            .with_se_activation(Activation::Silu)
            .with_se_gate(Activation::Sigmoid)
            .with_residual(stride == 1 && input == output)
            .with_drop_path(drop_path)
    }

    /// Builds the block.
    pub fn init<B: Backend>(&self, device: &B::Device) -> InvertedResidual<B> {
        let hidden = self.expanded.unwrap_or(self.input);
        let unit = |channels, kernel, stride, groups, activation| {
            ConvBnActConfig::new(channels)
                .with_kernel(kernel)
                .with_stride(stride)
                .with_groups(groups)
                .with_activation(activation)
                .with_bn_eps(self.bn_eps)
                .with_bn_momentum(self.bn_momentum)
                .init(device)
        };
        InvertedResidual {
            expand: self
                .expanded
                .map(|e| unit([self.input, e], 1, 1, 1, self.activation)),
            depthwise: unit(
                [hidden, hidden],
                self.kernel,
                self.stride,
                hidden,
                self.activation,
            ),
            se: self.se.map(|s| {
                SqueezeExcitationConfig::new(hidden, s)
                    .with_activation(self.se_activation)
                    .with_gate(self.se_gate)
                    .init(device)
            }),
            project: unit([hidden, self.output], 1, 1, 1, Activation::Identity),
            residual: self.residual,
            drop_path: self.drop_path,
        }
    }
}

/// Expansion (optional), depthwise, squeeze-excitation (optional), linear projection,
/// residual add (optional, with stochastic depth).
#[derive(Module, Debug)]
pub struct InvertedResidual<B: Backend> {
    /// 1x1 expansion with activation.
    pub expand: Option<ConvBnAct<B>>,
    /// Depthwise convolution with activation.
    pub depthwise: ConvBnAct<B>,
    /// Squeeze-excitation on the depthwise output.
    pub se: Option<SqueezeExcitation<B>>,
    /// 1x1 projection without activation.
    pub project: ConvBnAct<B>,
    /// Whether the input is added to the output.
    pub residual: bool,
    /// Stochastic-depth probability of the residual branch.
    pub drop_path: f64,
}

impl<B: Backend> InvertedResidual<B> {
    /// Applies the block; layers are reported as `{name}.expand.conv`, `{name}.depthwise.conv`,
    /// `{name}.se.fc1`, `{name}.project.conv` and their batch norms.
    ///
    /// # Shapes
    /// - x: `[batch, input, h, w]`
    /// - output: `[batch, output, (h - 1) / stride + 1, (w - 1) / stride + 1]`
    pub fn forward(&self, x: Tensor<B, 4>, name: &str, obs: LayerObserver<'_, B>) -> Tensor<B, 4> {
        let mut y = x.clone();
        if let Some(expand) = &self.expand {
            y = expand.forward(y, &format!("{name}.expand"), obs);
        }
        y = self.depthwise.forward(y, &format!("{name}.depthwise"), obs);
        if let Some(se) = &self.se {
            y = se.forward(y, &format!("{name}.se"), obs);
        }
        y = self.project.forward(y, &format!("{name}.project"), obs);
        if self.residual {
            stochastic_depth(y, self.drop_path).add(x)
        } else {
            y
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;
    use opt_core::model::count_params;
    use opt_core::test_util::{TestBackend, device};

    fn run(cfg: &InvertedResidualConfig, hw: usize) -> (Vec<usize>, Vec<String>, u64) {
        let block = cfg.init::<TestBackend>(&device());
        let x = Tensor::<TestBackend, 4>::random(
            [2, cfg.input, hw, hw],
            Distribution::Default,
            &device(),
        );
        let mut names = Vec::new();
        let y = block.forward(x, "b", &mut |n, _| names.push(n.to_string()));
        (y.dims().to_vec(), names, count_params(&block).params)
    }

    #[test]
    fn mobilenet_v2_block_with_and_without_expansion() {
        // torchvision features.2 of MobileNetV2: 16 -> 96 -> 24, stride 2: 5,568 parameters.
        let (dims, names, params) = run(&InvertedResidualConfig::mobilenet_v2(16, 24, 2, 6), 8);
        assert_eq!(dims, [2, 24, 4, 4]);
        assert_eq!(params, 16 * 96 + 192 + 96 * 9 + 192 + 96 * 24 + 48);
        assert_eq!(names[0], "b.expand.conv");
        // t = 1: no expansion conv (torchvision features.1: 32 -> 16, 896 parameters).
        let (_, names, params) = run(&InvertedResidualConfig::mobilenet_v2(32, 16, 1, 1), 4);
        assert_eq!(params, 32 * 9 + 64 + 32 * 16 + 32);
        assert_eq!(names[0], "b.depthwise.conv");
    }

    #[test]
    fn mobilenet_v3_block_has_5x5_depthwise_and_se() {
        let cfg =
            InvertedResidualConfig::mobilenet_v3(24, 72, 40, 5, 2, Some(24), Activation::Relu);
        let block = cfg.init::<TestBackend>(&device());
        assert_eq!(block.depthwise.conv.weight.dims(), [72, 1, 5, 5]);
        assert_eq!(block.se.as_ref().unwrap().fc1.weight.dims(), [24, 72, 1, 1]);
        assert_eq!(block.depthwise.bn.epsilon, 1e-3);
        let (dims, names, _) = run(&cfg, 7);
        assert_eq!(dims, [2, 40, 4, 4]);
        assert!(names.contains(&"b.se.fc2".to_string()), "{names:?}");
    }

    #[test]
    fn mbconv_residual_is_identity_when_the_branch_is_zero() {
        let cfg = InvertedResidualConfig::mbconv(16, 16, 3, 1, 6, 0.2);
        assert_eq!(cfg.se, Some(4));
        let mut block = cfg.init::<TestBackend>(&device());
        assert!(block.residual);
        // gamma = beta = 0 in the projection's batch norm zeroes the branch.
        let bn = &mut block.project.bn;
        bn.gamma = bn.gamma.clone().map(|g| g.zeros_like());
        let x = Tensor::<TestBackend, 4>::random([2, 16, 5, 5], Distribution::Default, &device());
        let y = block.forward(x.clone(), "b", &mut |_, _| {});
        assert_eq!(y.into_data(), x.into_data());
    }
}
