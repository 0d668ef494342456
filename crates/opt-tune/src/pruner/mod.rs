//! Early stopping of trials from their intermediate values (one per step, usually one per
//! epoch, of the study's watched objective).
//!
//! The rules only read the watched objective's direction, so they work the same in
//! multi-objective studies (accuracy per epoch is watched while latency or size, known only at
//! the end, are further objectives), where Optuna refuses to prune.

mod halving;
mod hyperband;
mod median;

use serde::{Deserialize, Serialize};

pub use halving::SuccessiveHalving;
pub use hyperband::Hyperband;
pub use median::MedianRule;

use crate::error::{Result, TuneError};
use crate::objective::StudyDef;
use crate::trial::Trial;

/// Decides whether a running trial stops after its latest report.
pub trait Pruner: Send + Sync {
    /// Whether `trial` should stop now; `all` holds every trial of the study (it may include
    /// `trial` itself, which is skipped).
    fn should_prune(&self, def: &StudyDef, trial: &Trial, all: &[Trial]) -> bool;
}

/// Which rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EarlyStoppingKind {
    /// Never stop early.
    #[default]
    None,
    /// Stop when the best value so far is worse than the median of finished trials at the
    /// same step.
    Median,
    /// Asynchronous successive halving: at each rung keep the top `1/reduction_factor`.
    Asha,
    /// Several successive-halving brackets with different first rungs.
    Hyperband,
}

/// Early-stopping settings (`[tune.early_stopping]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EarlyStoppingConfig {
    /// The rule.
    pub kind: EarlyStoppingKind,
    /// Median: finished trials needed before any trial is stopped.
    pub startup_trials: usize,
    /// Median: steps a trial always runs.
    pub warmup_steps: u32,
    /// ASHA/Hyperband: the first rung (steps).
    pub min_resource: u32,
    /// ASHA/Hyperband: keep 1 in `reduction_factor` at each rung.
    pub reduction_factor: u32,
    /// Hyperband: the full budget of a trial in steps (the number of epochs); filled in from
    /// the training settings when unset.
    pub max_resource: Option<u32>,
}

impl Default for EarlyStoppingConfig {
    fn default() -> Self {
        Self {
            kind: EarlyStoppingKind::None,
            startup_trials: 5,
            warmup_steps: 0,
            min_resource: 1,
            reduction_factor: 3,
            max_resource: None,
        }
    }
}

impl EarlyStoppingConfig {
    /// Checks the settings and builds the rule (`None` for `kind = "none"`).
    pub fn build(&self, prefix: &str) -> Result<Option<Box<dyn Pruner>>> {
        let bad =
            |key: &str, v: u32, why: &str| TuneError::invalid(format!("{prefix}.{key}"), v, why);
        if self.min_resource == 0 {
            return Err(bad(
                "min_resource",
                0,
                "the first rung must be at least 1 step",
            ));
        }
        if self.reduction_factor < 2 {
            return Err(bad(
                "reduction_factor",
                self.reduction_factor,
                "must be at least 2 (3 is usual)",
            ));
        }
        Ok(match self.kind {
            EarlyStoppingKind::None => None,
            EarlyStoppingKind::Median => Some(Box::new(MedianRule {
                startup_trials: self.startup_trials,
                warmup_steps: self.warmup_steps,
            })),
            EarlyStoppingKind::Asha => Some(Box::new(SuccessiveHalving {
                min_resource: self.min_resource,
                reduction_factor: self.reduction_factor,
                min_early_stopping_rate: 0,
                max_resource: self.max_resource,
            })),
            EarlyStoppingKind::Hyperband => {
                let Some(max) = self.max_resource else {
                    return Err(TuneError::invalid(
                        format!("{prefix}.max_resource"),
                        "(unset)",
                        "hyperband needs the full budget of a trial in steps (its epochs)",
                    ));
                };
                if max <= self.min_resource {
                    return Err(bad("max_resource", max, "must be above min_resource"));
                }
                Some(Box::new(Hyperband::new(
                    self.min_resource,
                    max,
                    self.reduction_factor,
                )))
            }
        })
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    use crate::trial::{Trial, TrialState};

    /// A trial in `state` with one intermediate value per step (steps 1, 2, ...).
    pub fn curve(number: u64, state: TrialState, values: &[f64]) -> Trial {
        let mut t = Trial::new(number, state, Default::default());
        t.intermediate = values
            .iter()
            .enumerate()
            .map(|(i, v)| (i as u32 + 1, *v))
            .collect();
        if state == TrialState::Complete {
            t.values = vec![*values.last().unwrap_or(&0.0)];
        }
        t
    }
}
