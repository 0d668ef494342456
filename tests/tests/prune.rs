//! Pruning stages end to end: a MobileNetV2 (residuals, depthwise layers) pruned structurally
//! and a 2:4 unstructured stage from the same baseline, both reloaded by `optkit eval`; bad
//! pruning settings are input errors that name the key before any training.

use optkit_tests::{TempDir, optkit, reload, tiny_config};
use serde_json::Value;

fn run(extra: &str, model: &str) -> (TempDir, optkit_tests::Outcome) {
    let out = TempDir::new("prune");
    let cfg_dir = TempDir::new("cfg");
    let cfg = tiny_config(out.path(), extra)
        .replace("arch = \"cnn\"\nblocks = [4, 8]\nfc = 16", model)
        .replace("epochs = 2", "epochs = 1");
    let cfg = cfg_dir.write("prune.toml", cfg);
    let o = optkit(&[
        "pipeline",
        "--config",
        cfg.to_str().unwrap(),
        "--backend",
        "flex",
    ]);
    (out, o)
}

#[test]
fn mobilenet_structured_and_two_four_stages() {
    let (out, o) = run(
        r#"
[[stages]]
kind = "prune"
name = "channels"
[stages.prune]
method = "structured"
criterion = "bn_scale"
target = 0.4
finetune_epochs = 1
bn_batches = 4

[[stages]]
kind = "prune"
name = "two-four"
from = "baseline"
[stages.prune]
method = "unstructured"
n_m = "2:4"
exclude = ["stem.conv"]
finetune_epochs = 1
"#,
        "arch = \"mobilenet_v2\"\nwidth = 0.25",
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let report: Value =
        serde_json::from_slice(&std::fs::read(out.path().join("report.json")).unwrap()).unwrap();
    let c = report["candidates"].as_array().unwrap();
    assert_eq!(c.len(), 3);
    let (base, channels, nm) = (&c[0], &c[1], &c[2]);
    let num = |v: &Value, k: &str| v[k].as_f64().unwrap();
    assert_eq!(channels["stage"], "prune");
    assert!(
        num(channels, "macs") < 0.8 * num(base, "macs"),
        "{channels}"
    );
    assert!(num(channels, "params") < 0.8 * num(base, "params"));
    assert!(num(channels, "size_bytes") < 0.8 * num(base, "size_bytes"));
    assert_eq!(channels["details"]["config"]["method"], "structured");
    // Reloads from its smaller spec to the same accuracy.
    let again = reload(out.path().join("channels"));
    assert_eq!(again.eval.accuracy, num(channels, "accuracy"));
    assert_eq!(again.eval.macs as f64, num(channels, "macs"));

    // 2:4 keeps the shape, halves the non-zeros of the pruned layers, and stores them sparse.
    assert_eq!(nm["params"], base["params"]);
    assert!(
        num(nm, "nonzero_params") < 0.6 * num(base, "params"),
        "{nm}"
    );
    assert!(
        num(nm, "size_bytes") < 0.8 * num(base, "size_bytes"),
        "{nm}"
    );
    assert!(out.path().join("two-four").join("weights.sparse").is_file());
    let again = reload(out.path().join("two-four"));
    assert_eq!(again.eval.accuracy, num(nm, "accuracy"));
    assert_eq!(again.eval.nonzero_params as f64, num(nm, "nonzero_params"));
    let md = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    assert!(
        md.contains("| channels | prune |") && md.contains("channels: stem"),
        "{md}"
    );
}

#[test]
fn bad_pruning_settings_fail_before_training() {
    let stage = |body: &str| format!("[[stages]]\nkind = \"prune\"\n[stages.prune]\n{body}\n");
    let cases: [(&str, &[&str]); 7] = [
        ("target = 1.0", &["stages[1].prune.target = 1", "[0, 1)"]),
        ("target = -0.2", &["stages[1].prune.target = -0.2"]),
        (
            "exclude = [\"classifier\"]",
            &[
                "stages[1].prune.exclude = classifier",
                "matches no prunable layer",
                "conv1, conv2, fc1, fc2",
            ],
        ),
        (
            "method = \"structured\"\nexclude = [\"fc2\"]",
            &["matches no channel group", "conv1, conv2, fc1"],
        ),
        (
            "n_m = \"3:2\"",
            &["stages[1].prune.n_m = 3:2", "for example \"2:4\""],
        ),
        (
            "sensitivity = { ratios = [0.75, 0.5] }",
            &[
                "stages[1].prune.sensitivity.ratios = [0.75, 0.5]",
                "ascending",
            ],
        ),
        (
            "target = 0.9\nsensitivity = { ratios = [0.5, 0.75] }",
            &["stages[1].prune.target = 0.9", "sensitivity.ratios"],
        ),
    ];
    for (body, needles) in cases {
        let (out, o) = run(&stage(body), "arch = \"lenet5\"");
        assert_eq!(o.code, 2, "{body}: {}", o.stderr);
        for n in needles {
            assert!(o.stderr.contains(n), "{body}: {}", o.stderr);
        }
        // Nothing was trained: the checks ran first.
        assert!(!out.path().join("baseline").exists(), "{body}");
    }
    let (_, o) = run(
        "[[stages]]\nkind = \"prune\"\nfrom = \"teacher\"\n",
        "arch = \"lenet5\"",
    );
    assert_eq!(o.code, 2);
    assert!(
        o.stderr.contains("stages[1].from = \"teacher\"") && o.stderr.contains("baseline"),
        "{}",
        o.stderr
    );
}

/// `optkit prune` on a saved model folder: writes a new folder, measures both, keeps the
/// source; bad settings and an output that is the source are errors.
#[test]
fn prune_command_on_a_saved_model() {
    let (run_dir, o) = run("", "arch = \"lenet5\"");
    assert_eq!(o.code, 0, "{}", o.stderr);
    let src = run_dir.path().join("baseline");
    let before = std::fs::read(src.join("weights.safetensors")).unwrap();
    let cfg_dir = TempDir::new("prune-settings");
    let settings = cfg_dir.write(
        "p.toml",
        "[prune]\nmethod = \"structured\"\ntarget = 0.5\nfinetune_epochs = 1\n[train]\nbatch_size = 32\n",
    );
    let out = run_dir.path().join("halved");
    let args = |out: &std::path::Path, settings: &std::path::Path| {
        vec![
            "prune".to_string(),
            "--model".into(),
            src.to_str().unwrap().into(),
            "--config".into(),
            settings.to_str().unwrap().into(),
            "--out".into(),
            out.to_str().unwrap().into(),
            "--backend".into(),
            "flex".into(),
        ]
    };
    let a = args(&out, &settings);
    let o = optkit(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.code, 0, "{}", o.stderr);
    let r: Value = serde_json::from_slice(&std::fs::read(out.join("prune.json")).unwrap()).unwrap();
    assert!(
        r["after"]["macs"].as_u64().unwrap() * 3 < r["before"]["macs"].as_u64().unwrap(),
        "{r}"
    );
    assert_eq!(r["prune"]["groups"][0]["after"], 10);
    assert_eq!(
        reload(out.clone()).eval.accuracy,
        r["after"]["accuracy"].as_f64().unwrap()
    );
    // The source folder is untouched.
    assert_eq!(
        std::fs::read(src.join("weights.safetensors")).unwrap(),
        before
    );

    // A sensitivity scan: every layer scanned, its derived ratios applied, the target met.
    let scan = cfg_dir.write(
        "scan.toml",
        "[prune]\ntarget = 0.7\nfinetune_epochs = 0\n\
         sensitivity = { ratios = [0.5, 0.9], samples = 40 }\n",
    );
    let scanned = run_dir.path().join("scanned");
    let a = args(&scanned, &scan);
    let o = optkit(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.code, 0, "{}", o.stderr);
    let r: Value =
        serde_json::from_slice(&std::fs::read(scanned.join("prune.json")).unwrap()).unwrap();
    let rows = r["prune"]["sensitivity"]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "{r}");
    assert!(
        rows.iter()
            .all(|row| row["accuracy"].as_array().unwrap().len() == 2)
    );
    let sparsity = r["prune"]["sparsity"].as_f64().unwrap();
    assert!((sparsity - 0.7).abs() < 0.005, "{sparsity}");

    let bad = cfg_dir.write("bad.toml", "[prune]\ntarget = 1.5\n");
    let a = args(&run_dir.path().join("x"), &bad);
    let o = optkit(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("prune.target = 1.5"), "{}", o.stderr);
    let typo = cfg_dir.write("typo.toml", "[prune]\ntarjet = 0.5\n");
    let a = args(&run_dir.path().join("x"), &typo);
    let o = optkit(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("prune.tarjet"), "{}", o.stderr);
    let a = args(&src, &settings);
    let o = optkit(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("source model folder"), "{}", o.stderr);
}
