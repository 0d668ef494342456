//! Data: IDX reading, in-memory datasets, seeded splits and batching.

pub mod batch;
pub mod dataset;
pub mod idx;
pub mod source;

pub use batch::{Batch, Batcher, Normalization};
pub use dataset::ImageDataset;
pub use source::{DataSource, FASHION_MNIST_CLASSES, Splits};
