//! `optkit eval`: reload a saved model and measure it again on its test data.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::tensor::backend::{AutodiffBackend, Backend};
use opt_core::artifact::{ModelMeta, WeightsFormat, load_model, read_meta, read_weights};
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
/// data (and test limit) the model was measured on (a relative folder in `model.json` is
/// relative to the model folder, see `read_meta`), else the embedded subset. Both splits are checked against the model (images of its
/// input shape, labels below its classes, at least one image each) before anything runs.
pub fn model_data<A: opt_core::model::Architecture>(
    meta: &ModelMeta<A>,
    data_dir: Option<&Path>,
) -> Result<Splits> {
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
    for ds in [&splits.train, &splits.test] {
        meta.spec
            .check_data(ds)
            .with_context(|| format!("the data in {} does not fit the model", source.describe()))?;
    }
    Ok(splits)
}

fn run_inner<B: Backend>(
    task: EvalModel,
    device: B::Device,
    backend: BackendKind,
    device_name: String,
) -> Result<EvalOutput> {
    let (meta, format) = read_meta::<opt_arch::ZooArch>(&task.dir)?;
    let test = model_data(&meta, task.data_dir.as_deref())?.test;
    let eval = if format == WeightsFormat::Int8 {
        // An int8 folder runs on the integer path, measured the way the quantize stage does.
        let bytes = read_weights(&task.dir, &meta)?;
        let path = task.dir.join(&meta.weights);
        let q = opt_quant::qformat::decode(&bytes, &path.display().to_string())?;
        if q.input != meta.spec.input || q.classes() != meta.spec.classes {
            anyhow::bail!(
                "{}: {} does not match its model.json (input {:?} into {} classes, model.json: \
                 {:?} into {}); quantize the model again",
                task.dir.display(),
                meta.weights,
                q.input,
                q.classes(),
                meta.spec.input,
                meta.spec.classes
            );
        }
        let figures = opt_core::eval::StaticFigures {
            macs: meta.spec.macs(),
            size_bytes: bytes.len() as u64,
            size_gzip_bytes: opt_core::fsutil::gzip_len(&bytes),
        };
        let run = opt_quant::measure::Int8Run {
            model: &q,
            threads: opt_quant::measure::default_threads(),
        };
        opt_core::eval::measure_model(&run, figures, &test, &task.measure)
    } else {
        let (meta, model, saved) = load_model::<B, opt_arch::ZooArch>(&task.dir, &device)?;
        let batcher = Batcher {
            norm: meta.normalization,
        };
        measure(
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
        )
    };
    let recorded = read_json::<Candidate>(&task.dir.join("report.json"))
        .ok()
        .map(|c| c.eval.accuracy);
    Ok(EvalOutput {
        model: task.dir.display().to_string(),
        eval,
        recorded_accuracy: recorded,
    })
}
