//! Accuracy-aware quantization: when the fully quantized model loses more validation accuracy
//! than the tolerance, the layers whose quantization costs the most stay in float, one more at
//! a time, until the drop is within the tolerance. Sensitivity is measured per layer (the
//! validation accuracy with only that layer quantized). The search always ends with a
//! candidate: the first within the tolerance or, when none is, the most accurate one tried, and
//! the report says which layers stayed float and whether the tolerance was met.

use serde::Serialize;

/// Validation accuracy with only one layer quantized.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerSensitivity {
    /// The layer.
    pub layer: String,
    /// Validation accuracy with only this layer quantized.
    pub accuracy: f64,
    /// Float accuracy minus that, in points.
    pub drop_points: f64,
}

/// One candidate the search measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FallbackStep {
    /// Layers kept in float.
    pub float_layers: Vec<String>,
    /// Validation accuracy.
    pub accuracy: f64,
    /// Float accuracy minus that, in points.
    pub drop_points: f64,
}

/// What the accuracy-aware search did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FallbackReport {
    /// Largest accepted validation accuracy drop, in points.
    pub tolerance_points: f64,
    /// The float model's validation accuracy.
    pub float_accuracy: f64,
    /// Per-layer sensitivity, most sensitive first (empty when the fully quantized model was
    /// already within the tolerance).
    pub sensitivity: Vec<LayerSensitivity>,
    /// Every candidate measured, the fully quantized one first.
    pub steps: Vec<FallbackStep>,
    /// The layers the returned candidate keeps in float.
    pub kept_float: Vec<String>,
    /// The returned candidate's validation accuracy.
    pub accuracy: f64,
    /// Its drop in points.
    pub drop_points: f64,
    /// Whether it is within the tolerance.
    pub met: bool,
}

/// Runs the search over `layers` (the quantizable layers, in model order). `eval(float)`
/// returns the validation accuracy of the model with the layers in `float` kept float and the
/// others quantized.
///
/// # Errors
/// Whatever `eval` returns.
pub fn accuracy_aware<E>(
    layers: &[String],
    float_accuracy: f64,
    tolerance_points: f64,
    mut eval: impl FnMut(&[String]) -> Result<f64, E>,
) -> Result<FallbackReport, E> {
    let drop = |acc: f64| 100.0 * (float_accuracy - acc);
    let within = |acc: f64| drop(acc) <= tolerance_points + 1e-9;
    let mut steps: Vec<FallbackStep> = Vec::new();
    let mut record = |float: Vec<String>, accuracy: f64| {
        tracing::info!(
            float_layers = ?float,
            accuracy,
            drop_points = drop(accuracy),
            "accuracy-aware candidate"
        );
        steps.push(FallbackStep {
            float_layers: float,
            accuracy,
            drop_points: drop(accuracy),
        });
    };
    let all = eval(&[])?;
    record(Vec::new(), all);
    let mut sensitivity = Vec::new();
    if !within(all) {
        for layer in layers {
            let others: Vec<String> = layers.iter().filter(|l| *l != layer).cloned().collect();
            let accuracy = eval(&others)?;
            sensitivity.push(LayerSensitivity {
                layer: layer.clone(),
                accuracy,
                drop_points: drop(accuracy),
            });
        }
        // Most sensitive first; ties keep model order.
        sensitivity.sort_by(|a, b| b.drop_points.total_cmp(&a.drop_points));
        for k in 1..=layers.len() {
            let float: Vec<String> = sensitivity[..k].iter().map(|s| s.layer.clone()).collect();
            let accuracy = eval(&float)?;
            record(float, accuracy);
            if within(accuracy) {
                break;
            }
        }
    }
    let best = steps
        .iter()
        .find(|s| within(s.accuracy))
        // Otherwise the most accurate, the one with fewer float layers on a tie.
        .or_else(|| {
            steps
                .iter()
                .reduce(|best, s| if s.accuracy > best.accuracy { s } else { best })
        })
        .cloned()
        .expect("the fully quantized candidate is always measured");
    Ok(FallbackReport {
        tolerance_points,
        float_accuracy,
        sensitivity,
        met: within(best.accuracy),
        kept_float: best.float_layers,
        accuracy: best.accuracy,
        drop_points: best.drop_points,
        steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// A toy model: each quantized layer costs a fixed number of points.
    fn toy<'a>(cost: &'a [(&'a str, f64)]) -> impl FnMut(&[String]) -> Result<f64, ()> + 'a {
        move |float: &[String]| {
            Ok(0.9
                - cost
                    .iter()
                    .filter(|(l, _)| !float.iter().any(|f| f == l))
                    .map(|(_, c)| c / 100.0)
                    .sum::<f64>())
        }
    }

    #[test]
    fn keeps_the_most_sensitive_layers_float_until_within_tolerance() {
        let cost = [("a", 0.1), ("b", 2.0), ("c", 0.5), ("d", 1.0)];
        let layers = names(&["a", "b", "c", "d"]);
        let r = accuracy_aware(&layers, 0.9, 0.7, toy(&cost)).unwrap();
        assert_eq!(r.sensitivity[0].layer, "b");
        assert_eq!(r.sensitivity[1].layer, "d");
        assert_eq!(r.kept_float, names(&["b", "d"]));
        assert!(r.met && (r.drop_points - 0.6).abs() < 1e-9, "{r:?}");
        assert_eq!(r.steps.len(), 3);
        // Already within tolerance: nothing stays float, no sensitivity scan.
        let r = accuracy_aware(&layers, 0.9, 5.0, toy(&cost)).unwrap();
        assert!(r.kept_float.is_empty() && r.sensitivity.is_empty() && r.met);
    }

    #[test]
    fn returns_the_best_candidate_when_the_tolerance_cannot_be_met() {
        // Even with every layer float the model stays 1 point below (say, the activations).
        let mut eval = |float: &[String]| -> Result<f64, ()> {
            Ok(0.89
                - if float.iter().any(|f| f == "x") {
                    0.0
                } else {
                    0.02
                })
        };
        let r = accuracy_aware(&names(&["x", "y"]), 0.9, 0.5, &mut eval).unwrap();
        assert!(!r.met);
        assert_eq!(r.kept_float, names(&["x"]));
        assert!((r.accuracy - 0.89).abs() < 1e-12);
    }
}
