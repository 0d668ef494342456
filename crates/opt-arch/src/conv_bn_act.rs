//! Convolution (no bias) + batch norm + activation: the unit every MobileNet and EfficientNet
//! layer is made of (torchvision's `Conv2dNormActivation`).

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, PaddingConfig2d};
use burn::tensor::{Tensor, backend::Backend};
use opt_core::model::{LayerObserver, batch_norm, observe};
use opt_core::ops::conv2d_module;

use crate::activation::Activation;

/// Configuration of a [`ConvBnAct`].
#[derive(Config, Debug)]
pub struct ConvBnActConfig {
    /// Input and output channels.
    pub channels: [usize; 2],
    /// Square kernel size; the padding is `(kernel - 1) / 2` ("same" for stride 1).
    #[config(default = 1)]
    pub kernel: usize,
    /// Stride.
    #[config(default = 1)]
    pub stride: usize,
    /// Convolution groups (`channels[0]` for a depthwise convolution).
    #[config(default = 1)]
    pub groups: usize,
    /// Activation after the batch norm.
    #[config(default = "Activation::Relu")]
    pub activation: Activation,
    /// Batch-norm epsilon.
    #[config(default = 1e-5)]
    pub bn_eps: f64,
    /// Batch-norm momentum (PyTorch's convention: weight of the new batch statistics).
    #[config(default = 0.1)]
    pub bn_momentum: f64,
}

/// Convolution without bias, batch norm, activation.
#[derive(Module, Debug)]
pub struct ConvBnAct<B: Backend> {
    /// The convolution, `[out, in/groups, k, k]`.
    pub conv: Conv2d<B>,
    /// Batch norm over the output channels.
    pub bn: BatchNorm<B>,
    /// Activation after the batch norm.
    pub act: Activation,
}

impl ConvBnActConfig {
    /// Builds the layer (He-normal init on the fan-out, as torchvision does).
    pub fn init<B: Backend>(&self, device: &B::Device) -> ConvBnAct<B> {
        let [cin, cout] = self.channels;
        let p = (self.kernel - 1) / 2;
        ConvBnAct {
            conv: Conv2dConfig::new([cin, cout], [self.kernel, self.kernel])
                .with_stride([self.stride, self.stride])
                .with_groups(self.groups)
                .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
                .with_bias(false)
                .with_initializer(Initializer::KaimingNormal {
                    gain: 2f64.sqrt(),
                    fan_out_only: true,
                })
                .init(device),
            bn: BatchNormConfig::new(cout)
                .with_epsilon(self.bn_eps)
                .with_momentum(self.bn_momentum)
                .init(device),
            act: self.activation,
        }
    }
}

impl<B: Backend> ConvBnAct<B> {
    /// Applies the layer, reporting `{name}.conv` and `{name}.bn` to `obs`.
    ///
    /// # Shapes
    /// - x: `[batch, in, h, w]`
    /// - output: `[batch, out, h', w']` with `h' = (h - 1) / stride + 1` for odd kernels
    pub fn forward(&self, x: Tensor<B, 4>, name: &str, obs: LayerObserver<'_, B>) -> Tensor<B, 4> {
        let x = conv2d_module(&self.conv, x);
        observe(obs, &format!("{name}.conv"), &x);
        let x = batch_norm(&self.bn, x);
        observe(obs, &format!("{name}.bn"), &x);
        self.act.forward(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;
    use opt_core::test_util::{TestBackend, device};

    #[test]
    fn depthwise_strided_shapes_and_observations() {
        let layer = ConvBnActConfig::new([8, 8])
            .with_kernel(5)
            .with_stride(2)
            .with_groups(8)
            .with_activation(Activation::Hardswish)
            .init::<TestBackend>(&device());
        assert_eq!(layer.conv.weight.dims(), [8, 1, 5, 5]);
        assert!(layer.conv.bias.is_none());
        let x = Tensor::<TestBackend, 4>::random([2, 8, 15, 14], Distribution::Default, &device());
        let mut seen = Vec::new();
        let y = layer.forward(x, "dw", &mut |n, s| seen.push((n.to_string(), s.shape())));
        assert_eq!(y.dims(), [2, 8, 8, 7]);
        assert_eq!(seen[0], ("dw.conv".to_string(), vec![8, 8, 7]));
        assert_eq!(seen[1].0, "dw.bn");
    }
}
