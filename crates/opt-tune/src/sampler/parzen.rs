//! The Parzen estimator of TPE: a mixture with one component per observed trial plus a
//! broad prior component; numeric dimensions use normal kernels truncated to the dimension's
//! internal interval, categorical ones a smoothed one-hot kernel. Bandwidths follow Bergstra
//! et al. (2011) as Optuna 4-5 computes them: per dimension, the larger distance to the sorted
//! neighbours, with the "magic clip" lower bound; the same for the joint (multivariate)
//! estimator, whose components are products over dimensions.

use opt_core::rng::SplitMix64;

/// One dimension's kernels, one per mixture component.
#[derive(Debug, Clone)]
enum Kernels {
    Numeric {
        lo: f64,
        hi: f64,
        mus: Vec<f64>,
        sigmas: Vec<f64>,
    },
    Categorical {
        probs: Vec<Vec<f64>>,
    },
}

/// What a dimension is, in internal coordinates.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Axis {
    /// A numeric interval.
    Numeric(f64, f64),
    /// A number of categories.
    Categorical(usize),
}

/// A product-kernel mixture over one or more dimensions.
#[derive(Debug, Clone)]
pub(crate) struct Parzen {
    log_weights: Vec<f64>,
    dims: Vec<Kernels>,
}

const PRIOR_WEIGHT: f64 = 1.0;

/// Optuna's default trial weights: the 25 newest at full weight, older ones ramped down.
fn trial_weights(n: usize) -> Vec<f64> {
    if n < 25 {
        return vec![1.0; n];
    }
    let ramp = n - 25;
    (0..ramp)
        .map(|i| 1.0 / n as f64 + (1.0 - 1.0 / n as f64) * i as f64 / (ramp.max(2) - 1) as f64)
        .chain(std::iter::repeat_n(1.0, 25))
        .collect()
}

impl Parzen {
    /// The estimator of `observations` (oldest first; one internal coordinate per axis);
    /// `flat` gives every observation the same weight instead of ramping old ones down.
    pub fn new(axes: &[Axis], observations: &[Vec<f64>], flat: bool) -> Self {
        let n = observations.len();
        let mut weights = if flat { vec![1.0; n] } else { trial_weights(n) };
        weights.push(PRIOR_WEIGHT);
        let total: f64 = weights.iter().sum();
        let log_weights = weights.iter().map(|w| (w / total).ln()).collect();
        let dims = axes
            .iter()
            .enumerate()
            .map(|(d, axis)| {
                let xs: Vec<f64> = observations.iter().map(|o| o[d]).collect();
                match *axis {
                    Axis::Numeric(lo, hi) => numeric(lo, hi, &xs),
                    Axis::Categorical(k) => categorical(k, &xs),
                }
            })
            .collect();
        Self { log_weights, dims }
    }

    /// `count` points drawn from the mixture.
    pub fn sample(&self, rng: &mut SplitMix64, count: usize) -> Vec<Vec<f64>> {
        (0..count)
            .map(|_| {
                let c = pick(rng, &self.log_weights);
                self.dims
                    .iter()
                    .map(|k| match k {
                        Kernels::Numeric {
                            lo,
                            hi,
                            mus,
                            sigmas,
                        } => truncated_normal(rng, mus[c], sigmas[c], *lo, *hi),
                        Kernels::Categorical { probs } => {
                            let logs: Vec<f64> = probs[c].iter().map(|p| p.ln()).collect();
                            pick(rng, &logs) as f64
                        }
                    })
                    .collect()
            })
            .collect()
    }

    /// The log density at `x`.
    pub fn log_pdf(&self, x: &[f64]) -> f64 {
        let per_component: Vec<f64> = self
            .log_weights
            .iter()
            .enumerate()
            .map(|(c, lw)| {
                lw + self
                    .dims
                    .iter()
                    .zip(x)
                    .map(|(k, &x)| match k {
                        Kernels::Numeric {
                            lo,
                            hi,
                            mus,
                            sigmas,
                        } => truncated_log_pdf(x, mus[c], sigmas[c], *lo, *hi),
                        Kernels::Categorical { probs } => probs[c][x as usize].ln(),
                    })
                    .sum::<f64>()
            })
            .collect();
        log_sum_exp(&per_component)
    }
}

fn numeric(lo: f64, hi: f64, xs: &[f64]) -> Kernels {
    // Each kernel is as wide as the larger gap to its sorted neighbours (the bounds are the
    // outer neighbours, except that the outermost points use their inner gap), clipped to
    // [range / min(100, 1 + kernels), range].
    let range = hi - lo;
    let mut order: Vec<usize> = (0..xs.len()).collect();
    order.sort_by(|&a, &b| xs[a].total_cmp(&xs[b]));
    let mut pts = vec![lo];
    pts.extend(order.iter().map(|&i| xs[i]));
    pts.push(hi);
    let m = xs.len();
    let mut sorted_sigma: Vec<f64> = (1..=m)
        .map(|i| (pts[i] - pts[i - 1]).max(pts[i + 1] - pts[i]))
        .collect();
    if pts.len() >= 4 {
        sorted_sigma[0] = pts[2] - pts[1];
        sorted_sigma[m - 1] = pts[m] - pts[m - 1];
    }
    let n_kernels = m + 1;
    let min_sigma = range / (1.0 + n_kernels as f64).min(100.0);
    let mut sigmas = vec![0.0; m];
    for (&i, s) in order.iter().zip(sorted_sigma) {
        sigmas[i] = s.clamp(min_sigma, range);
    }
    let mut mus = xs.to_vec();
    mus.push(0.5 * (lo + hi));
    sigmas.push(range);
    Kernels::Numeric {
        lo,
        hi,
        mus,
        sigmas,
    }
}

fn categorical(k: usize, xs: &[f64]) -> Kernels {
    // Every kernel spreads prior_weight / kernels over the categories; an observation's kernel
    // adds 1 at its category (the prior's kernel is uniform).
    let n_kernels = xs.len() + 1;
    let base = PRIOR_WEIGHT / n_kernels as f64;
    let mut probs: Vec<Vec<f64>> = xs
        .iter()
        .map(|&x| {
            let total = base * k as f64 + 1.0;
            (0..k)
                .map(|j| (base + f64::from(j == x as usize)) / total)
                .collect()
        })
        .collect();
    probs.push(vec![1.0 / k as f64; k]);
    Kernels::Categorical { probs }
}

/// An index drawn with probabilities `exp(log_weights)` (normalized or not).
fn pick(rng: &mut SplitMix64, log_weights: &[f64]) -> usize {
    let max = log_weights
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = log_weights.iter().map(|l| (l - max).exp()).collect();
    let mut u = rng.next_f64() * w.iter().sum::<f64>();
    for (i, wi) in w.iter().enumerate() {
        if u < *wi {
            return i;
        }
        u -= wi;
    }
    w.len() - 1
}

/// A standard normal draw (Box-Muller).
pub(crate) fn normal(rng: &mut SplitMix64) -> f64 {
    let u1 = 1.0 - rng.next_f64();
    let u2 = rng.next_f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn truncated_normal(rng: &mut SplitMix64, mu: f64, sigma: f64, lo: f64, hi: f64) -> f64 {
    // The component's centre lies inside [lo, hi] and sigma <= hi - lo, so at least ~34% of
    // draws are accepted; the clamp is only a guard.
    for _ in 0..1000 {
        let x = mu + sigma * normal(rng);
        if (lo..=hi).contains(&x) {
            return x;
        }
    }
    mu.clamp(lo, hi)
}

/// The standard normal CDF, through erfc (Numerical Recipes' Chebyshev fit, error < 1.2e-7).
pub(crate) fn normal_cdf(x: f64) -> f64 {
    let z = (x / std::f64::consts::SQRT_2).abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    if x >= 0.0 {
        1.0 - 0.5 * erfc
    } else {
        0.5 * erfc
    }
}

fn truncated_log_pdf(x: f64, mu: f64, sigma: f64, lo: f64, hi: f64) -> f64 {
    let z = (x - mu) / sigma;
    let mass = (normal_cdf((hi - mu) / sigma) - normal_cdf((lo - mu) / sigma)).max(1e-300);
    -0.5 * z * z - 0.5 * (std::f64::consts::TAU).ln() - sigma.ln() - mass.ln()
}

fn log_sum_exp(xs: &[f64]) -> f64 {
    let max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return max;
    }
    max + xs.iter().map(|x| (x - max).exp()).sum::<f64>().ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdf_matches_known_values() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.0) - 0.841_344_746).abs() < 2e-7);
        assert!((normal_cdf(-1.96) - 0.024_997_895).abs() < 2e-7);
    }

    #[test]
    fn density_integrates_to_one_and_samples_stay_inside() {
        for flat in [false, true] {
            let p = Parzen::new(
                &[Axis::Numeric(-2.0, 3.0)],
                &[vec![0.5], vec![1.0], vec![2.9]],
                flat,
            );
            let n = 20_000;
            let h = 5.0 / n as f64;
            let integral: f64 = (0..n)
                .map(|i| p.log_pdf(&[-2.0 + (i as f64 + 0.5) * h]).exp() * h)
                .sum();
            assert!((integral - 1.0).abs() < 1e-3, "{integral}");
            let mut rng = SplitMix64::new(1);
            assert!(
                p.sample(&mut rng, 500)
                    .iter()
                    .all(|x| (-2.0..=3.0).contains(&x[0]))
            );
        }
        let c = Parzen::new(
            &[Axis::Categorical(3)],
            &[vec![0.0], vec![0.0], vec![2.0]],
            true,
        );
        let total: f64 = (0..3).map(|k| c.log_pdf(&[k as f64]).exp()).sum();
        assert!((total - 1.0).abs() < 1e-12);
        assert!(c.log_pdf(&[0.0]) > c.log_pdf(&[1.0]));
    }

    #[test]
    fn weights_ramp_old_trials_down() {
        assert_eq!(trial_weights(3), vec![1.0; 3]);
        let w = trial_weights(30);
        assert_eq!(w.len(), 30);
        assert!(w[0] < w[4] && w[4] <= 1.0 && w[29] == 1.0);
    }
}
