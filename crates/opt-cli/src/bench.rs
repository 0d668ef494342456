//! `optkit bench`: training throughput of the real training loop on each compiled backend.

use anyhow::Result;
use burn::tensor::backend::AutodiffBackend;
use opt_arch::ArchChoice;
use opt_core::data::{Batcher, DataSource, Normalization};
use opt_core::model::{InputShape, ModelSpec};
use opt_core::train::{DefaultHooks, TrainConfig, TrainData, seed_backend, train};

use crate::backend::{BackendKind, BackendTask};

/// One backend's figure.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchResult {
    /// Backend name.
    pub backend: String,
    /// Device description.
    pub device: String,
    /// Training samples per second (forward, backward, optimizer step, batching).
    pub samples_per_s: f64,
}

/// The bench as a backend task.
pub struct BenchTrain {
    /// Model family.
    pub arch: String,
    /// Batch size.
    pub batch_size: usize,
    /// Timed steps.
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
        let (_, report) = train(
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
        Ok(BenchResult {
            backend: backend.name().into(),
            device: device_name,
            samples_per_s: report.samples_per_s,
        })
    }
}
