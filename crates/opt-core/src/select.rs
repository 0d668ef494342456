//! Picking the run's best candidate: the `[constraints]` a user sets (largest accuracy drop
//! against the baseline, absolute in points or relative, and optional ceilings on latency,
//! size and MACs), a verdict with reasons for every candidate, and the best one that meets
//! them by the user's preference, or the baseline with an explanation when none does.

use serde::{Deserialize, Serialize};

use crate::report::Candidate;

/// The largest accuracy drop allowed against the baseline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "DropInput", into = "DropInput")]
pub enum AccuracyDrop {
    /// Percentage points (`0.5` = 0.5 points, e.g. 0.9000 → 0.8950).
    Points(f64),
    /// A fraction of the baseline's accuracy, written as a percentage (`"1%"`).
    Relative(f64),
}

/// How `max_accuracy_drop` is written: a number (points) or a string such as `"1%"`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum DropInput {
    Points(f64),
    Percent(String),
}

impl TryFrom<DropInput> for AccuracyDrop {
    type Error = String;

    fn try_from(v: DropInput) -> Result<Self, String> {
        let bad = |what: &str| {
            format!(
                "{what}: write the largest accuracy drop as points (max_accuracy_drop = 0.5) or \
                 as a percentage of the baseline's accuracy (max_accuracy_drop = \"1%\")"
            )
        };
        match v {
            DropInput::Points(p) if p.is_finite() && p >= 0.0 => Ok(Self::Points(p)),
            DropInput::Points(p) => Err(bad(&format!("{p} is not a drop of 0 points or more"))),
            DropInput::Percent(s) => {
                let pct = s
                    .trim()
                    .strip_suffix('%')
                    .and_then(|n| n.trim().parse::<f64>().ok())
                    .filter(|p| p.is_finite() && (0.0..=100.0).contains(p))
                    .ok_or_else(|| {
                        bad(&format!("{s:?} is not a percentage between 0% and 100%"))
                    })?;
                Ok(Self::Relative(pct / 100.0))
            }
        }
    }
}

impl From<AccuracyDrop> for DropInput {
    fn from(d: AccuracyDrop) -> Self {
        match d {
            AccuracyDrop::Points(p) => Self::Points(p),
            AccuracyDrop::Relative(r) => Self::Percent(format!("{}%", r * 100.0)),
        }
    }
}

impl AccuracyDrop {
    /// The lowest accuracy (a fraction) that meets the limit for a baseline of `base`.
    pub fn floor(&self, base: f64) -> f64 {
        match self {
            Self::Points(p) => base - p / 100.0,
            Self::Relative(r) => base * (1.0 - r),
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Points(p) => format!("{p:.2} points"),
            Self::Relative(r) => format!("{:.2}% of the baseline's accuracy", r * 100.0),
        }
    }
}

/// Among the candidates that meet the constraints, which one is best.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Prefer {
    /// The smallest file (ties: the more accurate).
    #[default]
    Size,
    /// The lowest batch-1 latency (p50).
    Latency,
    /// The fewest MACs.
    Macs,
    /// The most accurate.
    Accuracy,
}

/// `[constraints]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Constraints {
    /// Largest accuracy drop against the baseline (default 1 point).
    pub max_accuracy_drop: AccuracyDrop,
    /// Ceiling on batch-1 latency, p50, in milliseconds.
    pub max_latency_ms: Option<f64>,
    /// Ceiling on the saved model's size in bytes.
    pub max_size_bytes: Option<u64>,
    /// Ceiling on MACs per image.
    pub max_macs: Option<u64>,
    /// What "best" means among the candidates that meet the rest.
    pub prefer: Prefer,
}

impl Default for Constraints {
    fn default() -> Self {
        Self {
            max_accuracy_drop: AccuracyDrop::Points(1.0),
            max_latency_ms: None,
            max_size_bytes: None,
            max_macs: None,
            prefer: Prefer::Size,
        }
    }
}

impl Constraints {
    /// Checks the ceilings; errors name the key.
    pub fn validate(&self, prefix: &str) -> crate::error::Result<()> {
        if let Some(ms) = self.max_latency_ms
            && !(ms.is_finite() && ms > 0.0)
        {
            return Err(crate::error::CoreError::InvalidValue {
                key: format!("{prefix}.max_latency_ms"),
                value: ms.to_string(),
                problem: "must be a positive number of milliseconds".into(),
            });
        }
        for (key, v) in [
            ("max_size_bytes", self.max_size_bytes),
            ("max_macs", self.max_macs),
        ] {
            if v == Some(0) {
                return Err(crate::error::CoreError::InvalidValue {
                    key: format!("{prefix}.{key}"),
                    value: "0".into(),
                    problem: "no model meets a ceiling of 0; raise it or remove it".into(),
                });
            }
        }
        Ok(())
    }

    /// One line for people.
    pub fn describe(&self) -> String {
        let mut parts = vec![format!(
            "accuracy drop ≤ {}",
            self.max_accuracy_drop.describe()
        )];
        if let Some(ms) = self.max_latency_ms {
            parts.push(format!("latency ≤ {ms} ms"));
        }
        if let Some(b) = self.max_size_bytes {
            parts.push(format!("size ≤ {b} bytes"));
        }
        if let Some(m) = self.max_macs {
            parts.push(format!("MACs ≤ {m}"));
        }
        format!(
            "{}; best = {}",
            parts.join(", "),
            match self.prefer {
                Prefer::Size => "smallest file",
                Prefer::Latency => "lowest latency",
                Prefer::Macs => "fewest MACs",
                Prefer::Accuracy => "most accurate",
            }
        )
    }
}

/// One candidate's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Candidate name.
    pub name: String,
    /// Whether it meets every constraint.
    pub meets: bool,
    /// Why not (empty when it meets them).
    pub reasons: Vec<String>,
}

/// The choice and how it was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// The constraints applied.
    pub constraints: Constraints,
    /// The chosen candidate's name.
    pub best: String,
    /// Whether any candidate met the constraints (false: `best` is the baseline as a
    /// fallback).
    pub met: bool,
    /// Why `best` was chosen.
    pub explanation: String,
    /// Every candidate's verdict, in run order.
    pub verdicts: Vec<Verdict>,
}

fn verdict(c: &Candidate, base: &Candidate, k: &Constraints) -> Verdict {
    let e = &c.eval;
    let mut reasons = Vec::new();
    let floor = k.max_accuracy_drop.floor(base.eval.accuracy);
    if e.accuracy < floor - 1e-12 {
        reasons.push(format!(
            "accuracy {:.4} is {:.2} points below the baseline's {:.4} (allowed: {})",
            e.accuracy,
            100.0 * (base.eval.accuracy - e.accuracy),
            base.eval.accuracy,
            k.max_accuracy_drop.describe()
        ));
    }
    if let Some(max) = k.max_latency_ms
        && e.latency_b1_ms_p50 > max
    {
        reasons.push(format!(
            "latency {:.3} ms is above {max} ms",
            e.latency_b1_ms_p50
        ));
    }
    if let Some(max) = k.max_size_bytes
        && e.size_bytes > max
    {
        reasons.push(format!("size {} bytes is above {max}", e.size_bytes));
    }
    if let Some(max) = k.max_macs
        && e.macs > max
    {
        reasons.push(format!("{} MACs is above {max}", e.macs));
    }
    Verdict {
        name: c.name.clone(),
        meets: reasons.is_empty(),
        reasons,
    }
}

/// The key a candidate is ranked by (lower is better), then its accuracy.
fn rank(c: &Candidate, prefer: Prefer) -> (f64, f64) {
    let e = &c.eval;
    let key = match prefer {
        Prefer::Size => e.size_bytes as f64,
        Prefer::Latency => e.latency_b1_ms_p50,
        Prefer::Macs => e.macs as f64,
        Prefer::Accuracy => -e.accuracy,
    };
    (key, -e.accuracy)
}

/// Picks the best candidate under `k`. The baseline is the first candidate of stage
/// `baseline` (else the first); `None` only when there are no candidates.
pub fn select(candidates: &[Candidate], k: &Constraints) -> Option<Selection> {
    let base = candidates
        .iter()
        .find(|c| c.stage == "baseline")
        .or(candidates.first())?;
    let verdicts: Vec<Verdict> = candidates.iter().map(|c| verdict(c, base, k)).collect();
    let best = candidates
        .iter()
        .zip(&verdicts)
        .filter(|(_, v)| v.meets)
        .map(|(c, _)| c)
        .min_by(|a, b| {
            let (ka, aa) = rank(a, k.prefer);
            let (kb, ab) = rank(b, k.prefer);
            ka.total_cmp(&kb).then(aa.total_cmp(&ab))
        });
    let (best, met, explanation) = match best {
        Some(c) if candidates.len() == 1 => (
            c,
            true,
            format!(
                "{} is the only candidate (no optimization stage ran); it meets {}",
                c.name,
                k.describe()
            ),
        ),
        Some(c) if c.name == base.name && verdicts.iter().filter(|v| v.meets).count() == 1 => (
            c,
            true,
            format!(
                "{} is the only candidate that meets {}: no optimized candidate does, so the \
                 baseline is kept",
                c.name,
                k.describe()
            ),
        ),
        Some(c) => (
            c,
            true,
            format!(
                "{} meets {} and ranks first of the {} candidates that do",
                c.name,
                k.describe(),
                verdicts.iter().filter(|v| v.meets).count()
            ),
        ),
        None => (
            base,
            false,
            format!(
                "no candidate meets {}; falling back to the baseline {} (see each candidate's \
                 reasons; relax the constraints or add stages)",
                k.describe(),
                base.name
            ),
        ),
    };
    Some(Selection {
        constraints: k.clone(),
        best: best.name.clone(),
        met,
        explanation,
        verdicts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::EvalReport;

    fn cand(name: &str, stage: &str, acc: f64, size: u64, lat: f64) -> Candidate {
        Candidate {
            name: name.into(),
            stage: stage.into(),
            method: None,
            bits: None,
            model_dir: name.into(),
            arch: "mlp".into(),
            eval: EvalReport {
                accuracy: acc,
                per_class_accuracy: Vec::new(),
                test_loss: 0.0,
                test_items: 1000,
                params: size / 4,
                nonzero_params: size / 4,
                macs: size * 10,
                size_bytes: size,
                size_gzip_bytes: size,
                latency_b1_ms_p50: lat,
                latency_b1_ms_p95: lat,
                latency_runs: 10,
                throughput_per_s: 1.0 / lat,
                throughput_batch: 64,
                backend: "test".into(),
                device: "cpu".into(),
            },
            train: None,
            details: None,
            summary: Vec::new(),
        }
    }

    /// `key = value` lines, as in a `[constraints]` section.
    fn parse(text: &str) -> Result<Constraints, String> {
        let fields: Vec<String> = text
            .lines()
            .map(|l| {
                let (k, v) = l.split_once(" = ").unwrap();
                format!("\"{k}\": {v}")
            })
            .collect();
        serde_json::from_str::<Constraints>(&format!("{{{}}}", fields.join(",")))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn picks_the_smallest_candidate_within_the_drop() {
        let cands = [
            cand("baseline", "baseline", 0.900, 1000, 1.0),
            cand("pruned", "prune", 0.880, 300, 0.5), // 2 points down
            cand("quant", "quantize", 0.897, 250, 0.4),
            cand("quant2", "quantize", 0.899, 250, 0.4), // same size, more accurate
        ];
        let s = select(&cands, &parse("max_accuracy_drop = 0.5").unwrap()).unwrap();
        assert_eq!((s.best.as_str(), s.met), ("quant2", true));
        assert!(!s.verdicts[1].meets);
        assert!(
            s.verdicts[1].reasons[0].contains("2.00 points below the baseline's 0.9000"),
            "{:?}",
            s.verdicts[1]
        );
        // 3% relative allows the pruned model (0.88 ≥ 0.873) but a size ceiling excludes it.
        let k = parse("max_accuracy_drop = \"3%\"\nmax_size_bytes = 260\nprefer = \"latency\"")
            .unwrap();
        let s = select(&cands, &k).unwrap();
        assert_eq!(s.best, "quant2");
        assert!(s.verdicts[1].reasons[0].contains("size 300 bytes is above 260"));
        // Preferring accuracy keeps the baseline even though others meet the constraints.
        let k = parse("max_accuracy_drop = \"3%\"\nprefer = \"accuracy\"").unwrap();
        let s = select(&cands, &k).unwrap();
        assert_eq!((s.best.as_str(), s.met), ("baseline", true));
        assert!(
            s.explanation.contains("first of the 4"),
            "{}",
            s.explanation
        );
    }

    #[test]
    fn falls_back_to_the_baseline_with_an_explanation() {
        let cands = [
            cand("baseline", "baseline", 0.900, 1000, 1.0),
            cand("pruned", "prune", 0.850, 300, 0.5),
        ];
        // Only the baseline meets the drop: it is best, and the run counts as met.
        let s = select(&cands, &Constraints::default()).unwrap();
        assert_eq!((s.best.as_str(), s.met), ("baseline", true));
        assert!(
            s.explanation.contains("no optimized candidate"),
            "{}",
            s.explanation
        );
        // Nothing meets a latency ceiling: the baseline, not met.
        let s = select(&cands, &parse("max_latency_ms = 0.1").unwrap()).unwrap();
        assert_eq!((s.best.as_str(), s.met), ("baseline", false));
        assert!(
            s.explanation.contains("no candidate meets"),
            "{}",
            s.explanation
        );
        assert!(s.verdicts.iter().all(|v| !v.meets && !v.reasons.is_empty()));
        assert!(select(&[], &Constraints::default()).is_none());
    }

    #[test]
    fn bad_constraints_are_refused_with_the_key() {
        for (text, want) in [
            ("max_accuracy_drop = -1", "not a drop of 0 points"),
            ("max_accuracy_drop = \"1 percent\"", "not a percentage"),
            ("max_accuracy_drop = \"120%\"", "not a percentage"),
            ("max_latency = 3", "unknown field"),
            ("prefer = \"speed\"", "unknown variant"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
        let k = parse("max_latency_ms = 0").unwrap();
        let e = k.validate("constraints").unwrap_err().to_string();
        assert!(e.contains("constraints.max_latency_ms = 0"), "{e}");
        let k = parse("max_size_bytes = 0").unwrap();
        assert!(k.validate("constraints").is_err());
        // Written back as it was read.
        let k = parse("max_accuracy_drop = \"1.5%\"").unwrap();
        assert_eq!(k.max_accuracy_drop, AccuracyDrop::Relative(0.015));
        let again: Constraints = serde_json::from_str(&serde_json::to_string(&k).unwrap()).unwrap();
        assert_eq!(again, k);
    }
}
