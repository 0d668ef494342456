//! An in-memory image classification dataset with a seeded train/validation split.

use crate::error::{CoreError, Result};
use crate::rng::SplitMix64;

use super::idx::IdxArray;

/// Images (unsigned bytes, `[n, channels, height, width]` row-major) and their labels.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageDataset {
    /// Name used in messages (`train`, `test`, `validation`).
    pub name: String,
    /// Pixel values, item after item.
    pub pixels: Vec<u8>,
    /// One label per item, each below `num_classes`.
    pub labels: Vec<u8>,
    /// Channels per image.
    pub channels: usize,
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
    /// Number of classes; every label is below it.
    pub num_classes: usize,
}

impl ImageDataset {
    /// Builds a dataset from decoded IDX images (`[n, h, w]`) and labels (`[n]`), checking
    /// that they agree and that every label is below `num_classes`.
    pub fn from_idx(
        name: &str,
        images: IdxArray,
        labels: IdxArray,
        num_classes: usize,
    ) -> Result<Self> {
        let err = |problem: String| CoreError::Dataset {
            name: name.to_string(),
            problem,
        };
        if images.dims.len() != 3 {
            return Err(err(format!(
                "images have {} dimensions {:?}, expected 3 (count, height, width)",
                images.dims.len(),
                images.dims
            )));
        }
        if labels.dims.len() != 1 {
            return Err(err(format!(
                "labels have dimensions {:?}, expected 1 (count)",
                labels.dims
            )));
        }
        let (n, h, w) = (images.dims[0], images.dims[1], images.dims[2]);
        if labels.dims[0] != n {
            return Err(err(format!(
                "{n} images but {} labels; the image and label files must come from the same split",
                labels.dims[0]
            )));
        }
        let ds = Self {
            name: name.to_string(),
            pixels: images.data,
            labels: labels.data,
            channels: 1,
            height: h,
            width: w,
            num_classes,
        };
        ds.check_labels()?;
        Ok(ds)
    }

    fn check_labels(&self) -> Result<()> {
        if let Some((i, &l)) = self
            .labels
            .iter()
            .enumerate()
            .find(|&(_, &l)| l as usize >= self.num_classes)
        {
            return Err(CoreError::Dataset {
                name: self.name.clone(),
                problem: format!(
                    "label {l} at item {i} is not below the number of classes {}; \
                     set data.classes to at least {} or fix the label file",
                    self.num_classes,
                    l as usize + 1
                ),
            });
        }
        Ok(())
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the dataset has no items.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values per image (`channels * height * width`).
    pub fn item_size(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The pixels of item `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let s = self.item_size();
        &self.pixels[i * s..(i + 1) * s]
    }

    /// A new dataset holding the given items, in that order.
    pub fn select(&self, name: &str, indices: &[usize]) -> Self {
        let mut pixels = Vec::with_capacity(indices.len() * self.item_size());
        for &i in indices {
            pixels.extend_from_slice(self.image(i));
        }
        Self {
            name: name.to_string(),
            pixels,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            ..self.clone_meta()
        }
    }

    /// The first `n` items (all of them when `n >= len`).
    pub fn take(&self, n: usize) -> Self {
        let idx: Vec<usize> = (0..n.min(self.len())).collect();
        self.select(&self.name, &idx)
    }

    fn clone_meta(&self) -> Self {
        Self {
            name: String::new(),
            pixels: Vec::new(),
            labels: Vec::new(),
            channels: self.channels,
            height: self.height,
            width: self.width,
            num_classes: self.num_classes,
        }
    }

    /// Splits into (train, validation) with a seeded shuffle; `validation_fraction` in (0, 1).
    pub fn split(&self, validation_fraction: f64, seed: u64) -> Result<(Self, Self)> {
        if !(validation_fraction > 0.0 && validation_fraction < 1.0) {
            return Err(CoreError::invalid(
                "data.validation_split",
                validation_fraction,
                "must be strictly between 0 and 1, for example 0.1",
            ));
        }
        let mut idx: Vec<usize> = (0..self.len()).collect();
        SplitMix64::new(seed ^ SPLIT_SALT).shuffle(&mut idx);
        let n_val = ((self.len() as f64) * validation_fraction).round() as usize;
        if n_val == 0 || n_val == self.len() {
            return Err(CoreError::Dataset {
                name: self.name.clone(),
                problem: format!(
                    "a validation fraction of {validation_fraction} of {} items leaves one side empty; \
                     use more data or another fraction",
                    self.len()
                ),
            });
        }
        let (val, train) = idx.split_at(n_val);
        let mut train = train.to_vec();
        let mut val = val.to_vec();
        train.sort_unstable();
        val.sort_unstable();
        Ok((
            self.select("train", &train),
            self.select("validation", &val),
        ))
    }

    /// Mean and standard deviation of the pixel values scaled to [0, 1].
    pub fn pixel_stats(&self) -> (f32, f32) {
        let n = self.pixels.len().max(1) as f64;
        let sum: f64 = self.pixels.iter().map(|&p| p as f64 / 255.0).sum();
        let mean = sum / n;
        let var: f64 = self
            .pixels
            .iter()
            .map(|&p| {
                let d = p as f64 / 255.0 - mean;
                d * d
            })
            .sum::<f64>()
            / n;
        (mean as f32, var.sqrt().max(1e-6) as f32)
    }

    /// Number of items of each class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_classes];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }
}

/// Salt mixed into the split seed so that the split and the epoch shuffles differ.
const SPLIT_SALT: u64 = 0x5eed_5011_7000_0001;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::data::idx::IdxArray;

    /// A tiny dataset: item `i` has all pixels equal to `i` and label `i % classes`.
    pub(crate) fn tiny(n: usize, classes: usize) -> ImageDataset {
        let images = IdxArray {
            dims: vec![n, 4, 4],
            data: (0..n)
                .flat_map(|i| std::iter::repeat_n(i as u8, 16))
                .collect(),
        };
        let labels = IdxArray {
            dims: vec![n],
            data: (0..n).map(|i| (i % classes) as u8).collect(),
        };
        ImageDataset::from_idx("tiny", images, labels, classes).unwrap()
    }

    #[test]
    fn split_is_seeded_disjoint_and_complete() {
        let ds = tiny(50, 5);
        let (a, b) = ds.split(0.2, 3).unwrap();
        let (a2, b2) = ds.split(0.2, 3).unwrap();
        assert_eq!((a.len(), b.len()), (40, 10));
        assert_eq!(a, a2);
        assert_eq!(b, b2);
        let (_, b3) = ds.split(0.2, 4).unwrap();
        assert_ne!(b.labels.len(), 0);
        assert_ne!(b.pixels, b3.pixels);
        let mut ids: Vec<u8> = a
            .pixels
            .iter()
            .step_by(16)
            .chain(b.pixels.iter().step_by(16))
            .copied()
            .collect();
        ids.sort();
        assert_eq!(ids, (0..50).collect::<Vec<u8>>());
    }

    #[test]
    fn split_rejects_bad_fraction() {
        let ds = tiny(10, 2);
        for f in [0.0, 1.0, -0.5, 1.5] {
            let e = ds.split(f, 0).unwrap_err().to_string();
            assert!(
                e.contains("data.validation_split") && e.contains("between 0 and 1"),
                "{e}"
            );
        }
    }

    #[test]
    fn rejects_count_mismatch_and_large_labels() {
        let images = IdxArray {
            dims: vec![3, 2, 2],
            data: vec![0; 12],
        };
        let labels = IdxArray {
            dims: vec![2],
            data: vec![0, 1],
        };
        let e = ImageDataset::from_idx("t", images.clone(), labels, 10)
            .unwrap_err()
            .to_string();
        assert!(e.contains("3 images but 2 labels"), "{e}");
        let labels = IdxArray {
            dims: vec![3],
            data: vec![0, 10, 1],
        };
        let e = ImageDataset::from_idx("t", images, labels, 10)
            .unwrap_err()
            .to_string();
        assert!(e.contains("label 10 at item 1"), "{e}");
    }

    #[test]
    fn stats_and_counts() {
        let ds = tiny(4, 2);
        assert_eq!(ds.class_counts(), vec![2, 2]);
        let (m, s) = ds.pixel_stats();
        assert!((m - 1.5 / 255.0).abs() < 1e-6 && s > 0.0);
    }
}
