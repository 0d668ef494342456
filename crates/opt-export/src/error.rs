//! Errors of exporting and bundling.

use std::path::PathBuf;

use thiserror::Error;

/// What can go wrong exporting a model or writing and reading a bundle.
#[derive(Debug, Error)]
pub enum ExportError {
    /// A file could not be read or written.
    #[error(transparent)]
    Core(#[from] opt_core::CoreError),
    /// The int8 model file could not be read.
    #[error(transparent)]
    Quant(#[from] opt_quant::QuantError),
    /// A format name that is not one of ours.
    #[error("unknown export format '{value}': use onnx, safetensors or burn")]
    UnknownFormat {
        /// What was given.
        value: String,
    },
    /// The folder is not a model folder this optkit can export.
    #[error("{path}: {problem}")]
    NotAModel {
        /// The folder.
        path: PathBuf,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// The format cannot represent this model.
    #[error("cannot export {model} as {format}: {reason}; {fix}")]
    CannotHold {
        /// The format asked for.
        format: String,
        /// The model (folder and kind).
        model: String,
        /// Why the format cannot hold it.
        reason: String,
        /// What to do instead.
        fix: String,
    },
    /// The destination cannot be written as asked.
    #[error("{path}: {problem}")]
    Destination {
        /// The destination folder.
        path: PathBuf,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// A bundle does not match its manifest.
    #[error("bundle {path}: {problem}")]
    Bundle {
        /// The bundle folder.
        path: PathBuf,
        /// What does not match.
        problem: String,
    },
}

/// Result with [`ExportError`].
pub type Result<T, E = ExportError> = std::result::Result<T, E>;
