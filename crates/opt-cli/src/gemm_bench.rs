//! `optkit bench-gemm`: the int8 GEMM of opt-quant against the float matrix product of the
//! same shapes on a burn backend, every available int8 kernel, with the ratios.

use std::time::Duration;

use anyhow::Result;
use burn::tensor::backend::AutodiffBackend;
use opt_quant::bench::{GemmBench, bench_gemm, default_shapes};
use opt_quant::kernels::Isa;

use crate::backend::{BackendKind, BackendTask};

/// The benchmark as a backend task (the float product runs on its inference backend).
pub struct GemmBenchTask {
    /// Threads of the int8 kernel.
    pub threads: usize,
    /// Timing budget per kernel and shape.
    pub budget: Duration,
}

impl BackendTask for GemmBenchTask {
    type Output = Vec<GemmBench>;

    fn run<B: AutodiffBackend>(
        self,
        device: B::Device,
        _backend: BackendKind,
        _device_name: String,
    ) -> Result<Vec<GemmBench>> {
        let mut out = Vec::new();
        for (label, shape) in default_shapes() {
            for isa in Isa::all_available() {
                out.push(bench_gemm::<B::InnerBackend>(
                    &label,
                    shape,
                    isa,
                    self.threads,
                    self.budget,
                    &device,
                ));
            }
        }
        Ok(out)
    }
}

/// A Markdown table of the results.
pub fn table(results: &[GemmBench], backend: &str) -> String {
    let mut s = format!(
        "| shape (m x n x k) | int8 kernel | threads | int8 µs | int8 GMAC/s | {backend} f32 µs | \
         f32 GMAC/s | int8 speedup |\n|---|---|---|---|---|---|---|---|\n"
    );
    for r in results {
        s.push_str(&format!(
            "| {} ({} x {} x {}) | {} | {} | {:.1} | {:.2} | {:.1} | {:.2} | {:.2}x |\n",
            r.label,
            r.m,
            r.n,
            r.k,
            r.isa.name(),
            r.threads,
            r.int8_us,
            r.int8_gmacs,
            r.f32_us,
            r.f32_gmacs,
            r.speedup
        ));
    }
    s
}
