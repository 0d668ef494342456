//! The error type of opt-quant: every variant names the offending value or layer and, where
//! there is one, the fix.

/// Errors returned by opt-quant.
#[derive(Debug, thiserror::Error)]
pub enum QuantError {
    /// A setting is out of range.
    #[error("{key} = {value}: {problem}")]
    InvalidValue {
        /// The key (`quantize.bits`).
        key: String,
        /// The offending value, as written.
        value: String,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// The model has a layer or layout the int8 path does not run.
    #[error("cannot quantize layer {layer}: {problem}")]
    Unsupported {
        /// The layer (`conv1`).
        layer: String,
        /// What is not supported.
        problem: String,
    },
    /// Calibration saw a value that cannot be quantized, or data that does not fit.
    #[error("calibration: {problem}")]
    Calibration {
        /// What went wrong, naming the layer.
        problem: String,
    },
    /// A quantized model file is damaged or inconsistent.
    #[error("quantized model {path}: {problem}")]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong.
        problem: String,
    },
    /// An opt-core operation failed.
    #[error(transparent)]
    Core(#[from] opt_core::CoreError),
}

impl QuantError {
    /// Shorthand for [`QuantError::InvalidValue`].
    pub fn invalid(
        key: impl Into<String>,
        value: impl ToString,
        problem: impl Into<String>,
    ) -> Self {
        Self::InvalidValue {
            key: key.into(),
            value: value.to_string(),
            problem: problem.into(),
        }
    }
}

/// Result with [`QuantError`].
pub type Result<T, E = QuantError> = std::result::Result<T, E>;
