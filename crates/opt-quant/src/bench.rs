//! Kernel benchmark: the int8 GEMM against the float matrix product of the same shape on a
//! burn backend (what a float model's layers run), both timed on this machine in one call.
//! Used by `optkit bench-gemm` / `cargo xtask bench gemm`; not a test (timings are noisy).

use std::time::{Duration, Instant};

use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use opt_core::rng::SplitMix64;
use serde::Serialize;

use crate::kernels::{Isa, Lhs, Rhs, gemm_threads};

/// One shape's figures. Throughput in GMAC/s (one multiply-accumulate = 1 MAC).
#[derive(Debug, Clone, Serialize)]
pub struct GemmBench {
    /// What the shape stands for (`lenet5 conv2, batch 1`).
    pub label: String,
    /// Rows of A, rows of B (columns of C), reduction length.
    pub m: usize,
    /// Columns of the output.
    pub n: usize,
    /// Reduction length.
    pub k: usize,
    /// Kernel used for int8.
    pub isa: Isa,
    /// Threads of the int8 kernel.
    pub threads: usize,
    /// Median time of one int8 product, microseconds.
    pub int8_us: f64,
    /// Median time of one float product on the backend, microseconds.
    pub f32_us: f64,
    /// int8 GMAC/s.
    pub int8_gmacs: f64,
    /// Float GMAC/s.
    pub f32_gmacs: f64,
    /// `f32_us / int8_us`: above 1 means int8 is faster.
    pub speedup: f64,
}

/// Median of repeated timings of `f`, repeating for at least `budget` (and at least 5 times).
fn median_us(budget: Duration, mut f: impl FnMut()) -> f64 {
    f();
    let start = Instant::now();
    let mut times = Vec::new();
    while times.len() < 5 || start.elapsed() < budget {
        let t = Instant::now();
        f();
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Times `C[m, n] = A[m, k] · B[k, n]` in int8 (packed operands, `threads` threads, `isa`) and
/// in float on `B` (tensors already on the device; synchronized after each product).
pub fn bench_gemm<B: Backend>(
    label: &str,
    (m, n, k): (usize, usize, usize),
    isa: Isa,
    threads: usize,
    budget: Duration,
    device: &B::Device,
) -> GemmBench {
    let mut rng = SplitMix64::new(5);
    let mut values = |len: usize| -> Vec<i8> {
        (0..len)
            .map(|_| (rng.next_u64() % 255) as i16 as i8)
            .collect()
    };
    let a = Lhs::new(m, k, &values(m * k));
    let b = Rhs::new(n, k, &values(n * k));
    let mut c = vec![0i32; m * n];
    let int8_us = median_us(budget, || gemm_threads(isa, &a, &b, &mut c, threads));
    let fa = Tensor::<B, 2>::random([m, k], Distribution::Default, device);
    let fb = Tensor::<B, 2>::random([k, n], Distribution::Default, device);
    let f32_us = median_us(budget, || {
        let out = fa.clone().matmul(fb.clone());
        let _ = B::sync(device);
        drop(out);
    });
    let macs = (m * n * k) as f64;
    GemmBench {
        label: label.to_string(),
        m,
        n,
        k,
        isa,
        threads,
        int8_us,
        f32_us,
        int8_gmacs: macs / int8_us / 1e3,
        f32_gmacs: macs / f32_us / 1e3,
        speedup: f32_us / int8_us,
    }
}

/// The shapes of the LeNet-5 layers (batch 1 and 256) and a square 512 product.
pub fn default_shapes() -> Vec<(String, (usize, usize, usize))> {
    vec![
        (
            "lenet5 conv1, batch 1 (20 x 576 pixels x 25)".into(),
            (20, 576, 25),
        ),
        (
            "lenet5 conv2, batch 1 (50 x 64 pixels x 500)".into(),
            (50, 64, 500),
        ),
        ("lenet5 fc1, batch 1".into(), (1, 500, 800)),
        ("lenet5 fc1, batch 256".into(), (256, 500, 800)),
        ("square 512".into(), (512, 512, 512)),
    ]
}
