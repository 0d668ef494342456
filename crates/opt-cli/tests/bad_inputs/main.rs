//! Bad input through the real `optkit` binary, as a careless or a hostile user would give it:
//! broken and crafted config files, data folders, model folders, bundles' destinations and
//! flags. Every case must end with exit code 2 and a one-line message naming the file or key
//! (no panic text), under a 2 GiB address-space limit (so runaway allocations fail the case),
//! and — checked by hashing the whole test tree before and after — without changing any file
//! outside the case's own run folder.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

mod commands;
#[path = "../common/mod.rs"]
mod common;
mod config;
mod data;
mod model;

use common::{TINY, temp, write_idx};
use opt_core::data::idx::{LABELS_MAGIC, encode_idx};
use sha2::{Digest, Sha256};

/// The address-space limit every case runs under (KiB, as `ulimit -v` takes it).
const ADDRESS_SPACE_KIB: u64 = 2 << 20;

/// One bad input.
struct Case {
    name: String,
    args: Vec<String>,
    /// Text the error line must hold (the file, the key, the value).
    needle: String,
    /// Folder the case may write into (its run or output folder); nothing else may change.
    out: Option<PathBuf>,
    /// Working directory (default: the case's folder).
    cwd: PathBuf,
}

/// The shared fixture: a trained float model and its int8 version, written once per process
/// by the real binary, and a tree of user files that no case may touch.
struct World {
    root: PathBuf,
    float_model: PathBuf,
    int8_model: PathBuf,
}

fn optkit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_optkit"))
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let root = temp("bad-inputs");
        std::fs::create_dir_all(root.join("cases")).unwrap();
        // The user's own files beside everything: notes, a web app's public/ folder.
        let user = root.join("user");
        std::fs::create_dir_all(user.join("public")).unwrap();
        std::fs::write(user.join("notes.txt"), b"my notes, not a model").unwrap();
        std::fs::write(
            user.join("public/manifest.json"),
            br#"{"name": "My App", "icons": [], "start_url": "/"}"#,
        )
        .unwrap();
        std::fs::write(user.join("public/index.html"), b"<html>my app</html>").unwrap();
        std::fs::write(user.join("taken"), b"precious").unwrap();
        let cfg = root.join("fixture.toml");
        std::fs::write(
            &cfg,
            format!(
                r#"version = 1
[data]
source = "embedded"
train_limit = 300
test_limit = 100
[model]
arch = "cnn"
blocks = [4, 8]
fc = 16
[train]
epochs = 1
batch_size = 32
[[stages]]
kind = "baseline"
[[stages]]
kind = "quantize"
name = "int8"
[stages.quantize.calibration]
samples = 64
[report]
out = "{}"
latency_runs = 3
warmup_runs = 1
throughput_batch = 32
throughput_runs = 1
"#,
                root.join("fixture").display()
            ),
        )
        .unwrap();
        let o = optkit()
            .args(["pipeline", "--config"])
            .arg(&cfg)
            .args(["--backend", "flex"])
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "fixture: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        World {
            float_model: root.join("fixture/baseline"),
            int8_model: root.join("fixture/int8"),
            root,
        }
    })
}

/// A folder of its own for case `name` (created once; the world starts empty).
fn case_dir(name: &str) -> PathBuf {
    let d = world().root.join("cases").join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: impl AsRef<Path>) -> String {
    p.as_ref().display().to_string()
}

fn case(name: &str, args: &[&str], needle: &str) -> Case {
    Case {
        name: name.into(),
        args: args.iter().map(|a| a.to_string()).collect(),
        needle: needle.into(),
        out: None,
        cwd: case_dir(name),
    }
}

/// Copies the files of `from` into a new folder `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// A copy of the float (or int8) model in the case's folder, with `model.json` edited.
fn model_copy(name: &str, int8: bool, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let w = world();
    let dir = case_dir(name).join("model");
    copy_dir(if int8 { &w.int8_model } else { &w.float_model }, &dir);
    let path = dir.join("model.json");
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut meta);
    std::fs::write(&path, serde_json::to_vec_pretty(&meta).unwrap()).unwrap();
    dir
}

/// An eval of a model folder whose `model.json` was edited.
fn eval_meta(name: &str, needle: &str, edit: impl FnOnce(&mut serde_json::Value)) -> Case {
    let m = model_copy(name, false, edit);
    case(
        name,
        &["eval", "--model", &s(&m), "--backend", "flex"],
        needle,
    )
}

/// An eval of a model folder whose weights file was replaced by `bytes` (named `file`).
fn eval_weights(name: &str, file: &str, bytes: &[u8], needle: &str) -> Case {
    let m = model_copy(name, false, |meta| meta["weights"] = file.into());
    let _ = std::fs::remove_file(m.join("weights.safetensors"));
    std::fs::write(m.join(file), bytes).unwrap();
    case(
        name,
        &["eval", "--model", &s(&m), "--backend", "flex"],
        needle,
    )
}

/// `optkit pipeline` on the config `text`, writing into the case's `run` folder.
fn pipeline(name: &str, text: &str, extra: &[&str], needle: &str) -> Case {
    let dir = case_dir(name);
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, text).unwrap();
    let out = dir.join("run");
    let mut args = vec![
        "pipeline".to_string(),
        "--config".into(),
        s(&cfg),
        "--out".into(),
        s(&out),
    ];
    if !extra.contains(&"--backend") {
        args.extend(["--backend".into(), "flex".into()]);
    }
    args.extend(extra.iter().map(|a| a.to_string()));
    Case {
        name: name.into(),
        args,
        needle: needle.into(),
        out: Some(out),
        cwd: dir,
    }
}

/// [`TINY`] with `from` replaced by `to`.
fn tiny(name: &str, from: &str, to: &str, needle: &str) -> Case {
    assert!(TINY.contains(from), "{from}");
    pipeline(name, &TINY.replacen(from, to, 1), &[], needle)
}

/// [`TINY`] with `extra` appended.
fn tiny_plus(name: &str, extra: &str, needle: &str) -> Case {
    pipeline(name, &format!("{TINY}{extra}"), &[], needle)
}

/// A data folder of the case, written by [`write_idx`].
fn idx_dir(
    name: &str,
    sizes: (usize, usize, usize),
    tamper: impl Fn(&str, Vec<u8>) -> Vec<u8>,
) -> PathBuf {
    let dir = case_dir(name).join("data");
    write_idx(&dir, sizes, 0, tamper);
    dir
}

/// A pipeline on the data folder made by [`idx_dir`].
fn data_case(
    name: &str,
    sizes: (usize, usize, usize),
    tamper: impl Fn(&str, Vec<u8>) -> Vec<u8>,
    needle: &str,
) -> Case {
    let data = idx_dir(name, sizes, tamper);
    let mut c = pipeline(name, TINY, &["--data-dir", &s(&data)], needle);
    c.cwd = case_dir_keep(name);
    c
}

/// The case's folder.
fn case_dir_keep(name: &str) -> PathBuf {
    case_dir(name)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn only(file: &'static str, f: impl Fn(Vec<u8>) -> Vec<u8>) -> impl Fn(&str, Vec<u8>) -> Vec<u8> {
    move |n, b| if n == file { f(b) } else { b }
}

/// SHA-256 of every file under `root` (path → digest), except under `skip`.
fn tree(root: &Path, skip: Option<&Path>) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if skip.is_some_and(|s| dir.starts_with(s)) {
            continue;
        }
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(p);
            } else if !skip.is_some_and(|s| p.starts_with(s)) {
                let bytes = std::fs::read(&p).unwrap_or_default();
                let d: String = Sha256::digest(&bytes)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                out.insert(p, d);
            }
        }
    }
    out
}

/// Runs every case; returns the failures (all of them, not just the first).
fn run(cases: Vec<Case>) -> Vec<String> {
    let root = &world().root;
    let mut failures = Vec::new();
    for c in cases {
        let before = tree(root, c.out.as_deref());
        let o = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ulimit -v {ADDRESS_SPACE_KIB} && exec \"$0\" \"$@\""
            ))
            .arg(env!("CARGO_BIN_EXE_optkit"))
            .args(&c.args)
            .current_dir(&c.cwd)
            .env("RUST_LOG", "off")
            .env("RUST_BACKTRACE", "0")
            .output()
            .unwrap();
        let after = tree(root, c.out.as_deref());
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        let lines: Vec<&str> = stderr.trim().lines().collect();
        let mut why = Vec::new();
        if o.status.code() != Some(2) {
            why.push(format!("exit {:?}", o.status.code()));
        }
        if lines.len() != 1 {
            why.push(format!("{} lines", lines.len()));
        }
        if !stderr.contains(&c.needle) {
            why.push(format!("no {:?}", c.needle));
        }
        if stderr.contains("panicked") || stderr.contains("RUST_BACKTRACE") {
            why.push("panic".into());
        }
        if stderr.contains("hunter2") {
            why.push("a password was printed".into());
        }
        if before != after {
            let changed: Vec<_> = before
                .keys()
                .chain(after.keys())
                .filter(|k| before.get(*k) != after.get(*k))
                .collect();
            why.push(format!("files changed outside the run folder: {changed:?}"));
        }
        if !why.is_empty() {
            failures.push(format!(
                "{}: {} | {}",
                c.name,
                why.join(", "),
                stderr.trim()
            ));
        }
    }
    failures
}

/// One test, the groups one after another: the cases share one tree, whose every file is
/// hashed around each case.
#[test]
fn bad_inputs_through_the_release_binary() {
    let groups = [
        ("config", config::cases()),
        ("data", data::cases()),
        ("model folder", model::cases()),
        ("command", commands::cases()),
    ];
    let names: Vec<&String> = groups
        .iter()
        .flat_map(|(_, cases)| cases.iter().map(|c| &c.name))
        .collect();
    let distinct: std::collections::BTreeSet<_> = names.iter().collect();
    assert_eq!(distinct.len(), names.len(), "case names repeat");
    assert!(names.len() >= 60, "{} cases", names.len());
    let total = names.len();
    let mut failures = Vec::new();
    for (group, cases) in groups {
        for f in run(cases) {
            failures.push(format!("[{group}] {f}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} bad inputs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{total} bad inputs: exit 2, one line naming the file or key, nothing changed");
}
