//! Saved model folders through the real binary: a model's data is found from any working
//! directory, and a folder's kind is what its `model.json` says (a stale file of another
//! format left in a reused folder never overrides it).

mod common;

use std::path::Path;
use std::process::Command;

use common::{TINY, temp, write_idx};

/// Runs `optkit <args>` in `cwd`; panics with its stderr unless it succeeds; its stdout.
fn optkit(cwd: &Path, args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_optkit"))
        .args(args)
        .current_dir(cwd)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "optkit {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A relative `--data-dir` is recorded so that it names the same files wherever `optkit
/// eval` runs (it was once resolved against the working directory, silently evaluating
/// other data there).
#[test]
fn a_relative_data_folder_means_the_same_files_from_anywhere() {
    let root = temp("folders-relative");
    write_idx(&root.join("data"), (300, 300, 28), 0, |_, b| b);
    std::fs::write(root.join("c.toml"), TINY).unwrap();
    optkit(
        &root,
        &[
            "pipeline",
            "--config",
            "c.toml",
            "--data-dir",
            "data",
            "--out",
            "run",
            "--backend",
            "flex",
        ],
    );
    // Another folder with a `data` folder of other images beside it.
    let elsewhere = root.join("elsewhere");
    write_idx(&elsewhere.join("data"), (120, 120, 28), 3, |_, b| b);
    let out = optkit(
        &elsewhere,
        &["eval", "--model", "../run/baseline", "--backend", "flex"],
    );
    let eval: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        eval["accuracy"], eval["recorded_accuracy"],
        "the same data as when the model was measured: {eval}"
    );
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("run/baseline/model.json")).unwrap())
            .unwrap();
    let recorded = meta["test_data"]["source"]["path"].as_str().unwrap();
    assert!(Path::new(recorded).is_absolute(), "{recorded}");
    let _ = std::fs::remove_dir_all(root);
}

fn manifest_files(bundle: &Path) -> (String, Vec<String>) {
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("manifest.json")).unwrap()).unwrap();
    let files = m["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect();
    (m["kind"].as_str().unwrap().to_string(), files)
}

/// Quantizing into a folder that held an int8 model, then exporting it: the folder's kind is
/// what model.json says, because writing a model clears the model files optkit owns there
/// (a stale model.int8 once overrode model.json and the bundle shipped the old model).
#[test]
fn a_reused_folder_holds_only_the_model_written_last() {
    let root = temp("folders-stale");
    std::fs::write(root.join("c.toml"), TINY).unwrap();
    optkit(
        &root,
        &[
            "pipeline",
            "--config",
            "c.toml",
            "--out",
            "run",
            "--backend",
            "flex",
        ],
    );
    optkit(
        &root,
        &[
            "quantize",
            "--model",
            "run/baseline",
            "--out",
            "q",
            "--samples",
            "64",
            "--backend",
            "flex",
        ],
    );
    assert!(root.join("q/model.int8").is_file());
    optkit(
        &root,
        &[
            "quantize",
            "--model",
            "run/baseline",
            "--out",
            "q",
            "--weights-only",
            "--backend",
            "flex",
        ],
    );
    assert!(
        !root.join("q/model.int8").exists(),
        "the old int8 file was cleared"
    );
    optkit(
        &root,
        &[
            "export", "--model", "q", "--format", "onnx", "--out", "bundle",
        ],
    );
    let (kind, files) = manifest_files(&root.join("bundle"));
    assert_eq!(kind, "float32");
    assert_eq!(files, ["model.json", "weights.wq", "model.onnx"]);

    // A model.int8 someone left beside a float model is ignored: model.json names the
    // weights.
    let int8 = std::fs::read(root.join("bundle/model.json")).unwrap();
    std::fs::write(root.join("run/baseline/model.int8"), &int8).unwrap();
    optkit(
        &root,
        &[
            "export",
            "--model",
            "run/baseline",
            "--format",
            "onnx",
            "--out",
            "bundle2",
        ],
    );
    let (kind, files) = manifest_files(&root.join("bundle2"));
    assert_eq!(kind, "float32");
    assert_eq!(files, ["model.json", "weights.safetensors", "model.onnx"]);

    // Exporting again replaces the bundle (it is one); the user's folder beside it stays.
    std::fs::create_dir_all(root.join("mine")).unwrap();
    std::fs::write(root.join("mine/manifest.json"), b"{\"name\": \"app\"}").unwrap();
    optkit(
        &root,
        &[
            "export",
            "--model",
            "q",
            "--format",
            "onnx,safetensors",
            "--out",
            "bundle2",
        ],
    );
    let (_, files) = manifest_files(&root.join("bundle2"));
    assert_eq!(
        files,
        [
            "model.json",
            "weights.wq",
            "model.onnx",
            "model.safetensors"
        ]
    );
    let leftovers: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(
        leftovers.is_empty(),
        "no staging folders left: {leftovers:?}"
    );
    assert_eq!(
        std::fs::read(root.join("mine/manifest.json")).unwrap(),
        b"{\"name\": \"app\"}"
    );
    let _ = std::fs::remove_dir_all(root);
}
