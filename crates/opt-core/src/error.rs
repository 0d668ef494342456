//! The one error type of opt-core: every variant names the offending value and, where there is
//! one, the fix.

use std::path::PathBuf;

/// Errors returned by opt-core.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What we were doing (`reading`, `writing`, ...).
        action: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An IDX file is malformed.
    #[error("{path}: {problem}")]
    Idx {
        /// The IDX file (or `<embedded>/...`).
        path: String,
        /// What is wrong with it and, where possible, how to fix it.
        problem: String,
    },
    /// A dataset is inconsistent (counts, labels, shapes).
    #[error("dataset {name}: {problem}")]
    Dataset {
        /// Which dataset.
        name: String,
        /// What is wrong.
        problem: String,
    },
    /// A configuration value is out of range or inconsistent.
    #[error("{key} = {value}: {problem}")]
    InvalidValue {
        /// The key, as a dotted path (`train.epochs`).
        key: String,
        /// The offending value, as written.
        value: String,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// A saved model could not be loaded.
    #[error("model {path}: {problem}")]
    Model {
        /// The model directory or file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A file is larger than what its header (or its kind) allows.
    #[error(
        "{path} is {size}, more than the {max} bytes {what} allows; the file is damaged or not what it claims to be"
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size, in words.
        size: String,
        /// The most bytes allowed.
        max: u64,
        /// What set the limit.
        what: String,
    },
    /// A JSON document could not be (de)serialized.
    #[error("{path}: invalid JSON: {source}")]
    Json {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: serde_json::Error,
    },
}

impl CoreError {
    /// Shorthand for an [`CoreError::Io`] error.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// Shorthand for an [`CoreError::InvalidValue`] error.
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

/// Result alias of opt-core.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;
