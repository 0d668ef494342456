//! MobileNetV1's depthwise-separable convolution (Howard et al. 2017): a 3x3 depthwise
//! convolution + batch norm + ReLU, then a 1x1 pointwise convolution + batch norm + ReLU.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Tensor, backend::Backend};
use opt_core::model::LayerObserver;

use crate::activation::Activation;
use crate::conv_bn_act::{ConvBnAct, ConvBnActConfig};

/// Configuration of a [`DepthwiseSeparable`] block.
#[derive(Config, Debug)]
pub struct DepthwiseSeparableConfig {
    /// Input and output channels.
    pub channels: [usize; 2],
    /// Stride of the depthwise convolution.
    #[config(default = 1)]
    pub stride: usize,
    /// Activation after both batch norms.
    #[config(default = "Activation::Relu")]
    pub activation: Activation,
    /// Batch-norm epsilon.
    #[config(default = 1e-5)]
    pub bn_eps: f64,
}

/// Depthwise 3x3 then pointwise 1x1, each with batch norm and activation.
#[derive(Module, Debug)]
pub struct DepthwiseSeparable<B: Backend> {
    /// 3x3 depthwise convolution (`groups = in`).
    pub depthwise: ConvBnAct<B>,
    /// 1x1 convolution to the output channels.
    pub pointwise: ConvBnAct<B>,
}

impl DepthwiseSeparableConfig {
    /// Builds the block.
    pub fn init<B: Backend>(&self, device: &B::Device) -> DepthwiseSeparable<B> {
        let [cin, cout] = self.channels;
        let unit = |channels, kernel, stride, groups| {
            ConvBnActConfig::new(channels)
                .with_kernel(kernel)
                .with_stride(stride)
                .with_groups(groups)
                .with_activation(self.activation)
                .with_bn_eps(self.bn_eps)
                .init(device)
        };
        DepthwiseSeparable {
            depthwise: unit([cin, cin], 3, self.stride, cin),
            pointwise: unit([cin, cout], 1, 1, 1),
        }
    }
}

impl<B: Backend> DepthwiseSeparable<B> {
    /// Applies the block.
    ///
    /// # Shapes
    /// - x: `[batch, in, h, w]`
    /// - output: `[batch, out, (h - 1) / stride + 1, (w - 1) / stride + 1]`
    pub fn forward(&self, x: Tensor<B, 4>, name: &str, obs: LayerObserver<'_, B>) -> Tensor<B, 4> {
        let x = self.depthwise.forward(x, &format!("{name}.depthwise"), obs);
        self.pointwise.forward(x, &format!("{name}.pointwise"), obs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;
    use opt_core::model::count_params;
    use opt_core::test_util::{TestBackend, device};

    #[test]
    fn shapes_and_parameter_count() {
        let block = DepthwiseSeparableConfig::new([32, 64])
            .with_stride(2)
            .init::<TestBackend>(&device());
        // depthwise 32*9 + bn 2*32, pointwise 32*64 + bn 2*64
        assert_eq!(count_params(&block).params, 288 + 64 + 2048 + 128);
        let x = Tensor::<TestBackend, 4>::random([1, 32, 9, 9], Distribution::Default, &device());
        assert_eq!(block.forward(x, "b", &mut |_, _| {}).dims(), [1, 64, 5, 5]);
    }
}
