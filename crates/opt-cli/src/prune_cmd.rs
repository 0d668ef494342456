//! `optkit prune`: prune a saved model folder with the settings of a small TOML file
//! (`[prune]`, optional `[train]` for fine-tuning), write the pruned model folder, and measure
//! both on the model's test data in one run.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::backend::AutodiffBackend;
use opt_arch::ZooArch;
use opt_core::artifact::{ModelMeta, load_model, save_model_as};
use opt_core::data::Batcher;
use opt_core::eval::{EvalReport, MeasureConfig, Platform, measure};
use opt_core::fsutil::write_json_atomic;
use opt_core::train::{TrainConfig, TrainData, seed_backend};
use opt_prune::{PruneConfig, PruneReport, prune_model};
use serde::{Deserialize, Serialize};

use crate::backend::{BackendKind, BackendTask};

/// The settings file of `optkit prune`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneFile {
    /// How to prune (same keys as a pipeline's `[stages.prune]`).
    #[serde(default)]
    pub prune: PruneConfig,
    /// Fine-tuning optimizer, batch size and seed (same keys as a pipeline's `[train]`).
    #[serde(default)]
    pub train: TrainConfig,
    /// Fraction of the training images held out for validation.
    #[serde(default = "default_validation")]
    pub validation_split: f64,
}

fn default_validation() -> f64 {
    0.1
}

/// What `optkit prune` prints: both models measured in one run, and what pruning did.
#[derive(Debug, Clone, Serialize)]
pub struct PruneOutput {
    /// The model that was pruned.
    pub before: EvalReport,
    /// The pruned model (written to `out`).
    pub after: EvalReport,
    /// The pruned model folder.
    pub out: String,
    /// What pruning did.
    pub prune: PruneReport,
}

/// The prune command as a backend task.
pub struct PruneSaved {
    /// Model folder to prune.
    pub model: PathBuf,
    /// The settings file.
    pub config: PathBuf,
    /// Folder for the pruned model (must not be the source folder).
    pub out: PathBuf,
    /// Directory with the four IDX files (default: the data the model was measured on).
    pub data_dir: Option<PathBuf>,
    /// How carefully to time.
    pub measure: MeasureConfig,
}

/// Reads and checks the settings file.
pub fn load_settings(path: &Path) -> Result<PruneFile> {
    let text = crate::config::read_text(path)
        .with_context(|| format!("cannot read prune settings {}", path.display()))?;
    let file: PruneFile = crate::config::parse_toml(&text)
        .with_context(|| format!("invalid prune settings {}", path.display()))?;
    file.prune.validate("prune")?;
    file.train.validate("train")?;
    if !(file.validation_split > 0.0 && file.validation_split < 1.0) {
        bail!(
            "validation_split = {}: must be strictly between 0 and 1, for example 0.1",
            file.validation_split
        );
    }
    Ok(file)
}

impl BackendTask for PruneSaved {
    type Output = PruneOutput;

    fn run<B: AutodiffBackend>(
        self,
        device: B::Device,
        backend: BackendKind,
        device_name: String,
    ) -> Result<PruneOutput> {
        let settings = load_settings(&self.config)?;
        crate::evaluate::check_out_folder(&self.out, &[("source model", &self.model)])?;
        let (meta, model, saved) = load_model::<B::InnerBackend, ZooArch>(&self.model, &device)?;
        opt_prune::check_config(&meta.spec, &settings.prune, "prune")?;
        let splits = crate::evaluate::model_data(&meta, self.data_dir.as_deref())?;
        let test = splits.test;
        let (train_ds, valid_ds) = splits
            .train
            .split(settings.validation_split, settings.train.seed)?;
        // The model's own normalization, so its inputs are what it was trained on.
        let batcher = Batcher {
            norm: meta.normalization,
        };
        let platform = Platform {
            backend: backend.name(),
            device: &device_name,
        };
        let before = measure(
            &model,
            &meta.spec,
            &saved,
            &test,
            &batcher,
            &self.measure,
            platform,
            &device,
        );
        seed_backend::<B>(&device, settings.train.seed);
        let data = TrainData {
            train: &train_ds,
            valid: &valid_ds,
            batcher,
        };
        let out = prune_model::<B, ZooArch>(
            &meta.spec,
            &model,
            &settings.prune,
            data,
            &settings.train,
            &device,
        )?;
        let new_meta = ModelMeta {
            spec: out.spec.clone(),
            weights: out.weights_format.file_name().to_string(),
            ..meta
        };
        let saved_out = save_model_as(&self.out, &new_meta, &out.model, out.weights_format)?;
        let after = measure(
            &out.model,
            &out.spec,
            &saved_out,
            &test,
            &batcher,
            &self.measure,
            platform,
            &device,
        );
        let output = PruneOutput {
            before,
            after,
            out: self.out.display().to_string(),
            prune: out.report,
        };
        write_json_atomic(&self.out.join("prune.json"), &output)?;
        Ok(output)
    }
}
