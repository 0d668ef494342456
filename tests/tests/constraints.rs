//! The accuracy gate: `[constraints]` names the best candidate in report.json (with every other
//! candidate's reasons), and a run whose candidates all miss them exits 1 with everything kept
//! and the baseline named as the fallback.

use optkit_tests::{TempDir, pipeline, read_json, tiny_config};

const QUANTIZE: &str = r#"
[[stages]]
kind = "quantize"
name = "int8"
"#;

#[test]
fn the_best_candidate_meeting_the_constraints_is_named() {
    let dir = TempDir::new("constraints");
    let out = dir.path().join("run");
    let extra =
        format!("[constraints]\nmax_accuracy_drop = \"50%\"\nprefer = \"size\"\n{QUANTIZE}");
    let o = pipeline(tiny_config(&out, &extra));
    assert_eq!(o.code, 0, "{}", o.stderr);
    let r = read_json(&out.join("report.json"));
    // The int8 model is about 4x smaller and within the (loose) drop.
    assert_eq!(r["best"], "int8", "{}", r["selection"]);
    assert_eq!(r["selection"]["met"], true);
    let verdicts = r["selection"]["verdicts"].as_array().unwrap();
    assert_eq!(verdicts.len(), 2);
    assert!(verdicts.iter().all(|v| v["meets"] == true), "{verdicts:?}");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("## Best candidate: int8"), "{md}");
}

#[test]
fn constraints_nobody_meets_exit_1_and_fall_back_to_the_baseline() {
    let dir = TempDir::new("constraints-unmet");
    let out = dir.path().join("run");
    // No model runs a batch-1 forward pass in a nanosecond.
    let extra = format!("[constraints]\nmax_latency_ms = 0.000001\n{QUANTIZE}");
    let o = pipeline(tiny_config(&out, &extra));
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(
        o.stderr.contains("constraints not met: no candidate meets"),
        "{}",
        o.stderr
    );
    let r = read_json(&out.join("report.json"));
    assert_eq!(r["best"], "baseline");
    assert_eq!(r["selection"]["met"], false);
    for v in r["selection"]["verdicts"].as_array().unwrap() {
        assert_eq!(v["meets"], false);
        assert!(v["reasons"][0].as_str().unwrap().contains("latency"), "{v}");
    }
    // Everything the run made is kept.
    assert!(out.join("baseline/model.json").is_file());
    assert!(out.join("int8/model.int8").is_file());
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("**No candidate meets the constraints.**"),
        "{md}"
    );
    assert!(md.contains("- int8 does not: latency"), "{md}");
}

#[test]
fn bad_constraints_are_refused_before_training() {
    let dir = TempDir::new("constraints-bad");
    let out = dir.path().join("run");
    for (extra, want) in [
        (
            "[constraints]\nmax_accuracy_drop = \"half\"\n",
            "constraints.max_accuracy_drop",
        ),
        ("[constraints]\nmax_macs = 0\n", "constraints.max_macs = 0"),
        ("[constraints]\nmax_size = 10\n", "unknown field `max_size`"),
    ] {
        let o = pipeline(tiny_config(&out, extra));
        assert_eq!(o.code, 2, "{extra}: {}", o.stderr);
        assert!(o.stderr.contains(want), "{extra}: {}", o.stderr);
        assert!(!out.join("report.json").exists());
    }
}
