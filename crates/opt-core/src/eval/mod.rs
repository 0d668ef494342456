//! Evaluation: accuracy on a split, and the full measurement report of a model.

pub mod accuracy;
pub mod measure;

pub use accuracy::{AccuracyReport, evaluate_accuracy};
pub use measure::{EvalReport, MeasureConfig, Platform, measure, percentile};
