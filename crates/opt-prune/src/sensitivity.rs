//! Sensitivity scan: prune each layer (unstructured) or channel group (structured) alone at
//! several ratios, measure validation accuracy without fine-tuning, and derive per-unit ratios
//! that meet the global target while giving the sensitive units less to lose.
//!
//! The derivation follows the classic "equal accuracy drop" rule: every free unit gets the
//! largest ratio whose accuracy drop stays within one tolerance (linear between the scanned
//! ratios, the drop curve made non-decreasing), and the tolerance is the smallest that removes
//! the target fraction (of the weights for unstructured pruning, of the channels for
//! structured), found by bisection and blended at the last step so the target is met exactly.

use serde::{Deserialize, Serialize};

use crate::error::{PruneError, Result};

/// Settings of the scan (`[stages.prune.sensitivity]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SensitivityConfig {
    /// Ratios every unit is pruned to on its own, ascending, each in (0, 1).
    pub ratios: Vec<f64>,
    /// Validation images per measurement (the first ones of the validation split); 0 = all.
    pub samples: usize,
}

impl Default for SensitivityConfig {
    fn default() -> Self {
        Self {
            ratios: vec![0.25, 0.5, 0.75, 0.9],
            samples: 2000,
        }
    }
}

impl SensitivityConfig {
    /// Checks the ratios; keys are named under `prefix` (`prune.sensitivity`).
    pub fn validate(&self, prefix: &str) -> Result<()> {
        let key = format!("{prefix}.ratios");
        let shown = format!("{:?}", self.ratios);
        if self.ratios.is_empty() {
            return Err(PruneError::invalid(
                key,
                shown,
                "list at least one ratio, for example [0.25, 0.5, 0.75, 0.9]",
            ));
        }
        if self.ratios.iter().any(|r| !(*r > 0.0 && *r < 1.0)) {
            return Err(PruneError::invalid(
                key,
                shown,
                "every ratio must be strictly between 0 and 1",
            ));
        }
        if self.ratios.windows(2).any(|w| w[0] >= w[1]) {
            return Err(PruneError::invalid(
                key,
                shown,
                "list the ratios in ascending order without repeats",
            ));
        }
        Ok(())
    }

    /// The largest scanned ratio.
    pub fn max_ratio(&self) -> f64 {
        self.ratios.last().copied().unwrap_or(0.0)
    }
}

/// One layer or channel group of the scan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensitivityRow {
    /// Layer (unstructured) or channel group (structured) name.
    pub name: String,
    /// Weights (unstructured) or channels (structured): its share of the target.
    pub size: usize,
    /// Validation accuracy with only this unit pruned, one per scanned ratio; empty when the
    /// ratio is fixed by an override.
    pub accuracy: Vec<f64>,
    /// The ratio it is pruned to: derived from the scan, or the override's.
    pub ratio: f64,
    /// Whether an override fixed the ratio (it is then not derived).
    pub fixed: bool,
}

/// The scan and the ratios derived from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensitivityReport {
    /// Scanned ratios.
    pub ratios: Vec<f64>,
    /// Validation images per measurement.
    pub samples: usize,
    /// Validation accuracy of the unpruned model on those images.
    pub baseline: f64,
    /// The target the derived ratios meet.
    pub target: f64,
    /// The largest accuracy drop (of one unit pruned alone) the derived ratios accept.
    pub tolerance: f64,
    /// One row per unit.
    pub rows: Vec<SensitivityRow>,
}

impl SensitivityReport {
    /// Markdown: a sentence and the table (accuracy per ratio, derived ratio).
    pub fn markdown(&self, unit: &str) -> String {
        let mut s = format!(
            "sensitivity scan ({unit} pruned alone, no fine-tuning, {} validation images, \
             unpruned {:.4}); derived ratios meet the target {} with a tolerated drop of {:.4} \
             per {unit}:\n\n| {unit} | size |",
            self.samples, self.baseline, self.target, self.tolerance
        );
        for r in &self.ratios {
            s.push_str(&format!(" {r} |"));
        }
        s.push_str(" ratio |\n|---|---|");
        s.push_str(&"---|".repeat(self.ratios.len() + 1));
        s.push('\n');
        for row in &self.rows {
            s.push_str(&format!("| {} | {} |", row.name, row.size));
            if row.accuracy.is_empty() {
                s.push_str(&" - |".repeat(self.ratios.len()));
            }
            for a in &row.accuracy {
                s.push_str(&format!(" {a:.4} |"));
            }
            s.push_str(&format!(
                " {:.3}{} |\n",
                row.ratio,
                if row.fixed { " (override)" } else { "" }
            ));
        }
        s
    }
}

/// A unit to scan: its name, size, and the override ratio that fixes it (if any).
#[derive(Debug, Clone, PartialEq)]
pub struct ScanUnit {
    /// Layer or group name.
    pub name: String,
    /// Weights or channels.
    pub size: usize,
    /// The override's ratio; such a unit is not scanned.
    pub fixed: Option<f64>,
}

/// The ratio of one free unit at `tolerance`: the largest ratio in `[lo, hi]` whose
/// non-decreasing drop curve (0 at ratio 0, linear between scanned ratios) stays within it.
fn ratio_at(ratios: &[f64], drops: &[f64], tolerance: f64, lo: f64, hi: f64) -> f64 {
    if tolerance < 0.0 {
        return lo;
    }
    let (mut r0, mut d0) = (0.0, 0.0);
    let mut best = ratios.last().copied().unwrap_or(0.0);
    for (&r, &d) in ratios.iter().zip(drops) {
        let d = d.max(d0);
        if d > tolerance {
            best = r0 + (tolerance - d0) / (d - d0) * (r - r0);
            break;
        }
        (r0, d0) = (r, d);
    }
    best.clamp(lo, hi)
}

/// Per-unit ratios whose size-weighted mean is `target`, each free unit within `[lo, hi]`;
/// `drops[i]` is unit `i`'s accuracy drop at each scanned ratio (negative drops count as none;
/// empty for a unit an override fixes). Returns the ratios and the tolerated drop; an error
/// when even the largest ratios fall short.
pub fn derive_ratios(
    ratios: &[f64],
    units: &[ScanUnit],
    drops: &[Vec<f64>],
    target: f64,
    lo: f64,
    hi: f64,
) -> Result<(Vec<f64>, f64)> {
    let total: f64 = units.iter().map(|u| u.size as f64).sum::<f64>().max(1.0);
    let at = |tol: f64| -> Vec<f64> {
        units
            .iter()
            .zip(drops)
            .map(|(u, d)| u.fixed.unwrap_or_else(|| ratio_at(ratios, d, tol, lo, hi)))
            .collect()
    };
    let mean = |rs: &[f64]| -> f64 {
        rs.iter()
            .zip(units)
            .map(|(r, u)| r * u.size as f64)
            .sum::<f64>()
            / total
    };
    let top = drops.iter().flatten().copied().fold(0.0_f64, f64::max) + 1.0;
    let most = at(top);
    if mean(&most) < target - 1e-9 {
        return Err(PruneError::invalid(
            "prune.target",
            target,
            format!(
                "the sensitivity scan can reach at most {:.4}: every layer at its largest \
                 scanned ratio ({}){}; add a larger ratio to sensitivity.ratios or lower the \
                 target",
                mean(&most),
                ratios.last().copied().unwrap_or(0.0),
                if hi < 1.0 {
                    format!(", capped by max_layer_ratio = {hi}")
                } else {
                    String::new()
                }
            ),
        ));
    }
    // Smallest tolerance whose mean reaches the target; -1 means every free unit at `lo`.
    let (mut t_lo, mut t_hi) = (-1.0, top);
    for _ in 0..100 {
        let mid = 0.5 * (t_lo + t_hi);
        if mean(&at(mid)) >= target {
            t_hi = mid;
        } else {
            t_lo = mid;
        }
    }
    let (a, b) = (at(t_lo), at(t_hi));
    let (ma, mb) = (mean(&a), mean(&b));
    // Flat stretches of a curve make the ratios jump; blend the two sides to hit the target.
    let w = if mb - ma > 1e-12 && ma < target {
        ((target - ma) / (mb - ma)).clamp(0.0, 1.0)
    } else {
        1.0
    };
    let out = a.iter().zip(&b).map(|(x, y)| x + w * (y - x)).collect();
    Ok((out, t_hi.max(0.0)))
}

/// Runs the scan and derives the ratios: `measure(i, ratio)` is the validation accuracy with
/// only unit `i` pruned to `ratio`; `lo` and `hi` bound every derived ratio.
pub fn run_scan(
    cfg: &SensitivityConfig,
    units: &[ScanUnit],
    samples: usize,
    baseline: f64,
    target: f64,
    (lo, hi): (f64, f64),
    mut measure: impl FnMut(usize, f64) -> Result<f64>,
) -> Result<SensitivityReport> {
    let free = units.iter().filter(|u| u.fixed.is_none()).count();
    let bar = opt_core::progress::progress_bar((free * cfg.ratios.len()) as u64, "sensitivity");
    let mut curves = Vec::with_capacity(units.len());
    for (i, u) in units.iter().enumerate() {
        let mut acc = Vec::new();
        if u.fixed.is_none() {
            for &r in &cfg.ratios {
                bar.set_message(format!("{} at {r}", u.name));
                acc.push(measure(i, r)?);
                bar.inc(1);
            }
            tracing::info!(unit = %u.name, accuracy = ?acc, "sensitivity");
        }
        curves.push(acc);
    }
    bar.finish_and_clear();
    let drops: Vec<Vec<f64>> = curves
        .iter()
        .map(|acc| acc.iter().map(|a| (baseline - a).max(0.0)).collect())
        .collect();
    let (ratios, tolerance) = derive_ratios(&cfg.ratios, units, &drops, target, lo, hi)?;
    Ok(SensitivityReport {
        ratios: cfg.ratios.clone(),
        samples,
        baseline,
        target,
        tolerance,
        rows: units
            .iter()
            .zip(curves)
            .zip(ratios)
            .map(|((u, accuracy), ratio)| SensitivityRow {
                name: u.name.clone(),
                size: u.size,
                accuracy,
                ratio,
                fixed: u.fixed.is_some(),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A unit with its drop curve; `fixed` units have none.
    fn unit(size: usize, fixed: Option<f64>, drops: &[f64]) -> (ScanUnit, Vec<f64>) {
        let u = ScanUnit {
            name: format!("u{size}"),
            size,
            fixed,
        };
        (u, drops.to_vec())
    }

    fn free(size: usize, drops: &[f64]) -> (ScanUnit, Vec<f64>) {
        unit(size, None, drops)
    }

    #[test]
    fn ratios_interpolate_between_scanned_points() {
        let rs = [0.25, 0.5, 0.75];
        // Drops 0, 0.02, 0.10: tolerance 0.06 sits half-way between 0.5 and 0.75.
        let r = ratio_at(&rs, &[0.0, 0.02, 0.10], 0.06, 0.0, 1.0);
        assert!((r - 0.625).abs() < 1e-12, "{r}");
        // A curve that dips is made non-decreasing: 0.04 at 0.25 holds until 0.5.
        let r = ratio_at(&rs, &[0.04, 0.01, 0.2], 0.04, 0.0, 1.0);
        assert!(r >= 0.5 - 1e-12, "{r}");
        // Beyond the scan nothing is known: the largest scanned ratio at most.
        assert_eq!(ratio_at(&rs, &[0.0, 0.0, 0.0], 1.0, 0.0, 1.0), 0.75);
        assert_eq!(ratio_at(&rs, &[0.0, 0.0, 0.0], 1.0, 0.0, 0.6), 0.6);
    }

    #[test]
    fn sensitive_units_get_less_and_the_target_is_met_exactly() {
        let rs = [0.25, 0.5, 0.75, 0.9];
        let (units, drops): (Vec<_>, Vec<_>) = [
            // Robust and large.
            free(1000, &[0.0, 0.0, 0.01, 0.03]),
            // Sensitive and small.
            free(100, &[0.05, 0.2, 0.5, 0.7]),
            // Fixed by an override: counted, not changed.
            unit(100, Some(0.1), &[]),
        ]
        .into_iter()
        .unzip();
        let (r, tol) = derive_ratios(&rs, &units, &drops, 0.7, 0.0, 0.99).unwrap();
        let mean = (r[0] * 1000.0 + r[1] * 100.0 + r[2] * 100.0) / 1200.0;
        assert!((mean - 0.7).abs() < 1e-9, "{r:?}");
        assert!(r[0] > 0.75 && r[1] < 0.25, "{r:?}");
        assert_eq!(r[2], 0.1);
        assert!(tol > 0.01 && tol < 0.05, "{tol}");
        // A target beyond the scan says how far it can go.
        let e = derive_ratios(&rs, &units, &drops, 0.95, 0.0, 0.99)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("at most") && e.contains("sensitivity.ratios"),
            "{e}"
        );
        // Flat curves (no drop anywhere) still land on the target, not above it.
        let (flat, flat_drops): (Vec<_>, Vec<_>) = [free(10, &[0.0; 4]), free(30, &[0.0; 4])]
            .into_iter()
            .unzip();
        let (r, _) = derive_ratios(&rs, &flat, &flat_drops, 0.3, 0.0, 1.0).unwrap();
        let mean = (r[0] * 10.0 + r[1] * 30.0) / 40.0;
        assert!((mean - 0.3).abs() < 1e-9, "{r:?}");
    }

    #[test]
    fn bad_ratios_are_refused() {
        for ratios in [vec![], vec![0.5, 0.25], vec![0.0, 0.5], vec![0.5, 1.0]] {
            let cfg = SensitivityConfig {
                ratios,
                samples: 10,
            };
            let e = cfg.validate("p.sensitivity").unwrap_err().to_string();
            assert!(e.starts_with("p.sensitivity.ratios = "), "{e}");
        }
        SensitivityConfig::default().validate("p").unwrap();
    }
}
