//! Test data shared by opt-quant's unit tests: the first test images of the embedded
//! Fashion-MNIST subset, as raw pixels (the int8 path's input) and normalized (the float
//! path's), with the training split for calibration.

use burn::tensor::Tensor;
use opt_core::data::{Batcher, DataSource, ImageDataset, Normalization};
use opt_core::model::InputShape;
use opt_core::test_util::{TestBackend, device};

/// One 28x28 grayscale image.
pub const INPUT: InputShape = InputShape {
    channels: 1,
    height: 28,
    width: 28,
};

/// The embedded data, `n` test images of it and both forms of their pixels.
pub struct Images {
    /// Training split (calibration).
    pub train: ImageDataset,
    /// The first `n` test images.
    pub test: ImageDataset,
    /// Normalization of the training split.
    pub norm: Normalization,
    /// Batching with that normalization.
    pub batcher: Batcher,
    /// Raw pixels of the test images, image after image.
    pub pixels: Vec<u8>,
}

impl Images {
    /// The first `n` test images.
    pub fn new(n: usize) -> Self {
        let data = DataSource::Embedded.load(10).unwrap();
        let test = data.test.take(n);
        let norm = Normalization::of(&data.train);
        let pixels = (0..test.len())
            .flat_map(|i| test.image(i).to_vec())
            .collect();
        Self {
            train: data.train,
            test,
            norm,
            batcher: Batcher { norm },
            pixels,
        }
    }

    /// The test images normalized, `[n, 1, 28, 28]`.
    pub fn normalized(&self) -> Tensor<TestBackend, 4> {
        let order: Vec<usize> = (0..self.test.len()).collect();
        self.batcher
            .batch::<TestBackend>(&self.test, &order, &device())
            .images
    }
}
