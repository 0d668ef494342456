//! The bodies of optkit's fuzz targets for what opt-core reads (see `fuzz/` at the top of the
//! repository, run with `cargo xtask fuzz <target> --seconds N`), shared with the replay
//! tests that run every stored corpus and crash input in the normal `cargo test`. Each takes
//! arbitrary bytes and must return (an error is the expected answer) without panicking,
//! aborting, or allocating more than the input's header allows.

use std::path::Path;

use burn::tensor::backend::Backend;

use crate::artifact::{ModelMeta, WeightsFormat, decode_model};
use crate::data::idx::{IMAGES_MAGIC, LABELS_MAGIC, parse_idx};
use crate::model::Arch;

/// The most values the fuzzed weight files may decode to (what a fuzzing process can hold).
pub const FUZZ_MAX_VALUES: usize = 1 << 22;

/// An IDX file, raw or gzip, read as images and as labels.
pub fn idx(data: &[u8]) {
    let _ = parse_idx(data, IMAGES_MAGIC, "fuzz");
    let _ = parse_idx(data, LABELS_MAGIC, "fuzz");
}

/// A `weights.sparse` file.
pub fn sparse(data: &[u8]) {
    let _ = crate::sparse::decode_sparse(data, FUZZ_MAX_VALUES);
}

/// `data` with its last four bytes replaced by the CRC-32 of the rest, as a framed file with
/// a checksum ends (`weights.wq`, `model.int8`): a fuzzer's mutations would otherwise almost
/// never get past the checksum into the header and the body.
pub fn with_valid_crc(data: &[u8]) -> Vec<u8> {
    let body = &data[..data.len().saturating_sub(4)];
    let mut crc = flate2::Crc::new();
    crc.update(body);
    let mut out = body.to_vec();
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out
}

/// A `weights.wq` file, decoded and dequantized, as given and with a valid checksum.
pub fn qweights(data: &[u8]) {
    for bytes in [data.to_vec(), with_valid_crc(data)] {
        if let Ok(t) = crate::qweights::decode_quant_weights(&bytes, FUZZ_MAX_VALUES) {
            let _ = crate::qweights::dequantize_all(&t);
        }
    }
}

/// A model graph in JSON (what ONNX import and `model.json` graphs will hold): checked, and
/// when it checks, its costs, weights and channel groups computed.
pub fn graph(data: &[u8]) {
    let Ok(g) = serde_json::from_slice::<crate::graph::Graph>(data) else {
        return;
    };
    if g.shapes().is_ok() {
        let _ = g.layers();
        let _ = g.params();
        let _ = g.channel_groups();
    }
}

/// A model folder: a little-endian `u32` length, that many bytes of `model.json`, then the
/// weights file it names. The model is built only when its spec is small enough for a
/// fuzzing process (the product allows up to `MAX_PARAMS`).
pub fn model_folder<B: Backend>(data: &[u8], device: &B::Device) {
    let Some((len, rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let len = (u32::from_le_bytes(*len) as usize).min(rest.len());
    let (json, weights) = rest.split_at(len);
    let Ok(meta) = serde_json::from_slice::<ModelMeta<Arch>>(json) else {
        return;
    };
    let dir = Path::new("fuzz");
    let Ok(format) = meta.check(dir) else {
        return;
    };
    if format == WeightsFormat::Int8 || meta.spec.params() > 1 << 20 {
        return;
    }
    let weights = match format {
        WeightsFormat::Quant => with_valid_crc(weights),
        _ => weights.to_vec(),
    };
    let _ = decode_model::<B, Arch>(dir, &meta, format, &weights, device);
}

/// Runs `harness` on every stored input of fuzz target `target` (the corpus in
/// `fuzz/corpus/<target>/` and the crash inputs kept in `fuzz/artifacts/<target>/`), in the
/// normal test run. Panics naming every input that panicked; returns how many ran.
pub fn replay(target: &str, harness: impl Fn(&[u8]) + std::panic::RefUnwindSafe) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut failed = Vec::new();
    let mut ran = 0;
    for folder in ["corpus", "artifacts"] {
        let Ok(entries) = std::fs::read_dir(root.join(folder).join(target)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(data) = std::fs::read(&path) else {
                continue;
            };
            ran += 1;
            if std::panic::catch_unwind(|| harness(&data)).is_err() {
                failed.push(path.display().to_string());
            }
        }
    }
    assert!(
        failed.is_empty(),
        "fuzz target {target}: {} stored inputs panicked: {}",
        failed.len(),
        failed.join(", ")
    );
    assert!(ran > 0, "fuzz target {target} has no stored corpus");
    ran
}
