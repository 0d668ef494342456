//! report.html: a self-contained page that parses as strict XML, names every candidate in its
//! table, marks the best one, and holds the trade-off, per-layer and training plots as SVG.

use optkit_tests::{TempDir, pipeline, read_json, tiny_config};

#[test]
fn the_html_report_parses_and_shows_every_candidate_and_plot() {
    let dir = TempDir::new("html");
    let out = dir.path().join("run");
    let extra = r#"
[constraints]
max_accuracy_drop = "50%"
[[stages]]
kind = "prune"
[stages.prune]
method = "unstructured"
target = 0.5
finetune_epochs = 1
[[stages]]
kind = "quantize"
"#;
    let o = pipeline(tiny_config(&out, extra));
    assert_eq!(o.code, 0, "{}", o.stderr);
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    let doc = roxmltree::Document::parse_with_options(
        &html,
        roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("report.html is not well-formed: {e}"));
    // Self-contained: no scripts, no external resources.
    for node in doc.descendants().filter(|n| n.is_element()) {
        let tag = node.tag_name().name();
        assert_ne!(tag, "script");
        for attr in ["src", "href"] {
            if let Some(v) = node.attribute(attr) {
                assert!(!v.contains("://"), "{tag} {attr}={v}");
            }
        }
    }
    let table = doc
        .descendants()
        .find(|n| n.attribute("id") == Some("candidates"))
        .expect("candidates table");
    let rows: Vec<String> = table
        .children()
        .filter(|n| n.has_tag_name("tr"))
        .skip(1)
        .map(|tr| {
            tr.first_element_child()
                .unwrap()
                .text()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(rows, ["baseline", "prune", "quantize"]);
    let report = read_json(&out.join("report.json"));
    let best = report["best"].as_str().unwrap();
    let best_row = table
        .children()
        .find(|n| n.attribute("class") == Some("best"))
        .expect("a best row");
    assert_eq!(best_row.first_element_child().unwrap().text(), Some(best));
    // Plots: accuracy vs latency, vs size, per-layer sparsity (prune), bits (quantize) and
    // training curves; each an inline SVG with drawn content.
    let svgs: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("svg"))
        .collect();
    assert_eq!(svgs.len(), 5, "{} svg elements", svgs.len());
    for svg in &svgs {
        assert!(svg.descendants().filter(|n| n.is_element()).count() > 10);
    }
    let text: String = doc
        .descendants()
        .filter_map(|n| n.text())
        .collect::<Vec<_>>()
        .join(" ");
    for want in [
        "Accuracy against latency",
        "Accuracy against size",
        "prune: per-layer sparsity",
        "quantize: bits per layer",
        "Training curves",
        "Pareto front",
    ] {
        assert!(text.contains(want), "missing {want}");
    }
}
