//! Turning dataset items into normalized tensors.

use burn::tensor::{Int, Tensor, TensorData, backend::Backend};
use serde::{Deserialize, Serialize};

use super::dataset::ImageDataset;

/// Pixel normalization `(x / 255 - mean) / std`, saved with every model so that evaluation
/// and deployment use the statistics the model was trained with.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// Mean of the training pixels scaled to [0, 1].
    pub mean: f32,
    /// Standard deviation of the training pixels scaled to [0, 1].
    pub std: f32,
}

impl Normalization {
    /// The statistics of a (training) dataset.
    pub fn of(ds: &ImageDataset) -> Self {
        let (mean, std) = ds.pixel_stats();
        Self { mean, std }
    }

    /// Checks values read from a file (`key` names them): the mean finite and in [0, 1], the
    /// standard deviation finite and positive (a zero would divide every pixel by zero).
    pub fn validate(&self, key: &str) -> crate::error::Result<()> {
        if !(self.mean.is_finite() && (0.0..=1.0).contains(&self.mean)) {
            return Err(crate::error::CoreError::invalid(
                format!("{key}.mean"),
                self.mean,
                "must be the mean of the pixels scaled to [0, 1]",
            ));
        }
        if !(self.std.is_finite() && self.std >= 1e-6) {
            return Err(crate::error::CoreError::invalid(
                format!("{key}.std"),
                self.std,
                "must be a positive standard deviation (at least 1e-6) of the pixels scaled to \
                 [0, 1]",
            ));
        }
        Ok(())
    }
}

/// A batch of normalized images and their labels.
#[derive(Debug, Clone)]
pub struct Batch<B: Backend> {
    /// `[n, channels, height, width]`.
    pub images: Tensor<B, 4>,
    /// `[n]` class indices.
    pub targets: Tensor<B, 1, Int>,
    /// The dataset positions of the items, in batch order (a hook can look up per-item data,
    /// for example a teacher's cached logits).
    pub indices: Vec<usize>,
}

/// Builds batches from an [`ImageDataset`].
#[derive(Debug, Clone, Copy)]
pub struct Batcher {
    /// The normalization applied to every pixel.
    pub norm: Normalization,
}

impl Batcher {
    /// The batch made of the items `indices`, on `device`.
    pub fn batch<B: Backend>(
        &self,
        ds: &ImageDataset,
        indices: &[usize],
        device: &B::Device,
    ) -> Batch<B> {
        let n = indices.len();
        let scale = 1.0 / (255.0 * self.norm.std);
        let shift = self.norm.mean / self.norm.std;
        let mut values = Vec::with_capacity(n * ds.item_size());
        for &i in indices {
            values.extend(ds.image(i).iter().map(|&p| p as f32 * scale - shift));
        }
        let labels: Vec<i64> = indices.iter().map(|&i| ds.labels[i] as i64).collect();
        Batch {
            images: Tensor::from_data(
                TensorData::new(values, [n, ds.channels, ds.height, ds.width]),
                device,
            ),
            targets: Tensor::from_data(TensorData::new(labels, [n]), device),
            indices: indices.to_vec(),
        }
    }

    /// Consecutive batches of at most `batch_size` items in the order of `order`.
    pub fn batches<'a, B: Backend>(
        &'a self,
        ds: &'a ImageDataset,
        order: &'a [usize],
        batch_size: usize,
        device: &'a B::Device,
    ) -> impl Iterator<Item = Batch<B>> + 'a {
        order
            .chunks(batch_size.max(1))
            .map(move |idx| self.batch(ds, idx, device))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::dataset::tests::tiny;
    use crate::test_util::{TestBackend, device};

    #[test]
    fn batch_is_normalized_and_shaped() {
        let ds = tiny(6, 3);
        let norm = Normalization {
            mean: 0.5,
            std: 0.25,
        };
        let b = Batcher { norm }.batch::<TestBackend>(&ds, &[5, 0], &device());
        assert_eq!(b.images.dims(), [2, 1, 4, 4]);
        let v = b.images.into_data().to_vec::<f32>().unwrap();
        assert!((v[0] - (5.0 / 255.0 - 0.5) / 0.25).abs() < 1e-5);
        assert!((v[16] - (0.0 - 0.5) / 0.25).abs() < 1e-5);
        let t = b
            .targets
            .into_data()
            .convert::<i64>()
            .to_vec::<i64>()
            .unwrap();
        assert_eq!(t, vec![2, 0]);
        assert_eq!(b.indices, vec![5, 0]);
    }

    #[test]
    fn batches_cover_everything_once() {
        let ds = tiny(10, 2);
        let order: Vec<usize> = (0..10).collect();
        let batcher = Batcher {
            norm: Normalization {
                mean: 0.0,
                std: 1.0,
            },
        };
        let sizes: Vec<usize> = batcher
            .batches::<TestBackend>(&ds, &order, 4, &device())
            .map(|b| b.targets.dims()[0])
            .collect();
        assert_eq!(sizes, vec![4, 4, 2]);
    }
}
