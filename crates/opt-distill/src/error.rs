//! The error type of opt-distill: every variant names the offending value and the fix.

/// Errors returned by opt-distill.
#[derive(Debug, thiserror::Error)]
pub enum DistillError {
    /// A setting is out of range or inconsistent.
    #[error("{key} = {value}: {problem}")]
    Invalid {
        /// The key (`distill.temperature`).
        key: String,
        /// The offending value.
        value: String,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// Teacher and student cannot be paired as asked (classes, hint layers, shapes).
    #[error("{0}")]
    Mismatch(String),
    /// An error from opt-core.
    #[error(transparent)]
    Core(#[from] opt_core::CoreError),
}

impl DistillError {
    /// Shorthand for [`DistillError::Invalid`].
    pub fn invalid(
        key: impl Into<String>,
        value: impl ToString,
        problem: impl Into<String>,
    ) -> Self {
        Self::Invalid {
            key: key.into(),
            value: value.to_string(),
            problem: problem.into(),
        }
    }
}

/// Result alias of opt-distill.
pub type Result<T, E = DistillError> = std::result::Result<T, E>;
