//! The plain sections of the pipeline file: `[data]` (where the images come from and how they
//! are split) and `[report]` (where results go and how carefully models are measured).

use std::path::PathBuf;

use opt_core::eval::MeasureConfig;
use serde::{Deserialize, Serialize};

/// `[data]`: where the images come from and how they are split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataSection {
    /// `embedded` (the shipped Fashion-MNIST subset) or `dir` (four IDX files in `path`).
    pub source: SourceKind,
    /// Directory of the IDX files for `source = "dir"`; relative paths are relative to the
    /// config file's directory. `--data-dir` overrides it.
    pub path: Option<PathBuf>,
    /// Number of classes (labels must be below it).
    pub classes: usize,
    /// Fraction of the training split held out for validation, in (0, 1).
    pub validation_split: f64,
    /// Use only the first N training items (for quick runs).
    pub train_limit: Option<usize>,
    /// Use only the first N test items.
    pub test_limit: Option<usize>,
}

/// Where data comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// The Fashion-MNIST subset compiled into optkit.
    Embedded,
    /// A directory of IDX files.
    Dir,
}

impl Default for DataSection {
    fn default() -> Self {
        Self {
            source: SourceKind::Embedded,
            path: None,
            classes: 10,
            validation_split: 0.1,
            train_limit: None,
            test_limit: None,
        }
    }
}

/// `[report]`: where results go and how carefully models are measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReportSection {
    /// Run directory (relative to the working directory); `--out` overrides it.
    pub out: PathBuf,
    /// Timed batch-1 forward passes per model (≥ 200 for stable percentiles).
    pub latency_runs: usize,
    /// Untimed forward passes before timing.
    pub warmup_runs: usize,
    /// Batch size of the throughput measurement.
    pub throughput_batch: usize,
    /// Timed batches of the throughput measurement.
    pub throughput_runs: usize,
}

impl Default for ReportSection {
    fn default() -> Self {
        let m = MeasureConfig::default();
        Self {
            out: PathBuf::from("runs/optkit"),
            latency_runs: m.latency_runs,
            warmup_runs: m.warmup_runs,
            throughput_batch: m.throughput_batch,
            throughput_runs: m.throughput_runs,
        }
    }
}

impl ReportSection {
    /// The measurement settings.
    pub fn measure(&self) -> MeasureConfig {
        MeasureConfig {
            latency_runs: self.latency_runs,
            warmup_runs: self.warmup_runs,
            throughput_batch: self.throughput_batch,
            throughput_runs: self.throughput_runs,
        }
    }
}
