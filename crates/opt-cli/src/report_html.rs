//! `report.html`: the run report as one self-contained page (no scripts, no network): the best
//! candidate and why, the candidates' table, and SVG plots drawn with `plotters` — accuracy
//! against latency and against size with the Pareto front, per-layer sparsity and bit-width
//! bars, and the training curves of every stage that trained. The page is well-formed XML
//! (the SVG plots are inline), so tests parse it strictly.

use opt_core::report::{Candidate, PipelineReport};
use plotters::prelude::*;
use serde_json::Value;

const WIDTH: u32 = 640;
const HEIGHT: u32 = 380;

/// Escapes text for HTML/XML.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Indices of the candidates no other candidate beats on both accuracy (higher) and `cost`
/// (lower), sorted by cost.
fn pareto(cands: &[Candidate], cost: impl Fn(&Candidate) -> f64) -> Vec<usize> {
    let mut front: Vec<usize> = (0..cands.len())
        .filter(|&i| {
            let (a, c) = (cands[i].eval.accuracy, cost(&cands[i]));
            !cands.iter().any(|o| {
                let (oa, oc) = (o.eval.accuracy, cost(o));
                oa >= a && oc <= c && (oa > a || oc < c)
            })
        })
        .collect();
    front.sort_by(|&a, &b| cost(&cands[a]).total_cmp(&cost(&cands[b])));
    front
}

/// Axis range with a margin; a single value gets a window around it.
fn range(values: impl Iterator<Item = f64>, log: bool) -> (f64, f64) {
    let (mut lo, mut hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
        (l.min(v), h.max(v))
    });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if log {
        // Whole decades, so the axis always carries labels.
        let lo = 10f64.powf(lo.max(1e-12).log10().floor());
        let hi = 10f64.powf(hi.max(1e-12).log10().ceil());
        return (lo, if hi > lo { hi } else { lo * 10.0 });
    }
    if hi - lo < 1e-9 {
        lo -= 0.05 * lo.abs().max(1e-2);
        hi += 0.05 * hi.abs().max(1e-2);
    }
    let pad = 0.08 * (hi - lo);
    (lo - pad, hi + pad)
}

type Plot = Result<String, String>;

/// A number with a short SI suffix (12.5k, 3M) for axis labels.
fn human(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if a >= 1e3 {
        format!("{}k", trim(v / 1e3))
    } else {
        trim(v)
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn err(e: impl std::fmt::Display) -> String {
    format!("drawing a plot: {e}")
}

/// Accuracy (y) against a cost (x), every candidate labelled, the Pareto front joined.
fn tradeoff_plot(
    cands: &[Candidate],
    best: Option<&str>,
    title: &str,
    x_desc: &str,
    cost: impl Fn(&Candidate) -> f64 + Copy,
    log_x: bool,
) -> Plot {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let (x0, x1) = range(cands.iter().map(cost), log_x);
        let (y0, y1) = range(cands.iter().map(|c| c.eval.accuracy), false);
        let (y0, y1) = (y0.max(0.0), y1.min(1.0));
        let front = pareto(cands, cost);
        let mut b = ChartBuilder::on(&root);
        b.caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56);
        let points: Vec<(f64, f64, &str)> = cands
            .iter()
            .map(|c| (cost(c), c.eval.accuracy, c.name.as_str()))
            .collect();
        let front_xy: Vec<(f64, f64)> = front
            .iter()
            .map(|&i| (cost(&cands[i]), cands[i].eval.accuracy))
            .collect();
        let on_front = |name: &str| front.iter().any(|&i| cands[i].name == name);
        macro_rules! draw {
            ($chart:expr) => {{
                let mut chart = $chart;
                chart
                    .configure_mesh()
                    .x_desc(x_desc)
                    .x_label_formatter(&|v| human(*v))
                    .y_desc("test accuracy")
                    .y_label_formatter(&|v| format!("{v:.3}"))
                    .draw()
                    .map_err(err)?;
                chart
                    .draw_series(LineSeries::new(front_xy.clone(), RED.stroke_width(2)))
                    .map_err(err)?
                    .label("Pareto front")
                    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RED));
                chart
                    .draw_series(points.iter().map(|&(x, y, name)| {
                        let color = if Some(name) == best {
                            GREEN.mix(0.9)
                        } else if on_front(name) {
                            RED.mix(0.9)
                        } else {
                            BLUE.mix(0.7)
                        };
                        EmptyElement::at((x, y))
                            + Circle::new((0, 0), 5, color.filled())
                            + Text::new(name.to_string(), (7, -12), ("sans-serif", 12))
                    }))
                    .map_err(err)?;
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .draw()
                    .map_err(err)?;
            }};
        }
        if log_x {
            draw!(
                b.build_cartesian_2d((x0..x1).log_scale(), y0..y1)
                    .map_err(err)?
            );
        } else {
            draw!(b.build_cartesian_2d(x0..x1, y0..y1).map_err(err)?);
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Vertical bars of `values` (name, value) between 0 and `max`.
fn bar_plot(title: &str, y_desc: &str, values: &[(String, f64)], max: f64) -> Plot {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let n = values.len().max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(70)
            .y_label_area_size(56)
            // A segmented 0..k has k + 1 segments: one per bar.
            .build_cartesian_2d((0..n - 1).into_segmented(), 0.0..max)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .y_desc(y_desc)
            .x_labels(n)
            .x_label_style(("sans-serif", 11))
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => {
                    values.get(*i).map(|v| v.0.clone()).unwrap_or_default()
                }
                _ => String::new(),
            })
            .draw()
            .map_err(err)?;
        chart
            .draw_series(
                Histogram::vertical(&chart)
                    .style(BLUE.mix(0.6).filled())
                    .margin(6)
                    .data(values.iter().enumerate().map(|(i, v)| (i, v.1))),
            )
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Validation accuracy per epoch of every candidate that trained.
fn curves_plot(cands: &[Candidate]) -> Option<Plot> {
    let trained: Vec<&Candidate> = cands.iter().filter(|c| c.train.is_some()).collect();
    if trained.is_empty() {
        return None;
    }
    let mut svg = String::new();
    let drawn = (|| -> Result<(), String> {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let epochs = trained
            .iter()
            .filter_map(|c| c.train.as_ref())
            .map(|t| t.epochs.len())
            .max()
            .unwrap_or(1)
            .max(2);
        let (y0, y1) = range(
            trained
                .iter()
                .filter_map(|c| c.train.as_ref())
                .flat_map(|t| t.epochs.iter().map(|e| e.val_accuracy)),
            false,
        );
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Training curves (validation accuracy per epoch)",
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(1f64..epochs as f64, y0.max(0.0)..y1.min(1.0))
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("epoch of the stage's training")
            .y_desc("validation accuracy")
            .y_label_formatter(&|v| format!("{v:.3}"))
            .draw()
            .map_err(err)?;
        for (k, c) in trained.iter().enumerate() {
            let color = Palette99::pick(k).to_rgba();
            let t = c.train.as_ref().expect("filtered");
            let pts: Vec<(f64, f64)> = t
                .epochs
                .iter()
                .map(|e| (e.epoch as f64, e.val_accuracy))
                .collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                .map_err(err)?
                .label(c.name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(err)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
        Ok(())
    })();
    Some(drawn.map(|()| svg))
}

/// The details of a candidate's `kind` step: its own details when its stage is that kind, or
/// that step of a tune stage's chosen trial.
fn step_details<'a>(c: &'a Candidate, kind: &str) -> Option<&'a Value> {
    let d = c.details.as_ref()?;
    if c.stage == kind {
        return Some(d);
    }
    if c.stage != "tune" {
        return None;
    }
    d["chosen_steps"]
        .as_array()?
        .iter()
        .find(|s| s["kind"] == kind)
        .map(|s| &s["details"])
}

/// Per-layer sparsity: zeroed weights (unstructured) or removed channels (structured).
fn sparsity_bars(d: &Value) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = d["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| Some((l["name"].as_str()?.to_string(), l["ratio"].as_f64()?)))
        .collect();
    out.extend(
        d["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|g| {
                let (before, after) = (g["before"].as_f64()?, g["after"].as_f64()?);
                Some((
                    g["name"].as_str()?.to_string(),
                    if before > 0.0 {
                        1.0 - after / before
                    } else {
                        0.0
                    },
                ))
            }),
    );
    out
}

fn bits_bars(d: &Value) -> Vec<(String, f64)> {
    d["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| Some((l["name"].as_str()?.to_string(), l["bits"].as_f64()?)))
        .collect()
}

fn figure(svg: Plot, caption: &str) -> String {
    match svg {
        // Drop plotters' XML-less header differences: the SVG element is inlined as is.
        Ok(svg) => format!(
            "<figure>{svg}<figcaption>{}</figcaption></figure>\n",
            esc(caption)
        ),
        Err(e) => format!("<p class=\"error\">{}</p>\n", esc(&e)),
    }
}

fn ratio(v: f64, base: f64) -> String {
    if base == 0.0 {
        String::new()
    } else {
        format!(" <small>({:.2}x)</small>", v / base)
    }
}

/// The whole page.
pub fn render(r: &PipelineReport) -> String {
    let cands = &r.candidates;
    let best = r.best.as_deref();
    let base = cands
        .iter()
        .find(|c| c.stage == "baseline")
        .or(cands.first());
    let mut h = String::new();
    h.push_str("<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n<title>optkit report</title>\n<style>\n");
    h.push_str(
        "body{font-family:sans-serif;margin:2em;color:#222;max-width:1400px}\
         table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}\
         th:first-child,td:first-child,td:nth-child(2){text-align:left}tr.best{background:#e6f7e6;font-weight:bold}\
         .box{border:1px solid #8b8;background:#f4fbf4;padding:8px 14px;margin:1em 0}.box.unmet{border-color:#c66;background:#fdf0f0}\
         figure{display:inline-block;margin:8px;vertical-align:top}figcaption{font-size:12px;color:#555;max-width:640px}\
         small{color:#666}.error{color:#b00}\n",
    );
    h.push_str("</style>\n</head>\n<body>\n<h1>optkit report</h1>\n");
    h.push_str(&format!(
        "<p>config <code>{}</code> · data: {} ({} train / {} validation / {} test) · backend {} · wall time {:.1} s</p>\n",
        esc(&r.config),
        esc(&r.data),
        r.data_items[0],
        r.data_items[1],
        r.data_items[2],
        esc(&r.backend),
        r.seconds
    ));
    if !r.reused.is_empty() {
        h.push_str(&format!(
            "<p>Reused from an earlier run into this directory (same settings, inputs and data; measured then): {}.</p>\n",
            esc(&r.reused.join(", "))
        ));
    }
    if let Some(sel) = &r.selection {
        h.push_str(&format!(
            "<div class=\"box{}\" id=\"best\"><h2>Best candidate: {}</h2><p>{}{}.</p><p>Constraints: {} (accuracy is the test split's).</p>",
            if sel.met { "" } else { " unmet" },
            esc(&sel.best),
            if sel.met { "" } else { "<b>No candidate meets the constraints.</b> " },
            esc(&sel.explanation),
            esc(&sel.constraints.describe())
        ));
        let misses: Vec<String> = sel
            .verdicts
            .iter()
            .filter(|v| !v.meets)
            .map(|v| {
                format!(
                    "<li>{} does not: {}</li>",
                    esc(&v.name),
                    esc(&v.reasons.join("; "))
                )
            })
            .collect();
        if !misses.is_empty() {
            h.push_str(&format!("<ul>{}</ul>", misses.join("")));
        }
        h.push_str("</div>\n");
    }
    if let Some(d) = &r.deployed {
        let files: Vec<String> = d
            .files
            .iter()
            .map(|f| {
                format!(
                    "<li><code>{}</code>: {} bytes, sha256 <code>{}</code></li>",
                    esc(&f.path),
                    f.bytes,
                    esc(&f.sha256)
                )
            })
            .collect();
        h.push_str(&format!(
            "<div class=\"box\" id=\"deployed\"><h2>Deployment</h2><p>{} ({}) in <code>{}</code> \
             with manifest.json:</p><ul>{}</ul></div>\n",
            esc(&d.candidate),
            esc(&d.kind),
            esc(&d.path),
            files.join("")
        ));
    }
    h.push_str("<h2>Candidates</h2>\n<p><small>Ratios are against the baseline. MACs: one multiply-accumulate = 1 MAC, per image. Latency: batch 1, p50 / p95.</small></p>\n<table id=\"candidates\">\n<tr><th>candidate</th><th>stage</th><th>accuracy</th><th>Δ acc (pts)</th><th>params</th><th>non-zero</th><th>MACs</th><th>size (bytes)</th><th>latency (ms)</th><th>throughput (img/s)</th></tr>\n");
    for c in cands {
        let e = &c.eval;
        let b = base.map(|b| &b.eval);
        let r = |v: f64, f: fn(&opt_core::eval::EvalReport) -> f64| {
            b.map(|b| ratio(v, f(b))).unwrap_or_default()
        };
        h.push_str(&format!(
            "<tr{}><td>{}</td><td>{}</td><td>{:.4}</td><td>{}</td><td>{}{}</td><td>{}{}</td><td>{}{}</td><td>{}{}</td><td>{:.3} / {:.3}{}</td><td>{:.0}{}</td></tr>\n",
            if Some(c.name.as_str()) == best { " class=\"best\"" } else { "" },
            esc(&c.name),
            esc(&c.stage_label()),
            e.accuracy,
            b.map(|b| format!("{:+.2}", 100.0 * (e.accuracy - b.accuracy))).unwrap_or_default(),
            e.params,
            r(e.params as f64, |b| b.params as f64),
            e.nonzero_params,
            r(e.nonzero_params as f64, |b| b.nonzero_params as f64),
            e.macs,
            r(e.macs as f64, |b| b.macs as f64),
            e.size_bytes,
            r(e.size_bytes as f64, |b| b.size_bytes as f64),
            e.latency_b1_ms_p50,
            e.latency_b1_ms_p95,
            r(e.latency_b1_ms_p50, |b| b.latency_b1_ms_p50),
            e.throughput_per_s,
            r(e.throughput_per_s, |b| b.throughput_per_s),
        ));
    }
    h.push_str("</table>\n<h2>Trade-offs</h2>\n");
    h.push_str(&figure(
        tradeoff_plot(cands, best, "Accuracy against latency", "batch-1 latency, p50 (ms)", |c| c.eval.latency_b1_ms_p50, false),
        "Every candidate; red: the Pareto front (no other candidate is both more accurate and faster); green: the best candidate.",
    ));
    h.push_str(&figure(
        tradeoff_plot(cands, best, "Accuracy against size", "saved model (bytes, log scale)", |c| c.eval.size_bytes as f64, true),
        "Size is the saved model file(s) in raw bytes. Red: the Pareto front (more accurate and smaller); green: the best candidate.",
    ));
    let mut layer_plots = String::new();
    for c in cands {
        if let Some(d) = step_details(c, "prune") {
            let bars = sparsity_bars(d);
            if !bars.is_empty() {
                layer_plots.push_str(&figure(
                    bar_plot(&format!("{}: per-layer sparsity", c.name), "fraction removed", &bars, 1.0),
                    &format!("{}: zeroed weights (unstructured) or removed channels (structured) per layer.", c.name),
                ));
            }
        }
        if let Some(d) = step_details(c, "quantize") {
            let bars = bits_bars(d);
            if !bars.is_empty() {
                layer_plots.push_str(&figure(
                    bar_plot(
                        &format!("{}: bits per layer", c.name),
                        "weight bits",
                        &bars,
                        32.0,
                    ),
                    &format!(
                        "{}: bits of each layer's stored weights (32 = kept float).",
                        c.name
                    ),
                ));
            }
        }
    }
    if !layer_plots.is_empty() {
        h.push_str("<h2>Per layer</h2>\n");
        h.push_str(&layer_plots);
    }
    if let Some(plot) = curves_plot(cands) {
        h.push_str("<h2>Training</h2>\n");
        h.push_str(&figure(plot, "Validation accuracy after each epoch of each stage's own training (baseline training, fine-tuning, distillation)."));
    }
    h.push_str("<h2>Stages</h2>\n");
    for c in cands {
        h.push_str(&format!(
            "<h3 id=\"c-{}\">{}</h3>\n<p>{} · model folder <code>{}</code> · {}</p>\n",
            esc(&c.name),
            esc(&c.name),
            esc(&c.arch),
            esc(&c.model_dir),
            esc(&c.eval.device)
        ));
        if !c.summary.is_empty() {
            let items: Vec<String> = c
                .summary
                .iter()
                .map(|l| format!("<li>{}</li>", esc(l)))
                .collect();
            h.push_str(&format!("<ul>{}</ul>\n", items.join("")));
        }
    }
    h.push_str("</body>\n</html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_finds_the_front() {
        assert_eq!(esc("a<b & \"c\">"), "a&lt;b &amp; &quot;c&quot;&gt;");
        assert_eq!(range(std::iter::empty(), false), (0.0, 1.0));
        let (lo, hi) = range([0.5, 0.5].into_iter(), false);
        assert!(lo < 0.5 && hi > 0.5 && hi - lo < 0.1);
        assert_eq!(range([2.6e5, 5.9e5].into_iter(), true), (1e5, 1e6));
        assert_eq!(
            (human(250_000.0), human(0.25), human(3e6)),
            ("250k".into(), "0.25".into(), "3M".into())
        );
    }
}
