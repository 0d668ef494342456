//! The model folder an export starts from: a float model (`model.json` and its weights file,
//! dense, sparse or weight-only quantized) or an int8 model (`model.json` and `model.int8`).

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use opt_arch::{ZooArch, ZooModel};
use opt_core::artifact::{
    MODEL_FILE, ModelMeta, WeightsFormat, load_model, read_meta, read_weights,
};
use opt_quant::QuantModel;
use opt_quant::qformat::{INT8_FILE, decode};

use crate::error::{ExportError, Result};

/// A loaded model folder.
pub enum SourceModel<B: Backend> {
    /// A float model on `B`.
    Float {
        /// Its description.
        meta: ModelMeta<ZooArch>,
        /// The model.
        model: Box<ZooModel<B>>,
    },
    /// An int8 model (optkit's integer path).
    Int8 {
        /// Its description (the float architecture it was quantized from).
        meta: ModelMeta<ZooArch>,
        /// The model.
        model: Box<QuantModel>,
    },
}

impl<B: Backend> SourceModel<B> {
    /// Loads the model folder `dir`.
    ///
    /// # Errors
    /// [`ExportError::NotAModel`] when `dir` holds no `model.json`; the loaders' errors for a
    /// damaged file.
    pub fn load(dir: &Path, device: &B::Device) -> Result<Self> {
        let not_a_model = |problem: String| ExportError::NotAModel {
            path: dir.to_path_buf(),
            problem,
        };
        if !dir.join(MODEL_FILE).is_file() {
            let problem = if dir.join(INT8_FILE).is_file() {
                format!(
                    "holds {INT8_FILE} but no {MODEL_FILE} (written by an optkit before export \
                     existed); run its quantize stage again with this optkit"
                )
            } else {
                format!(
                    "not a model folder: no {MODEL_FILE}; pass a stage folder of a run, such as \
                     runs/quickstart/baseline"
                )
            };
            return Err(not_a_model(problem));
        }
        // The folder's kind is what model.json says, whatever other files lie beside it.
        let (meta, format) = read_meta::<ZooArch>(dir)?;
        if format == WeightsFormat::Int8 {
            let bytes = read_weights(dir, &meta)?;
            let path = dir.join(INT8_FILE);
            let model = decode(&bytes, &path.display().to_string())?;
            check_int8(&meta, &model, dir)?;
            return Ok(SourceModel::Int8 {
                meta,
                model: Box::new(model),
            });
        }
        let (meta, model, _) = load_model::<B, ZooArch>(dir, device)?;
        Ok(SourceModel::Float {
            meta,
            model: Box::new(model),
        })
    }

    /// The model's description.
    pub fn meta(&self) -> &ModelMeta<ZooArch> {
        match self {
            SourceModel::Float { meta, .. } | SourceModel::Int8 { meta, .. } => meta,
        }
    }

    /// `float32` or `int8`.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceModel::Float { .. } => "float32",
            SourceModel::Int8 { .. } => "int8",
        }
    }

    /// The files that make up the folder's model, relative to it (`model.json` first, then
    /// the weights file it names).
    pub fn files(&self) -> Vec<PathBuf> {
        vec![
            PathBuf::from(MODEL_FILE),
            PathBuf::from(&self.meta().weights),
        ]
    }
}

/// An int8 model must be the model its `model.json` describes: same input and classes.
fn check_int8(meta: &ModelMeta<ZooArch>, model: &QuantModel, dir: &Path) -> Result<()> {
    let spec = &meta.spec;
    if model.input != spec.input || model.classes() != spec.classes {
        return Err(ExportError::NotAModel {
            path: dir.to_path_buf(),
            problem: format!(
                "{INT8_FILE} takes {:?} images into {} classes but {MODEL_FILE} describes {:?} \
                 into {}; the files come from different models, quantize again",
                model.input,
                model.classes(),
                spec.input,
                spec.classes
            ),
        });
    }
    Ok(())
}
