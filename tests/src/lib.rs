//! Helpers for optkit's end-to-end tests: temporary folders, tiny configs and IDX files, and
//! running the CLI entry point in-process exactly as the binary does.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use opt_cli::backend::{BackendKind, dispatch};
use opt_cli::evaluate::{EvalModel, EvalOutput};
use opt_core::data::idx::{IMAGES_MAGIC, LABELS_MAGIC, encode_idx};
use opt_core::eval::MeasureConfig;

/// A temporary folder removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new empty folder under the system temp dir.
    pub fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "optkit-e2e-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        Self(p)
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes a file inside the folder and returns its path.
    pub fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).expect("write temp file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a CLI run returned.
#[derive(Debug)]
pub struct Outcome {
    /// Exit code.
    pub code: u8,
    /// What went to stderr through the entry point (errors).
    pub stderr: String,
}

/// Runs `optkit <args>` in-process.
pub fn optkit(args: &[&str]) -> Outcome {
    let mut err = Vec::new();
    let code = opt_cli::main_entry(
        std::iter::once("optkit").chain(args.iter().copied()),
        &mut err,
    );
    Outcome {
        code,
        stderr: String::from_utf8_lossy(&err).into_owned(),
    }
}

/// Timing settings short enough for tests (the figures are not the point there).
pub const FAST: MeasureConfig = MeasureConfig {
    latency_runs: 5,
    warmup_runs: 1,
    throughput_batch: 64,
    throughput_runs: 1,
};

/// `optkit eval` of a saved model folder on flex, in-process, on the data it records.
pub fn reload(dir: PathBuf) -> EvalOutput {
    dispatch(
        BackendKind::Flex,
        EvalModel {
            dir,
            data_dir: None,
            measure: FAST,
        },
    )
    .expect("the saved model reloads and evaluates")
}

/// Reads a JSON file written by a run.
pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("read JSON file")).expect("valid JSON")
}

/// Runs `optkit pipeline` on a config file holding `cfg_text`.
pub fn pipeline(cfg_text: String) -> Outcome {
    let cfg_dir = TempDir::new("cfg");
    let cfg = cfg_dir.write("pipeline.toml", cfg_text);
    optkit(&[
        "pipeline",
        "--config",
        cfg.to_str().expect("UTF-8 temp path"),
    ])
}

/// A pipeline file small enough to train in seconds on the embedded data.
pub fn tiny_config(out: &Path, extra: &str) -> String {
    format!(
        r#"version = 1
[data]
source = "embedded"
train_limit = 600
test_limit = 200
[model]
arch = "cnn"
blocks = [4, 8]
fc = 16
[train]
epochs = 2
batch_size = 32
learning_rate = 0.003
[[stages]]
kind = "baseline"
[report]
out = "{}"
latency_runs = 20
warmup_runs = 2
throughput_batch = 64
throughput_runs = 2
{extra}"#,
        out.display().to_string().replace('\\', "/")
    )
}

/// Writes the four IDX files of a tiny dataset (`n` train and `n` test 28x28 images with
/// labels `i % 10`) into `dir`, after letting `tamper` change (file name, bytes) pairs.
pub fn write_idx_dir(dir: &Path, n: usize, tamper: impl Fn(&str, Vec<u8>) -> Vec<u8>) {
    let images: Vec<u8> = (0..n * 784).map(|i| (i % 251) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    for split in ["train", "t10k"] {
        let img = format!("{split}-images-idx3-ubyte");
        let lab = format!("{split}-labels-idx1-ubyte");
        let ib = tamper(&img, encode_idx(IMAGES_MAGIC, &[n, 28, 28], &images));
        let lb = tamper(&lab, encode_idx(LABELS_MAGIC, &[n], &labels));
        std::fs::write(dir.join(img), ib).expect("write idx");
        std::fs::write(dir.join(lab), lb).expect("write idx");
    }
}

/// The folder of trial `n` of the tune stage `stage` in the run `out`: trial folders live
/// under `<stage>/trials/<study tag>/`, one tag per study; the run must hold exactly one.
pub fn trial_dir(out: &Path, stage: &str, n: u64) -> PathBuf {
    let trials = out.join(stage).join("trials");
    let tags: Vec<PathBuf> = std::fs::read_dir(&trials)
        .expect("the stage has trial folders")
        .map(|e| e.expect("list trials").path())
        .collect();
    assert_eq!(
        tags.len(),
        1,
        "one study's trials in {}: {tags:?}",
        trials.display()
    );
    tags[0].join(format!("{n:05}"))
}

/// Whether a test that needs a wgpu adapter can run here. Without one (no GPU driver, no
/// Mesa's Vulkan driver) the test says so on the terminal (past cargo's output capture) and
/// is not run, unless `OPTKIT_REQUIRE_WGPU=1` (set by `.ci/run`), which makes the missing
/// adapter a failure, so CI never skips it silently.
pub fn wgpu_available(test: &str) -> bool {
    if std::env::var("OPTKIT_REQUIRE_WGPU").is_ok_and(|v| v == "1") {
        return true;
    }
    match opt_cli::backend::wgpu_adapter_name() {
        Ok(_) => true,
        Err(e) => {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "NOT RUN: {test}: {e:#}; set OPTKIT_REQUIRE_WGPU=1 to make this a failure"
            );
            false
        }
    }
}
