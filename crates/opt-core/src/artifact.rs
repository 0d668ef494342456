//! Saved models: a folder with `model.json` (spec, normalization, class names) and
//! `weights.safetensors` (every tensor under its module path, float32), both written
//! atomically. Loading checks every tensor's presence and shape against the spec.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use crate::data::Normalization;
use crate::error::{CoreError, Result};
use crate::fsutil::{gzip_len, read_json, write_atomic, write_json_atomic};
use crate::model::{Arch, Architecture, ModelSpec};
use crate::qweights::{
    StoredTensor, decode_quant_weights, dequantize_all, encode_quant_weights, is_quant_weights,
};
use crate::sparse::{decode_sparse, encode_sparse, is_sparse};
use crate::weights::{Naming, decode_weights, encode_weights, host_tensors, load_host_tensors};

/// File name of the model description inside a model folder.
pub const MODEL_FILE: &str = "model.json";
/// File name of the weights inside a model folder.
pub const WEIGHTS_FILE: &str = "weights.safetensors";
/// The `model.json` format this optkit writes and reads.
pub const FORMAT_VERSION: u32 = 2;

/// What `model.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelMeta<A = Arch> {
    /// Format version of this file ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// The architecture.
    pub spec: ModelSpec<A>,
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

/// How a model folder stores its weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightsFormat {
    /// safetensors, every value (`weights.safetensors`).
    #[default]
    Dense,
    /// optkit's sparse file: bitmask of the non-zeros plus their values, compressed
    /// (`weights.sparse`, see [`crate::sparse`]); for unstructured-pruned models.
    Sparse,
    /// optkit's weight-only quantized file: 8- or 4-bit codes and float16 scales
    /// (`weights.wq`, see [`crate::qweights`]); written by [`save_quant_weights`].
    Quant,
}

impl WeightsFormat {
    /// The file name this format uses in a model folder.
    pub fn file_name(self) -> &'static str {
        match self {
            WeightsFormat::Dense => WEIGHTS_FILE,
            WeightsFormat::Sparse => crate::sparse::SPARSE_WEIGHTS_FILE,
            WeightsFormat::Quant => crate::qweights::QUANT_WEIGHTS_FILE,
        }
    }
}

/// Writes `model` and its description into `dir` (created if needed), weights as safetensors.
pub fn save_model<B: Backend, A: Architecture>(
    dir: &Path,
    meta: &ModelMeta<A>,
    model: &A::Model<B>,
) -> Result<SavedModel> {
    save_model_as(dir, meta, model, WeightsFormat::Dense)
}

/// Writes `model` and its description into `dir` with weights in `format`, in the file
/// `meta.weights` names. Loading recognises either format.
pub fn save_model_as<B: Backend, A: Architecture>(
    dir: &Path,
    meta: &ModelMeta<A>,
    model: &A::Model<B>,
    format: WeightsFormat,
) -> Result<SavedModel> {
    let fail = |problem| CoreError::Model {
        path: dir.to_path_buf(),
        problem,
    };
    let bytes = match format {
        WeightsFormat::Dense => encode_weights(model, &Naming::Burn).map_err(fail)?,
        WeightsFormat::Sparse => encode_sparse(&host_tensors(model).map_err(fail)?),
        WeightsFormat::Quant => {
            return Err(fail(
                "weight-only quantized files are written from codes and scales with \
                 save_quant_weights, not from a float model"
                    .into(),
            ));
        }
    };
    write_atomic(&dir.join(&meta.weights), &bytes)?;
    write_json_atomic(&dir.join(MODEL_FILE), meta)?;
    Ok(SavedModel {
        dir: dir.to_path_buf(),
        size_bytes: bytes.len() as u64,
        size_gzip_bytes: gzip_len(&bytes),
    })
}

/// Writes weight-only quantized tensors (see [`crate::qweights`]) and the model description
/// into `dir`; `meta.weights` should be [`WeightsFormat::Quant`]'s file name.
pub fn save_quant_weights<A: Architecture>(
    dir: &Path,
    meta: &ModelMeta<A>,
    tensors: &BTreeMap<String, StoredTensor>,
) -> Result<SavedModel> {
    let bytes = encode_quant_weights(tensors);
    write_atomic(&dir.join(&meta.weights), &bytes)?;
    write_json_atomic(&dir.join(MODEL_FILE), meta)?;
    Ok(SavedModel {
        dir: dir.to_path_buf(),
        size_bytes: bytes.len() as u64,
        size_gzip_bytes: gzip_len(&bytes),
    })
}

/// Loads a model folder written by [`save_model`] onto `device`.
pub fn load_model<B: Backend, A: Architecture>(
    dir: &Path,
    device: &B::Device,
) -> Result<(ModelMeta<A>, A::Model<B>, SavedModel)> {
    let err = |problem: String| CoreError::Model {
        path: dir.to_path_buf(),
        problem,
    };
    if !dir.is_dir() {
        return Err(err(format!(
            "not a model folder (expected a directory with {MODEL_FILE} and {WEIGHTS_FILE})"
        )));
    }
    let meta: ModelMeta<A> = read_json(&dir.join(MODEL_FILE))?;
    if meta.format_version != FORMAT_VERSION {
        return Err(err(format!(
            "{MODEL_FILE} has format_version {}, this optkit reads version {FORMAT_VERSION}; \
             re-create the model with this optkit (or use the optkit that wrote it)",
            meta.format_version
        )));
    }
    meta.spec.validate()?;
    if meta.weights.ends_with(".int8") {
        return Err(err(format!(
            "holds an int8 model ({}), which runs on optkit's integer path rather than as a \
             float burn module: measure it with `optkit eval`, export it with `optkit export \
             --format onnx`, or load it with opt_quant::qformat::decode",
            meta.weights
        )));
    }
    let weights_path = dir.join(&meta.weights);
    let bytes =
        std::fs::read(&weights_path).map_err(|e| CoreError::io("reading", &weights_path, e))?;
    let model = if is_sparse(&bytes) {
        decode_sparse(&bytes).and_then(|t| load_host_tensors(meta.spec.init::<B>(device), &t))
    } else if is_quant_weights(&bytes) {
        decode_quant_weights(&bytes)
            .and_then(|t| load_host_tensors(meta.spec.init::<B>(device), &dequantize_all(&t)))
    } else {
        decode_weights(meta.spec.init::<B>(device), &bytes, &Naming::Burn)
    }
    .map_err(|e| err(format!("{}: {e}", meta.weights)))?;
    let saved = SavedModel {
        dir: dir.to_path_buf(),
        size_bytes: bytes.len() as u64,
        size_gzip_bytes: gzip_len(&bytes),
    };
    Ok((meta, model, saved))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Classifier;
    use crate::test_util::{TestBackend, device};
    use burn::tensor::{Distribution, Tensor};

    fn meta(spec: ModelSpec) -> ModelMeta {
        ModelMeta {
            format_version: FORMAT_VERSION,
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
            let (m, loaded, again) = load_model::<TestBackend, Arch>(&dir, &device()).unwrap();
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
        let e = load_model::<TestBackend, Arch>(&dir, &device())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(
                "conv1.weight has shape [20, 1, 5, 5] in the file, the model needs [10, 1, 5, 5]"
            ),
            "{e}"
        );
        // Other family.
        other.spec = ModelSpec::preset("cnn", IN, 10).unwrap();
        write_json_atomic(&dir.join(MODEL_FILE), &other).unwrap();
        let e = load_model::<TestBackend, Arch>(&dir, &device())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("missing tensors (19)") && e.contains("extra tensors (8): conv1.bias [20]"),
            "{e}"
        );
        // Corrupt bytes.
        write_json_atomic(&dir.join(MODEL_FILE), &meta(spec)).unwrap();
        let w = std::fs::read(dir.join(WEIGHTS_FILE)).unwrap();
        std::fs::write(dir.join(WEIGHTS_FILE), &w[..w.len() / 3]).unwrap();
        let e = load_model::<TestBackend, Arch>(&dir, &device())
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a valid safetensors file"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
