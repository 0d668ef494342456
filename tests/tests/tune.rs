//! Tuning end to end: a pipeline `tune` stage (report.json lists every trial and the best one;
//! a second run continues the stored study), a multi-objective study with early stopping and a
//! Pareto front, `optkit tune` flags, and bad settings refused with the key named.

use optkit_tests::{TempDir, optkit, pipeline, read_json, tiny_config, trial_dir};
use serde_json::Value;

const TUNE: &str = r#"
[[stages]]
kind = "tune"
[stages.tune]
trials = 4
sampler = { kind = "tpe", seed = 2, startup_trials = 2 }
early_stopping = { kind = "median", startup_trials = 1 }
[stages.tune.space]
"train.learning_rate" = { float = [1e-4, 1e-1], log = true }
"model.fc" = { choices = [8, 16] }
"#;

fn tune_details(out: &std::path::Path, stage: usize) -> Value {
    let report = read_json(&out.join("report.json"));
    report["candidates"][stage]["details"].clone()
}

#[test]
fn a_tune_stage_reports_every_trial_and_continues_its_study() {
    let dir = TempDir::new("tune");
    let out = dir.path().join("run");
    let o = pipeline(tiny_config(&out, TUNE));
    assert_eq!(o.code, 0, "{}", o.stderr);
    let d = tune_details(&out, 1);
    let trials = d["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 4);
    for t in trials {
        assert!(t["params"]["train.learning_rate"].as_f64().is_some(), "{t}");
        assert!(
            ["complete", "pruned"].contains(&t["state"].as_str().unwrap()),
            "{t}"
        );
        assert!(
            t["epochs_run"].as_u64().unwrap() >= 1 && t["epochs_budget"] == 2,
            "{t}"
        );
    }
    let chosen = d["chosen"].as_u64().unwrap();
    assert_eq!(d["front"], serde_json::json!([chosen]));
    let best = trials.iter().find(|t| t["number"] == chosen).unwrap();
    let best_acc = best["metrics"]["accuracy"].as_f64().unwrap();
    for t in trials.iter().filter(|t| t["state"] == "complete") {
        assert!(t["metrics"]["accuracy"].as_f64().unwrap() <= best_acc);
    }
    assert!(out.join("tune.db").is_file());
    assert!(trial_dir(&out, "tune", chosen).join("model.json").is_file());
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("study tune@")
            && md.contains(" in sqlite://")
            && md.contains("best trial: trial"),
        "{md}"
    );

    // The study is stored: asking for 6 trials runs 2 more, not 6.
    let o = optkit(&[
        "tune",
        "--config",
        dir.write("again.toml", tiny_config(&out, TUNE))
            .to_str()
            .unwrap(),
        "--resume",
        "--trials",
        "6",
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let d = tune_details(&out, 0);
    assert_eq!(d["trials"].as_array().unwrap().len(), 6);
    assert_eq!(d["ran_here"].as_array().unwrap().len(), 2);
}

/// A study's identity includes what its trials depend on: after `[train]` changes (or with
/// `--force`), the stage runs a new study with new trials in new folders instead of handing
/// back an old trial's model.
#[test]
fn a_changed_or_forced_tune_stage_runs_a_new_study() {
    let dir = TempDir::new("tune-new-study");
    let out = dir.path().join("run");
    let stages = TUNE.replace("trials = 4", "trials = 2");
    let o = pipeline(tiny_config(&out, &stages));
    assert_eq!(o.code, 0, "{}", o.stderr);
    let first = tune_details(&out, 1);
    assert_eq!(first["ran_here"].as_array().unwrap().len(), 2);
    // One more epoch per trial: the old trials were trained otherwise.
    let changed = tiny_config(&out, &stages).replace("epochs = 2", "epochs = 3");
    let o = pipeline(changed.clone());
    assert_eq!(o.code, 0, "{}", o.stderr);
    let second = tune_details(&out, 1);
    assert_ne!(second["study"], first["study"]);
    assert_eq!(second["ran_here"].as_array().unwrap().len(), 2, "{second}");
    for t in second["trials"].as_array().unwrap() {
        assert_eq!(t["epochs_budget"], 3, "{t}");
    }
    let tags = std::fs::read_dir(out.join("tune/trials")).unwrap().count();
    assert_eq!(tags, 2, "each study's trials in a folder of its own");
    // Unchanged and not forced: reused. Forced: a new study again.
    let o = pipeline(changed.clone());
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stderr.is_empty() || !o.stderr.contains("error"),
        "{}",
        o.stderr
    );
    let cfg = dir.write("forced.toml", changed);
    let o = optkit(&[
        "pipeline",
        "--config",
        cfg.to_str().unwrap(),
        "--force",
        "tune",
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let third = tune_details(&out, 1);
    assert_ne!(third["study"], second["study"]);
    assert_eq!(third["ran_here"].as_array().unwrap().len(), 2, "{third}");
}

#[test]
fn a_multi_objective_study_stops_trials_early_and_reports_a_front() {
    let dir = TempDir::new("tune-mo");
    let out = dir.path().join("run");
    let stages = r#"
[[stages]]
kind = "tune"
[stages.tune]
trials = 6
storage = "memory"
objectives = [{ metric = "accuracy", direction = "maximize" }, { metric = "macs", direction = "minimize" }]
sampler = { kind = "random", seed = 4 }
early_stopping = { kind = "asha", min_resource = 1, reduction_factor = 2 }
[stages.tune.space]
"train.learning_rate" = { float = [1e-5, 1e-1], log = true }
"model.fc" = { choices = [4, 8, 16, 32] }
"#;
    let cfg = tiny_config(&out, stages).replace("epochs = 2", "epochs = 3");
    let o = pipeline(cfg);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let d = tune_details(&out, 1);
    let trials = d["trials"].as_array().unwrap();
    let pruned = trials.iter().filter(|t| t["state"] == "pruned").count();
    assert!(
        pruned >= 1,
        "ASHA stopped no trial in a multi-objective study: {trials:?}"
    );
    let front = d["front"].as_array().unwrap();
    assert!(!front.is_empty());
    // No front member is dominated by a complete trial.
    let point = |t: &Value| {
        (
            t["values"][0].as_f64().unwrap(),
            t["values"][1].as_f64().unwrap(),
        )
    };
    for n in front {
        let f = point(trials.iter().find(|t| &t["number"] == n).unwrap());
        for t in trials.iter().filter(|t| t["state"] == "complete") {
            let p = point(t);
            assert!(
                !(p.0 >= f.0 && p.1 <= f.1 && (p.0 > f.0 || p.1 < f.1)),
                "{p:?} dominates {f:?}"
            );
        }
    }
}

#[test]
fn bad_tune_settings_are_refused_before_training() {
    let dir = TempDir::new("tune-bad");
    let out = dir.path().join("run");
    let with = |space: &str, extra: &str| {
        tiny_config(
            &out,
            &format!(
                "[[stages]]\nkind = \"tune\"\n[stages.tune]\n{extra}\n[stages.tune.space]\n{space}\n"
            ),
        )
    };
    let cases = [
        (
            with("\"train.learning_rat\" = { float = [0.1, 0.2] }", ""),
            vec!["not a key", "train.learning_rate (now"],
        ),
        (
            with("\"train.learning_rate\" = { float = [0.2, 0.1] }", ""),
            vec!["stages[1].tune.space", "empty or inverted"],
        ),
        (
            with(
                "\"train.learning_rate\" = { float = [0.0, 0.1], log = true }",
                "",
            ),
            vec!["bounds > 0"],
        ),
        (
            with("\"train.batch_size\" = { int = [0, 8] }", ""),
            vec!["train.batch_size\" = 0"],
        ),
        (
            with(
                "\"train.learning_rate\" = { float = [0.01, 0.1] }",
                "storage = \"mysql://x\"",
            ),
            vec!["unknown storage scheme 'mysql'"],
        ),
        (
            with(
                "\"train.learning_rate\" = { float = [0.01, 0.1] }",
                "storage = \"sqlite:///no/such/dir/s.db\"",
            ),
            vec!["does not exist"],
        ),
        (
            with(
                "\"train.learning_rate\" = { float = [0.01, 0.1] }",
                "trails = 3",
            ),
            vec!["unknown field", "trails"],
        ),
    ];
    for (cfg, needles) in cases {
        let o = pipeline(cfg.clone());
        assert_eq!(o.code, 2, "{cfg}\n{}", o.stderr);
        for n in needles {
            assert!(o.stderr.contains(n), "{n} not in: {}", o.stderr);
        }
        assert!(
            !out.join("baseline").exists(),
            "nothing may train before the check: {cfg}"
        );
    }

    // A stored study is never mixed with another search space.
    let db = dir.path().join("s.db");
    let url = format!("sqlite://{}", db.display());
    let cfg = |space: &str| dir.write("t.toml", with(space, "trials = 1"));
    let args = |c: &std::path::Path| {
        vec![
            "tune".to_string(),
            "--config".into(),
            c.display().to_string(),
            "--storage".into(),
            url.clone(),
        ]
    };
    let first = cfg("\"train.learning_rate\" = { float = [0.001, 0.01] }");
    let a: Vec<String> = args(&first);
    let o = optkit(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.code, 0, "{}", o.stderr);
    let other = cfg("\"train.learning_rate\" = { float = [0.001, 0.02] }");
    let b: Vec<String> = args(&other);
    let o = optkit(&b.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(
        o.stderr.contains("already exists") && o.stderr.contains("another search space"),
        "{}",
        o.stderr
    );
    // --resume of a study that does not exist.
    let mut c = args(&first);
    c.extend(["--study".into(), "nope".into(), "--resume".into()]);
    let o = optkit(&c.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(
        o.stderr.contains("no study named 'nope'") && o.stderr.contains("studies there: tune"),
        "{}",
        o.stderr
    );
}

#[test]
fn a_diverging_trial_is_failed_and_the_study_goes_on() {
    let dir = TempDir::new("tune-nan");
    let out = dir.path().join("run");
    let stages = r#"
[[stages]]
kind = "tune"
[stages.tune]
trials = 2
storage = "memory"
sampler = { kind = "grid" }
[stages.tune.space]
"train.learning_rate" = { choices = [0.003, 1.0e9] }
"#;
    let cfg = tiny_config(&out, stages).replace(
        "learning_rate = 0.003",
        "learning_rate = 0.003\noptimizer = \"sgd\"",
    );
    let o = pipeline(cfg);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let d = tune_details(&out, 1);
    let trials = d["trials"].as_array().unwrap();
    let failed: Vec<&Value> = trials.iter().filter(|t| t["state"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{trials:?}");
    assert_eq!(failed[0]["params"]["train.learning_rate"], 1.0e9);
    assert!(
        failed[0]["message"].as_str().unwrap().contains("diverged"),
        "{:?}",
        failed[0]
    );
    let chosen = trials.iter().find(|t| t["number"] == d["chosen"]).unwrap();
    assert_eq!(chosen["params"]["train.learning_rate"], 0.003);
}

const COMPRESS: &str = r#"
[[stages]]
kind = "tune"
name = "compress"
from = "baseline"
[[stages.trial]]
kind = "prune"
[stages.trial.prune]
method = "structured"
finetune_epochs = 1
[[stages.trial]]
kind = "quantize"
[stages.tune]
trials = 3
objectives = [{ metric = "accuracy", direction = "maximize" }, { metric = "size_bytes", direction = "minimize" }]
sampler = { kind = "random", seed = 5 }
[stages.tune.space]
"prune.target" = { float = [0.25, 0.75] }
"quantize.bits" = { choices = [8, 4] }
"#;

#[test]
fn trials_tune_prune_ratio_and_quantization_bits_on_an_earlier_model() {
    let dir = TempDir::new("tune-compress");
    let out = dir.path().join("run");
    let o = pipeline(tiny_config(&out, COMPRESS));
    assert_eq!(o.code, 0, "{}", o.stderr);
    let report = read_json(&out.join("report.json"));
    let baseline_size = report["candidates"][0]["size_bytes"].as_f64().unwrap();
    let c = &report["candidates"][1];
    assert_eq!(c["stage"], "tune");
    let d = &c["details"];
    let trials = d["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 3);
    for t in trials {
        assert_eq!(t["state"], "complete", "{t}");
        let target = t["params"]["prune.target"].as_f64().unwrap();
        assert!((0.25..=0.75).contains(&target), "{t}");
        let bits = t["params"]["quantize.bits"].as_i64().unwrap();
        // Every trial was pruned, fine-tuned and quantized: far smaller than the float model.
        let size = t["metrics"]["size_bytes"].as_f64().unwrap();
        assert!(
            size < baseline_size / 3.0,
            "{bits} bits: {size} vs {baseline_size}"
        );
        // One fine-tuning epoch, never stopped early.
        assert_eq!(
            (t["epochs_run"].as_u64(), t["epochs_budget"].as_u64()),
            (Some(1), Some(1)),
            "{t}"
        );
        let n = t["number"].as_u64().unwrap();
        assert!(
            trial_dir(&out, "compress", n)
                .join("steps/0-prune/model.json")
                .is_file()
        );
    }
    // The chosen trial was run again into the stage's folder: its quantized file is there,
    // and the candidate carries its bits and both steps' reports.
    let chosen = d["chosen"].as_u64().unwrap();
    let best = trials.iter().find(|t| t["number"] == chosen).unwrap();
    let bits = best["params"]["quantize.bits"].as_i64().unwrap();
    assert_eq!(c["bits"].as_i64(), Some(bits));
    let file = if bits == 8 {
        "model.int8"
    } else {
        "weights.wq"
    };
    assert!(out.join("compress").join(file).is_file(), "{file}");
    let kinds: Vec<&str> = d["chosen_steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["prune", "quantize"]);
    assert!(c["size_bytes"].as_f64().unwrap() < baseline_size / 3.0);

    // `optkit tune` on this stage trains the baseline its trials start from, then continues
    // the stored study: 4 trials asked for, 1 run.
    let config = dir.write("again.toml", tiny_config(&out, COMPRESS));
    let o = optkit(&[
        "tune",
        "--config",
        config.to_str().unwrap(),
        "--resume",
        "--trials",
        "4",
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let d = tune_details(&out, 1);
    assert_eq!(d["trials"].as_array().unwrap().len(), 4);
    assert_eq!(d["ran_here"].as_array().unwrap().len(), 1);
}

#[test]
fn trials_tune_distillation_temperature_and_alpha() {
    let dir = TempDir::new("tune-distill");
    let out = dir.path().join("run");
    let o = pipeline(tiny_config(
        &out,
        r#"
[[stages]]
kind = "tune"
name = "kd"
[[stages.trial]]
kind = "distill"
student = { arch = "mlp", hidden = [16] }
[stages.trial.distill]
epochs = 1
[stages.tune]
trials = 2
sampler = { kind = "random", seed = 3 }
[stages.tune.space]
"distill.temperature" = { float = [1.0, 6.0] }
"distill.alpha" = { float = [0.1, 0.9] }
"#,
    ));
    assert_eq!(o.code, 0, "{}", o.stderr);
    let report = read_json(&out.join("report.json"));
    let c = &report["candidates"][1];
    let trials = c["details"]["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 2);
    for t in trials {
        assert_eq!(t["state"], "complete", "{t}");
        assert!(t["params"]["distill.temperature"].as_f64().is_some(), "{t}");
        assert!(t["metrics"]["accuracy"].as_f64().unwrap() > 0.0, "{t}");
    }
    // The student is the MLP, not the CNN teacher.
    assert!(c["arch"].as_str().unwrap().contains("mlp"), "{c}");
    assert_eq!(c["method"], "random");
}
