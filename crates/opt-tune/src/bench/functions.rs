//! Standard test functions for samplers (all minimized): Branin (2-D, three global minima of
//! 0.397887), Hartmann-6 (6-D, minimum −3.32237) and a noisy 4-D quadratic (the sampler sees
//! the value plus Gaussian noise of sd 0.5; quality is judged on the noise-free value).

use crate::sampler::parzen_normal;
use crate::space::{Params, SearchSpace};
use opt_core::rng::SplitMix64;

/// A test function.
#[derive(Debug, Clone, Copy)]
pub struct TestFunction {
    /// Its name.
    pub name: &'static str,
    /// Its search space (TOML).
    pub space: &'static str,
    /// The known global minimum.
    pub minimum: f64,
    /// The noise-free value.
    pub f: fn(&Params) -> f64,
    /// Standard deviation of the noise added to what the sampler sees.
    pub noise_sd: f64,
}

impl TestFunction {
    /// The checked search space.
    pub fn search_space(&self) -> SearchSpace {
        SearchSpace::from_toml(self.space, "bench").expect("the test spaces are valid")
    }

    /// What the sampler observes: the value plus noise.
    pub fn observe(&self, params: &Params, rng: &mut SplitMix64) -> f64 {
        (self.f)(params) + self.noise_sd * parzen_normal(rng)
    }
}

fn x(p: &Params, name: &str) -> f64 {
    p[name].as_f64().expect("numeric test dimensions")
}

fn branin(p: &Params) -> f64 {
    use std::f64::consts::PI;
    let (x1, x2) = (x(p, "x1"), x(p, "x2"));
    let (b, c, t) = (5.1 / (4.0 * PI * PI), 5.0 / PI, 1.0 / (8.0 * PI));
    (x2 - b * x1 * x1 + c * x1 - 6.0).powi(2) + 10.0 * (1.0 - t) * x1.cos() + 10.0
}

const H_ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];
const H_A: [[f64; 6]; 4] = [
    [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
    [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
    [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
    [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
];
const H_P: [[f64; 6]; 4] = [
    [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
    [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
    [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
    [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
];

fn hartmann6(p: &Params) -> f64 {
    let xs: Vec<f64> = (1..=6).map(|i| x(p, &format!("x{i}"))).collect();
    -(0..4)
        .map(|i| {
            let inner: f64 = (0..6)
                .map(|j| H_A[i][j] * (xs[j] - H_P[i][j]).powi(2))
                .sum();
            H_ALPHA[i] * (-inner).exp()
        })
        .sum::<f64>()
}

fn quadratic(p: &Params) -> f64 {
    (1..=4)
        .map(|i| (x(p, &format!("x{i}")) - 1.0).powi(2))
        .sum()
}

/// The three functions of the sampler benchmark.
pub fn all() -> [TestFunction; 3] {
    [
        TestFunction {
            name: "branin",
            space: "x1 = { float = [-5.0, 10.0] }\nx2 = { float = [0.0, 15.0] }",
            minimum: 0.397_887,
            f: branin,
            noise_sd: 0.0,
        },
        TestFunction {
            name: "hartmann6",
            space: "x1 = { float = [0.0, 1.0] }\nx2 = { float = [0.0, 1.0] }\nx3 = { float = [0.0, 1.0] }\n\
                    x4 = { float = [0.0, 1.0] }\nx5 = { float = [0.0, 1.0] }\nx6 = { float = [0.0, 1.0] }",
            minimum: -3.322_37,
            f: hartmann6,
            noise_sd: 0.0,
        },
        TestFunction {
            name: "noisy-quadratic",
            space: "x1 = { float = [-5.0, 5.0] }\nx2 = { float = [-5.0, 5.0] }\nx3 = { float = [-5.0, 5.0] }\n\
                    x4 = { float = [-5.0, 5.0] }",
            minimum: 0.0,
            f: quadratic,
            noise_sd: 0.5,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::ParamValue;

    fn at(values: &[f64]) -> Params {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("x{}", i + 1), ParamValue::Float(*v)))
            .collect()
    }

    #[test]
    fn known_minima() {
        let [b, h, q] = all();
        for m in [
            [-std::f64::consts::PI, 12.275],
            [std::f64::consts::PI, 2.275],
            [9.42478, 2.475],
        ] {
            assert!(((b.f)(&at(&m)) - b.minimum).abs() < 1e-5);
        }
        let h_star = [0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573];
        assert!(((h.f)(&at(&h_star)) - h.minimum).abs() < 1e-4);
        assert_eq!((q.f)(&at(&[1.0; 4])), 0.0);
        for f in all() {
            assert!(!f.search_space().is_empty());
        }
    }
}
