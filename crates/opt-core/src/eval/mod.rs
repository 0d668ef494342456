//! Evaluation: accuracy on a split, and the full measurement report of a model.

pub mod accuracy;
pub mod measure;

pub use accuracy::{AccuracyReport, Tally, evaluate_accuracy};
pub use measure::{
    EvalReport, Measurable, MeasureConfig, Platform, StaticFigures, measure, measure_model,
    percentile,
};
