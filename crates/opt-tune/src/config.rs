//! A study's settings as written in a pipeline (`[stages.tune]`), checked into a
//! [`StudyDef`], a sampler and an early-stopping rule.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Result, TuneError};
use crate::objective::{Constraint, Direction, Objective, StudyDef};
use crate::pruner::{EarlyStoppingConfig, EarlyStoppingKind, Pruner};
use crate::sampler::{Sampler, SamplerConfig};
use crate::space::{DimensionFile, SearchSpace};

/// `[stages.tune]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TuneConfig {
    /// The study's name in the storage (default: the stage's name).
    pub study: Option<String>,
    /// Where the study lives: `sqlite://<file>` (relative to the run directory) or `memory`
    /// (default: `sqlite://tune.db` in the run directory).
    pub storage: Option<String>,
    /// Trials in the study (over every worker, re-runs of dead workers' trials not counted).
    pub trials: u64,
    /// What to optimize (default: maximize `accuracy`).
    pub objectives: Vec<Objective>,
    /// Constraints on metrics (for example `{ metric = "latency_ms", max = 2.0 }`).
    pub constraints: Vec<Constraint>,
    /// The metric reported per epoch and watched by early stopping (default: `accuracy`).
    pub watch: Option<String>,
    /// The sampler.
    pub sampler: SamplerConfig,
    /// Early stopping of trials.
    pub early_stopping: EarlyStoppingConfig,
    /// Seconds without a heartbeat after which another worker takes a running trial over.
    pub stale_after_s: f64,
    /// The search space: dimension name (a config key) to its range.
    pub space: BTreeMap<String, DimensionFile>,
}

impl Default for TuneConfig {
    fn default() -> Self {
        Self {
            study: None,
            storage: None,
            trials: 20,
            objectives: vec![Objective {
                metric: "accuracy".into(),
                direction: Direction::Maximize,
            }],
            constraints: Vec::new(),
            watch: None,
            sampler: SamplerConfig::default(),
            early_stopping: EarlyStoppingConfig::default(),
            stale_after_s: 120.0,
            space: BTreeMap::new(),
        }
    }
}

/// A checked study: its definition, sampler and early-stopping rule.
pub struct CheckedTune {
    /// The definition.
    pub def: StudyDef,
    /// The sampler.
    pub sampler: Box<dyn Sampler>,
    /// The early-stopping rule, if any.
    pub pruner: Option<Box<dyn Pruner>>,
}

impl TuneConfig {
    /// Checks the settings; `prefix` is the table's key path (`stages[1].tune`); `max_steps`
    /// fills Hyperband's `max_resource` when unset (the trial's epochs).
    pub fn check(&self, prefix: &str, max_steps: u32) -> Result<CheckedTune> {
        if self.trials == 0 {
            return Err(TuneError::invalid(
                format!("{prefix}.trials"),
                0,
                "a study needs at least one trial",
            ));
        }
        if !(self.stale_after_s.is_finite() && self.stale_after_s >= 1.0) {
            return Err(TuneError::invalid(
                format!("{prefix}.stale_after_s"),
                self.stale_after_s,
                "give the seconds after which a silent worker's trial is re-queued (>= 1; 120 is usual)",
            ));
        }
        let space = SearchSpace::from_file(&self.space, &format!("{prefix}.space"))?;
        let watch_metric = self.watch.clone().unwrap_or_else(|| "accuracy".into());
        let watch = self
            .objectives
            .iter()
            .position(|o| o.metric == watch_metric);
        let stopping = self.early_stopping.kind != EarlyStoppingKind::None;
        let watch = match (watch, stopping, &self.watch) {
            (Some(i), _, _) => i,
            (None, false, None) => 0,
            (None, _, _) => {
                return Err(TuneError::invalid(
                    format!("{prefix}.watch"),
                    &watch_metric,
                    format!(
                        "the watched metric must be one of the objectives ({}); early stopping reads \
                         it once per epoch",
                        self.objectives
                            .iter()
                            .map(|o| o.metric.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        };
        let def = StudyDef {
            space,
            objectives: self.objectives.clone(),
            constraints: self.constraints.clone(),
            watch,
        };
        def.check(prefix)?;
        let sampler = self.sampler.build(&def, &format!("{prefix}.sampler"))?;
        let mut stopping = self.early_stopping.clone();
        stopping.max_resource = stopping.max_resource.or(Some(max_steps));
        let pruner = stopping.build(&format!("{prefix}.early_stopping"))?;
        Ok(CheckedTune {
            def,
            sampler,
            pruner,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> TuneConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_maximize_accuracy_and_watch_it() {
        let c = parse("space = { \"train.learning_rate\" = { float = [1e-4, 1e-1], log = true } }");
        let checked = c.check("tune", 6).unwrap();
        assert_eq!(checked.def.objectives[0].metric, "accuracy");
        assert_eq!(checked.def.watch, 0);
        assert!(checked.pruner.is_none());
    }

    #[test]
    fn multi_objective_watches_accuracy_wherever_it_is() {
        let c = parse(
            r#"
            objectives = [{ metric = "latency_ms", direction = "minimize" }, { metric = "accuracy", direction = "maximize" }]
            early_stopping = { kind = "hyperband" }
            space = { "train.batch_size" = { int = [32, 256], step = 32 } }
            "#,
        );
        let checked = c.check("tune", 9).unwrap();
        assert_eq!(checked.def.watch, 1);
        assert!(checked.pruner.is_some());
    }

    #[test]
    fn bad_settings_name_their_key() {
        let space = "space = { a = { float = [0.0, 1.0] } }";
        let cases = [
            (format!("trials = 0\n{space}"), "tune.trials"),
            (
                format!("stale_after_s = 0.0\n{space}"),
                "tune.stale_after_s",
            ),
            (
                format!(
                    "objectives = [{{ metric = \"latency_ms\", direction = \"minimize\" }}]\nearly_stopping = {{ kind = \"median\" }}\n{space}"
                ),
                "tune.watch",
            ),
            ("space = {}".to_string(), "tune.space"),
            (
                format!("sampler = {{ kind = \"grid\", grid_points = 1 }}\n{space}"),
                "tune.sampler.grid_points",
            ),
            (
                format!("early_stopping = {{ kind = \"asha\", reduction_factor = 1 }}\n{space}"),
                "tune.early_stopping.reduction_factor",
            ),
        ];
        for (text, key) in cases {
            let msg = parse(&text)
                .check("tune", 5)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(msg.starts_with(key), "{text}: {msg}");
        }
        assert!(
            toml::from_str::<TuneConfig>("trails = 3")
                .unwrap_err()
                .to_string()
                .contains("unknown field")
        );
    }
}
