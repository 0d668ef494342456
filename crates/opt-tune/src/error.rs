//! The error type of opt-tune: every variant names the offending value and the fix.

/// Errors returned by opt-tune.
#[derive(Debug, thiserror::Error)]
pub enum TuneError {
    /// A setting (search space, sampler, early stopping, objective) is out of range.
    #[error("{key} = {value}: {problem}")]
    Invalid {
        /// The key (`tune.space."train.learning_rate"`).
        key: String,
        /// The offending value.
        value: String,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// A study of that name exists in the storage with another definition.
    #[error(
        "study '{name}' already exists in {storage} with {what}; \
         pick a new --study name or delete the old study (optkit never mixes two search spaces)"
    )]
    StudyMismatch {
        /// The study name.
        name: String,
        /// The storage URL.
        storage: String,
        /// What differs, stored against asked.
        what: String,
    },
    /// The storage URL cannot be used or the database refused an operation.
    #[error("storage {url}: {problem}")]
    Storage {
        /// The storage URL (passwords masked).
        url: String,
        /// What failed and how to fix it.
        problem: String,
    },
    /// A trial was taken from this worker (its heartbeat was too old) before it reported.
    #[error(
        "trial {number} of study '{study}' is no longer held by this worker (state {state}); \
         its heartbeat stopped for longer than stale_after_s, so it was re-queued"
    )]
    LostTrial {
        /// The study name.
        study: String,
        /// The trial number.
        number: u64,
        /// The state found in the storage.
        state: String,
    },
}

impl TuneError {
    /// Shorthand for [`TuneError::Invalid`].
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

    /// Shorthand for [`TuneError::Storage`].
    pub fn storage(url: impl Into<String>, problem: impl ToString) -> Self {
        Self::Storage {
            url: url.into(),
            problem: problem.to_string(),
        }
    }
}

/// Result alias of opt-tune.
pub type Result<T, E = TuneError> = std::result::Result<T, E>;
