//! Stochastic depth (Huang et al. 2016) in "row" mode, as EfficientNet uses it: during
//! training each sample's residual branch is dropped with probability `prob` and the kept ones
//! are scaled by `1 / (1 - prob)`; at inference it is the identity.

use burn::tensor::{Distribution, Tensor, backend::Backend};

/// Applies stochastic depth to a residual branch `x` (`[batch, c, h, w]`). It acts only when
/// the backend records gradients (training) and `prob > 0`.
pub fn stochastic_depth<B: Backend>(x: Tensor<B, 4>, prob: f64) -> Tensor<B, 4> {
    let device = x.device();
    if prob <= 0.0 || !B::ad_enabled(&device) {
        return x;
    }
    let keep = 1.0 - prob;
    let n = x.dims()[0];
    let mask = Tensor::<B, 4>::random([n, 1, 1, 1], Distribution::Bernoulli(keep), &device);
    x.mul(mask.div_scalar(keep))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opt_core::test_util::{TestAutodiff, TestBackend, device, rng_lock};

    #[test]
    fn identity_at_inference() {
        let x = Tensor::<TestBackend, 4>::ones([4, 2, 2, 2], &device());
        let y = stochastic_depth(x.clone(), 0.5);
        assert_eq!(y.into_data(), x.into_data());
    }

    #[test]
    fn drops_whole_samples_and_keeps_the_mean() {
        let _rng = rng_lock();
        let x = Tensor::<TestAutodiff, 4>::ones([4000, 1, 2, 1], &device());
        let y = stochastic_depth(x, 0.25)
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        let mut kept = 0;
        for s in y.chunks(2) {
            assert_eq!(s[0], s[1], "a sample is dropped or kept as a whole");
            assert!(s[0] == 0.0 || (s[0] - 1.0 / 0.75).abs() < 1e-6, "{}", s[0]);
            kept += (s[0] != 0.0) as usize;
        }
        let rate = kept as f64 / 4000.0;
        assert!((rate - 0.75).abs() < 0.03, "kept {rate}");
    }
}
