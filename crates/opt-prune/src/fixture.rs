//! The test fixture shared by the pruning runs' tests: a small CNN trained for one epoch on
//! embedded images.

use opt_core::data::{Batcher, DataSource, ImageDataset, Normalization};
use opt_core::model::{Arch, ModelSpec};
use opt_core::test_util::{MNIST, TestAutodiff, TestBackend, device};
use opt_core::train::{DefaultHooks, TrainConfig, TrainData, seed_backend, train};

/// The inference backend of the tests.
pub type Inner = TestBackend;

/// Data, a trained model and its training settings.
pub struct Fixture {
    pub train: ImageDataset,
    pub valid: ImageDataset,
    pub batcher: Batcher,
    pub spec: ModelSpec,
    pub model: opt_core::model::Model<Inner>,
    pub cfg: TrainConfig,
}

/// A small CNN trained for one epoch on 480 embedded images.
pub fn fixture() -> Fixture {
    let splits = DataSource::Embedded.load(10).unwrap();
    let (train_ds, valid_ds) = splits.train.take(600).split(0.2, 1).unwrap();
    let batcher = Batcher {
        norm: Normalization::of(&train_ds),
    };
    let spec = ModelSpec {
        input: MNIST,
        classes: 10,
        arch: Arch::Cnn {
            blocks: vec![8, 16],
            fc: 32,
        },
    };
    let cfg = TrainConfig {
        epochs: 1,
        batch_size: 32,
        learning_rate: 3e-3,
        ..Default::default()
    };
    let dev = device();
    seed_backend::<TestAutodiff>(&dev, 3);
    let data = TrainData {
        train: &train_ds,
        valid: &valid_ds,
        batcher,
    };
    let (model, _) = train(
        spec.init::<TestAutodiff>(&dev),
        data,
        &cfg,
        &dev,
        &mut DefaultHooks,
    );
    Fixture {
        train: train_ds,
        valid: valid_ds,
        batcher,
        spec,
        model,
        cfg,
    }
}

/// The fixture's data as training input.
pub fn data(f: &Fixture) -> TrainData<'_> {
    TrainData {
        train: &f.train,
        valid: &f.valid,
        batcher: f.batcher,
    }
}
