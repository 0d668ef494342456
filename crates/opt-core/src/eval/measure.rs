//! One [`EvalReport`] for any model: accuracy, latency, throughput, size, parameters, MACs.
//! Every candidate of a run, float or int8, is measured by the one protocol
//! [`measure_model`] on the same machine, so the figures are comparable; [`measure`] runs it
//! on a burn module, opt-quant on its integer path.

use std::time::Instant;

use burn::module::Module;
use burn::tensor::{Tensor, backend::Backend};
use serde::{Deserialize, Serialize};

use crate::artifact::SavedModel;
use crate::data::{Batcher, ImageDataset};
use crate::error::{CoreError, Result};
use crate::model::{Architecture, Classifier, ModelSpec, ParamCounts, count_params};

use super::accuracy::{Tally, host_values};

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

/// What the measurement protocol needs of a model, whatever runs it (a burn module on any
/// backend, opt-quant's integer path): a batch of test items in its input form, prepared
/// outside the timed region; a forward pass that waits for its result (what latency and
/// throughput time); the logits of a batch; its parameter counts; and where it runs.
pub trait Measurable {
    /// One batch of input, ready to run.
    type Input;

    /// The test items `indices` of `test` as one batch.
    fn input(&self, test: &ImageDataset, indices: &[usize]) -> Self::Input;

    /// Runs the model on `input` and waits for the result.
    fn run(&self, input: &Self::Input);

    /// The logits of `input`, row-major (`n * classes`), and the number of classes.
    fn logits(&self, input: &Self::Input) -> (Vec<f32>, usize);

    /// Parameters and non-zero parameters (PyTorch convention).
    fn counts(&self) -> ParamCounts;

    /// The backend and device names the report gives.
    fn platform(&self) -> (String, String);
}

/// What a model's files and spec say about it (not measured by running it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaticFigures {
    /// Multiply-accumulates per image.
    pub macs: u64,
    /// Bytes of its files on disk.
    pub size_bytes: u64,
    /// Bytes of its files gzip-compressed.
    pub size_gzip_bytes: u64,
}

/// The measurement protocol, the one function every candidate is measured by: accuracy,
/// per-class accuracy and loss on the whole `test` split in batches of
/// `cfg.throughput_batch` (scored by [`Tally`]); batch-1 latency (`cfg.warmup_runs` runs
/// untimed, then `cfg.latency_runs` timed, p50 and p95); throughput on batches of
/// `cfg.throughput_batch` items (up to 3 warm-up runs, then `cfg.throughput_runs` timed).
pub fn measure_model<M: Measurable>(
    model: &M,
    figures: StaticFigures,
    test: &ImageDataset,
    cfg: &MeasureConfig,
) -> EvalReport {
    let (backend, device) = model.platform();
    let _span = tracing::info_span!("measure", backend = %backend).entered();
    let order: Vec<usize> = (0..test.len()).collect();
    let mut tally = Tally::new(test.num_classes);
    for chunk in order.chunks(cfg.throughput_batch.max(1)) {
        let (logits, classes) = model.logits(&model.input(test, chunk));
        tally.add_rows(
            &logits,
            classes,
            chunk.iter().map(|&i| test.labels[i] as usize),
        );
    }
    let acc = tally.report();
    let counts = model.counts();

    let one = model.input(test, &[0]);
    for _ in 0..cfg.warmup_runs {
        model.run(&one);
    }
    let mut times: Vec<f64> = (0..cfg.latency_runs)
        .map(|_| {
            let t = Instant::now();
            model.run(&one);
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);

    let idx: Vec<usize> = (0..cfg.throughput_batch).map(|i| i % test.len()).collect();
    let big = model.input(test, &idx);
    for _ in 0..cfg.warmup_runs.clamp(1, 3) {
        model.run(&big);
    }
    let t = Instant::now();
    for _ in 0..cfg.throughput_runs {
        model.run(&big);
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
        macs: figures.macs,
        size_bytes: figures.size_bytes,
        size_gzip_bytes: figures.size_gzip_bytes,
        latency_b1_ms_p50: percentile(&times, 0.50),
        latency_b1_ms_p95: percentile(&times, 0.95),
        latency_runs: times.len(),
        throughput_per_s: throughput,
        throughput_batch: cfg.throughput_batch,
        backend,
        device,
    }
}

/// A burn classifier with the batcher that normalizes its input, as [`Measurable`].
struct BurnModel<'a, B: Backend, M> {
    model: &'a M,
    batcher: &'a Batcher,
    device: &'a B::Device,
    platform: Platform<'a>,
}

impl<B: Backend, M: Classifier<B> + Module<B>> Measurable for BurnModel<'_, B, M> {
    type Input = Tensor<B, 4>;

    fn input(&self, test: &ImageDataset, indices: &[usize]) -> Tensor<B, 4> {
        self.batcher.batch::<B>(test, indices, self.device).images
    }

    fn run(&self, input: &Tensor<B, 4>) {
        let _ = self.model.forward(input.clone()).into_data();
    }

    fn logits(&self, input: &Tensor<B, 4>) -> (Vec<f32>, usize) {
        let logits = self.model.forward(input.clone());
        let classes = logits.dims()[1];
        (host_values(logits), classes)
    }

    fn counts(&self) -> ParamCounts {
        count_params(self.model)
    }

    fn platform(&self) -> (String, String) {
        (
            self.platform.backend.to_string(),
            self.platform.device.to_string(),
        )
    }
}

/// Measures a burn `model` on the `test` split by [`measure_model`]; `saved` gives the
/// on-disk size of its weights, `spec` its MACs.
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
    let figures = StaticFigures {
        macs: spec.macs(),
        size_bytes: saved.size_bytes,
        size_gzip_bytes: saved.size_gzip_bytes,
    };
    let burn = BurnModel {
        model,
        batcher,
        device,
        platform,
    };
    measure_model(&burn, figures, test, cfg)
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
