//! Storage semantics shared by every backend: definitions, re-queueing, concurrent workers.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::ops::{self, AskOptions};
use super::*;
use crate::objective::{Direction, Objective};
use crate::space::{ParamValue, SearchSpace};
use crate::trial::TrialState;

fn def(space: &str) -> StudyDef {
    StudyDef {
        space: SearchSpace::from_toml(space, "space").unwrap(),
        objectives: vec![Objective {
            metric: "y".into(),
            direction: Direction::Minimize,
        }],
        constraints: vec![],
        watch: 0,
    }
}

/// A fresh SQLite file for one test.
pub(crate) fn sqlite_url(test: &str) -> String {
    let dir = std::env::temp_dir().join(format!("opt-tune-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    format!("sqlite://{}", dir.join("study.db").display())
}

/// The PostgreSQL server of `.ci/run` (`OPTKIT_TEST_POSTGRES`, e.g.
/// `postgres://optkit:optkit@127.0.0.1:5432/optkit`).
#[cfg(feature = "postgres-tests")]
fn postgres_url() -> String {
    std::env::var("OPTKIT_TEST_POSTGRES").expect(
        "the postgres-tests feature needs OPTKIT_TEST_POSTGRES=postgres://user:password@host:port/db \
         (.ci/run installs and starts a server on loopback and sets it)",
    )
}

/// Every backend's URL: memory, a fresh SQLite file, and PostgreSQL with `postgres-tests`.
fn urls(test: &str) -> Vec<String> {
    #[allow(unused_mut)]
    let mut urls = vec!["memory".to_string(), sqlite_url(test)];
    #[cfg(feature = "postgres-tests")]
    urls.push(postgres_url());
    urls
}

/// A study name no earlier run used (a PostgreSQL database outlives the test).
fn unique(base: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{base}-{}-{nanos}", std::process::id())
}

fn backends(test: &str) -> Vec<Box<dyn Storage>> {
    urls(test).iter().map(|u| open(u).unwrap()).collect()
}

#[test]
fn a_study_keeps_its_definition_and_refuses_another() {
    for mut s in backends("definition") {
        let (a, b) = (unique("a"), unique("b"));
        let d = def("x = { float = [0.0, 1.0] }");
        s.open_study(&a, &d).unwrap();
        s.open_study(&a, &d).unwrap();
        assert_eq!(s.study_def(&a).unwrap(), Some(d.clone()));
        let other = def("x = { float = [0.0, 2.0] }");
        let msg = s.open_study(&a, &other).unwrap_err().to_string();
        assert!(
            msg.contains(&format!("study '{a}' already exists"))
                && msg.contains("another search space"),
            "{msg}"
        );
        let mut objectives = d.clone();
        objectives.objectives[0].direction = Direction::Maximize;
        assert!(
            s.open_study(&a, &objectives)
                .unwrap_err()
                .to_string()
                .contains("other objectives")
        );
        s.open_study(&b, &other).unwrap();
        let names = s.studies().unwrap();
        assert!(names.contains(&a) && names.contains(&b), "{names:?}");
        assert_eq!(s.study_def("never-created").unwrap(), None);
    }
}

#[test]
fn bad_urls_say_what_to_write() {
    let msg = open("mysql://db").err().unwrap().to_string();
    assert!(
        msg.contains("unknown storage scheme 'mysql'") && msg.contains("sqlite://"),
        "{msg}"
    );
    let msg = open("sqlite:///no/such/folder/x.db")
        .err()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("folder /no/such/folder does not exist"),
        "{msg}"
    );
    let msg = open("sqlite://").err().unwrap().to_string();
    assert!(msg.contains("no file given"), "{msg}");
    // A file that is not a database.
    let url = sqlite_url("not-a-db");
    std::fs::write(
        url.trim_start_matches("sqlite://"),
        b"hello, this is not sqlite at all....",
    )
    .unwrap();
    let msg = open(&url).err().unwrap().to_string();
    assert!(msg.contains("SQLite database"), "{msg}");
}

#[test]
fn a_silent_worker_loses_its_trial_to_a_requeue() {
    for mut s in backends("requeue") {
        let study = unique("requeue");
        let study = study.as_str();
        s.open_study(study, &def("x = { int = [0, 100] }")).unwrap();
        let mut propose = |_: &[crate::trial::Trial], n: u64| {
            Some(BTreeMap::from([(
                "x".to_string(),
                ParamValue::Int(n as i64),
            )]))
        };
        let a = AskOptions {
            worker: "a",
            stale_after_s: 0.05,
            max_trials: Some(10),
            max_stops: 3,
        };
        let first = ops::ask(s.as_mut(), study, &a, &mut propose)
            .unwrap()
            .unwrap();
        assert_eq!((first.number, first.state), (0, TrialState::Running));
        std::thread::sleep(std::time::Duration::from_millis(120));
        let b = AskOptions {
            worker: "b",
            ..a.clone()
        };
        let again = ops::ask(s.as_mut(), study, &b, &mut propose)
            .unwrap()
            .unwrap();
        assert_eq!(
            (again.number, again.retry_of, &again.params),
            (1, Some(0), &first.params)
        );
        assert_eq!(again.worker.as_deref(), Some("b"));
        let trials = s.trials(study).unwrap();
        assert_eq!(trials[0].state, TrialState::Failed);
        assert!(
            trials[0]
                .message
                .as_deref()
                .unwrap()
                .contains("re-queued as trial 1")
        );
        // The first worker comes back: its trial is gone.
        let msg = ops::save_held(s.as_mut(), study, &first, "a")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("no longer held") && msg.contains("state failed"),
            "{msg}"
        );
        // The budget counts the re-run once: 9 more new trials fit, not 10.
        let slow = AskOptions {
            worker: "b",
            stale_after_s: 1e9,
            max_trials: Some(10),
            max_stops: 3,
        };
        let mut n = 0;
        while ops::ask(s.as_mut(), study, &slow, &mut propose)
            .unwrap()
            .is_some()
        {
            n += 1;
        }
        assert_eq!(n, 9);
        assert_eq!(ops::counted(&s.trials(study).unwrap()), 10);
    }
}

/// Four workers (threads with their own connections) run one study: every trial is run
/// exactly once and none is lost.
#[test]
fn four_workers_share_a_study_without_losing_or_repeating_trials() {
    use crate::sampler::SamplerConfig;
    use crate::study::{Outcome, Study, WorkerConfig};
    for url in urls("workers") {
        let root = open(&url).unwrap();
        let study = unique("shared");
        let d = def("x = { float = [-5.0, 5.0] }\nk = { int = [1, 8] }");
        let runs = Arc::new(Mutex::new(Vec::new()));
        let handles: Vec<_> = (0..4)
            .map(|w| {
                let storage = root.reopen().unwrap();
                let (d, runs, study) = (d.clone(), runs.clone(), study.clone());
                std::thread::spawn(move || {
                    let sampler = SamplerConfig {
                        seed: 5,
                        ..Default::default()
                    }
                    .build(&d, "sampler")
                    .unwrap();
                    let worker = WorkerConfig {
                        worker: format!("w{w}"),
                        stale_after_s: 30.0,
                        heartbeat_s: 0.01,
                        ..WorkerConfig::default()
                    };
                    let mut study = Study::open(storage, &study, d, sampler, None, worker).unwrap();
                    study
                        .optimize(40, |t, _| {
                            runs.lock().unwrap().push(t.number);
                            std::thread::sleep(std::time::Duration::from_millis(15));
                            let x = t.params["x"].as_f64().unwrap();
                            Outcome::Complete(BTreeMap::from([("y".to_string(), x * x)]))
                        })
                        .unwrap()
                        .len()
                })
            })
            .collect();
        let per_worker: Vec<usize> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let mut runs = runs.lock().unwrap().clone();
        runs.sort();
        assert_eq!(
            runs,
            (0..40).collect::<Vec<u64>>(),
            "{url}: every trial once"
        );
        assert_eq!(per_worker.iter().sum::<usize>(), 40);
        assert!(per_worker.iter().all(|n| *n > 0), "{url}: {per_worker:?}");
        let trials = root.reopen().unwrap().trials(&study).unwrap();
        assert_eq!(trials.len(), 40);
        assert!(trials.iter().all(|t| t.state == TrialState::Complete));
    }
}

/// A trial whose workers all went silent is re-queued `max_stops - 1` times, then failed for
/// good (a trial that kills its process must not run forever).
#[test]
fn a_trial_that_stops_its_worker_repeatedly_is_failed_for_good() {
    for mut s in backends("stops") {
        let study = unique("stops");
        s.open_study(&study, &def("x = { int = [0, 100] }"))
            .unwrap();
        let mut propose = |_: &[crate::trial::Trial], _: u64| {
            Some(BTreeMap::from([("x".into(), ParamValue::Int(7))]))
        };
        let opts = |w: &'static str| AskOptions {
            worker: w,
            stale_after_s: 0.05,
            max_trials: Some(1),
            max_stops: 3,
        };
        for w in ["a", "b", "c"] {
            let t = ops::ask(s.as_mut(), &study, &opts(w), &mut propose)
                .unwrap()
                .unwrap();
            assert_eq!(t.params["x"], ParamValue::Int(7));
            std::thread::sleep(std::time::Duration::from_millis(120));
        }
        // The third silent run ends it: nothing is handed out again.
        assert!(
            ops::ask(s.as_mut(), &study, &opts("d"), &mut propose)
                .unwrap()
                .is_none()
        );
        let trials = s.trials(&study).unwrap();
        assert_eq!(trials.len(), 3, "{trials:?}");
        assert!(trials.iter().all(|t| t.state == TrialState::Failed));
        let last = trials[2].message.as_deref().unwrap();
        assert!(
            last.contains("stopped a worker 3 times") && last.contains("failed for good"),
            "{last}"
        );
    }
}

/// A lock has one holder at a time; its holder refreshes it, anyone takes it once stale or
/// released. A lock's scope is any text (no study needed).
#[test]
fn a_lock_has_one_holder_until_released_or_stale() {
    for mut s in backends("locks") {
        let study = unique("run:/some/folder");
        assert_eq!(s.lock(&study, "result", "a", 60.0).unwrap(), None);
        assert_eq!(s.lock(&study, "result", "a", 60.0).unwrap(), None);
        assert_eq!(
            s.lock(&study, "result", "b", 60.0).unwrap().as_deref(),
            Some("a")
        );
        assert_eq!(s.lock(&study, "other", "b", 60.0).unwrap(), None);
        s.unlock(&study, "result", "b").unwrap(); // not b's: nothing happens
        assert!(s.lock(&study, "result", "b", 60.0).unwrap().is_some());
        s.unlock(&study, "result", "a").unwrap();
        assert_eq!(s.lock(&study, "result", "b", 60.0).unwrap(), None);
        std::thread::sleep(std::time::Duration::from_millis(120));
        assert_eq!(s.lock(&study, "result", "c", 0.05).unwrap(), None, "stale");
    }
}

/// A worker whose trial is taken from it (it was silent past `stale_after_s`) drops that
/// trial and goes on with the next one instead of stopping.
#[test]
fn a_worker_whose_trial_was_requeued_goes_on() {
    use crate::sampler::SamplerConfig;
    use crate::study::{Outcome, Study, WorkerConfig};
    for url in urls("lost") {
        let storage = open(&url).unwrap();
        let mut other = storage.reopen().unwrap();
        let study = unique("lost");
        let d = def("x = { float = [0.0, 1.0] }");
        let sampler = SamplerConfig::default().build(&d, "s").unwrap();
        let worker = WorkerConfig {
            worker: "slow".into(),
            stale_after_s: 0.2,
            heartbeat_s: 1e6, // never beats: as if paused
            ..WorkerConfig::default()
        };
        let mut s = Study::open(storage, &study, d, sampler, None, worker).unwrap();
        let mut propose = |_: &[crate::trial::Trial], _: u64| {
            Some(BTreeMap::from([("x".into(), ParamValue::Float(0.5))]))
        };
        let done = s
            .optimize(3, |t, _| {
                if t.number == 0 {
                    // Paused past stale_after_s; another worker re-queues and takes it.
                    std::thread::sleep(std::time::Duration::from_millis(400));
                    let opts = AskOptions {
                        worker: "fast",
                        stale_after_s: 0.2,
                        max_trials: Some(3),
                        max_stops: 3,
                    };
                    let taken = ops::ask(other.as_mut(), &study, &opts, &mut propose)
                        .unwrap()
                        .unwrap();
                    assert_eq!(taken.retry_of, Some(0));
                }
                Outcome::Complete(BTreeMap::from([("y".to_string(), 1.0)]))
            })
            .unwrap();
        // Trial 0 was lost (its result dropped); the worker finished the others.
        assert!(done.iter().all(|t| t.number != 0), "{done:?}");
        assert!(!done.is_empty());
    }
}
