//! The activations of the MobileNet and EfficientNet families, as a plain value a block stores.

use burn::tensor::activation::{hard_sigmoid, relu, sigmoid, silu};
use burn::tensor::{Tensor, backend::Backend};
use serde::{Deserialize, Serialize};

/// An element-wise activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// No activation (the linear bottleneck of an inverted residual).
    #[default]
    Identity,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)` (MobileNetV2).
    Relu6,
    /// `x * relu6(x + 3) / 6` (MobileNetV3).
    Hardswish,
    /// `x * sigmoid(x)`, also called swish (EfficientNet).
    Silu,
    /// `1 / (1 + e^-x)` (EfficientNet's squeeze-excitation gate).
    Sigmoid,
    /// `relu6(x + 3) / 6` (MobileNetV3's squeeze-excitation gate).
    Hardsigmoid,
}

impl Activation {
    /// Applies the activation.
    pub fn forward<B: Backend, const D: usize>(self, x: Tensor<B, D>) -> Tensor<B, D> {
        match self {
            Activation::Identity => x,
            Activation::Relu => relu(x),
            // Same values as `clamp(0, 6)`; burn's autodiff runs `clamp` as two compare-and-fill
            // passes that copy the tensor, `relu` as one (measured 3x faster on burn-flex).
            Activation::Relu6 => relu(x).clamp_max(6.0),
            Activation::Hardswish => x.clone().mul(hard_sigmoid(x, 1.0 / 6.0, 0.5)),
            Activation::Silu => silu(x),
            Activation::Sigmoid => sigmoid(x),
            Activation::Hardsigmoid => hard_sigmoid(x, 1.0 / 6.0, 0.5),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opt_core::test_util::{TestBackend, device};

    #[test]
    fn values_match_the_definitions() {
        let xs = [-4.0f32, -3.0, -1.0, 0.0, 0.5, 3.0, 7.0];
        let x = Tensor::<TestBackend, 1>::from_floats(xs, &device());
        let check = |a: Activation, f: fn(f32) -> f32| {
            let got = a.forward(x.clone()).into_data().to_vec::<f32>().unwrap();
            for (g, v) in got.iter().zip(xs) {
                assert!((g - f(v)).abs() < 1e-6, "{a:?}({v}) = {g}, want {}", f(v));
            }
        };
        let relu6 = |v: f32| v.clamp(0.0, 6.0);
        check(Activation::Identity, |v| v);
        check(Activation::Relu, |v| v.max(0.0));
        check(Activation::Relu6, relu6);
        check(Activation::Hardswish, |v| {
            v * (v + 3.0).clamp(0.0, 6.0) / 6.0
        });
        check(Activation::Hardsigmoid, |v| (v + 3.0).clamp(0.0, 6.0) / 6.0);
        check(Activation::Silu, |v| v / (1.0 + (-v).exp()));
        check(Activation::Sigmoid, |v| 1.0 / (1.0 + (-v).exp()));
    }
}
