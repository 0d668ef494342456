//! Saved models: a folder with `model.json` (spec, normalization, class names) and one weights
//! file that `model.json` names: `weights.safetensors` (every tensor under its module path,
//! float32), `weights.sparse`, `weights.wq`, or opt-quant's `model.int8`; all written
//! atomically. Loading trusts nothing in the folder: `weights` must be one of those plain file
//! names (never a path), the file must be of the format its name says and no larger than the
//! spec's parameters allow, and every tensor's presence and shape is checked against the spec.
//! Writing a model into a folder first removes the model files optkit owns there, so a stale
//! file of another format never lingers beside the new model.

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
/// File name of an int8 model on optkit's integer path (opt-quant's format).
pub const INT8_FILE: &str = "model.int8";
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
    /// An int8 model on optkit's integer path (`model.int8`, opt-quant's format); not a float
    /// burn module, so [`load_model`] refuses it and says how to use it.
    Int8,
}

impl WeightsFormat {
    /// Every format, so every file name a model folder's `weights` may hold.
    pub const ALL: [WeightsFormat; 4] = [
        WeightsFormat::Dense,
        WeightsFormat::Sparse,
        WeightsFormat::Quant,
        WeightsFormat::Int8,
    ];

    /// The file name this format uses in a model folder.
    pub fn file_name(self) -> &'static str {
        match self {
            WeightsFormat::Dense => WEIGHTS_FILE,
            WeightsFormat::Sparse => crate::sparse::SPARSE_WEIGHTS_FILE,
            WeightsFormat::Quant => crate::qweights::QUANT_WEIGHTS_FILE,
            WeightsFormat::Int8 => INT8_FILE,
        }
    }

    /// The format whose file is named `name`, if any.
    pub fn from_file_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.file_name() == name)
    }
}

impl<A: Architecture> ModelMeta<A> {
    /// Checks what `model.json` says before anything is read on its word: the format version,
    /// the spec (widths and sizes bounded), the normalization, the class names, and `weights`,
    /// which must be one of the file names of [`WeightsFormat::ALL`] (a plain name inside the
    /// folder, never a path). Returns the weights' format.
    pub fn check(&self, dir: &Path) -> Result<WeightsFormat> {
        let err = |problem: String| CoreError::Model {
            path: dir.to_path_buf(),
            problem,
        };
        if self.format_version != FORMAT_VERSION {
            return Err(err(format!(
                "{MODEL_FILE} has format_version {}, this optkit reads version {FORMAT_VERSION}; \
                 re-create the model with this optkit (or use the optkit that wrote it)",
                self.format_version
            )));
        }
        self.spec
            .validate()
            .map_err(|e| err(format!("{MODEL_FILE}: {e}")))?;
        self.normalization
            .validate("normalization")
            .map_err(|e| err(format!("{MODEL_FILE}: {e}")))?;
        if self.class_names.len() != self.spec.classes {
            return Err(err(format!(
                "{MODEL_FILE} lists {} class names for a model of {} classes; list one name \
                 per class",
                self.class_names.len(),
                self.spec.classes
            )));
        }
        WeightsFormat::from_file_name(&self.weights).ok_or_else(|| {
            let names: Vec<&str> = WeightsFormat::ALL.iter().map(|f| f.file_name()).collect();
            err(format!(
                "{MODEL_FILE} names the weights file {:?}; it must be one of {} (a file inside \
                 the model folder, not a path)",
                self.weights,
                names.join(", ")
            ))
        })
    }
}

/// The most bytes any weights file of a model of `spec` can take: 8 bytes per parameter
/// (float32 values plus batch-norm running statistics, or codes, masks and scales) and room
/// for the headers. Readers cap the file at this, so a damaged or hostile file never makes
/// them allocate more than the model needs.
pub fn max_weights_bytes<A: Architecture>(spec: &ModelSpec<A>) -> u64 {
    let layers = spec.layers();
    let params = layers.iter().fold(0u64, |a, l| a.saturating_add(l.params));
    params
        .saturating_mul(8)
        .saturating_add(1 << 20)
        .saturating_add(4096 * layers.len() as u64)
}

/// The most values a model of `spec` stores: its parameters and, at most as many again,
/// batch-norm running statistics.
pub fn max_values<A: Architecture>(spec: &ModelSpec<A>) -> usize {
    usize::try_from(spec.params().saturating_mul(2)).unwrap_or(usize::MAX)
}

/// Reads a model folder's weights file (named by a checked `model.json`), capped at what the
/// spec allows.
pub fn read_weights<A: Architecture>(dir: &Path, meta: &ModelMeta<A>) -> Result<Vec<u8>> {
    let path = dir.join(&meta.weights);
    crate::fsutil::read_capped(
        &path,
        max_weights_bytes(&meta.spec),
        &format!(
            "a model of {} parameters ({})",
            meta.spec.params(),
            meta.spec.describe()
        ),
    )
}

/// Reads and checks a model folder's `model.json` (see [`ModelMeta::check`]); a relative
/// test-data folder in it is resolved against `dir`.
pub fn read_meta<A: Architecture>(dir: &Path) -> Result<(ModelMeta<A>, WeightsFormat)> {
    if !dir.is_dir() {
        return Err(CoreError::Model {
            path: dir.to_path_buf(),
            problem: format!(
                "not a model folder (expected a directory with {MODEL_FILE} and its weights file)"
            ),
        });
    }
    let mut meta: ModelMeta<A> = read_json(&dir.join(MODEL_FILE))?;
    let format = meta.check(dir)?;
    // A relative data folder is relative to the model folder; from here on it is absolute,
    // so it names the same files from any working directory (and in derived models).
    if let Some(t) = &mut meta.test_data {
        t.source = t.source.relative_to(dir);
    }
    Ok((meta, format))
}

/// Removes the model files optkit owns in `dir` (`model.json` and every weights file name of
/// [`WeightsFormat::ALL`]) before a new model is written there, so a file of another format
/// never outlives the model it belonged to. Other files are left alone.
pub fn clear_model_files(dir: &Path) -> Result<()> {
    let names = std::iter::once(MODEL_FILE).chain(WeightsFormat::ALL.iter().map(|f| f.file_name()));
    for name in names {
        let path = dir.join(name);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() || m.file_type().is_symlink() => std::fs::remove_file(&path)
                .map_err(|e| CoreError::io("removing the old model file", &path, e))?,
            Ok(_) => {
                return Err(CoreError::Model {
                    path: path.clone(),
                    problem: "is a folder where optkit writes a model file; move it away".into(),
                });
            }
            Err(_) => {}
        }
    }
    Ok(())
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
        WeightsFormat::Quant | WeightsFormat::Int8 => {
            return Err(fail(
                "weight-only and int8 files are written from codes and scales \
                 (save_quant_weights, opt-quant), not from a float model"
                    .into(),
            ));
        }
    };
    if meta.weights != format.file_name() {
        return Err(fail(format!(
            "model.json names {:?} but the weights are {}",
            meta.weights,
            format.file_name()
        )));
    }
    clear_model_files(dir)?;
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
    if meta.weights != WeightsFormat::Quant.file_name() {
        return Err(CoreError::Model {
            path: dir.to_path_buf(),
            problem: format!(
                "model.json names {:?} but weight-only codes are stored in {}",
                meta.weights,
                WeightsFormat::Quant.file_name()
            ),
        });
    }
    let bytes = encode_quant_weights(tensors);
    clear_model_files(dir)?;
    write_atomic(&dir.join(&meta.weights), &bytes)?;
    write_json_atomic(&dir.join(MODEL_FILE), meta)?;
    Ok(SavedModel {
        dir: dir.to_path_buf(),
        size_bytes: bytes.len() as u64,
        size_gzip_bytes: gzip_len(&bytes),
    })
}

/// Builds the model that a checked `model.json` (`meta`, weights in `format`) describes from
/// the bytes of its weights file; `dir` names the folder in errors. The file must be of the
/// format its name says, plausible in size for the spec before any weight is allocated (a
/// dense file holds 4 bytes per parameter), and hold every tensor with its shape.
pub fn decode_model<B: Backend, A: Architecture>(
    dir: &Path,
    meta: &ModelMeta<A>,
    format: WeightsFormat,
    bytes: &[u8],
    device: &B::Device,
) -> Result<A::Model<B>> {
    let err = |problem: String| CoreError::Model {
        path: dir.to_path_buf(),
        problem: format!("{}: {problem}", meta.weights),
    };
    let values = max_values(&meta.spec);
    let named = |ok: bool, what: &str| {
        if ok {
            Ok(())
        } else {
            Err(format!(
                "the file is not {what} (its first bytes say otherwise); the folder was \
                 changed or damaged, save the model again"
            ))
        }
    };
    let params = meta.spec.params();
    let least = match format {
        WeightsFormat::Dense => params.saturating_mul(4),
        WeightsFormat::Quant => params / 2,
        WeightsFormat::Sparse | WeightsFormat::Int8 => 0,
    };
    if (bytes.len() as u64) < least {
        return Err(err(format!(
            "{} bytes, fewer than the {least} the model's {params} parameters need; the file \
             is truncated or belongs to another model",
            bytes.len()
        )));
    }
    match format {
        WeightsFormat::Sparse => named(is_sparse(bytes), "optkit sparse weights")
            .and_then(|()| decode_sparse(bytes, values))
            .and_then(|t| load_host_tensors(meta.spec.init::<B>(device), &t)),
        WeightsFormat::Quant => named(is_quant_weights(bytes), "optkit quantized weights")
            .and_then(|()| decode_quant_weights(bytes, values))
            .and_then(|t| load_host_tensors(meta.spec.init::<B>(device), &dequantize_all(&t))),
        WeightsFormat::Dense => named(!is_sparse(bytes) && !is_quant_weights(bytes), "safetensors")
            .and_then(|()| decode_weights(meta.spec.init::<B>(device), bytes, &Naming::Burn)),
        WeightsFormat::Int8 => Err("an int8 model is not a float burn module".into()),
    }
    .map_err(err)
}

/// Loads a model folder written by [`save_model`] onto `device`: `model.json` checked (see
/// [`ModelMeta::check`]), the weights file read capped and decoded as the format its name
/// says.
pub fn load_model<B: Backend, A: Architecture>(
    dir: &Path,
    device: &B::Device,
) -> Result<(ModelMeta<A>, A::Model<B>, SavedModel)> {
    let err = |problem: String| CoreError::Model {
        path: dir.to_path_buf(),
        problem,
    };
    let (meta, format) = read_meta::<A>(dir)?;
    if format == WeightsFormat::Int8 {
        return Err(err(format!(
            "holds an int8 model ({}), which runs on optkit's integer path rather than as a \
             float burn module: measure it with `optkit eval`, export it with `optkit export \
             --format onnx`, or load it with opt_quant::qformat::decode",
            meta.weights
        )));
    }
    let bytes = read_weights(dir, &meta)?;
    let model = decode_model::<B, A>(dir, &meta, format, &bytes, device)?;
    let saved = SavedModel {
        dir: dir.to_path_buf(),
        size_bytes: bytes.len() as u64,
        size_gzip_bytes: gzip_len(&bytes),
    };
    Ok((meta, model, saved))
}

#[cfg(test)]
#[path = "artifact_tests.rs"]
mod tests;
