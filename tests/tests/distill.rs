//! Distillation end to end: pipeline `distill` stages (a fresh small student from the
//! baseline teacher; recovery of a structured-pruned model with a FitNets hint), `optkit
//! distill` on saved folders, and bad settings refused with the key named before training.

use optkit_tests::{TempDir, optkit, pipeline, read_json, reload, tiny_config};
use serde_json::Value;

const STAGES: &str = r#"
[[stages]]
kind = "baseline"
name = "student-alone"
model = { arch = "mlp", hidden = [16] }

[[stages]]
kind = "distill"
name = "student-distilled"
student = { arch = "mlp", hidden = [16] }
teacher = "baseline"
[stages.distill]
temperature = 4.0
alpha = 0.8

[[stages]]
kind = "prune"
name = "pruned"
from = "baseline"
[stages.prune]
method = "structured"
target = 0.5
finetune_epochs = 0

[[stages]]
kind = "distill"
name = "recovered"
[stages.distill]
temperature = 2.0
alpha = 0.5
epochs = 1
hints = [{ student = "blocks.1.conv", teacher = "blocks.1.conv" }]
hint_weight = 0.5
"#;

#[test]
fn pipeline_distills_a_fresh_student_and_recovers_a_pruned_model() {
    let out = TempDir::new("distill");
    let o = pipeline(tiny_config(out.path(), STAGES));
    assert_eq!(o.code, 0, "{}", o.stderr);
    let report = read_json(&out.path().join("report.json"));
    let c = report["candidates"].as_array().unwrap();
    let names: Vec<&str> = c.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "baseline",
            "student-alone",
            "student-distilled",
            "pruned",
            "recovered"
        ]
    );
    let num = |v: &Value, k: &str| v[k].as_f64().unwrap();
    let (alone, distilled, pruned, recovered) = (&c[1], &c[2], &c[3], &c[4]);
    assert_eq!(distilled["stage"], "distill");
    assert_eq!(distilled["method"], "kd");
    // Same student architecture, trained the same number of epochs either way.
    assert_eq!(distilled["macs"], alone["macs"]);
    assert!(num(distilled, "macs") * 5.0 < num(&c[0], "macs"));
    assert_eq!(
        distilled["train"]["epochs"].as_array().unwrap().len(),
        alone["train"]["epochs"].as_array().unwrap().len()
    );
    let d = &distilled["details"];
    assert_eq!(d["temperature"], 4.0);
    assert_eq!(d["alpha"], 0.8);
    assert_eq!(d["teacher_cached"], true);
    assert!(d["teacher_val_accuracy"].as_f64().unwrap() > 0.3, "{d}");
    // Recovery keeps the pruned architecture and learns through the hint.
    assert_eq!(recovered["method"], "kd+hints");
    assert_eq!(recovered["macs"], pruned["macs"]);
    assert!(num(recovered, "macs") < num(&c[0], "macs"));
    let terms = &recovered["details"]["terms"][0];
    assert!(terms["hint"].as_f64().unwrap() > 0.0, "{terms}");
    assert_eq!(
        recovered["details"]["hints"][0]["student_shape"],
        serde_json::json!([4, 14, 14])
    );
    // The saved folder reloads to the measured accuracy.
    let again = reload(out.path().join("recovered"));
    assert_eq!(again.eval.accuracy, num(recovered, "accuracy"));
    let md = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    assert!(md.contains("student-distilled"), "{md}");
}

#[test]
fn optkit_distill_saved_folders_and_refuse_bad_settings() {
    let out = TempDir::new("distill-saved");
    let stages = "[[stages]]\nkind = \"prune\"\n[stages.prune]\nmethod = \"structured\"\ntarget = 0.5\nfinetune_epochs = 0\n";
    let o = pipeline(tiny_config(out.path(), stages));
    assert_eq!(o.code, 0, "{}", o.stderr);
    let teacher = out.path().join("baseline");
    let student = out.path().join("prune");
    let cfg_dir = TempDir::new("dcfg");
    let good = cfg_dir.write(
        "good.toml",
        "[distill]\ntemperature = 3.0\nalpha = 0.6\nepochs = 1\n[train]\nbatch_size = 32\n",
    );
    let res = TempDir::new("distilled");
    let args = |cfg: &std::path::Path| {
        vec![
            "distill".to_string(),
            "--student".into(),
            student.to_str().unwrap().into(),
            "--teacher".into(),
            teacher.to_str().unwrap().into(),
            "--config".into(),
            cfg.to_str().unwrap().into(),
            "--out".into(),
            res.path().to_str().unwrap().into(),
        ]
    };
    let run = |cfg: &std::path::Path| {
        let a = args(cfg);
        let refs: Vec<&str> = a.iter().map(|s| s.as_str()).collect();
        optkit(&refs)
    };
    let o = run(&good);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let r = read_json(&res.path().join("distill.json"));
    assert_eq!(r["distill"]["temperature"], 3.0);
    assert_eq!(r["distilled"]["macs"], r["student"]["macs"]);
    assert!(r["teacher"]["macs"].as_f64() > r["student"]["macs"].as_f64());
    let again = reload(res.path().to_path_buf());
    assert_eq!(
        again.eval.accuracy,
        r["distilled"]["accuracy"].as_f64().unwrap()
    );

    for (text, needle) in [
        ("[distill]\ntemperature = 0.0\n", "distill.temperature = 0"),
        ("[distill]\nalpha = 1.5\n", "distill.alpha = 1.5"),
        ("[distill]\ntemprature = 2.0\n", "unknown field"),
        (
            "[distill]\nhints = [{ student = \"blocks.9.conv\", teacher = \"fc\" }]\n",
            "valid names: blocks.0.conv, blocks.0.bn",
        ),
        (
            "[distill]\nhints = [{ student = \"blocks.0.conv\", teacher = \"conv1\" }]\n",
            "\"conv1\" is not a layer of the teacher",
        ),
    ] {
        let cfg = cfg_dir.write("bad.toml", text);
        let o = run(&cfg);
        assert_eq!(o.code, 2, "{text}: {}", o.stderr);
        assert!(o.stderr.contains(needle), "{text}: {}", o.stderr);
    }
}

#[test]
fn pipeline_refuses_bad_distill_stages_before_training() {
    let out = TempDir::new("distill-bad");
    for (stage, needle) in [
        (
            "[stages.distill]\ntemperature = -1.0\n",
            "stages[1].distill.temperature = -1",
        ),
        (
            "[stages.distill]\nalpha = 2.0\n",
            "stages[1].distill.alpha = 2",
        ),
        (
            "teacher = \"nobody\"\n",
            "stages[1].teacher = \"nobody\": no earlier stage",
        ),
        (
            "student = { arch = \"mlp\", hidden = [8] }\nfrom = \"baseline\"\n",
            "`from` and `student` are both set",
        ),
        (
            "[stages.distill]\nhints = [{ student = \"conv9\", teacher = \"fc\" }]\n",
            "\"conv9\" is not a layer of the student; valid names: blocks.0.conv",
        ),
        (
            "student = { arch = \"mlp\", hidden = [8] }\n[stages.distill]\nhints = [{ student = \"layers.0\", teacher = \"blocks.0.conv\" }]\nhint_weight = 1.0\n",
            "",
        ),
    ] {
        let o = pipeline(tiny_config(
            out.path(),
            &format!("[[stages]]\nkind = \"distill\"\n{stage}"),
        ));
        if needle.is_empty() {
            // A vector layer matches any map (global pooling): accepted and trained.
            assert_eq!(o.code, 0, "{stage}: {}", o.stderr);
            continue;
        }
        assert_eq!(o.code, 2, "{stage}: {}", o.stderr);
        assert!(o.stderr.contains(needle), "{stage}: {}", o.stderr);
        assert!(
            !out.path().join("baseline").exists(),
            "trained before failing"
        );
    }
    // A student from an unstructured-pruned model is refused (training would refill zeros).
    let out = TempDir::new("distill-bad-sparse");
    let o = pipeline(tiny_config(
        out.path(),
        "[[stages]]\nkind = \"prune\"\n[stages.prune]\ntarget = 0.5\nfinetune_epochs = 0\n[[stages]]\nkind = \"distill\"\n",
    ));
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(o.stderr.contains("refill its zeros"), "{}", o.stderr);
    assert!(
        !out.path().join("baseline").exists(),
        "trained before failing"
    );
}
