//! Developer and user tasks for optkit. Depends on no opt-* crate, so it builds in seconds;
//! everything heavy runs through `cargo`.
//!
//! - `cargo xtask pipeline --config <file> [--out <dir>] [--backend <name>] [--data-dir <dir>]`:
//!   runs the release build of the `optkit` binary.
//! - `cargo xtask quantize [optkit quantize flags]`: quantization of a saved model (int8 PTQ or
//!   QAT on the integer path, weight-only 8/4-bit), float and quantized measured in one run.
//! - `cargo xtask bench [train] [optkit bench flags]`: training throughput of every compiled
//!   backend, with ratios.
//! - `cargo xtask bench gemm [optkit bench-gemm flags]`: the int8 GEMM against the float
//!   product of the same shapes, with ratios.
//! - `cargo xtask tune [optkit tune flags]`: runs, joins or resumes the study of a pipeline's
//!   tune stage (several processes can share one SQLite or PostgreSQL study).
//! - `cargo xtask bench samplers [optkit bench-samplers flags]`: opt-tune's samplers on test
//!   functions over many seeds (`--optuna`: against Optuna's TPE), with ratios.
//! - `cargo xtask fuzz <target> [--seconds N | --cmin]`: runs a cargo-fuzz target of `fuzz/`
//!   (idx, graph, sparse, qweights, int8, model_folder, pipeline_toml, manifest) on the nightly
//!   toolchain for N seconds (default 600) with its stored corpus; new corpus entries and crash
//!   inputs land in `fuzz/corpus/<target>/` and `fuzz/artifacts/<target>/`, which the normal
//!   `cargo test` replays. `--cmin` shrinks the corpus to the inputs that keep its coverage
//!   (before committing it). Needs `cargo install cargo-fuzz`.
//! - `cargo xtask deps`: checks the dependency directions of ARCHITECTURE.md.
//! - `cargo xtask ci`: fmt, clippy, dependency check, tests (what `.ci/run` calls).

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((task, rest)) = args.split_first() else {
        eprintln!(
            "usage: cargo xtask <pipeline|eval|export|prune|distill|quantize|tune|bench|fuzz|deps|ci> [args]"
        );
        return ExitCode::from(2);
    };
    let result = match task.as_str() {
        "pipeline" => optkit("pipeline", rest),
        "eval" => optkit("eval", rest),
        "prune" => optkit("prune", rest),
        "distill" => optkit("distill", rest),
        "tune" => optkit("tune", rest),
        "quantize" => optkit("quantize", rest),
        "export" => optkit("export", rest),
        "bench" => match rest.first().map(String::as_str) {
            Some("gemm") => optkit("bench-gemm", &rest[1..]),
            Some("samplers") => optkit("bench-samplers", &rest[1..]),
            Some("train") => optkit("bench", &rest[1..]),
            _ => optkit("bench", rest),
        },
        "fuzz" => fuzz(rest),
        "deps" => check_deps(),
        "ci" => ci(),
        other => {
            eprintln!(
                "unknown task '{other}'; use pipeline, eval, export, prune, distill, quantize, tune, bench, fuzz, deps or ci"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => ExitCode::from(code),
    }
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn status(cmd: &mut Command) -> Result<(), u8> {
    eprintln!("xtask: running {cmd:?}");
    match cmd.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(s.code().map_or(1, |c| c.clamp(1, 255) as u8)),
        Err(e) => {
            eprintln!("xtask: cannot run {cmd:?}: {e}");
            Err(1)
        }
    }
}

/// Runs `optkit <sub> <args>` from the release build (the profile the tests use too).
///
/// It builds with `--workspace`, the feature set `cargo test --release --workspace` resolves,
/// so the two share every compiled crate (`-p opt-cli` resolves features differently and
/// would recompile opt-core and opt-cli).
fn optkit(sub: &str, args: &[String]) -> Result<(), u8> {
    status(cargo().args([
        "build",
        "--release",
        "--quiet",
        "--workspace",
        "--bin",
        "optkit",
    ]))?;
    let bin = target_dir()?
        .join("release")
        .join(format!("optkit{}", std::env::consts::EXE_SUFFIX));
    status(Command::new(bin).arg(sub).args(args))
}

/// The fuzz targets of `fuzz/Cargo.toml`.
const FUZZ_TARGETS: [&str; 8] = [
    "idx",
    "graph",
    "sparse",
    "qweights",
    "int8",
    "model_folder",
    "pipeline_toml",
    "manifest",
];

/// `cargo xtask fuzz <target> [--seconds N | --cmin] [-- libfuzzer flags]`.
fn fuzz(args: &[String]) -> Result<(), u8> {
    let usage = || {
        eprintln!(
            "usage: cargo xtask fuzz <{}> [--seconds N | --cmin] [-- <libFuzzer flags>]",
            FUZZ_TARGETS.join("|")
        );
        2u8
    };
    let (target, rest) = args.split_first().ok_or_else(usage)?;
    if !FUZZ_TARGETS.contains(&target.as_str()) {
        eprintln!("xtask: unknown fuzz target '{target}'");
        return Err(usage());
    }
    let (ours, extra) = match rest.iter().position(|a| a == "--") {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let seconds: Option<u64> = match ours {
        [] => Some(600),
        [flag] if flag == "--cmin" => None,
        [flag, n] if flag == "--seconds" => Some(n.parse().map_err(|_| {
            eprintln!("xtask: --seconds {n}: give a whole number of seconds");
            2u8
        })?),
        _ => return Err(usage()),
    };
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let corpus = root.join("fuzz/corpus").join(target);
    let _ = std::fs::create_dir_all(&corpus);
    // The nightly cargo through rustup, in an environment without what `cargo xtask` (stable,
    // `cargo run`) set: its toolchain, its paths and its package variables would otherwise
    // change the fuzz build's fingerprints, and a plain `cargo fuzz` would rebuild everything.
    let mut cmd = Command::new("cargo");
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let set_by_cargo_run = key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_BIN_")
            || key.starts_with("CARGO_MANIFEST_")
            || matches!(
                &*key,
                "CARGO"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "RUSTC"
                    | "RUSTDOC"
                    | "RUSTUP_TOOLCHAIN"
                    | "LD_LIBRARY_PATH"
            );
        if set_by_cargo_run {
            cmd.env_remove(&*key);
        }
    }
    cmd.current_dir(root.join("fuzz")).arg("+nightly");
    match seconds {
        // Keeps the smallest set of inputs that covers what the whole corpus covers.
        None => cmd.args(["fuzz", "cmin", target]).arg(&corpus),
        // libFuzzer's own limits: 2 GB of memory (a runaway allocation is a finding), 10 s
        // per input, and inputs up to 1 MB.
        Some(seconds) => cmd.args(["fuzz", "run", target]).arg(&corpus).args([
            "--",
            &format!("-max_total_time={seconds}"),
            "-rss_limit_mb=2048",
            "-timeout=10",
            "-max_len=1048576",
            "-print_final_stats=1",
        ]),
    };
    status(cmd.args(extra))
}

/// The cargo target directory (`CARGO_TARGET_DIR` or the workspace's `target`).
fn target_dir() -> Result<std::path::PathBuf, u8> {
    let out = cargo()
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .output()
        .map_err(|e| {
            eprintln!("xtask: cargo metadata failed: {e}");
            1u8
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let key = "\"target_directory\":\"";
    let start = text.find(key).map(|i| i + key.len()).ok_or_else(|| {
        eprintln!("xtask: cargo metadata did not name the target directory");
        1u8
    })?;
    let end = text[start..].find('"').map_or(text.len(), |e| start + e);
    Ok(std::path::PathBuf::from(
        text[start..end].replace("\\\\", "\\"),
    ))
}

/// Allowed normal dependencies between workspace crates (ARCHITECTURE.md).
const ALLOWED: &[(&str, &[&str])] = &[
    ("opt-core", &[]),
    ("opt-arch", &["opt-core"]),
    ("opt-prune", &["opt-core"]),
    ("opt-quant", &["opt-core"]),
    ("opt-distill", &["opt-core"]),
    ("opt-tune", &["opt-core"]),
    ("opt-export", &["opt-core", "opt-arch", "opt-quant"]),
    (
        "opt-cli",
        &[
            "opt-core",
            "opt-arch",
            "opt-prune",
            "opt-quant",
            "opt-distill",
            "opt-tune",
            "opt-export",
        ],
    ),
    ("xtask", &[]),
];

fn check_deps() -> Result<(), u8> {
    let mut manifests = vec![std::path::PathBuf::from("xtask/Cargo.toml")];
    if let Ok(dir) = std::fs::read_dir("crates") {
        manifests.extend(
            dir.flatten()
                .map(|e| e.path().join("Cargo.toml"))
                .filter(|p| p.is_file()),
        );
    }
    let mut bad = Vec::new();
    for m in manifests {
        let text = std::fs::read_to_string(&m).map_err(|e| {
            eprintln!("xtask: cannot read {}: {e}", m.display());
            1u8
        })?;
        let krate = package_name(&text);
        let allowed = ALLOWED.iter().find(|(k, _)| *k == krate).map(|(_, a)| *a);
        let Some(allowed) = allowed else {
            bad.push(format!("{krate} ({}) is not listed in xtask's ALLOWED table; add its row from ARCHITECTURE.md", m.display()));
            continue;
        };
        for dep in normal_deps(&text)
            .into_iter()
            .filter(|d| d.starts_with("opt-"))
        {
            if !allowed.contains(&dep.as_str()) {
                bad.push(format!(
                    "{krate} depends on {dep}, which ARCHITECTURE.md forbids"
                ));
            }
        }
    }
    if bad.is_empty() {
        eprintln!("xtask: dependency directions ok");
        Ok(())
    } else {
        for b in bad {
            eprintln!("xtask: {b}");
        }
        Err(1)
    }
}

fn package_name(manifest: &str) -> String {
    manifest
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("name = \"")
                .and_then(|r| r.strip_suffix('"'))
        })
        .unwrap_or_default()
        .to_string()
}

/// Keys of the `[dependencies]` table (and `[target.*.dependencies]`), not dev or build ones.
fn normal_deps(manifest: &str) -> Vec<String> {
    let mut in_deps = false;
    let mut deps = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_deps = line == "[dependencies]"
                || (line.starts_with("[target.") && line.ends_with(".dependencies]"));
            continue;
        }
        if in_deps && let Some((key, _)) = line.split_once('=') {
            let key = key.trim();
            if !key.is_empty() && !key.starts_with('#') {
                deps.push(key.split('.').next().unwrap_or(key).to_string());
            }
        }
    }
    deps
}

fn ci() -> Result<(), u8> {
    status(cargo().args(["fmt", "--all", "--check"]))?;
    status(cargo().args([
        "clippy",
        "--release",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    check_deps()?;
    status(cargo().args(["test", "--release", "--workspace"]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_normal_dependencies_only() {
        let m = "[package]\nname = \"opt-x\"\n[dependencies]\nopt-core.workspace = true\nopt-y = { path = \"y\" }\n[dev-dependencies]\nopt-z = \"1\"\n";
        assert_eq!(package_name(m), "opt-x");
        assert_eq!(normal_deps(m), vec!["opt-core", "opt-y"]);
    }
}
