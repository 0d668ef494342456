//! Resuming a pipeline: a second run into the same directory reuses every stage whose
//! settings, inputs and data are unchanged, a changed stage reruns with the stages after it,
//! a stage without its completion marker (killed half-way) or with changed files reruns, and
//! `--force <stage>` redoes one.

use optkit_tests::{TempDir, optkit, pipeline, read_json, tiny_config};
use serde_json::Value;

const CHAIN: &str = r#"
[[stages]]
kind = "prune"
[stages.prune]
method = "structured"
target = 0.5
finetune_epochs = 1
[[stages]]
kind = "quantize"
"#;

fn reused(out: &std::path::Path) -> Vec<String> {
    let r = read_json(&out.join("report.json"));
    r["reused"]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

fn figures(out: &std::path::Path) -> Vec<(String, f64, u64)> {
    let r = read_json(&out.join("report.json"));
    r["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c: &Value| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["accuracy"].as_f64().unwrap(),
                c["size_bytes"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn unchanged_stages_are_reused_and_changed_ones_rerun() {
    let dir = TempDir::new("resume");
    let out = dir.path().join("run");
    let o = pipeline(tiny_config(&out, CHAIN));
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(reused(&out).is_empty());
    let first = figures(&out);
    for stage in ["baseline", "prune", "quantize"] {
        assert!(out.join(stage).join("stage.done.json").is_file(), "{stage}");
    }

    // The same config again: nothing runs, the report is the same.
    let o = pipeline(tiny_config(&out, CHAIN));
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(reused(&out), ["baseline", "prune", "quantize"]);
    assert_eq!(figures(&out), first);

    // A changed prune target: the baseline is reused; prune and the quantize stage after it
    // run again.
    let changed = CHAIN.replace("target = 0.5", "target = 0.25");
    let o = pipeline(tiny_config(&out, &changed));
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(reused(&out), ["baseline"]);
    assert!(figures(&out)[1].2 > first[1].2, "less pruned, larger");

    // A stage killed half-way has no marker: it runs again, the others are reused.
    std::fs::remove_file(out.join("quantize/stage.done.json")).unwrap();
    let o = pipeline(tiny_config(&out, &changed));
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(reused(&out), ["baseline", "prune"]);

    // A model file changed after the stage finished: that stage runs again.
    let weights = out.join("baseline/weights.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&weights, bytes).unwrap();
    let o = pipeline(tiny_config(&out, &changed));
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        !reused(&out).contains(&"baseline".to_string()),
        "{:?}",
        reused(&out)
    );

    // --force redoes one stage.
    let cfg = dir.write("run.toml", tiny_config(&out, &changed));
    let o = optkit(&[
        "pipeline",
        "--config",
        cfg.to_str().unwrap(),
        "--force",
        "quantize",
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(reused(&out), ["baseline", "prune"]);
    let o = optkit(&[
        "pipeline",
        "--config",
        cfg.to_str().unwrap(),
        "--force",
        "nope",
    ]);
    assert_eq!(o.code, 2);
    assert!(
        o.stderr.contains(
            "--force \"nope\": no stage has this name; stages: baseline, prune, quantize"
        ),
        "{}",
        o.stderr
    );
}
