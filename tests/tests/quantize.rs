//! Quantization end to end: pipeline `quantize` stages (int8 PTQ and QAT on the integer path,
//! weight-only int4) with `stage`, `method` and `bits` in report.json and files that really
//! shrink; `optkit quantize` on a saved model; bad settings and damaged files are input errors
//! that name the key or file.

use optkit_tests::{TempDir, optkit, pipeline, read_json, reload, tiny_config};
use serde_json::Value;

const STAGES: &str = r#"
[[stages]]
kind = "quantize"
name = "int8-ptq"
[stages.quantize]
calibration = { method = "percentile", samples = 256 }

[[stages]]
kind = "quantize"
name = "int8-qat"
from = "baseline"
[stages.quantize]
method = "qat"
qat = { epochs = 1 }

[[stages]]
kind = "quantize"
name = "int4"
from = "baseline"
[stages.quantize]
bits = 4
granularity = "per_block"
block_size = 16

[[stages]]
kind = "quantize"
name = "mixed"
from = "baseline"
[stages.quantize]
granularity = "per_tensor"
tolerance = 0.0
"#;

#[test]
fn pipeline_stages_report_method_bits_and_real_sizes() {
    let out = TempDir::new("quant");
    let o = pipeline(tiny_config(out.path(), STAGES));
    assert_eq!(o.code, 0, "{}", o.stderr);
    let report = read_json(&out.path().join("report.json"));
    let c = report["candidates"].as_array().unwrap();
    assert_eq!(c.len(), 5);
    let num = |v: &Value, k: &str| v[k].as_f64().unwrap();
    let base = &c[0];
    for (cand, method, bits) in [(&c[1], "ptq", 8), (&c[2], "qat", 8), (&c[3], "ptq", 4)] {
        assert_eq!(cand["stage"], "quantize", "{cand}");
        assert_eq!(cand["method"], method);
        assert_eq!(cand["bits"], bits);
        // On 200 test images of a barely trained model, quantization may move accuracy a
        // little either way, not collapse it.
        assert!(
            num(cand, "accuracy") > num(base, "accuracy") - 0.08,
            "{} vs {}",
            cand["accuracy"],
            base["accuracy"]
        );
    }
    // int8 runs on the integer path from a file about a quarter of the float one.
    for cand in [&c[1], &c[2]] {
        assert!(cand["backend"].as_str().unwrap().starts_with("int8-"));
        assert!(num(cand, "size_bytes") < 0.3 * num(base, "size_bytes"));
        let file = out
            .path()
            .join(cand["name"].as_str().unwrap())
            .join("model.int8");
        assert_eq!(
            std::fs::metadata(&file).unwrap().len() as f64,
            num(cand, "size_bytes")
        );
    }
    assert_eq!(c[2]["train"]["epochs"].as_array().unwrap().len(), 1);
    // int4 weight-only: a file under a fifth of the float one, reloaded by `optkit eval` (it
    // dequantizes) to the accuracy the stage measured.
    let int4 = &c[3];
    assert!(
        num(int4, "size_bytes") < 0.2 * num(base, "size_bytes"),
        "{int4}"
    );
    assert_eq!(int4["details"]["path"], "weights_only");
    let again = reload(out.path().join("int4"));
    assert_eq!(again.eval.accuracy, num(int4, "accuracy"));
    // Accuracy-aware: a zero tolerance makes the search measure candidates and return one,
    // saying what it kept in float and whether the tolerance was met.
    let mixed = &c[4];
    let f = &mixed["details"]["fallback"];
    assert!(!f["steps"].as_array().unwrap().is_empty(), "{mixed}");
    let kept = f["kept_float"].as_array().unwrap();
    assert!(f["met"].is_boolean());
    assert!(
        (f["drop_points"].as_f64().unwrap() <= 1e-9) == f["met"].as_bool().unwrap(),
        "{f}"
    );
    assert_eq!(
        mixed["details"]["float_parts"].as_array().unwrap().len(),
        1 + kept.len()
    );
    assert!(mixed["backend"].as_str().unwrap().starts_with("int8-"));
    let md = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    assert!(md.contains("accuracy-aware (tolerance 0.00 pts"), "{md}");
    assert!(md.contains("quantize (qat, 8-bit)"), "{md}");
}

#[test]
fn optkit_quantize_a_saved_model_and_refuse_bad_settings() {
    let out = TempDir::new("quant-saved");
    let o = pipeline(tiny_config(out.path(), ""));
    assert_eq!(o.code, 0, "{}", o.stderr);
    let model = out.path().join("baseline");
    let model = model.to_str().unwrap();
    let q = TempDir::new("q");
    let qdir = q.path().to_str().unwrap();
    let o = optkit(&["quantize", "--model", model, "--out", qdir, "--bits", "4"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let r = read_json(&q.path().join("quantize.json"));
    assert!(r["size_ratio"].as_f64().unwrap() > 5.0, "{r}");
    assert_eq!(r["details"]["config"]["bits"], 4);
    let o = optkit(&["quantize", "--model", model, "--out", qdir]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let r = read_json(&q.path().join("quantize.json"));
    assert!(
        r["quantized"]["backend"]
            .as_str()
            .unwrap()
            .starts_with("int8-")
    );

    for (args, needle) in [
        (&["--bits", "3"][..], "quantize.bits = 3"),
        (&["--samples", "0"][..], "quantize.calibration.samples = 0"),
        (
            &["--percentile", "0"][..],
            "quantize.calibration.percentile = 0",
        ),
        (&["--percentile", "100.5"][..], "percentile = 100.5"),
        (&["--granularity", "per_block"][..], "per_block"),
        (&["--method", "qat", "--bits", "4"][..], "quantize.method"),
        (
            &["--method", "qat", "--qat-epochs", "0"][..],
            "quantize.qat.epochs = 0",
        ),
        (
            &["--observer", "median"][..],
            "--observer median: not one of",
        ),
    ] {
        let mut all = vec!["quantize", "--model", model, "--out", qdir];
        all.extend_from_slice(args);
        let o = optkit(&all);
        assert_eq!(o.code, 2, "{args:?}: {}", o.stderr);
        assert!(o.stderr.contains(needle), "{args:?}: {}", o.stderr);
    }

    // A damaged weight-only file is an error naming the file, not a panic.
    let wq = TempDir::new("wq");
    let o = optkit(&[
        "quantize",
        "--model",
        model,
        "--out",
        wq.path().to_str().unwrap(),
        "--bits",
        "4",
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let file = wq.path().join("weights.wq");
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&file, bytes).unwrap();
    let o = optkit(&["eval", "--model", wq.path().to_str().unwrap()]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(
        o.stderr.contains("weights.wq") && o.stderr.contains("checksum"),
        "{}",
        o.stderr
    );
}

#[test]
fn pipeline_refuses_bad_quantize_stages_before_training() {
    let out = TempDir::new("quant-bad");
    for (stage, needle) in [
        ("bits = 2", "stages[1].quantize.bits = 2"),
        (
            "granularity = \"per_block\"",
            "stages[1].quantize.granularity = per_block",
        ),
        (
            "calibration = { samples = 0 }",
            "stages[1].quantize.calibration.samples = 0",
        ),
        ("qat = { epoch = 1 }", "unknown field"),
    ] {
        let o = pipeline(tiny_config(
            out.path(),
            &format!("[[stages]]\nkind = \"quantize\"\n[stages.quantize]\n{stage}\n"),
        ));
        assert_eq!(o.code, 2, "{stage}: {}", o.stderr);
        assert!(o.stderr.contains(needle), "{stage}: {}", o.stderr);
        assert!(
            !out.path().join("baseline").exists(),
            "trained before failing"
        );
    }
    // A family the integer path does not run is refused with the way out.
    let o = pipeline(
        tiny_config(
            out.path(),
            "[[stages]]\nkind = \"quantize\"\n[stages.quantize]\nbits = 8\n",
        )
        .replace(
            "arch = \"cnn\"\nblocks = [4, 8]\nfc = 16",
            "arch = \"mobilenet_v2\"\nwidth = 0.25",
        ),
    );
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(o.stderr.contains("weights_only = true"), "{}", o.stderr);
}
