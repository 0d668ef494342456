//! opt-prune: pruning that makes models really smaller and faster, for any burn model that
//! describes itself through opt-core's [`Architecture`](opt_core::model::Architecture) trait.
//!
//! - Criteria ([`Criterion`]): L1 and L2 magnitude, batch-norm scale (network slimming),
//!   first-order Taylor (weight x gradient), random as a control.
//! - Unstructured pruning ([`unstructured`]): per-layer or global ranking with per-layer limits
//!   so no layer is emptied, overrides, exclusions by name pattern, N:M sparsity (2:4); masks
//!   stay at zero through fine-tuning ([`MaskHook`], re-applied after every optimizer step).
//!   The model is stored in opt-core's sparse format, so its file really shrinks.
//! - Structured pruning ([`structured`]): whole channels removed from every coupled layer of a
//!   channel group (batch norms, consumers, depthwise convolutions, residual partners,
//!   squeeze-excitation, the flatten into a linear layer); the result is a smaller spec with
//!   sliced weights, batch-norm statistics re-estimated.
//! - Schedules: one-shot, iterative, gradual (Zhu & Gupta's cubic sparsity inside training).
//! - Sensitivity scan ([`sensitivity`]): every layer or group pruned alone at several ratios,
//!   the accuracy table, and per-unit ratios derived from it for the global target.
//!
//! ```
//! use burn::tensor::backend::AutodiffBackend;
//! use opt_core::model::{Arch, Model, ModelSpec};
//! use opt_core::train::{TrainConfig, TrainData};
//! use opt_prune::{Method, PruneConfig, prune_model};
//!
//! /// Removes half of every channel group of a trained model and fine-tunes it.
//! fn halve<B: AutodiffBackend>(
//!     spec: &ModelSpec,
//!     model: &Model<B::InnerBackend>,
//!     data: TrainData<'_>,
//!     device: &B::Device,
//! ) -> opt_prune::Result<ModelSpec> {
//!     let cfg = PruneConfig { method: Method::Structured, target: 0.5, ..Default::default() };
//!     let out = prune_model::<B, Arch>(spec, model, &cfg, data, &TrainConfig::default(), device)?;
//!     println!("{} -> {} MACs, {:?}", spec.macs(), out.spec.macs(), out.report.summary());
//!     Ok(out.spec)
//! }
//! ```

pub mod config;
pub mod criterion;
pub mod error;
#[cfg(test)]
mod fixture;
pub mod hook;
pub mod prune;
pub mod report;
mod scan;
pub mod sensitivity;
pub mod slicing;
pub mod structured;
pub mod unstructured;

pub use config::{Criterion, Method, Override, PruneConfig, Schedule, Scope};
pub use error::{PruneError, Result};
pub use hook::{MaskHook, cubic_sparsity, mask_module};
pub use prune::{PruneOutcome, check_config, prune_model, recalibrate_batch_norm};
pub use report::{PruneReport, RoundReport};
pub use sensitivity::{SensitivityConfig, SensitivityReport};
