//! Where the images come from: the embedded Fashion-MNIST subset or a directory of IDX files.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};

use super::dataset::ImageDataset;
use super::idx::{IMAGES_MAGIC, LABELS_MAGIC, parse_idx, read_idx_file};

/// A data source with a train and a test split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum DataSource {
    /// The Fashion-MNIST subset compiled into opt-core (10,000 train / 2,000 test).
    Embedded,
    /// The four standard IDX files (`train-images-idx3-ubyte[.gz]`, `train-labels-idx1-ubyte[.gz]`,
    /// and `t10k-…` or `test-…` for the test split) in a directory.
    Dir {
        /// The directory holding the files.
        path: PathBuf,
    },
}

/// The train and test splits of a source.
#[derive(Debug, Clone)]
pub struct Splits {
    /// Training images (a validation split is carved from these).
    pub train: ImageDataset,
    /// Held-out test images.
    pub test: ImageDataset,
}

/// Class names of Fashion-MNIST, in label order.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

const EMBEDDED: [(&str, &[u8]); 4] = [
    (
        "train-images-idx3-ubyte.gz",
        include_bytes!("../../data/fashion-mnist-subset/train-images-idx3-ubyte.gz"),
    ),
    (
        "train-labels-idx1-ubyte.gz",
        include_bytes!("../../data/fashion-mnist-subset/train-labels-idx1-ubyte.gz"),
    ),
    (
        "test-images-idx3-ubyte.gz",
        include_bytes!("../../data/fashion-mnist-subset/test-images-idx3-ubyte.gz"),
    ),
    (
        "test-labels-idx1-ubyte.gz",
        include_bytes!("../../data/fashion-mnist-subset/test-labels-idx1-ubyte.gz"),
    ),
];

impl DataSource {
    /// Loads both splits, checking every file; `num_classes` bounds the labels.
    pub fn load(&self, num_classes: usize) -> Result<Splits> {
        let _span = tracing::info_span!("load_data", source = ?self).entered();
        let splits = match self {
            DataSource::Embedded => load_embedded(num_classes)?,
            DataSource::Dir { path } => load_dir(path, num_classes)?,
        };
        tracing::info!(
            train = splits.train.len(),
            test = splits.test.len(),
            "data loaded"
        );
        Ok(splits)
    }

    /// The same source with a relative folder taken relative to `base` and made absolute
    /// (without touching the file system), so it names the same files from any working
    /// directory.
    pub fn relative_to(&self, base: &Path) -> DataSource {
        match self {
            DataSource::Embedded => DataSource::Embedded,
            DataSource::Dir { path } => {
                let joined = base.join(path);
                DataSource::Dir {
                    path: std::path::absolute(&joined).unwrap_or(joined),
                }
            }
        }
    }

    /// A short description for reports.
    pub fn describe(&self) -> String {
        match self {
            DataSource::Embedded => "embedded Fashion-MNIST subset".to_string(),
            DataSource::Dir { path } => format!("IDX files in {}", path.display()),
        }
    }
}

fn load_embedded(num_classes: usize) -> Result<Splits> {
    let get = |i: usize, magic| {
        parse_idx(
            EMBEDDED[i].1,
            magic,
            &format!("<embedded>/{}", EMBEDDED[i].0),
        )
    };
    Ok(Splits {
        train: ImageDataset::from_idx(
            "train",
            get(0, IMAGES_MAGIC)?,
            get(1, LABELS_MAGIC)?,
            num_classes,
        )?,
        test: ImageDataset::from_idx(
            "test",
            get(2, IMAGES_MAGIC)?,
            get(3, LABELS_MAGIC)?,
            num_classes,
        )?,
    })
}

fn load_dir(dir: &Path, num_classes: usize) -> Result<Splits> {
    if !dir.is_dir() {
        return Err(CoreError::Dataset {
            name: dir.display().to_string(),
            problem: "data directory does not exist or is not a directory; \
                      pass --data-dir <dir> or set data.path to a folder with the four IDX files"
                .to_string(),
        });
    }
    let load = |split: &str| -> Result<ImageDataset> {
        let images = find(dir, split, "images-idx3-ubyte")?;
        let labels = find(dir, split, "labels-idx1-ubyte")?;
        let name = if split == "train" { "train" } else { "test" };
        ImageDataset::from_idx(
            name,
            read_idx_file(&images, IMAGES_MAGIC)?,
            read_idx_file(&labels, LABELS_MAGIC)?,
            num_classes,
        )
    };
    Ok(Splits {
        train: load("train")?,
        test: load("test")?,
    })
}

/// Finds `<prefix>-<stem>` with or without `.gz`; the test split accepts `t10k-` (MNIST) and `test-`.
fn find(dir: &Path, split: &str, stem: &str) -> Result<PathBuf> {
    let prefixes: &[&str] = if split == "train" {
        &["train"]
    } else {
        &["t10k", "test"]
    };
    let mut tried = Vec::new();
    for p in prefixes {
        for ext in ["", ".gz"] {
            let name = format!("{p}-{stem}{ext}");
            let path = dir.join(&name);
            if path.is_file() {
                return Ok(path);
            }
            tried.push(name);
        }
    }
    Err(CoreError::Dataset {
        name: dir.display().to_string(),
        problem: format!("no {split} file found; looked for {}", tried.join(", ")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_subset_is_real_fashion_mnist() {
        let s = DataSource::Embedded.load(10).unwrap();
        assert_eq!((s.train.len(), s.test.len()), (10_000, 2_000));
        assert_eq!((s.train.height, s.train.width), (28, 28));
        // Every class is present in roughly equal numbers (Fashion-MNIST is balanced).
        for c in s.train.class_counts() {
            assert!((800..1200).contains(&c), "{c}");
        }
        let (mean, std) = s.train.pixel_stats();
        assert!(
            (mean - 0.286).abs() < 0.01 && (std - 0.353).abs() < 0.01,
            "{mean} {std}"
        );
    }

    #[test]
    fn missing_dir_and_missing_files_are_named() {
        let e = DataSource::Dir {
            path: "/no/such/dir".into(),
        }
        .load(10)
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("/no/such/dir") && e.contains("--data-dir"),
            "{e}"
        );
        let tmp = std::env::temp_dir().join(format!("optkit-empty-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        let e = DataSource::Dir { path: tmp.clone() }
            .load(10)
            .unwrap_err()
            .to_string();
        assert!(e.contains("train-images-idx3-ubyte.gz"), "{e}");
        std::fs::remove_dir_all(tmp).unwrap();
    }
}
