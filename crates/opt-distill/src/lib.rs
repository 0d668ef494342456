//! opt-distill: knowledge distillation for any pair of opt-core classifiers.
//!
//! - The loss of Hinton et al. (2015) with its T² factor ([`loss`]): `α·T²·KL(p_t ‖ p_s) +
//!   (1 − α)·CE`, checked with its gradient against a plain reference.
//! - FitNets hints ([`hint`]): student layers matched to teacher layers by name through learned
//!   1x1 adapters, spatial sizes matched by average pooling; unknown names are refused with the
//!   valid ones listed.
//! - The teacher ([`teacher`]) is a true copy (burn's `clone` shares batch-norm running
//!   statistics), run in inference mode only, fed images normalized the way it was trained, its
//!   logits computed once for the training split when no hints need its features.
//! - [`distill`] trains the student with opt-core's loop, so a pruned model (recovery), a fresh
//!   small model or any user model can be the student.
//!
//! ```
//! use burn::tensor::backend::AutodiffBackend;
//! use opt_core::data::Normalization;
//! use opt_core::model::Model;
//! use opt_core::train::{TrainConfig, TrainData};
//! use opt_distill::{DistillConfig, TeacherInput, distill};
//!
//! /// Recovers a pruned model's accuracy from the baseline it was pruned from.
//! fn recover<B: AutodiffBackend>(
//!     pruned: &Model<B::InnerBackend>,
//!     baseline: &Model<B::InnerBackend>,
//!     data: TrainData<'_>,
//!     device: &B::Device,
//! ) -> opt_distill::Result<Model<B::InnerBackend>> {
//!     let cfg = DistillConfig { temperature: 4.0, alpha: 0.7, epochs: Some(2), ..Default::default() };
//!     let teacher = TeacherInput { model: baseline, normalization: data.batcher.norm };
//!     let (student, report) =
//!         distill::<B, _, _>(pruned, teacher, data, &TrainConfig::default(), &cfg, device)?;
//!     println!("{:?}", report.summary());
//!     Ok(student)
//! }
//! ```

pub mod config;
pub mod distill;
pub mod error;
pub mod hint;
pub mod loss;
pub mod teacher;

pub use config::{DistillConfig, HintConfig};
pub use distill::{DistillReport, EpochTerms, Pupil, TeacherInput, check_pair, distill};
pub use error::{DistillError, Result};
pub use hint::{HintPair, LayerTable};
pub use loss::{LossTerms, distillation_loss, soft_target_loss};
