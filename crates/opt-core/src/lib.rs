//! opt-core: the foundation of optkit, generic over burn backends.
//!
//! It reads images (IDX files or the embedded Fashion-MNIST subset), builds models from
//! serializable specs, trains them with one seeded loop that later techniques hook into,
//! measures them the same way every time, and saves them atomically.
//!
//! ```no_run
//! use burn::backend::Autodiff;
//! use opt_core::prelude::*;
//!
//! type B = Autodiff<burn_flex::Flex>;
//! let device = Default::default();
//! let splits = DataSource::Embedded.load(10).unwrap();
//! let (train_ds, valid_ds) = splits.train.split(0.1, 42).unwrap();
//! let batcher = Batcher { norm: Normalization::of(&train_ds) };
//! let input = InputShape { channels: 1, height: 28, width: 28 };
//! let spec = ModelSpec::preset("lenet5", input, 10).unwrap();
//! seed_backend::<B>(&device, 42);
//! let model = spec.init::<B>(&device);
//! let data = TrainData { train: &train_ds, valid: &valid_ds, batcher };
//! let (trained, report) = train(model, data, &TrainConfig::default(), &device, &mut DefaultHooks);
//! let acc = evaluate_accuracy(&trained, &splits.test, &batcher, 256, &device);
//! println!("test accuracy {:.4} after {} epochs", acc.accuracy, report.epochs.len());
//! ```

pub mod artifact;
pub mod data;
pub mod error;
pub mod eval;
pub mod framed;
pub mod fsutil;
pub mod fuzzing;
pub mod graph;
pub mod model;
pub mod ops;
pub mod progress;
pub mod qweights;
pub mod report;
pub mod rng;
pub mod select;
pub mod sparse;
pub mod train;
pub mod weights;

#[cfg(any(test, feature = "test-util"))]
pub mod test_util;

pub use error::{CoreError, Result};

/// The names most users need.
pub mod prelude {
    pub use crate::artifact::{ModelMeta, SavedModel, TestDataRef, load_model, save_model};
    pub use crate::data::{Batch, Batcher, DataSource, ImageDataset, Normalization, Splits};
    pub use crate::eval::{EvalReport, MeasureConfig, evaluate_accuracy, measure};
    pub use crate::model::{Arch, Architecture, Classifier, InputShape, Model, ModelSpec};
    pub use crate::train::{
        DefaultHooks, TrainConfig, TrainData, TrainHooks, TrainReport, seed_backend, train,
    };
}
