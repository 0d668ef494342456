//! `optkit distill`: distill a saved teacher into a saved student (for example a pruned model)
//! with the settings of a small TOML file (`[distill]`, optional `[train]`), write the distilled
//! student and measure student, teacher and result on the student's test data in one run.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::backend::AutodiffBackend;
use opt_arch::ZooArch;
use opt_core::artifact::{ModelMeta, WeightsFormat, load_model, save_model_as};
use opt_core::data::Batcher;
use opt_core::eval::{EvalReport, MeasureConfig, Platform, measure};
use opt_core::fsutil::write_json_atomic;
use opt_core::train::{TrainConfig, TrainData, seed_backend};
use opt_distill::{DistillConfig, DistillReport, TeacherInput, distill};
use serde::{Deserialize, Serialize};

use crate::backend::{BackendKind, BackendTask};

/// The settings file of `optkit distill`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistillFile {
    /// How to distill (same keys as a pipeline's `[stages.distill]`).
    #[serde(default)]
    pub distill: DistillConfig,
    /// Optimizer, schedule, batch size, epochs and seed (same keys as a pipeline's `[train]`).
    #[serde(default)]
    pub train: TrainConfig,
    /// Fraction of the training images held out for validation (default 0.1).
    pub validation_split: Option<f64>,
}

/// What `optkit distill` prints.
#[derive(Debug, Clone, Serialize)]
pub struct DistillOutput {
    /// The student before distillation.
    pub student: EvalReport,
    /// The teacher, on the student's test data.
    pub teacher: EvalReport,
    /// The distilled student (written to `out`).
    pub distilled: EvalReport,
    /// The distilled student's folder.
    pub out: String,
    /// What distillation did.
    pub distill: DistillReport,
}

/// The distill command as a backend task.
pub struct DistillSaved {
    /// Student model folder.
    pub student: PathBuf,
    /// Teacher model folder.
    pub teacher: PathBuf,
    /// The settings.
    pub settings: DistillFile,
    /// Folder for the distilled student (not a source folder).
    pub out: PathBuf,
    /// Directory with the four IDX files (default: the data the student was measured on).
    pub data_dir: Option<PathBuf>,
    /// How carefully to time.
    pub measure: MeasureConfig,
}

/// Reads and checks the settings file (`None`: defaults).
pub fn load_settings(path: Option<&Path>) -> Result<DistillFile> {
    let file = match path {
        Some(path) => {
            let text = crate::config::read_text(path)
                .with_context(|| format!("cannot read distill settings {}", path.display()))?;
            crate::config::parse_toml::<DistillFile>(&text)
                .with_context(|| format!("invalid distill settings {}", path.display()))?
        }
        None => DistillFile::default(),
    };
    file.distill.validate("distill")?;
    file.train.validate("train")?;
    if let Some(v) = file.validation_split
        && !(v > 0.0 && v < 1.0)
    {
        bail!("validation_split = {v}: must be strictly between 0 and 1, for example 0.1");
    }
    Ok(file)
}

impl BackendTask for DistillSaved {
    type Output = DistillOutput;

    fn run<B: AutodiffBackend>(
        self,
        device: B::Device,
        backend: BackendKind,
        device_name: String,
    ) -> Result<DistillOutput> {
        let s = &self.settings;
        crate::evaluate::check_out_folder(
            &self.out,
            &[("--student", &self.student), ("--teacher", &self.teacher)],
        )?;
        let (meta, student, saved) =
            load_model::<B::InnerBackend, ZooArch>(&self.student, &device).context("--student")?;
        if meta.weights != WeightsFormat::Dense.file_name() {
            bail!(
                "--student {} is stored as {}: training it in float would undo its \
                 compression (refill pruned zeros or lose quantization); distill a dense model \
                 (before unstructured pruning or quantization)",
                self.student.display(),
                meta.weights
            );
        }
        let (tmeta, teacher, tsaved) =
            load_model::<B::InnerBackend, ZooArch>(&self.teacher, &device).context("--teacher")?;
        let splits = crate::evaluate::model_data(&meta, self.data_dir.as_deref())?;
        tmeta
            .spec
            .check_data(&splits.test)
            .context("--teacher does not fit the student's data")?;
        let (train_ds, valid_ds) = splits
            .train
            .split(s.validation_split.unwrap_or(0.1), s.train.seed)?;
        let batcher = Batcher {
            norm: meta.normalization,
        };
        let platform = Platform {
            backend: backend.name(),
            device: &device_name,
        };
        let m = |model, spec, saved, norm| {
            measure(
                model,
                spec,
                saved,
                &splits.test,
                &Batcher { norm },
                &self.measure,
                platform,
                &device,
            )
        };
        let before = m(&student, &meta.spec, &saved, meta.normalization);
        let teacher_eval = m(&teacher, &tmeta.spec, &tsaved, tmeta.normalization);
        seed_backend::<B>(&device, s.train.seed);
        let data = TrainData {
            train: &train_ds,
            valid: &valid_ds,
            batcher,
        };
        let (model, report) = distill::<B, _, _>(
            &student,
            TeacherInput {
                model: &teacher,
                normalization: tmeta.normalization,
            },
            data,
            &s.train,
            &s.distill,
            &device,
        )?;
        let new_meta = ModelMeta {
            weights: WeightsFormat::Dense.file_name().to_string(),
            ..meta.clone()
        };
        let saved_out = save_model_as(&self.out, &new_meta, &model, WeightsFormat::Dense)?;
        let after = m(&model, &meta.spec, &saved_out, meta.normalization);
        let output = DistillOutput {
            student: before,
            teacher: teacher_eval,
            distilled: after,
            out: self.out.display().to_string(),
            distill: report,
        };
        write_json_atomic(&self.out.join("distill.json"), &output)?;
        Ok(output)
    }
}
