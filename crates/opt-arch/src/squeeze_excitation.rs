//! Squeeze-and-excitation (Hu et al. 2018): global average pool, 1x1 reduce, activation, 1x1
//! expand, gate, then scale the input channels by the gate (torchvision's `SqueezeExcitation`).

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::{Tensor, backend::Backend};
use opt_core::model::{LayerObserver, observe};

use crate::activation::Activation;

/// Configuration of a [`SqueezeExcitation`].
#[derive(Config, Debug)]
pub struct SqueezeExcitationConfig {
    /// Channels of the input (and of the gate).
    pub channels: usize,
    /// Channels of the squeezed representation.
    pub squeeze: usize,
    /// Activation between the two 1x1 convolutions (ReLU in MobileNetV3, SiLU in EfficientNet).
    #[config(default = "Activation::Relu")]
    pub activation: Activation,
    /// The gate (hard-sigmoid in MobileNetV3, sigmoid in EfficientNet).
    #[config(default = "Activation::Sigmoid")]
    pub gate: Activation,
}

/// Squeeze-and-excitation block.
#[derive(Module, Debug)]
pub struct SqueezeExcitation<B: Backend> {
    /// 1x1 convolution with bias, channels to squeeze.
    pub fc1: Conv2d<B>,
    /// 1x1 convolution with bias, squeeze to channels.
    pub fc2: Conv2d<B>,
    /// Activation between the convolutions.
    pub act: Activation,
    /// The gate.
    pub gate: Activation,
}

impl SqueezeExcitationConfig {
    /// Builds the block.
    pub fn init<B: Backend>(&self, device: &B::Device) -> SqueezeExcitation<B> {
        SqueezeExcitation {
            fc1: Conv2dConfig::new([self.channels, self.squeeze], [1, 1]).init(device),
            fc2: Conv2dConfig::new([self.squeeze, self.channels], [1, 1]).init(device),
            act: self.activation,
            gate: self.gate,
        }
    }
}

impl<B: Backend> SqueezeExcitation<B> {
    /// Scales each channel of `x` by its gate, reporting `{name}.fc1` and `{name}.fc2`.
    ///
    /// # Shapes
    /// - x and output: `[batch, channels, h, w]`
    pub fn forward(&self, x: Tensor<B, 4>, name: &str, obs: LayerObserver<'_, B>) -> Tensor<B, 4> {
        let pooled = x.clone().mean_dim(3).mean_dim(2);
        let s = self.fc1.forward(pooled);
        observe(obs, &format!("{name}.fc1"), &s);
        let s = self.fc2.forward(self.act.forward(s));
        observe(obs, &format!("{name}.fc2"), &s);
        x.mul(self.gate.forward(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, Tolerance};
    use opt_core::test_util::{TestBackend, device};

    /// With zero weights the gate is constant: sigmoid(0) = 0.5, hard-sigmoid(0) = 0.5.
    #[test]
    fn zero_weights_halve_the_input() {
        let x = Tensor::<TestBackend, 4>::random([2, 6, 3, 3], Distribution::Default, &device());
        for gate in [Activation::Sigmoid, Activation::Hardsigmoid] {
            let mut se = SqueezeExcitationConfig::new(6, 2)
                .with_gate(gate)
                .init::<TestBackend>(&device());
            for conv in [&mut se.fc1, &mut se.fc2] {
                conv.weight = conv.weight.clone().map(|w| w.zeros_like());
                conv.bias = conv.bias.clone().map(|b| b.map(|t| t.zeros_like()));
            }
            let y = se.forward(x.clone(), "se", &mut |_, _| {});
            y.into_data().assert_approx_eq::<f32>(
                &x.clone().mul_scalar(0.5).into_data(),
                Tolerance::default(),
            );
        }
    }

    /// The gate depends on the channel means only: one image's scaling is per channel.
    #[test]
    fn scaling_is_per_channel() {
        let se = SqueezeExcitationConfig::new(4, 8).init::<TestBackend>(&device());
        let x = Tensor::<TestBackend, 4>::random(
            [1, 4, 5, 5],
            Distribution::Uniform(0.5, 1.0),
            &device(),
        );
        let y = se.forward(x.clone(), "se", &mut |_, _| {});
        let ratio = y.div(x).into_data().to_vec::<f32>().unwrap();
        for c in 0..4 {
            let plane = &ratio[c * 25..(c + 1) * 25];
            assert!(
                plane.iter().all(|r| (r - plane[0]).abs() < 1e-5),
                "{plane:?}"
            );
            assert!(plane[0] > 0.0 && plane[0] < 1.0);
        }
    }
}
