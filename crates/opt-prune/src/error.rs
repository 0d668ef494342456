//! The error type of opt-prune: every variant names the offending value and the fix.

/// Errors returned by opt-prune.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    /// A setting is out of range or inconsistent.
    #[error("{key} = {value}: {problem}")]
    Invalid {
        /// The key (`prune.target`).
        key: String,
        /// The offending value.
        value: String,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// The model cannot be pruned as asked (no channel groups, mismatched tensors).
    #[error("{0}")]
    Model(String),
    /// An error from opt-core (saving, loading, specs).
    #[error(transparent)]
    Core(#[from] opt_core::CoreError),
}

impl PruneError {
    /// Shorthand for [`PruneError::Invalid`].
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

/// Result alias of opt-prune.
pub type Result<T, E = PruneError> = std::result::Result<T, E>;
