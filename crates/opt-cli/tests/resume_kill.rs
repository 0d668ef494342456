//! kill -9 in the middle of a stage, then the same command again: the finished stage is
//! reused, the killed one runs from the start, and the report equals an uninterrupted run's
//! (the real binary, killed with SIGKILL).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::temp;

fn config(dir: &Path) -> PathBuf {
    let text = r#"version = 1
[data]
source = "embedded"
train_limit = 3000
test_limit = 200
[model]
arch = "cnn"
blocks = [8, 16]
fc = 32
[train]
epochs = 2
batch_size = 32
[[stages]]
kind = "baseline"
[[stages]]
kind = "prune"
[stages.prune]
method = "structured"
target = 0.5
finetune_epochs = 8
[report]
latency_runs = 5
warmup_runs = 1
throughput_batch = 64
throughput_runs = 1
"#;
    let path = dir.join("run.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn run(cfg: &Path, out: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_optkit"));
    c.args(["pipeline", "--config"])
        .arg(cfg)
        .arg("--out")
        .arg(out)
        .args(["--backend", "flex"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

fn report(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap()
}

/// (name, accuracy, size) of every candidate.
fn figures(r: &serde_json::Value) -> Vec<(String, f64, u64)> {
    r["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["accuracy"].as_f64().unwrap(),
                c["size_bytes"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_pipeline_killed_during_a_stage_finishes_with_the_same_report() {
    let dir = temp("resume-kill");
    let cfg = config(&dir);
    let reference = dir.join("reference");
    assert!(run(&cfg, &reference).status().unwrap().success());

    let out = dir.join("killed");
    let mut child = run(&cfg, &out).spawn().unwrap();
    // Wait for the baseline to finish, then kill during the prune stage's fine-tuning.
    let start = Instant::now();
    while !out.join("baseline/stage.done.json").is_file() {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "baseline never finished"
        );
        assert!(child.try_wait().unwrap().is_none(), "exited early");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the prune stage finished before it could be killed; give it more fine-tuning epochs"
    );
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    assert!(!out.join("prune/stage.done.json").exists());
    assert!(!out.join("report.json").exists());

    let started = Instant::now();
    assert!(run(&cfg, &out).status().unwrap().success());
    let again = report(&out);
    assert_eq!(again["reused"], serde_json::json!(["baseline"]));
    assert_eq!(figures(&again), figures(&report(&reference)));
    eprintln!(
        "restart after kill: {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // A finished run restarted redoes nothing.
    assert!(run(&cfg, &out).status().unwrap().success());
    assert_eq!(
        report(&out)["reused"],
        serde_json::json!(["baseline", "prune"])
    );
    let _ = std::fs::remove_dir_all(&dir);
}
