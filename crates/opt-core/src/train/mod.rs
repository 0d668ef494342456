//! Training: settings, the loop and its hooks.

pub mod config;
pub mod run;

pub use config::{OptimizerKind, ScheduleKind, TrainConfig};
pub use run::{DefaultHooks, EpochStats, TrainData, TrainHooks, TrainReport, seed_backend, train};
