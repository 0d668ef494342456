//! The training loop, its settings and the model copies training needs.

pub mod config;
pub mod copy;
pub mod run;

pub use config::{OptimizerKind, ScheduleKind, TrainConfig};
pub use copy::{deep_copy, trainable};
pub use run::{
    DefaultHooks, EpochStats, RngSession, TrainData, TrainHooks, TrainReport, rng_session,
    seed_backend, train,
};
