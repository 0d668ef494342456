//! Trials: the parameters a sampler proposed, what the trial reported while it ran
//! (intermediate values, one per step) and how it ended.

use serde::{Deserialize, Serialize};

use crate::space::Params;

/// Where a trial is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrialState {
    /// Queued (a re-queued trial of a dead worker, or enqueued by hand); the next `ask` takes it.
    Waiting,
    /// Held by a worker, which keeps its heartbeat fresh.
    Running,
    /// Finished with objective values.
    Complete,
    /// Stopped early by the early-stopping rule.
    Pruned,
    /// Failed (an error, a value that diverged to NaN, or a worker whose heartbeat stopped).
    Failed,
}

impl TrialState {
    /// The name stored in databases.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Running => "running",
            Self::Complete => "complete",
            Self::Pruned => "pruned",
            Self::Failed => "failed",
        }
    }

    /// Whether the trial has ended.
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Complete | Self::Pruned | Self::Failed)
    }
}

impl std::fmt::Display for TrialState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One trial of a study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// The trial's number in its study (0, 1, ...).
    pub number: u64,
    /// Its state.
    pub state: TrialState,
    /// The parameters.
    pub params: Params,
    /// The objective values (in the study's objective order) once complete.
    #[serde(default)]
    pub values: Vec<f64>,
    /// Constraint violations, one per constraint (≤ 0 means satisfied).
    #[serde(default)]
    pub violations: Vec<f64>,
    /// Every metric the trial returned (objectives, constraint metrics, anything else).
    #[serde(default)]
    pub metrics: std::collections::BTreeMap<String, f64>,
    /// Intermediate values of the watched objective, `(step, value)` in step order.
    #[serde(default)]
    pub intermediate: Vec<(u32, f64)>,
    /// The worker that holds or held the trial.
    #[serde(default)]
    pub worker: Option<String>,
    /// Unix time (s) the trial started running.
    #[serde(default)]
    pub started: Option<f64>,
    /// Unix time (s) it ended.
    #[serde(default)]
    pub finished: Option<f64>,
    /// Why it failed or was pruned.
    #[serde(default)]
    pub message: Option<String>,
    /// The trial this one re-runs (after its worker stopped).
    #[serde(default)]
    pub retry_of: Option<u64>,
}

impl Trial {
    /// A new trial in `state` with `params`.
    pub fn new(number: u64, state: TrialState, params: Params) -> Self {
        Self {
            number,
            state,
            params,
            values: Vec::new(),
            violations: Vec::new(),
            metrics: Default::default(),
            intermediate: Vec::new(),
            worker: None,
            started: None,
            finished: None,
            message: None,
            retry_of: None,
        }
    }

    /// The last step reported (the number of epochs run when one step is one epoch).
    pub fn last_step(&self) -> Option<u32> {
        self.intermediate.last().map(|(s, _)| *s)
    }

    /// The intermediate value at `step`.
    pub fn value_at(&self, step: u32) -> Option<f64> {
        self.intermediate
            .iter()
            .find(|(s, _)| *s == step)
            .map(|(_, v)| *v)
    }

    /// Whether every constraint is satisfied.
    pub fn feasible(&self) -> bool {
        self.violations.iter().all(|v| *v <= 0.0)
    }

    /// Wall time from start to end, seconds.
    pub fn duration_s(&self) -> Option<f64> {
        Some(self.finished? - self.started?)
    }
}

/// Seconds since the Unix epoch.
pub fn now_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
