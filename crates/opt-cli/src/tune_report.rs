//! What a tune stage reports: every trial (parameters, state, values, metrics, epochs run),
//! the best trial or Pareto front, and the chosen trial's steps; JSON for report.json and
//! lines for report.md.

use std::collections::BTreeMap;

use opt_tune::objective::Objective;
use opt_tune::study::Outcome;
use opt_tune::trial::{Trial, TrialState};
use serde::{Deserialize, Serialize};

use crate::config::{PipelineFile, StageSection};
use crate::tune_keys::apply;

/// One trial in the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrialRow {
    /// Trial number.
    pub number: u64,
    /// complete, pruned, failed, running, waiting.
    pub state: TrialState,
    /// Its parameters.
    pub params: opt_tune::space::Params,
    /// Objective values (complete trials).
    pub values: Vec<f64>,
    /// Every metric measured (validation `accuracy`, `test_accuracy`, `latency_ms`, ...).
    pub metrics: BTreeMap<String, f64>,
    /// Epochs it trained.
    pub epochs_run: u32,
    /// Epochs it was configured for.
    pub epochs_budget: u32,
    /// Whether every constraint held.
    pub feasible: bool,
    /// Why it failed.
    pub message: Option<String>,
    /// The trial it re-runs.
    pub retry_of: Option<u64>,
    /// Wall time.
    pub seconds: Option<f64>,
}

/// The stage's details in report.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TuneReport {
    /// Study name.
    pub study: String,
    /// Storage URL.
    pub storage: String,
    /// Sampler and early-stopping settings.
    pub sampler: opt_tune::sampler::SamplerConfig,
    /// Early stopping.
    pub early_stopping: opt_tune::pruner::EarlyStoppingConfig,
    /// Objectives.
    pub objectives: Vec<opt_tune::objective::Objective>,
    /// Constraints.
    pub constraints: Vec<opt_tune::objective::Constraint>,
    /// Every trial of the study.
    pub trials: Vec<TrialRow>,
    /// The best trial (one objective) or the Pareto front (several), by number.
    pub front: Vec<u64>,
    /// The trial whose model is the candidate.
    pub chosen: u64,
    /// Trials this process ran.
    pub ran_here: Vec<u64>,
    /// Epochs trained over all finished trials, and what they would have trained without
    /// early stopping.
    pub epochs_run: u64,
    /// See `epochs_run`.
    pub epochs_budget: u64,
    /// Trials with steps: what each step of the chosen trial did when it was run again into
    /// the stage's folder (kind and that step's report).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chosen_steps: Vec<ChosenStep>,
}

/// One step of the chosen trial, as run into the stage's folder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChosenStep {
    /// `prune`, `quantize` or `distill`.
    pub kind: String,
    /// The step's report (as a stage of that kind writes it).
    pub details: serde_json::Value,
}

impl TuneReport {
    /// Summary lines for report.md.
    pub fn summary(&self) -> Vec<String> {
        let count = |s: TrialState| self.trials.iter().filter(|t| t.state == s).count();
        let saved = 1.0 - self.epochs_run as f64 / self.epochs_budget.max(1) as f64;
        let epochs = if self.early_stopping.kind == opt_tune::pruner::EarlyStoppingKind::None {
            format!("{} epochs trained, no early stopping", self.epochs_run)
        } else {
            format!(
                "{} of {} epochs trained ({:.0}% saved by early stopping)",
                self.epochs_run,
                self.epochs_budget,
                100.0 * saved
            )
        };
        let mut out = vec![format!(
            "study {} in {}: {} trials ({} complete, {} pruned, {} failed); {epochs}",
            self.study,
            self.storage,
            self.trials.len(),
            count(TrialState::Complete),
            count(TrialState::Pruned),
            count(TrialState::Failed),
        )];
        let label = if self.objectives.len() > 1 {
            "Pareto front"
        } else {
            "best trial"
        };
        for n in &self.front {
            if let Some(t) = self.trials.iter().find(|t| t.number == *n) {
                let values: Vec<String> = self
                    .objectives
                    .iter()
                    .zip(&t.values)
                    .map(|(o, v)| format!("{} {}", o.metric, metric_value(*v)))
                    .collect();
                let params: Vec<String> =
                    t.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let chosen = if *n == self.chosen { " (chosen)" } else { "" };
                out.push(format!(
                    "{label}: trial {n}{chosen}: {} with {}",
                    values.join(", "),
                    params.join(", ")
                ));
            }
        }
        out
    }
}

/// A metric for people: whole numbers (bytes, MACs) without decimals, others to 4 places.
pub(crate) fn metric_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() >= 1.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.4}")
    }
}

/// A trial's row in the stage's report.
pub fn row(file: &PipelineFile, steps: &[StageSection], t: &Trial) -> TrialRow {
    let run = t
        .metrics
        .get("epochs")
        .map(|e| *e as u32)
        .or(t.last_step())
        .unwrap_or(0);
    // Trials with steps are never stopped early: their budget is what they trained.
    let budget = if steps.is_empty() {
        apply(file, steps, &t.params)
            .map(|c| c.train.epochs as u32)
            .unwrap_or(0)
    } else {
        run
    };
    TrialRow {
        number: t.number,
        state: t.state,
        params: t.params.clone(),
        values: t.values.clone(),
        metrics: t.metrics.clone(),
        epochs_run: run,
        epochs_budget: budget,
        feasible: t.feasible(),
        message: t.message.clone(),
        retry_of: t.retry_of,
        seconds: t.duration_s(),
    }
}

/// One line of the live progress table (stderr).
pub fn progress_line(
    trial: &Trial,
    outcome: &Outcome,
    reported: &Trial,
    objectives: &[Objective],
    best: &mut Option<(u64, f64)>,
    seconds: f64,
) {
    let params: Vec<String> = trial
        .params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let (state, values) = match outcome {
        Outcome::Complete(m) => {
            let vals: Vec<String> = objectives
                .iter()
                .map(|o| {
                    format!(
                        "{} {}",
                        o.metric,
                        metric_value(m.get(&o.metric).copied().unwrap_or(f64::NAN))
                    )
                })
                .collect();
            if let Some(v) = m.get(&objectives[0].metric)
                && best.is_none_or(|(_, b)| objectives[0].direction.better(*v, b))
            {
                *best = Some((trial.number, *v));
            }
            ("complete", vals.join(", "))
        }
        Outcome::Pruned => (
            "pruned",
            format!("stopped at epoch {}", reported.last_step().unwrap_or(0)),
        ),
        Outcome::Failed(why) => ("failed", why.clone()),
    };
    let best = best
        .map(|(n, v)| format!("best {} {v:.4} (#{n})", objectives[0].metric))
        .unwrap_or_default();
    eprintln!(
        "optkit: trial {:>3} {state:<8} {values} | {} | {seconds:.1} s | {best}",
        trial.number,
        params.join(" ")
    );
}
