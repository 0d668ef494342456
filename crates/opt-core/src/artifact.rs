//! Saved models: a folder with `model.json` (spec, normalization, class names) and
//! `weights.mpk` (the burn record, named MessagePack, full precision), both written atomically.
//! Loading checks the record's structure and every tensor shape against the spec.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Recorder};
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use crate::data::Normalization;
use crate::error::{CoreError, Result};
use crate::fsutil::{gzip_len, read_json, write_atomic, write_json_atomic};
use crate::model::nets::ModelRecord;
use crate::model::{Arch, Model, ModelSpec, param_entries};

/// File name of the model description inside a model folder.
pub const MODEL_FILE: &str = "model.json";
/// File name of the weights inside a model folder.
pub const WEIGHTS_FILE: &str = "weights.mpk";

/// What `model.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelMeta {
    /// Format version of this file (1).
    pub format_version: u32,
    /// The architecture.
    pub spec: ModelSpec,
    /// Input normalization the model was trained with.
    pub normalization: Normalization,
    /// Class names in label order.
    pub class_names: Vec<String>,
    /// Weights file name, relative to the folder.
    pub weights: String,
    /// The test data the model was measured on, so `optkit eval` can reproduce the figure.
    pub test_data: Option<TestDataRef>,
}

/// Which test split a model was measured on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestDataRef {
    /// The data source.
    pub source: crate::data::DataSource,
    /// Only the first N test items were used, when set.
    pub test_limit: Option<usize>,
}

/// Where a model was written and how large its weights are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedModel {
    /// The model folder.
    pub dir: PathBuf,
    /// Bytes of the weights file on disk.
    pub size_bytes: u64,
    /// Bytes of the weights file after gzip.
    pub size_gzip_bytes: u64,
}

type WeightsRecorder = NamedMpkBytesRecorder<FullPrecisionSettings>;

/// Writes `model` and its description into `dir` (created if needed).
pub fn save_model<B: Backend>(
    dir: &Path,
    meta: &ModelMeta,
    model: &Model<B>,
) -> Result<SavedModel> {
    let bytes = Recorder::<B>::record(&WeightsRecorder::default(), model.clone().into_record(), ())
        .map_err(|e| CoreError::Model {
            path: dir.to_path_buf(),
            problem: format!("cannot serialize weights: {e}"),
        })?;
    write_atomic(&dir.join(&meta.weights), &bytes)?;
    write_json_atomic(&dir.join(MODEL_FILE), meta)?;
    Ok(SavedModel {
        dir: dir.to_path_buf(),
        size_bytes: bytes.len() as u64,
        size_gzip_bytes: gzip_len(&bytes),
    })
}

/// Loads a model folder written by [`save_model`] onto `device`.
pub fn load_model<B: Backend>(
    dir: &Path,
    device: &B::Device,
) -> Result<(ModelMeta, Model<B>, SavedModel)> {
    let err = |problem: String| CoreError::Model {
        path: dir.to_path_buf(),
        problem,
    };
    if !dir.is_dir() {
        return Err(err(
            "not a model folder (expected a directory with model.json and weights.mpk)".into(),
        ));
    }
    let meta: ModelMeta = read_json(&dir.join(MODEL_FILE))?;
    if meta.format_version != 1 {
        return Err(err(format!(
            "model.json has format_version {}, this optkit reads version 1; upgrade optkit",
            meta.format_version
        )));
    }
    meta.spec.validate()?;
    let weights_path = dir.join(&meta.weights);
    let bytes =
        std::fs::read(&weights_path).map_err(|e| CoreError::io("reading", &weights_path, e))?;
    let record: ModelRecord<B> =
        Recorder::<B>::load(&WeightsRecorder::default(), bytes.clone(), device).map_err(|e| {
            err(format!(
                "weights file {} is corrupt or not a burn record: {e}",
                meta.weights
            ))
        })?;
    check_structure(&meta.spec, &record).map_err(&err)?;
    let fresh = meta.spec.init::<B>(device);
    let expected = param_entries(&fresh, false);
    let model = fresh.load_record(record);
    let got = param_entries(&model, false);
    for (e, g) in expected.iter().zip(&got) {
        if e.shape != g.shape {
            return Err(err(format!(
                "weights do not match model.json: {} has shape {:?} in {}, the spec needs {:?}",
                g.path, g.shape, meta.weights, e.shape
            )));
        }
    }
    let saved = SavedModel {
        dir: dir.to_path_buf(),
        size_bytes: bytes.len() as u64,
        size_gzip_bytes: gzip_len(&bytes),
    };
    Ok((meta, model, saved))
}

/// The record must be of the spec's family and have as many layers; burn would panic otherwise.
fn check_structure<B: Backend>(
    spec: &ModelSpec,
    record: &ModelRecord<B>,
) -> std::result::Result<(), String> {
    let (found, layers) = match record {
        ModelRecord::Mlp(r) => ("mlp", r.layers.len()),
        ModelRecord::Lenet5(_) => ("lenet5", 0),
        ModelRecord::Cnn(r) => ("cnn", r.blocks.len()),
    };
    let expected = match &spec.arch {
        Arch::Mlp { hidden } => hidden.len() + 1,
        Arch::Lenet5 { .. } => 0,
        Arch::Cnn { blocks, .. } => blocks.len(),
    };
    if found != spec.arch.family() {
        return Err(format!(
            "weights are of a {found} model but model.json describes a {}; the files belong to different models",
            spec.arch.family()
        ));
    }
    if layers != expected {
        return Err(format!(
            "weights have {layers} layer groups but model.json describes {expected}; the files belong to different models"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Classifier;
    use crate::test_util::{TestBackend, device};
    use burn::tensor::{Distribution, Tensor};

    fn meta(spec: ModelSpec) -> ModelMeta {
        ModelMeta {
            format_version: 1,
            spec,
            normalization: Normalization {
                mean: 0.3,
                std: 0.35,
            },
            class_names: (0..10).map(|i| i.to_string()).collect(),
            weights: WEIGHTS_FILE.into(),
            test_data: None,
        }
    }

    fn tmp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("optkit-artifact-{name}-{}", std::process::id()))
    }

    use crate::test_util::MNIST as IN;

    #[test]
    fn save_load_reproduces_outputs() {
        let _rng = crate::test_util::rng_lock();
        for family in ["mlp", "lenet5", "cnn"] {
            let spec = ModelSpec::preset(family, IN, 10).unwrap();
            let model = spec.init::<TestBackend>(&device());
            let dir = tmp(family);
            let saved = save_model(&dir, &meta(spec.clone()), &model).unwrap();
            assert!(saved.size_bytes as f64 > 4.0 * spec.params() as f64);
            let (m, loaded, again) = load_model::<TestBackend>(&dir, &device()).unwrap();
            assert_eq!(m.spec, spec);
            assert_eq!(again, saved);
            let x =
                Tensor::<TestBackend, 4>::random([3, 1, 28, 28], Distribution::Default, &device());
            let a = model.forward(x.clone()).into_data();
            let b = loaded.forward(x).into_data();
            assert_eq!(a, b, "{family}");
            std::fs::remove_dir_all(dir).unwrap();
        }
    }

    #[test]
    fn mismatched_and_corrupt_weights_are_errors() {
        let _rng = crate::test_util::rng_lock();
        let dir = tmp("mismatch");
        let spec = ModelSpec::preset("lenet5", IN, 10).unwrap();
        save_model(
            &dir,
            &meta(spec.clone()),
            &spec.init::<TestBackend>(&device()),
        )
        .unwrap();
        // Same family, other widths: shapes differ.
        let mut other = meta(spec.clone());
        other.spec.arch = Arch::Lenet5 {
            conv1: 10,
            conv2: 50,
            fc1: 500,
        };
        write_json_atomic(&dir.join(MODEL_FILE), &other).unwrap();
        let e = load_model::<TestBackend>(&dir, &device())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("conv1.weight") && e.contains("[20, 1, 5, 5]"),
            "{e}"
        );
        // Other family.
        other.spec = ModelSpec::preset("cnn", IN, 10).unwrap();
        write_json_atomic(&dir.join(MODEL_FILE), &other).unwrap();
        let e = load_model::<TestBackend>(&dir, &device())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("lenet5 model but model.json describes a cnn"),
            "{e}"
        );
        // Corrupt bytes.
        write_json_atomic(&dir.join(MODEL_FILE), &meta(spec)).unwrap();
        let w = std::fs::read(dir.join(WEIGHTS_FILE)).unwrap();
        std::fs::write(dir.join(WEIGHTS_FILE), &w[..w.len() / 3]).unwrap();
        let e = load_model::<TestBackend>(&dir, &device())
            .unwrap_err()
            .to_string();
        assert!(e.contains("corrupt"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
