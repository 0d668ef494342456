//! `optkit bench`: training throughput of the real training loop, and forward throughput and
//! batch-1 latency of the same model, on each compiled backend.

use std::time::Instant;

use anyhow::Result;
use burn::tensor::backend::AutodiffBackend;
use opt_arch::ArchChoice;
use opt_core::data::{Batcher, DataSource, Normalization};
use opt_core::model::{Classifier, InputShape, ModelSpec};
use opt_core::train::{DefaultHooks, TrainConfig, TrainData, seed_backend, train};

use crate::backend::{BackendKind, BackendTask};

/// One backend's figure.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchResult {
    /// Backend name.
    pub backend: String,
    /// Device description.
    pub device: String,
    /// Whether optkit's fast CPU paths were on (`false`: burn's own operations).
    pub fast_paths: bool,
    /// Training samples per second (forward, backward, optimizer step, batching).
    pub samples_per_s: f64,
    /// Inference samples per second: forward passes of `batch_size` images, no autodiff.
    pub infer_samples_per_s: f64,
    /// Median batch-1 forward latency in milliseconds, no autodiff.
    pub latency_ms: f64,
}

/// The bench as a backend task.
pub struct BenchTrain {
    /// Model family.
    pub arch: String,
    /// Batch size.
    pub batch_size: usize,
    /// Timed steps (training steps, then as many inference batches).
    pub steps: usize,
}

impl BackendTask for BenchTrain {
    type Output = BenchResult;

    fn run<B: AutodiffBackend>(
        self,
        device: B::Device,
        backend: BackendKind,
        device_name: String,
    ) -> Result<BenchResult> {
        let data = DataSource::Embedded.load(10)?.train;
        let input = InputShape {
            channels: 1,
            height: 28,
            width: 28,
        };
        let spec = ModelSpec {
            input,
            classes: 10,
            arch: ArchChoice::named(&self.arch)?.resolve(input)?,
        };
        spec.validate()?;
        let batcher = Batcher {
            norm: Normalization::of(&data),
        };
        let valid = data.take(self.batch_size);
        let cfg = TrainConfig {
            epochs: 1,
            batch_size: self.batch_size,
            learning_rate: 1e-3,
            ..Default::default()
        };
        seed_backend::<B>(&device, 1);
        // Warm-up (allocations, autotuning on wgpu), then the timed epoch.
        let warm = data.take(5 * self.batch_size);
        let model = spec.init::<B>(&device);
        let _ = train(
            model,
            TrainData {
                train: &warm,
                valid: &valid,
                batcher,
            },
            &cfg,
            &device,
            &mut DefaultHooks,
        );
        let timed = data.take(self.steps * self.batch_size);
        let model = spec.init::<B>(&device);
        let (trained, report) = train(
            model,
            TrainData {
                train: &timed,
                valid: &valid,
                batcher,
            },
            &cfg,
            &device,
            &mut DefaultHooks,
        );
        // Forward only (training returns the model on the inner backend, as deployment runs it);
        // the timers include reading the logits back, so asynchronous backends are timed to
        // completion.
        let model = trained;
        let batch: Vec<usize> = (0..self.batch_size.min(data.len())).collect();
        let images = batcher
            .batch::<B::InnerBackend>(&data, &batch, &device)
            .images;
        let one = batcher
            .batch::<B::InnerBackend>(&data, &[0], &device)
            .images;
        let run = |x: &burn::tensor::Tensor<B::InnerBackend, 4>| {
            let _ = model.forward(x.clone()).into_data();
        };
        for _ in 0..3 {
            run(&images);
            run(&one);
        }
        let start = Instant::now();
        for _ in 0..self.steps {
            run(&images);
        }
        let infer_samples_per_s =
            (self.steps * batch.len()) as f64 / start.elapsed().as_secs_f64().max(1e-9);
        let mut latencies: Vec<f64> = (0..self.steps.max(20))
            .map(|_| {
                let t = Instant::now();
                run(&one);
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        latencies.sort_by(f64::total_cmp);
        Ok(BenchResult {
            backend: backend.name().into(),
            device: device_name,
            fast_paths: opt_core::ops::fast_paths(),
            samples_per_s: report.samples_per_s,
            infer_samples_per_s,
            latency_ms: latencies[latencies.len() / 2],
        })
    }
}
