//! A tiny pipeline end to end on each compiled backend: training, artifacts on disk, the
//! report.json contract, and `optkit eval` reproducing the accuracy from the saved model.

use optkit_tests::{TempDir, optkit, reload, tiny_config, wgpu_available};
use serde_json::Value;

const CONTRACT: [&str; 12] = [
    "name",
    "stage",
    "accuracy",
    "params",
    "nonzero_params",
    "macs",
    "size_bytes",
    "size_gzip_bytes",
    "latency_b1_ms_p50",
    "latency_b1_ms_p95",
    "throughput_per_s",
    "backend",
];

/// Enough timing for a test; accuracy is computed on the whole test split regardless.
fn run_tiny(backend: &str, epochs: usize) -> (TempDir, Value) {
    let out = TempDir::new(backend);
    let cfg_dir = TempDir::new("cfg");
    let cfg = tiny_config(out.path(), "").replace("epochs = 2", &format!("epochs = {epochs}"));
    let cfg = cfg_dir.write("tiny.toml", cfg);
    let o = optkit(&[
        "pipeline",
        "--config",
        cfg.to_str().unwrap(),
        "--backend",
        backend,
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let report: Value =
        serde_json::from_slice(&std::fs::read(out.path().join("report.json")).unwrap()).unwrap();
    (out, report)
}

fn check_report(report: &Value, backend: &str) {
    let c = &report["candidates"][0];
    for key in CONTRACT {
        assert!(!c[key].is_null(), "report.json candidate lacks {key}: {c}");
    }
    assert_eq!(c["stage"], "baseline");
    assert_eq!(c["backend"], backend);
    // cnn [4, 8] fc 16 on 28x28: conv 36 + bn 8 + conv 288 + bn 16 + fc 392*16+16 + head 16*10+10
    assert_eq!(c["params"], 36 + 8 + 288 + 16 + 6288 + 170);
    assert_eq!(
        c["macs"],
        28 * 28 * 4 * 9 + 14 * 14 * 8 * 4 * 9 + 392 * 16 + 160
    );
    let acc = c["accuracy"].as_f64().unwrap();
    assert!(
        acc > 0.3,
        "tiny model should beat chance (0.1) clearly: {acc}"
    );
    assert!(c["size_bytes"].as_u64().unwrap() > 4 * 6806);
    assert!(c["latency_b1_ms_p95"].as_f64().unwrap() >= c["latency_b1_ms_p50"].as_f64().unwrap());
}

#[test]
fn flex_pipeline_writes_artifacts_and_eval_reproduces_accuracy() {
    let (out, report) = run_tiny("flex", 2);
    check_report(&report, "flex");
    let stage = out.path().join("baseline");
    for f in ["model.json", "weights.safetensors", "report.json"] {
        assert!(stage.join(f).is_file(), "{f}");
    }
    let md = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    assert!(md.contains("| baseline | baseline |"), "{md}");
    assert!(md.contains("one multiply-accumulate = 1 MAC"));

    let again = reload(stage.clone());
    assert_eq!(Some(again.eval.accuracy), again.recorded_accuracy);
    assert_eq!(
        again.eval.accuracy,
        report["candidates"][0]["accuracy"].as_f64().unwrap()
    );

    // Bad weights are input errors, not panics.
    let weights = std::fs::read(stage.join("weights.safetensors")).unwrap();
    std::fs::write(
        stage.join("weights.safetensors"),
        &weights[..weights.len() / 2],
    )
    .unwrap();
    let o = optkit(&["eval", "--model", stage.to_str().unwrap()]);
    assert_eq!(o.code, 2);
    assert!(
        o.stderr.contains("weights.safetensors") && o.stderr.contains("truncated"),
        "{}",
        o.stderr
    );
    std::fs::write(stage.join("weights.safetensors"), &weights).unwrap();
    let meta = std::fs::read_to_string(stage.join("model.json")).unwrap();
    std::fs::write(
        stage.join("model.json"),
        meta.replace("\"fc\": 16", "\"fc\": 8"),
    )
    .unwrap();
    let o = optkit(&["eval", "--model", stage.to_str().unwrap()]);
    assert_eq!(o.code, 2);
    assert!(
        o.stderr
            .contains("head.weight has shape [16, 10] in the file, the model needs [8, 10]"),
        "{}",
        o.stderr
    );
}

#[test]
fn ndarray_pipeline() {
    let (_out, report) = run_tiny("ndarray", 2);
    check_report(&report, "ndarray");
}

/// Needs a wgpu adapter: on a machine without one it is reported as not run, unless
/// `OPTKIT_REQUIRE_WGPU=1` (CI) makes that a failure.
#[test]
fn wgpu_pipeline() {
    if !wgpu_available("wgpu_pipeline") {
        return;
    }
    let (_out, report) = run_tiny("wgpu", 2);
    check_report(&report, "wgpu");
    let device = report["candidates"][0]["device"]
        .as_str()
        .unwrap()
        .to_string();
    eprintln!("wgpu adapter: {device}");
}

/// A small-input MobileNetV2 and a LeNet-5 trained in one run: two candidates, and the
/// MobileNet reloads with `optkit eval` to the same accuracy.
#[test]
fn mobilenet_and_second_baseline_in_one_run() {
    let out = TempDir::new("mobilenet");
    let cfg_dir = TempDir::new("cfg");
    let cfg = tiny_config(
        out.path(),
        "[[stages]]\nkind = \"baseline\"\nname = \"lenet5\"\nmodel = { arch = \"lenet5\" }\n",
    )
    .replace(
        "arch = \"cnn\"\nblocks = [4, 8]\nfc = 16",
        "arch = \"mobilenet_v2\"\nwidth = 0.25",
    )
    .replace("epochs = 2", "epochs = 1");
    let cfg = cfg_dir.write("mobile.toml", cfg);
    let o = optkit(&[
        "pipeline",
        "--config",
        cfg.to_str().unwrap(),
        "--backend",
        "flex",
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let report: Value =
        serde_json::from_slice(&std::fs::read(out.path().join("report.json")).unwrap()).unwrap();
    let c = report["candidates"].as_array().unwrap();
    assert_eq!(c.len(), 2);
    assert!(
        c[0]["arch"].as_str().unwrap().starts_with("mobilenet_v2"),
        "{}",
        c[0]["arch"]
    );
    assert_eq!(c[1]["arch"], "lenet5 conv1=20 conv2=50 fc1=500");
    assert_eq!(c[1]["params"], 431_080);
    let model: Value = serde_json::from_slice(
        &std::fs::read(out.path().join("baseline").join("model.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(model["spec"]["arch"]["arch"], "mobilenet_v2");
    assert_eq!(model["spec"]["arch"]["stem_stride"], 1);
    let again = reload(out.path().join("baseline"));
    assert_eq!(again.eval.accuracy, c[0]["accuracy"].as_f64().unwrap());
    assert_eq!(again.eval.params, c[0]["params"].as_u64().unwrap());
}
