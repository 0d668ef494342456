//! Activation ranges from calibration data, and the 8-bit parameters chosen from them.
//!
//! Calibration makes two passes over the samples: the first records each tensor's minimum and
//! maximum, the second a [`BINS`]-bin histogram of its values over that range (and one of
//! their magnitudes). The observers then pick the range to quantize:
//! - `min_max`: the whole observed range (no value clipped; outliers stretch the steps);
//! - `percentile`: the range holding the central `percentile` % of the values;
//! - `mse`: the range, shrunk from min-max in 1 % steps, with the least expected squared error
//!   (rounding noise `step²/12` inside, the clipping distance outside);
//! - `entropy`: TensorRT's rule: the magnitude threshold whose clipped, 8-bit-requantized
//!   histogram is closest to the original in Kullback-Leibler divergence.

use serde::{Deserialize, Serialize};

use crate::error::{QuantError, Result};

/// Histogram bins of the second calibration pass.
pub const BINS: usize = 2048;

/// How an activation range is chosen from calibration data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Observer {
    /// Observed minimum and maximum.
    #[default]
    MinMax,
    /// Central percentile of the values.
    Percentile,
    /// Least expected squared quantization error.
    Mse,
    /// Least KL divergence (TensorRT's entropy calibration).
    Entropy,
}

impl Observer {
    /// Every observer, for reports and tests.
    pub const ALL: [Observer; 4] = [
        Observer::MinMax,
        Observer::Percentile,
        Observer::Mse,
        Observer::Entropy,
    ];

    /// The name used in configs and reports.
    pub fn name(self) -> &'static str {
        match self {
            Observer::MinMax => "min_max",
            Observer::Percentile => "percentile",
            Observer::Mse => "mse",
            Observer::Entropy => "entropy",
        }
    }
}

/// The affine map of an 8-bit unsigned tensor: `real = scale · (q − zero_point)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct QParams {
    /// Size of one step.
    pub scale: f32,
    /// The code of real zero (an integer for calibrated activations; the model input's may be
    /// fractional, see `QuantModel`).
    pub zero_point: f32,
}

impl QParams {
    /// The parameters covering `[lo, hi]` (widened to include 0, so zero is exact and padding
    /// and ReLU are exact). Symmetric mode centres the codes on 128 for signed ranges (0 for
    /// non-negative ones) with the step of the larger magnitude.
    pub fn from_range(lo: f32, hi: f32, symmetric: bool) -> Self {
        let (lo, hi) = (lo.min(0.0), hi.max(0.0));
        if hi - lo <= f32::MIN_POSITIVE {
            return Self {
                scale: 1.0,
                zero_point: 0.0,
            };
        }
        if symmetric {
            let a = hi.max(-lo);
            return if lo < 0.0 {
                Self {
                    scale: a / 127.0,
                    zero_point: 128.0,
                }
            } else {
                Self {
                    scale: a / 255.0,
                    zero_point: 0.0,
                }
            };
        }
        let scale = (hi - lo) / 255.0;
        Self {
            scale,
            zero_point: (-lo / scale).round().clamp(0.0, 255.0),
        }
    }

    /// The real values of codes 0 and 255.
    pub fn range(&self) -> (f32, f32) {
        (
            -self.zero_point * self.scale,
            (255.0 - self.zero_point) * self.scale,
        )
    }
}

/// What calibration saw of one tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorStats {
    /// The layer whose output this is (for error messages and reports).
    pub layer: String,
    /// Smallest value seen.
    pub min: f32,
    /// Largest value seen.
    pub max: f32,
    /// Counts of the values over `[min, max]` in [`BINS`] bins (second pass).
    pub hist: Vec<u64>,
    /// Counts of the magnitudes over `[0, max(|min|, |max|)]` in [`BINS`] bins.
    pub abs_hist: Vec<u64>,
}

impl TensorStats {
    /// Empty statistics for `layer`.
    pub fn new(layer: impl Into<String>) -> Self {
        Self {
            layer: layer.into(),
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            hist: vec![0; BINS],
            abs_hist: vec![0; BINS],
        }
    }

    /// First pass: widens the range to cover `values`.
    ///
    /// # Errors
    /// [`QuantError::Calibration`] naming the layer when a value is NaN or infinite.
    pub fn observe_range(&mut self, values: &[f32]) -> Result<()> {
        for &v in values {
            if !v.is_finite() {
                return Err(QuantError::Calibration {
                    problem: format!(
                        "layer {} produced {v} on the calibration data; the float model is \
                         broken (diverged training?) — check it with `optkit eval` and retrain",
                        self.layer
                    ),
                });
            }
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
        Ok(())
    }

    fn magnitude(&self) -> f32 {
        self.min.abs().max(self.max.abs())
    }

    /// Second pass: adds `values` to the histograms (after [`TensorStats::observe_range`] saw
    /// every sample).
    pub fn observe_hist(&mut self, values: &[f32]) {
        let width = (self.max - self.min).max(f32::MIN_POSITIVE);
        let mag = self.magnitude().max(f32::MIN_POSITIVE);
        for &v in values {
            let b = (((v - self.min) / width) * BINS as f32) as usize;
            self.hist[b.min(BINS - 1)] += 1;
            let a = ((v.abs() / mag) * BINS as f32) as usize;
            self.abs_hist[a.min(BINS - 1)] += 1;
        }
    }

    fn bin_center(&self, b: usize) -> f32 {
        self.min + (b as f32 + 0.5) * (self.max - self.min) / BINS as f32
    }

    /// The range `observer` picks (`percentile` in (0, 100] for [`Observer::Percentile`]).
    pub fn range(&self, observer: Observer, percentile: f64, symmetric: bool) -> (f32, f32) {
        if self.min > self.max {
            return (0.0, 0.0);
        }
        match observer {
            Observer::MinMax => (self.min, self.max),
            Observer::Percentile => self.percentile_range(percentile),
            Observer::Mse => self.mse_range(symmetric),
            Observer::Entropy => {
                let t = self.entropy_threshold();
                (self.min.max(-t), self.max.min(t))
            }
        }
    }

    fn percentile_range(&self, p: f64) -> (f32, f32) {
        let total: u64 = self.hist.iter().sum();
        let tail = ((100.0 - p) / 200.0 * total as f64).floor() as u64;
        let width = (self.max - self.min) / BINS as f32;
        let (mut lo_bin, mut acc) = (0, 0);
        while lo_bin < BINS - 1 && acc + self.hist[lo_bin] <= tail {
            acc += self.hist[lo_bin];
            lo_bin += 1;
        }
        let (mut hi_bin, mut acc) = (BINS - 1, 0);
        while hi_bin > lo_bin && acc + self.hist[hi_bin] <= tail {
            acc += self.hist[hi_bin];
            hi_bin -= 1;
        }
        let lo = if lo_bin == 0 {
            self.min
        } else {
            self.min + lo_bin as f32 * width
        };
        let hi = if hi_bin == BINS - 1 {
            self.max
        } else {
            self.min + (hi_bin + 1) as f32 * width
        };
        (lo, hi)
    }

    /// Expected squared error of quantizing the histogram with `q`.
    fn mse(&self, q: QParams) -> f64 {
        let (lo, hi) = q.range();
        let noise = (q.scale as f64).powi(2) / 12.0;
        self.hist
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(b, &c)| {
                let x = self.bin_center(b);
                let e = if x < lo {
                    ((lo - x) as f64).powi(2)
                } else if x > hi {
                    ((x - hi) as f64).powi(2)
                } else {
                    noise
                };
                c as f64 * e
            })
            .sum()
    }

    /// Both ends searched independently, each shrunk from the observed one in 2.5 % steps.
    fn mse_range(&self, symmetric: bool) -> (f32, f32) {
        let mut best = ((self.min, self.max), f64::INFINITY);
        for i in 0..40 {
            let lo = self.min * (1.0 - i as f32 * 0.025);
            for j in 0..40 {
                let hi = self.max * (1.0 - j as f32 * 0.025);
                let e = self.mse(QParams::from_range(lo, hi, symmetric));
                if e < best.1 {
                    best = ((lo, hi), e);
                }
            }
        }
        best.0
    }

    /// TensorRT's entropy calibration on the magnitude histogram: 128 levels per sign for a
    /// signed tensor, 256 for a non-negative one (all 8-bit codes on one side).
    fn entropy_threshold(&self) -> f32 {
        let levels: usize = if self.min >= 0.0 { 256 } else { 128 };
        let mag = self.magnitude();
        let h: Vec<f64> = self.abs_hist.iter().map(|&c| c as f64).collect();
        let mut best = (BINS, f64::INFINITY);
        for i in (levels..=BINS).step_by(16) {
            // Reference: the first i bins, everything beyond folded into the last one.
            let mut p: Vec<f64> = h[..i].to_vec();
            p[i - 1] += h[i..].iter().sum::<f64>();
            // Candidate: the first i bins (without the folded outliers, as in TensorRT and
            // MXNet) merged into `levels` levels, each level's mass spread evenly over its
            // non-empty bins; the outliers it lacks are what makes clipping cost.
            let mut q = vec![0.0; i];
            for l in 0..levels {
                let (a, b) = (l * i / levels, (l + 1) * i / levels);
                let mass: f64 = h[a..b].iter().sum();
                let nonzero = p[a..b].iter().filter(|&&c| c > 0.0).count();
                if nonzero > 0 {
                    for k in a..b {
                        if p[k] > 0.0 {
                            q[k] = mass / nonzero as f64;
                        }
                    }
                }
            }
            let (sp, sq) = (p.iter().sum::<f64>(), q.iter().sum::<f64>());
            if sp == 0.0 || sq == 0.0 {
                continue;
            }
            let mut kl = 0.0;
            for k in 0..i {
                if p[k] > 0.0 {
                    let pk = p[k] / sp;
                    // A bin the candidate leaves empty gets a tiny mass instead of infinity.
                    let qk = (q[k] / sq).max(1e-12);
                    kl += pk * (pk / qk).ln();
                }
            }
            if kl < best.1 {
                best = (i, kl);
            }
        }
        mag * best.0 as f32 / BINS as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opt_core::rng::SplitMix64;

    fn stats(values: &[f32]) -> TensorStats {
        let mut s = TensorStats::new("t");
        s.observe_range(values).unwrap();
        s.observe_hist(values);
        s
    }

    fn gaussian_with_outlier() -> Vec<f32> {
        let mut rng = SplitMix64::new(3);
        let mut v: Vec<f32> = (0..20_000)
            .map(|_| {
                // Sum of uniforms: close to a normal with mean 0 and variance 1.
                (0..12)
                    .map(|_| (rng.next_u64() % 1_000_000) as f32 / 1e6)
                    .sum::<f32>()
                    - 6.0
            })
            .collect();
        v.push(40.0);
        v
    }

    #[test]
    fn params_cover_the_range_and_keep_zero_exact() {
        let q = QParams::from_range(-1.0, 3.0, false);
        assert_eq!(q.zero_point, (1.0f32 / (4.0 / 255.0)).round());
        let (lo, hi) = q.range();
        assert!(lo <= -0.99 && hi >= 2.98, "{lo} {hi}");
        let r = QParams::from_range(0.5, 2.0, false);
        assert_eq!(r.zero_point, 0.0);
        let s = QParams::from_range(-1.0, 3.0, true);
        assert_eq!((s.zero_point, s.scale), (128.0, 3.0 / 127.0));
        assert_eq!(QParams::from_range(0.0, 0.0, false).scale, 1.0);
    }

    #[test]
    fn outliers_stretch_min_max_but_not_the_other_observers() {
        let values = gaussian_with_outlier();
        let s = stats(&values);
        assert_eq!(s.range(Observer::MinMax, 100.0, false).1, 40.0);
        // One outlier among 20,000 values: clipping it costs more squared error than the finer
        // steps save, so MSE keeps it; without it, MSE clips the Gaussian's tails.
        let plain = stats(&values[..values.len() - 1]);
        let (lo, hi) = plain.range(Observer::Mse, 100.0, false);
        assert!(
            hi < plain.max && lo > plain.min,
            "{lo} {hi} vs {} {}",
            plain.min,
            plain.max
        );
        for obs in [Observer::Percentile, Observer::Entropy] {
            let (lo, hi) = s.range(obs, 99.9, false);
            assert!(hi < 40.0 * 0.9 && hi > 2.0, "{obs:?}: hi {hi}");
            assert!(lo < -2.0, "{obs:?}: lo {lo}");
        }
        let (lo, hi) = s.range(Observer::Percentile, 99.0, false);
        // The central 99 % of a unit normal lies within about ±2.58.
        assert!(
            (hi - 2.58).abs() < 0.2 && (lo + 2.58).abs() < 0.2,
            "{lo} {hi}"
        );
        // MSE's pick really has a lower error than min-max's.
        let mm = s.mse(QParams::from_range(s.min, s.max, false));
        let (lo, hi) = s.range(Observer::Mse, 100.0, false);
        assert!(s.mse(QParams::from_range(lo, hi, false)) < mm);
    }

    #[test]
    fn non_finite_values_name_the_layer() {
        let mut s = TensorStats::new("conv2");
        let e = s.observe_range(&[1.0, f32::NAN]).unwrap_err().to_string();
        assert!(e.contains("conv2") && e.contains("NaN"), "{e}");
        assert!(s.observe_range(&[f32::INFINITY]).is_err());
    }
}
