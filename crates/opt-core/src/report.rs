//! The run report: one [`Candidate`] per optimized model, written as `report.json` (for
//! machines; the contract later checks read) and `report.md` (for people).

use serde::{Deserialize, Serialize};

use crate::eval::EvalReport;
use crate::train::TrainReport;

/// One model produced by a pipeline stage, with its measurements.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// Unique name in the run (`baseline`).
    pub name: String,
    /// Stage kind that produced it (`baseline`).
    pub stage: String,
    /// How the stage produced it, where the stage has several methods (`ptq`, `qat`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Bits of the weight codes of a quantized candidate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bits: Option<u32>,
    /// Model folder, relative to the run directory.
    pub model_dir: String,
    /// One-line architecture description.
    pub arch: String,
    /// The measured figures (flattened into the candidate object).
    #[serde(flatten)]
    pub eval: EvalReport,
    /// How it was trained (or fine-tuned), when the stage trained it.
    pub train: Option<TrainReport>,
    /// Stage-specific details for machines (a pruning stage's per-layer report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
    /// Stage-specific lines for people (shown under the candidate in report.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub summary: Vec<String>,
}

impl Candidate {
    /// The stage with its method and bits (`quantize (ptq, 8-bit)`).
    pub fn stage_label(&self) -> String {
        match (&self.method, self.bits) {
            (Some(m), Some(b)) => format!("{} ({m}, {b}-bit)", self.stage),
            (Some(m), None) => format!("{} ({m})", self.stage),
            (None, Some(b)) => format!("{} ({b}-bit)", self.stage),
            (None, None) => self.stage.clone(),
        }
    }
}

/// The whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineReport {
    /// Version of this document's layout (1).
    pub report_version: u32,
    /// The config file that produced the run.
    pub config: String,
    /// Where the data came from.
    pub data: String,
    /// Train / validation / test items.
    pub data_items: [usize; 3],
    /// Backend every candidate was measured on.
    pub backend: String,
    /// Total wall time of the run in seconds.
    pub seconds: f64,
    /// The candidates, in the order the stages produced them.
    pub candidates: Vec<Candidate>,
    /// The name of the best candidate that meets the run's constraints (the baseline when
    /// none does; see `selection`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best: Option<String>,
    /// How `best` was chosen: the constraints and every candidate's verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<crate::select::Selection>,
    /// Candidates taken from an earlier run into the same directory (same settings, inputs
    /// and data; measured then), by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reused: Vec<String>,
    /// The deployment bundle written by `[deploy]`, if the pipeline has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployed: Option<Deployed>,
}

/// A deployment bundle a pipeline wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployed {
    /// The candidate deployed.
    pub candidate: String,
    /// The bundle folder, relative to the run's output folder.
    pub path: String,
    /// `float32` or `int8`.
    pub kind: String,
    /// Its files (manifest.json aside), with sizes and SHA-256.
    pub files: Vec<DeployedFile>,
}

/// One file of a deployment bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeployedFile {
    /// Path inside the bundle.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256, lowercase hex.
    pub sha256: String,
}

fn change(value: f64, base: f64) -> String {
    if base == 0.0 {
        return String::new();
    }
    format!(" ({:.2}x)", value / base)
}

impl PipelineReport {
    /// The Markdown summary: one row per candidate with the change against the baseline.
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        s.push_str("# optkit report\n\n");
        s.push_str(&format!(
            "- config: `{}`\n- data: {} ({} train / {} validation / {} test)\n- backend: {}\n- wall time: {:.1} s\n\n",
            self.config, self.data, self.data_items[0], self.data_items[1], self.data_items[2], self.backend, self.seconds
        ));
        if !self.reused.is_empty() {
            s.push_str(&format!(
                "Reused from an earlier run into this directory (same settings, inputs and data; measured then): {}.\n\n",
                self.reused.join(", ")
            ));
        }
        s.push_str(
            "Ratios in parentheses are against the baseline. MACs: one multiply-accumulate = 1 MAC, per image. \
             Parameters exclude batch-norm running statistics. Latency: batch 1, forward pass and read-back.\n\n",
        );
        s.push_str("| candidate | stage | accuracy | Δ acc (pts) | params | non-zero | MACs | size (bytes) | gzip (bytes) | latency b1 p50 / p95 (ms) | throughput (img/s) |\n");
        s.push_str("|---|---|---|---|---|---|---|---|---|---|---|\n");
        let base = self
            .candidates
            .iter()
            .find(|c| c.stage == "baseline")
            .or(self.candidates.first());
        for c in &self.candidates {
            let e = &c.eval;
            let (d_acc, r_params, r_nz, r_macs, r_size, r_gz, r_lat, r_tp) = match base {
                Some(b) => (
                    format!("{:+.2}", 100.0 * (e.accuracy - b.eval.accuracy)),
                    change(e.params as f64, b.eval.params as f64),
                    change(e.nonzero_params as f64, b.eval.nonzero_params as f64),
                    change(e.macs as f64, b.eval.macs as f64),
                    change(e.size_bytes as f64, b.eval.size_bytes as f64),
                    change(e.size_gzip_bytes as f64, b.eval.size_gzip_bytes as f64),
                    change(e.latency_b1_ms_p50, b.eval.latency_b1_ms_p50),
                    change(e.throughput_per_s, b.eval.throughput_per_s),
                ),
                None => Default::default(),
            };
            s.push_str(&format!(
                "| {} | {} | {:.4} | {} | {}{} | {}{} | {}{} | {}{} | {}{} | {:.3} / {:.3}{} | {:.0}{} |\n",
                c.name, c.stage_label(), e.accuracy, d_acc, e.params, r_params, e.nonzero_params, r_nz, e.macs, r_macs,
                e.size_bytes, r_size, e.size_gzip_bytes, r_gz, e.latency_b1_ms_p50, e.latency_b1_ms_p95, r_lat,
                e.throughput_per_s, r_tp
            ));
        }
        if let Some(sel) = &self.selection {
            s.push_str(&format!(
                "\n## Best candidate: {}\n\n{}{}.\n\nConstraints: {} (accuracy is the test split's).\n\n",
                sel.best,
                if sel.met { "" } else { "**No candidate meets the constraints.** " },
                sel.explanation,
                sel.constraints.describe()
            ));
            for v in sel.verdicts.iter().filter(|v| !v.meets) {
                s.push_str(&format!(
                    "- {} does not: {}\n",
                    v.name,
                    v.reasons.join("; ")
                ));
            }
        }
        if let Some(d) = &self.deployed {
            s.push_str(&format!(
                "\n## Deployment\n\n{} ({}) in `{}` with manifest.json:\n\n",
                d.candidate, d.kind, d.path
            ));
            for f in &d.files {
                s.push_str(&format!(
                    "- `{}`: {} bytes, sha256 `{}`\n",
                    f.path, f.bytes, f.sha256
                ));
            }
        }
        for c in &self.candidates {
            s.push_str(&format!(
                "\n## {}\n\n- architecture: {}\n- model: `{}`\n- device: {}\n",
                c.name, c.arch, c.model_dir, c.eval.device
            ));
            let per_class: Vec<String> = c
                .eval
                .per_class_accuracy
                .iter()
                .map(|a| format!("{a:.3}"))
                .collect();
            s.push_str(&format!("- per-class accuracy: {}\n", per_class.join(", ")));
            for line in &c.summary {
                s.push_str(&format!("- {line}\n"));
            }
            if let Some(t) = &c.train {
                s.push_str(&format!(
                    "- training: {} epochs, best epoch {} (validation accuracy {:.4}), {:.0} samples/s, {:.1} s{}\n\n",
                    t.epochs.len(),
                    t.best_epoch,
                    t.best_val_accuracy,
                    t.samples_per_s,
                    t.seconds,
                    if t.stopped_early { ", stopped early" } else { "" }
                ));
                s.push_str("| epoch | train loss | train acc | val loss | val acc | lr | samples/s |\n|---|---|---|---|---|---|---|\n");
                for ep in &t.epochs {
                    s.push_str(&format!(
                        "| {} | {:.4} | {:.4} | {:.4} | {:.4} | {:.2e} | {:.0} |\n",
                        ep.epoch,
                        ep.train_loss,
                        ep.train_accuracy,
                        ep.val_loss,
                        ep.val_accuracy,
                        ep.lr,
                        ep.samples_per_s
                    ));
                }
            }
        }
        s
    }
}
