//! One [`EvalReport`] for any model: accuracy, latency, throughput, size, parameters, MACs.
//! Every candidate of a run is measured by this one function on the same machine, so the
//! figures are comparable.

use std::time::Instant;

use burn::module::Module;
use burn::tensor::{Tensor, backend::Backend};
use serde::{Deserialize, Serialize};

use crate::artifact::SavedModel;
use crate::data::{Batcher, ImageDataset};
use crate::error::{CoreError, Result};
use crate::model::{Architecture, Classifier, ModelSpec, count_params};

use super::accuracy::evaluate_accuracy;

/// How hard to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MeasureConfig {
    /// Timed batch-1 forward passes (≥ 200 for the report's p50/p95).
    pub latency_runs: usize,
    /// Untimed forward passes before any timing.
    pub warmup_runs: usize,
    /// Batch size of the throughput measurement.
    pub throughput_batch: usize,
    /// Timed batches of the throughput measurement.
    pub throughput_runs: usize,
}

impl Default for MeasureConfig {
    fn default() -> Self {
        Self {
            latency_runs: 200,
            warmup_runs: 20,
            throughput_batch: 256,
            throughput_runs: 10,
        }
    }
}

impl MeasureConfig {
    /// Checks the ranges; keys are named under `prefix`.
    pub fn validate(&self, prefix: &str) -> Result<()> {
        for (key, v) in [
            ("latency_runs", self.latency_runs),
            ("throughput_batch", self.throughput_batch),
            ("throughput_runs", self.throughput_runs),
        ] {
            if v == 0 {
                return Err(CoreError::invalid(
                    format!("{prefix}.{key}"),
                    v,
                    "must be at least 1",
                ));
            }
        }
        Ok(())
    }
}

/// The measured figures of one model. Field names are the report.json contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Top-1 accuracy on the test split.
    pub accuracy: f64,
    /// Accuracy per class, in label order.
    pub per_class_accuracy: Vec<f64>,
    /// Mean cross-entropy on the test split.
    pub test_loss: f64,
    /// Test items evaluated.
    pub test_items: usize,
    /// Parameters (PyTorch convention: batch-norm running statistics excluded).
    pub params: u64,
    /// Parameters that are not exactly zero.
    pub nonzero_params: u64,
    /// Multiply-accumulates per image (1 MAC = one multiply-accumulate; see `ModelSpec`).
    pub macs: u64,
    /// Bytes of the weights file on disk.
    pub size_bytes: u64,
    /// Bytes of the weights file after gzip.
    pub size_gzip_bytes: u64,
    /// Median batch-1 latency in milliseconds (forward pass and read-back of the logits).
    pub latency_b1_ms_p50: f64,
    /// 95th percentile batch-1 latency in milliseconds.
    pub latency_b1_ms_p95: f64,
    /// Timed batch-1 runs behind the percentiles.
    pub latency_runs: usize,
    /// Images per second at `throughput_batch`.
    pub throughput_per_s: f64,
    /// Batch size of the throughput figure.
    pub throughput_batch: usize,
    /// Backend name (`flex`, `ndarray`, `wgpu`).
    pub backend: String,
    /// Device the backend ran on (for wgpu: the adapter).
    pub device: String,
}

/// Which backend and device a measurement ran on, as the report names them.
#[derive(Debug, Clone, Copy)]
pub struct Platform<'a> {
    /// Backend name (`flex`, `ndarray`, `wgpu`).
    pub backend: &'a str,
    /// Device description (for wgpu: the adapter).
    pub device: &'a str,
}

/// Measures `model` on the `test` split. `saved` gives the on-disk size of its weights.
#[allow(clippy::too_many_arguments)]
pub fn measure<B: Backend, A: Architecture, M: Classifier<B> + Module<B>>(
    model: &M,
    spec: &ModelSpec<A>,
    saved: &SavedModel,
    test: &ImageDataset,
    batcher: &Batcher,
    cfg: &MeasureConfig,
    platform: Platform<'_>,
    device: &B::Device,
) -> EvalReport {
    let _span = tracing::info_span!("measure", backend = platform.backend).entered();
    let acc = evaluate_accuracy(model, test, batcher, cfg.throughput_batch, device);
    let counts = count_params(model);

    // Batch-1 latency: one image, already on the device; the timer includes reading the
    // logits back, so asynchronous backends are timed to completion.
    let one = batcher.batch::<B>(test, &[0], device).images;
    let run = |x: Tensor<B, 4>| {
        let _ = model.forward(x).into_data();
    };
    for _ in 0..cfg.warmup_runs {
        run(one.clone());
    }
    let mut times: Vec<f64> = (0..cfg.latency_runs)
        .map(|_| {
            let t = Instant::now();
            run(one.clone());
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);

    let idx: Vec<usize> = (0..cfg.throughput_batch).map(|i| i % test.len()).collect();
    let big = batcher.batch::<B>(test, &idx, device).images;
    for _ in 0..cfg.warmup_runs.clamp(1, 3) {
        run(big.clone());
    }
    let t = Instant::now();
    for _ in 0..cfg.throughput_runs {
        run(big.clone());
    }
    let throughput =
        (cfg.throughput_batch * cfg.throughput_runs) as f64 / t.elapsed().as_secs_f64();

    EvalReport {
        accuracy: acc.accuracy,
        per_class_accuracy: acc.per_class,
        test_loss: acc.loss,
        test_items: acc.total,
        params: counts.params,
        nonzero_params: counts.nonzero,
        macs: spec.macs(),
        size_bytes: saved.size_bytes,
        size_gzip_bytes: saved.size_gzip_bytes,
        latency_b1_ms_p50: percentile(&times, 0.50),
        latency_b1_ms_p95: percentile(&times, 0.95),
        latency_runs: times.len(),
        throughput_per_s: throughput,
        throughput_batch: cfg.throughput_batch,
        backend: platform.backend.to_string(),
        device: platform.device.to_string(),
    }
}

/// Nearest-rank percentile of sorted values (`q` in [0, 1]).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.95), 95.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert_eq!(percentile(&[3.0], 0.95), 3.0);
    }
}
