//! `optkit eval`: reload a saved model and measure it again on its test data.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::tensor::backend::{AutodiffBackend, Backend};
use opt_core::artifact::{ModelMeta, load_model};
use opt_core::data::{Batcher, DataSource, Splits};
use opt_core::eval::{EvalReport, MeasureConfig, Platform, measure};
use opt_core::fsutil::read_json;
use opt_core::report::Candidate;

use crate::backend::{BackendKind, BackendTask};

/// What `optkit eval` prints.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EvalOutput {
    /// The model folder.
    pub model: String,
    /// Fresh measurements.
    #[serde(flatten)]
    pub eval: EvalReport,
    /// Accuracy recorded in the folder's report.json when the model was made, if any.
    pub recorded_accuracy: Option<f64>,
}

/// The eval command as a backend task.
pub struct EvalModel {
    /// Model folder (a stage folder of a run).
    pub dir: PathBuf,
    /// Test data override.
    pub data_dir: Option<PathBuf>,
    /// How carefully to time it.
    pub measure: MeasureConfig,
}

impl BackendTask for EvalModel {
    type Output = EvalOutput;

    fn run<B: AutodiffBackend>(
        self,
        device: B::Device,
        backend: BackendKind,
        device_name: String,
    ) -> Result<EvalOutput> {
        run_inner::<B::InnerBackend>(self, device, backend, device_name)
    }
}

/// Checks the `--out` folder of a command that writes a model: an existing file is refused,
/// and so is any of the `sources` (`(what, folder)`, for example `("source model", model)`), so
/// a source folder is never overwritten.
pub fn check_out_folder(out: &Path, sources: &[(&str, &Path)]) -> Result<()> {
    if out.exists() && !out.is_dir() {
        anyhow::bail!(
            "--out {} is an existing file; choose a folder",
            out.display()
        );
    }
    for (what, src) in sources {
        if out.exists() && out.canonicalize().ok() == src.canonicalize().ok() {
            anyhow::bail!("--out is the {what} folder; choose another folder so it is kept");
        }
    }
    Ok(())
}

/// The data a saved model is evaluated on: the IDX files in `data_dir` when given, else the
/// data (and test limit) the model was measured on, else the embedded subset.
pub fn model_data<A>(meta: &ModelMeta<A>, data_dir: Option<&Path>) -> Result<Splits> {
    let (source, limit) = match (data_dir, &meta.test_data) {
        (Some(d), _) => (
            DataSource::Dir {
                path: d.to_path_buf(),
            },
            None,
        ),
        (None, Some(t)) => (t.source.clone(), t.test_limit),
        (None, None) => (DataSource::Embedded, None),
    };
    let mut splits = source.load(meta.spec.classes).context("loading the data")?;
    if let Some(n) = limit {
        splits.test = splits.test.take(n);
    }
    Ok(splits)
}

fn run_inner<B: Backend>(
    task: EvalModel,
    device: B::Device,
    backend: BackendKind,
    device_name: String,
) -> Result<EvalOutput> {
    let (meta, model, saved) = load_model::<B, opt_arch::ZooArch>(&task.dir, &device)?;
    let test = model_data(&meta, task.data_dir.as_deref())?.test;
    let batcher = Batcher {
        norm: meta.normalization,
    };
    let eval = measure(
        &model,
        &meta.spec,
        &saved,
        &test,
        &batcher,
        &task.measure,
        Platform {
            backend: backend.name(),
            device: &device_name,
        },
        &device,
    );
    let recorded = read_json::<Candidate>(&task.dir.join("report.json"))
        .ok()
        .map(|c| c.eval.accuracy);
    Ok(EvalOutput {
        model: task.dir.display().to_string(),
        eval,
        recorded_accuracy: recorded,
    })
}
