//! What a pruning run reports: settings, rounds (validation accuracy after pruning and after
//! fine-tuning), per-layer sparsity or per-group channels, notes; JSON and Markdown lines.

use serde::{Deserialize, Serialize};

use crate::config::{Method, PruneConfig};
use crate::sensitivity::SensitivityReport;
use crate::structured::GroupChange;
use crate::unstructured::LayerSparsity;

/// One prune (+ fine-tune) round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundReport {
    /// 1-based round.
    pub round: usize,
    /// Sparsity (unstructured) or fraction of channels removed (structured) aimed at.
    pub target: f64,
    /// Validation accuracy right after pruning (after batch-norm re-estimation), before
    /// fine-tuning.
    pub val_accuracy_pruned: f64,
    /// Validation accuracy after fine-tuning, when there was fine-tuning.
    pub val_accuracy_finetuned: Option<f64>,
}

/// What a pruning run did: settings, rounds, and the per-layer or per-group changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PruneReport {
    /// The settings.
    pub config: PruneConfig,
    /// Validation accuracy of the model before pruning.
    pub val_accuracy_before: f64,
    /// The rounds in order.
    pub rounds: Vec<RoundReport>,
    /// Unstructured: zeroed weights per layer.
    pub layers: Vec<LayerSparsity>,
    /// Unstructured: zeroed weights over all pruned layers' weights.
    pub sparsity: Option<f64>,
    /// Structured: channels per group before and after.
    pub groups: Vec<GroupChange>,
    /// Things the user should know (minimums applied, schedule shortfalls).
    pub notes: Vec<String>,
    /// The sensitivity scan and the ratios derived from it, when one ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitivity: Option<SensitivityReport>,
}

impl PruneReport {
    /// Markdown lines for the run report.
    pub fn summary(&self) -> Vec<String> {
        let c = &self.config;
        let mut out = vec![format!(
            "pruning: {:?} {:?}, target {:.4}, schedule {:?}{}, {} fine-tuning epoch(s) per round",
            c.method,
            c.criterion,
            c.target,
            c.schedule,
            c.n_m.as_ref().map(|s| format!(", {s} sparsity")).unwrap_or_default(),
            c.finetune_epochs
        )
        .to_lowercase()];
        out.push(format!(
            "validation accuracy before pruning {:.4}; {}",
            self.val_accuracy_before,
            self.rounds
                .iter()
                .map(|r| format!(
                    "round {}: {:.4} pruned{}",
                    r.round,
                    r.val_accuracy_pruned,
                    r.val_accuracy_finetuned
                        .map(|a| format!(", {a:.4} fine-tuned"))
                        .unwrap_or_default()
                ))
                .collect::<Vec<_>>()
                .join("; ")
        ));
        if let Some(s) = self.sparsity {
            out.push(format!(
                "weights zeroed: {:.2}% of the pruned layers ({})",
                100.0 * s,
                self.layers
                    .iter()
                    .map(|l| format!("{} {:.1}%", l.name, 100.0 * l.ratio))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if !self.groups.is_empty() {
            out.push(format!(
                "channels: {}",
                self.groups
                    .iter()
                    .filter(|g| g.before != g.after)
                    .map(|g| format!("{} {}->{}", g.name, g.before, g.after))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if let Some(scan) = &self.sensitivity {
            out.push(scan.markdown(match c.method {
                Method::Unstructured => "layer",
                Method::Structured => "group",
            }));
        }
        out.extend(self.notes.iter().map(|n| format!("note: {n}")));
        out
    }
}
