//! Several `optkit tune` processes on one SQLite study (the real binary, so SQLite's locking
//! between processes is what is tested): four workers share a study without losing or
//! repeating a trial, and a worker killed with SIGKILL in the middle of a trial has that trial
//! failed and re-run by the next worker.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::temp;

use opt_tune::storage::{SqliteStorage, Storage};

use opt_tune::trial::TrialState;

fn config(dir: &Path, epochs: usize, train_limit: usize, stale_after_s: f64) -> PathBuf {
    let text = format!(
        r#"version = 1
[data]
source = "embedded"
train_limit = {train_limit}
test_limit = 100
[model]
arch = "mlp"
hidden = [16]
[train]
epochs = {epochs}
batch_size = 32
[[stages]]
kind = "baseline"
[[stages]]
kind = "tune"
[stages.tune]
sampler = {{ kind = "random", seed = 1 }}
stale_after_s = {stale_after_s}
[stages.tune.space]
"train.learning_rate" = {{ float = [1e-4, 1e-2], log = true }}
[report]
latency_runs = 5
warmup_runs = 1
throughput_batch = 64
throughput_runs = 1
"#
    );
    let path = dir.join("tune.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn worker(cfg: &Path, db: &Path, out: &Path, trials: u64, resume: bool) -> Command {
    worker_on(
        cfg,
        &format!("sqlite://{}", db.display()),
        None,
        out,
        trials,
        resume,
    )
}

fn worker_on(
    cfg: &Path,
    url: &str,
    study: Option<&str>,
    out: &Path,
    trials: u64,
    resume: bool,
) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_optkit"));
    c.args(["tune", "--config"])
        .arg(cfg)
        .arg("--storage")
        .arg(url);
    if let Some(s) = study {
        c.args(["--study", s]);
    }
    c.arg("--out")
        .arg(out)
        .args(["--trials", &trials.to_string(), "--backend", "flex"]);
    if resume {
        c.arg("--resume");
    }
    c.env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// The stored name of study `name`: `<name>@<digest of what its trials depend on>`.
fn stored_study(storage: &mut dyn Storage, name: &str) -> String {
    let names = storage.studies().unwrap();
    let mut of: Vec<&String> = names
        .iter()
        .filter(|s| s.starts_with(&format!("{name}@")))
        .collect();
    assert_eq!(of.len(), 1, "one study named {name}: {names:?}");
    of.remove(0).clone()
}

/// The trial numbers a worker's live table says it finished.
fn finished_by(stderr: &str) -> Vec<u64> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("optkit: trial "))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

/// Runs four workers on `url`/`study` and checks that the 16 trials were each run once.
fn four_workers(tag: &str, url: &str, study: &str) -> Vec<opt_tune::trial::Trial> {
    let dir = temp(&format!("workers-{tag}"));
    // Trials of about half a second, so that the work is shared although the workers start
    // one after another.
    let (cfg, out) = (config(&dir, 3, 1200, 60.0), dir.join("run"));
    // The URL's `user:password@` (`scheme://user:password@host/…`), which nothing may print
    // or store (the password alone may be a common word: CI's is the user name).
    let password = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .filter(|(auth, _)| auth.contains(':'))
        .map(|(auth, _)| format!("{auth}@"));
    let password = password.as_deref();
    let children: Vec<_> = (0..4)
        .map(|_| {
            worker_on(&cfg, url, Some(study), &out, 16, false)
                .spawn()
                .unwrap()
        })
        .collect();
    let mut per_worker = Vec::new();
    for c in children {
        let o = c.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{stderr}");
        if let Some(p) = password {
            assert!(
                !stderr.contains(p),
                "a worker printed the password: {stderr}"
            );
        }
        per_worker.push(finished_by(&stderr));
    }
    let mut all: Vec<u64> = per_worker.concat();
    all.sort();
    assert_eq!(
        all,
        (0..16).collect::<Vec<u64>>(),
        "each trial run by exactly one worker: {per_worker:?}"
    );
    let mut storage = opt_tune::storage::open(url).unwrap();
    let stored = stored_study(storage.as_mut(), study);
    let trials = storage.trials(&stored).unwrap();
    assert_eq!(trials.len(), 16);
    assert!(
        trials.iter().all(|t| t.state == TrialState::Complete),
        "{trials:?}"
    );
    let workers: std::collections::BTreeSet<_> =
        trials.iter().filter_map(|t| t.worker.clone()).collect();
    assert!(workers.len() >= 2, "the work was shared: {workers:?}");
    // Every worker wrote the stage's result, one at a time: the folder's files are the ones
    // its marker records, and its model is the chosen trial's.
    let stage = out.join("tune");
    let marker: serde_json::Value =
        serde_json::from_slice(&std::fs::read(stage.join("stage.done.json")).unwrap()).unwrap();
    assert_eq!(
        marker["output"].as_str().unwrap(),
        opt_cli::resume::folder_digest(&stage).unwrap(),
        "the marker matches the files beside it"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(stage.join("report.json")).unwrap()).unwrap();
    let chosen = report["details"]["chosen"].as_u64().unwrap();
    let tag = stored.split_once('@').unwrap().1;
    let trial_weights = stage
        .join("trials")
        .join(tag)
        .join(format!("{chosen:05}"))
        .join("weights.safetensors");
    assert_eq!(
        std::fs::read(stage.join("weights.safetensors")).unwrap(),
        std::fs::read(trial_weights).unwrap(),
        "the stage's model is the chosen trial's"
    );
    if let Some(p) = password {
        for file in walk(&out) {
            let bytes = std::fs::read(&file).unwrap();
            assert!(
                !bytes.windows(p.len()).any(|w| w == p.as_bytes()),
                "{} holds the storage password",
                file.display()
            );
        }
    }
    eprintln!(
        "{}: 16 trials created, {} finished, 0 lost, 0 run twice; per worker {:?}",
        opt_tune::storage::mask(url),
        trials.len(),
        per_worker.iter().map(Vec::len).collect::<Vec<_>>()
    );
    trials
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn four_worker_processes_share_a_sqlite_study_without_losing_or_repeating_trials() {
    let dir = temp("workers-four-sqlite");
    four_workers(
        "four",
        &format!("sqlite://{}", dir.join("study.db").display()),
        "tune",
    );
}

/// The same against the PostgreSQL server of `.ci/run` (workers on several machines).
#[cfg(feature = "postgres-tests")]
#[test]
fn four_worker_processes_share_a_postgres_study_without_losing_or_repeating_trials() {
    let url =
        std::env::var("OPTKIT_TEST_POSTGRES").expect("set OPTKIT_TEST_POSTGRES (see .ci/run)");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    four_workers("four-pg", &url, &format!("workers-{nanos}"));
}

#[test]
fn a_killed_worker_s_trial_is_failed_and_run_again() {
    let dir = temp("workers-kill");
    let (cfg, db, out) = (
        config(&dir, 40, 3000, 2.0),
        dir.join("study.db"),
        dir.join("run"),
    );
    let mut a = worker(&cfg, &db, &out, 1, false).spawn().unwrap();
    // Wait until the trial has reported an epoch, then kill the worker without warning.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(
            Instant::now() < deadline,
            "the first worker never reported an epoch"
        );
        let running = db.is_file()
            && SqliteStorage::open(&db).is_ok_and(|mut s| {
                let names = s.studies().unwrap_or_default();
                names.iter().any(|n| {
                    s.trials(n).is_ok_and(|t| {
                        t.iter()
                            .any(|t| t.state == TrialState::Running && !t.intermediate.is_empty())
                    })
                })
            });
        if running {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    a.kill().unwrap(); // SIGKILL on Unix
    a.wait().unwrap();
    std::thread::sleep(Duration::from_millis(2500)); // longer than stale_after_s
    // The same config continues the same study (its trials depend on the same settings).
    let o = worker(&cfg, &db, &out, 1, true).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut storage = SqliteStorage::open(&db).unwrap();
    let stored = stored_study(&mut storage, "tune");
    let trials = storage.trials(&stored).unwrap();
    assert_eq!(trials.len(), 2, "{trials:?}");
    assert_eq!(trials[0].state, TrialState::Failed);
    assert!(
        trials[0]
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("stopped sending heartbeats"),
        "{:?}",
        trials[0]
    );
    assert_eq!(
        (trials[1].state, trials[1].retry_of),
        (TrialState::Complete, Some(0))
    );
    assert_eq!(trials[1].params, trials[0].params);
}

/// A worker paused past `stale_after_s` (Ctrl-Z, a laptop sleeping) has its trial re-queued
/// by another worker; when it resumes it drops that trial and goes on, exiting 0, instead of
/// ending its whole `optkit tune` with exit 2.
#[test]
fn a_paused_worker_goes_on_after_its_trial_was_requeued() {
    let dir = temp("workers-pause");
    let (cfg, db, out) = (
        config(&dir, 30, 3000, 4.0),
        dir.join("study.db"),
        dir.join("run"),
    );
    let a = worker(&cfg, &db, &out, 2, false).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !(db.is_file()
        && SqliteStorage::open(&db).is_ok_and(|mut s| {
            s.studies().unwrap_or_default().iter().any(|n| {
                s.trials(n)
                    .is_ok_and(|t| t.iter().any(|t| !t.intermediate.is_empty()))
            })
        }))
    {
        assert!(
            Instant::now() < deadline,
            "the worker never reported an epoch"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = a.id().to_string();
    let signal = |sig: &str| {
        assert!(
            Command::new("kill")
                .args([sig, &pid])
                .status()
                .unwrap()
                .success()
        );
    };
    // Paused outside a commit: a process stopped while it holds SQLite's write lock keeps it
    // (the other workers wait for it, up to the busy timeout), so a pause that caught the
    // worker inside a transaction is undone and tried again a moment later.
    let mut attempts = 0;
    loop {
        signal("-STOP");
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.busy_timeout(Duration::ZERO).unwrap();
        if conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;").is_ok() {
            break;
        }
        attempts += 1;
        assert!(attempts < 100, "the worker never left its transaction");
        signal("-CONT");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(5000)); // past stale_after_s
    // Another worker re-queues the silent worker's trial and runs it.
    let o = worker(&cfg, &db, &out, 2, false).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    signal("-CONT");
    let o = a.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "the paused worker went on: {stderr}");
    assert!(stderr.contains("no longer held"), "{stderr}");
    let mut storage = SqliteStorage::open(&db).unwrap();
    let stored = stored_study(&mut storage, "tune");
    let trials = storage.trials(&stored).unwrap();
    assert_eq!(trials[0].state, TrialState::Failed, "{trials:?}");
    assert!(
        trials
            .iter()
            .any(|t| t.retry_of == Some(0) && t.state == TrialState::Complete),
        "{trials:?}"
    );
}
