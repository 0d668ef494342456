//! Helpers shared by the tests that run the real `optkit` binary: temporary folders, a tiny
//! pipeline file, and IDX data folders.
// Each test binary uses a part of these.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use opt_core::data::idx::{IMAGES_MAGIC, LABELS_MAGIC, encode_idx};

/// A new empty folder `optkit-<tag>-<pid>` under the system temp dir.
pub fn temp(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("optkit-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// A pipeline file that trains a tiny CNN in a second on the embedded data.
pub const TINY: &str = r#"version = 1
[data]
source = "embedded"
train_limit = 300
test_limit = 100
[model]
arch = "cnn"
blocks = [4]
fc = 8
[train]
epochs = 1
batch_size = 32
[[stages]]
kind = "baseline"
[report]
latency_runs = 2
warmup_runs = 1
throughput_batch = 16
throughput_runs = 1
"#;

/// Writes the four IDX files of a dataset into `dir` (created): `train` and `test` images of
/// `side`² pixels, labels `(i + shift) % 10` and pixels that follow the label (so a model can
/// learn them), after `tamper` changed (file name, bytes).
pub fn write_idx(
    dir: &Path,
    (train, test, side): (usize, usize, usize),
    shift: usize,
    tamper: impl Fn(&str, Vec<u8>) -> Vec<u8>,
) {
    std::fs::create_dir_all(dir).unwrap();
    for (split, n) in [("train", train), ("t10k", test)] {
        let labels: Vec<u8> = (0..n).map(|i| ((i + shift) % 10) as u8).collect();
        let px = side * side;
        let images: Vec<u8> = (0..n * px)
            .map(|p| (labels[p / px] as usize * 25 + (p * 7 + shift) % 13) as u8)
            .collect();
        let img = format!("{split}-images-idx3-ubyte");
        let lab = format!("{split}-labels-idx1-ubyte");
        let ib = tamper(&img, encode_idx(IMAGES_MAGIC, &[n, side, side], &images));
        let lb = tamper(&lab, encode_idx(LABELS_MAGIC, &[n], &labels));
        std::fs::write(dir.join(img), ib).unwrap();
        std::fs::write(dir.join(lab), lb).unwrap();
    }
}
