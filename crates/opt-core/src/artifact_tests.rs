//! Tests of saving, checking and loading model folders.

use super::*;
use crate::model::Classifier;
use crate::test_util::{TestBackend, device};
use burn::tensor::{Distribution, Tensor};

fn meta(spec: ModelSpec) -> ModelMeta {
    ModelMeta {
        format_version: FORMAT_VERSION,
        spec,
        normalization: Normalization {
            mean: 0.3,
            std: 0.35,
        },
        class_names: (0..10).map(|i| i.to_string()).collect(),
        weights: WEIGHTS_FILE.into(),
        test_data: None,
    }
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("optkit-artifact-{name}-{}", std::process::id()))
}

use crate::test_util::MNIST as IN;

#[test]
fn save_load_reproduces_outputs() {
    let _rng = crate::test_util::rng_lock();
    for family in ["mlp", "lenet5", "cnn"] {
        let spec = ModelSpec::preset(family, IN, 10).unwrap();
        let model = spec.init::<TestBackend>(&device());
        let dir = tmp(family);
        let saved = save_model(&dir, &meta(spec.clone()), &model).unwrap();
        assert!(saved.size_bytes as f64 > 4.0 * spec.params() as f64);
        let (m, loaded, again) = load_model::<TestBackend, Arch>(&dir, &device()).unwrap();
        assert_eq!(m.spec, spec);
        assert_eq!(again, saved);
        let x = Tensor::<TestBackend, 4>::random([3, 1, 28, 28], Distribution::Default, &device());
        let a = model.forward(x.clone()).into_data();
        let b = loaded.forward(x).into_data();
        assert_eq!(a, b, "{family}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn mismatched_and_corrupt_weights_are_errors() {
    let _rng = crate::test_util::rng_lock();
    let dir = tmp("mismatch");
    let spec = ModelSpec::preset("lenet5", IN, 10).unwrap();
    save_model(
        &dir,
        &meta(spec.clone()),
        &spec.init::<TestBackend>(&device()),
    )
    .unwrap();
    // Same family, other widths: shapes differ.
    let mut other = meta(spec.clone());
    other.spec.arch = Arch::Lenet5 {
        conv1: 10,
        conv2: 50,
        fc1: 500,
    };
    write_json_atomic(&dir.join(MODEL_FILE), &other).unwrap();
    let e = load_model::<TestBackend, Arch>(&dir, &device())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(
            "conv1.weight has shape [20, 1, 5, 5] in the file, the model needs [10, 1, 5, 5]"
        ),
        "{e}"
    );
    // Other family.
    other.spec = ModelSpec::preset("cnn", IN, 10).unwrap();
    write_json_atomic(&dir.join(MODEL_FILE), &other).unwrap();
    let e = load_model::<TestBackend, Arch>(&dir, &device())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("missing tensors (19)") && e.contains("extra tensors (8): conv1.bias [20]"),
        "{e}"
    );
    // Truncated bytes are refused before the model is built; damaged ones when decoded.
    write_json_atomic(&dir.join(MODEL_FILE), &meta(spec)).unwrap();
    let w = std::fs::read(dir.join(WEIGHTS_FILE)).unwrap();
    std::fs::write(dir.join(WEIGHTS_FILE), &w[..w.len() / 3]).unwrap();
    let e = load_model::<TestBackend, Arch>(&dir, &device())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("weights.safetensors") && e.contains("fewer than the 1724320"),
        "{e}"
    );
    let mut damaged = w.clone();
    damaged[8] = b'[';
    std::fs::write(dir.join(WEIGHTS_FILE), &damaged).unwrap();
    let e = load_model::<TestBackend, Arch>(&dir, &device())
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a valid safetensors file"), "{e}");
    std::fs::remove_dir_all(dir).unwrap();
}

fn folder(tag: &str) -> (PathBuf, ModelMeta) {
    let dir = std::env::temp_dir().join(format!("optkit-folder-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let spec = ModelSpec::preset("mlp", IN, 10).unwrap();
    let meta = meta(spec.clone());
    let _rng = crate::test_util::rng_lock();
    save_model(&dir, &meta, &spec.init::<TestBackend>(&device())).unwrap();
    (dir, meta)
}

/// `weights` is a file name from a known set, never a path; a relative data folder is
/// resolved against the model folder.
#[test]
fn model_json_is_checked_before_anything_is_read_on_its_word() {
    let (dir, meta) = folder("check");
    for (weights, needle) in [
        ("../notes.txt", "not a path"),
        ("/etc/hostname", "not a path"),
        ("/dev/zero", "not a path"),
        ("weights.bin", "must be one of"),
    ] {
        let m = ModelMeta {
            weights: weights.into(),
            ..meta.clone()
        };
        write_json_atomic(&dir.join(MODEL_FILE), &m).unwrap();
        let e = load_model::<TestBackend, Arch>(&dir, &device())
            .unwrap_err()
            .to_string();
        assert!(e.contains(weights) && e.contains(needle), "{e}");
    }
    let mut m = meta.clone();
    m.normalization.std = 0.0;
    write_json_atomic(&dir.join(MODEL_FILE), &m).unwrap();
    let e = load_model::<TestBackend, Arch>(&dir, &device())
        .unwrap_err()
        .to_string();
    assert!(e.contains("normalization.std = 0"), "{e}");
    let m = ModelMeta {
        test_data: Some(TestDataRef {
            source: crate::data::DataSource::Dir {
                path: "../data".into(),
            },
            test_limit: None,
        }),
        ..meta.clone()
    };
    write_json_atomic(&dir.join(MODEL_FILE), &m).unwrap();
    let (read, _) = read_meta::<Arch>(&dir).unwrap();
    let expected = std::path::absolute(dir.join("../data")).unwrap();
    assert_eq!(
        read.test_data.unwrap().source,
        crate::data::DataSource::Dir { path: expected }
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// Writing a model clears the other model files optkit owns in the folder, and leaves the
/// user's.
#[test]
fn saving_clears_stale_model_files_only() {
    let (dir, meta) = folder("clear");
    std::fs::write(dir.join(INT8_FILE), b"old int8").unwrap();
    std::fs::write(dir.join("weights.sparse"), b"old sparse").unwrap();
    std::fs::write(dir.join("notes.txt"), b"mine").unwrap();
    let _rng = crate::test_util::rng_lock();
    save_model(&dir, &meta, &meta.spec.init::<TestBackend>(&device())).unwrap();
    assert!(!dir.join(INT8_FILE).exists() && !dir.join("weights.sparse").exists());
    assert_eq!(std::fs::read(dir.join("notes.txt")).unwrap(), b"mine");
    std::fs::remove_dir_all(dir).unwrap();
}
