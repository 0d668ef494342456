//! Search spaces: named dimensions (floats, uniform or log; integers with a step; categorical
//! choices), read from TOML and checked before any trial runs.
//!
//! ```toml
//! "train.learning_rate" = { float = [1e-4, 1e-1], log = true }
//! "train.batch_size"    = { int = [32, 256], step = 32 }
//! "prune.ratio"         = { float = [0.1, 0.9], step = 0.1 }
//! "model.arch"          = { choices = ["lenet5", "mlp"] }
//! ```
//!
//! Samplers work in an *internal* coordinate per numeric dimension (the logarithm for log
//! dimensions; integers and stepped floats widened by half a step on each side, so every value
//! owns an equal interval) and map back with [`Dimension::from_internal`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Result, TuneError};

/// One parameter value of a trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    /// A boolean choice.
    Bool(bool),
    /// An integer (int dimensions, integer choices).
    Int(i64),
    /// A float.
    Float(f64),
    /// A string choice.
    Str(String),
    /// A list choice (for example a model's channel widths, `[16, 32, 64]`).
    List(Vec<ParamValue>),
}

impl ParamValue {
    /// The value as a float, when it is numeric.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Int(v) => Some(*v as f64),
            Self::Float(v) => Some(*v),
            _ => None,
        }
    }
}

impl std::fmt::Display for ParamValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bool(v) => write!(f, "{v}"),
            Self::Int(v) => write!(f, "{v}"),
            Self::Float(v) => write!(f, "{v:.6}"),
            Self::Str(v) => write!(f, "{v}"),
            Self::List(v) => {
                let items: Vec<String> = v.iter().map(ToString::to_string).collect();
                write!(f, "[{}]", items.join(","))
            }
        }
    }
}

/// The parameters of one trial, by dimension name.
pub type Params = BTreeMap<String, ParamValue>;

/// One dimension as written in TOML (exactly one of `float`, `int`, `choices`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DimensionFile {
    /// `[low, high]` of a float dimension.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub float: Option<[f64; 2]>,
    /// `[low, high]` of an integer dimension (both included).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub int: Option<[i64; 2]>,
    /// The values of a categorical dimension.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub choices: Option<Vec<ParamValue>>,
    /// Sample uniformly in the logarithm (bounds must be > 0).
    #[serde(default)]
    pub log: bool,
    /// Spacing of the allowed values (floats and integers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<f64>,
}

/// A checked dimension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Dimension {
    /// A float in `[low, high]`, uniform or log-uniform, optionally on a grid of `step`.
    Float {
        /// Lower bound (included).
        low: f64,
        /// Upper bound (included).
        high: f64,
        /// Log-uniform.
        log: bool,
        /// Spacing of the allowed values.
        step: Option<f64>,
    },
    /// An integer in `[low, high]` on a grid of `step`.
    Int {
        /// Lower bound (included).
        low: i64,
        /// Upper bound (included).
        high: i64,
        /// Spacing (1 unless set).
        step: i64,
        /// Log-uniform (step must be 1).
        log: bool,
    },
    /// One of a list of values.
    Categorical {
        /// The values.
        choices: Vec<ParamValue>,
    },
}

/// The most values a stepped float dimension may have.
pub const MAX_STEPS: u64 = 1_000_000;

impl DimensionFile {
    /// Checks the dimension; `key` names it in errors.
    pub fn check(&self, key: &str) -> Result<Dimension> {
        let kinds = [
            self.float.is_some(),
            self.int.is_some(),
            self.choices.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            return Err(TuneError::invalid(
                key,
                "{ .. }",
                "give exactly one of float = [low, high], int = [low, high] or choices = [..]",
            ));
        }
        let bad = |what: String, fix: &str| TuneError::invalid(key, what, fix.to_string());
        if let Some([low, high]) = self.float {
            if !low.is_finite() || !high.is_finite() || low >= high {
                return Err(bad(
                    format!("float = [{low}, {high}]"),
                    "the range is empty or inverted; write [low, high] with low < high \
                     (for a fixed value, set it in the config instead of tuning it)",
                ));
            }
            if self.log && low <= 0.0 {
                return Err(bad(
                    format!("float = [{low}, {high}], log = true"),
                    "a log-scale dimension needs both bounds > 0",
                ));
            }
            if let Some(step) = self.step {
                if self.log {
                    return Err(bad(
                        format!("step = {step}"),
                        "step and log cannot be combined",
                    ));
                }
                let n = (high - low) / step;
                if step <= 0.0 || !step.is_finite() || (n - n.round()).abs() > 1e-6 {
                    return Err(bad(
                        format!("step = {step}"),
                        "the step must be > 0 and divide high - low",
                    ));
                }
                if n > MAX_STEPS as f64 {
                    return Err(bad(
                        format!("step = {step}"),
                        &format!(
                            "the step cuts [{low}, {high}] into {n:.3e} values; at most \
                             {MAX_STEPS} are allowed (use a larger step, or none)"
                        ),
                    ));
                }
            }
            return Ok(Dimension::Float {
                low,
                high,
                log: self.log,
                step: self.step,
            });
        }
        if let Some([low, high]) = self.int {
            if low >= high {
                return Err(bad(
                    format!("int = [{low}, {high}]"),
                    "the range is empty or inverted; write [low, high] with low < high",
                ));
            }
            if high.checked_sub(low).is_none_or(|d| d > 1 << 52) {
                return Err(bad(
                    format!("int = [{low}, {high}]"),
                    "the range is wider than 2^52; narrow it",
                ));
            }
            if self.log && low <= 0 {
                return Err(bad(
                    format!("int = [{low}, {high}], log = true"),
                    "a log-scale dimension needs both bounds > 0",
                ));
            }
            let step = self.step.unwrap_or(1.0);
            if step < 1.0 || step.fract() != 0.0 || (high - low) % step as i64 != 0 {
                return Err(bad(
                    format!("step = {step}"),
                    "an integer step must be a whole number >= 1 that divides high - low",
                ));
            }
            if self.log && step != 1.0 {
                return Err(bad(
                    format!("step = {step}"),
                    "step and log cannot be combined",
                ));
            }
            return Ok(Dimension::Int {
                low,
                high,
                step: step as i64,
                log: self.log,
            });
        }
        let choices = self.choices.clone().unwrap_or_default();
        if choices.len() < 2 {
            return Err(bad(
                format!("choices = {choices:?}"),
                "give at least two choices (a single value is not a search)",
            ));
        }
        if self.log || self.step.is_some() {
            return Err(bad(
                "log/step".into(),
                "log and step apply to float and int dimensions only",
            ));
        }
        for (i, a) in choices.iter().enumerate() {
            if choices[..i].contains(a) {
                return Err(bad(
                    format!("choices = {choices:?}"),
                    "the choices repeat a value",
                ));
            }
        }
        Ok(Dimension::Categorical { choices })
    }
}

impl Dimension {
    /// The internal interval of a numeric dimension; `None` for categorical ones.
    pub fn internal_bounds(&self) -> Option<(f64, f64)> {
        match *self {
            Self::Float {
                low,
                high,
                log: true,
                ..
            } => Some((low.ln(), high.ln())),
            Self::Float {
                low,
                high,
                step: Some(s),
                ..
            } => Some((low - s / 2.0, high + s / 2.0)),
            Self::Float { low, high, .. } => Some((low, high)),
            Self::Int {
                low,
                high,
                log: true,
                ..
            } => Some(((low as f64 - 0.5).max(0.5).ln(), (high as f64 + 0.5).ln())),
            Self::Int {
                low, high, step, ..
            } => Some((
                low as f64 - step as f64 / 2.0,
                high as f64 + step as f64 / 2.0,
            )),
            Self::Categorical { .. } => None,
        }
    }

    /// The number of categories of a categorical dimension.
    pub fn n_choices(&self) -> Option<usize> {
        match self {
            Self::Categorical { choices } => Some(choices.len()),
            _ => None,
        }
    }

    /// The value at internal coordinate `x` (clamped, rounded to the step).
    pub fn from_internal(&self, x: f64) -> ParamValue {
        match *self {
            Self::Float {
                low,
                high,
                log,
                step,
            } => {
                let v = if log { x.exp() } else { x };
                let v = match step {
                    Some(s) => low + ((v - low) / s).round() * s,
                    None => v,
                };
                ParamValue::Float(v.clamp(low, high))
            }
            Self::Int {
                low,
                high,
                step,
                log,
            } => {
                let v = if log { x.exp() } else { x };
                let k = ((v - low as f64) / step as f64).round() as i64;
                ParamValue::Int((low + k * step).clamp(low, high))
            }
            Self::Categorical { ref choices } => {
                choices[(x.max(0.0) as usize).min(choices.len() - 1)].clone()
            }
        }
    }

    /// The internal coordinate of a value (a category's index for categorical dimensions);
    /// `None` when the value does not belong to the dimension.
    pub fn to_internal(&self, value: &ParamValue) -> Option<f64> {
        match self {
            Self::Float { log, .. } | Self::Int { log, .. } => {
                let v = value.as_f64()?;
                Some(if *log { v.ln() } else { v })
            }
            Self::Categorical { choices } => {
                choices.iter().position(|c| c == value).map(|i| i as f64)
            }
        }
    }

    /// The value at `u` in `[0, 1)`: uniform in the internal coordinate (each integer, step
    /// and category owns an equal share).
    pub fn from_unit(&self, u: f64) -> ParamValue {
        match self.internal_bounds() {
            Some((lo, hi)) => self.from_internal(lo + u * (hi - lo)),
            None => self.from_internal((u * self.n_choices().unwrap_or(1) as f64).floor()),
        }
    }

    /// `points` values spread evenly over the dimension (every value of an integer dimension
    /// or step grid with at most `points` values; every category).
    pub fn grid(&self, points: usize) -> Vec<ParamValue> {
        let points = points.max(2);
        let all_steps = |n: usize| -> Option<usize> { (n <= points).then_some(n) };
        match *self {
            Self::Categorical { ref choices } => choices.clone(),
            Self::Int {
                low, high, step, ..
            } if all_steps((((high - low) / step) as usize).saturating_add(1)).is_some() => (0
                ..=(high - low) / step)
                .map(|k| ParamValue::Int(low + k * step))
                .collect(),
            Self::Float {
                low,
                high,
                step: Some(s),
                ..
            } if all_steps((((high - low) / s).round() as usize).saturating_add(1)).is_some() => {
                let n = ((high - low) / s).round() as usize;
                (0..=n)
                    .map(|k| ParamValue::Float(low + k as f64 * s))
                    .collect()
            }
            _ => {
                // Evenly in the internal coordinate, bounds included.
                let (lo, hi) = match *self {
                    Self::Float {
                        low,
                        high,
                        log: true,
                        ..
                    } => (low.ln(), high.ln()),
                    Self::Float { low, high, .. } => (low, high),
                    Self::Int {
                        low,
                        high,
                        log: true,
                        ..
                    } => ((low as f64).ln(), (high as f64).ln()),
                    Self::Int { low, high, .. } => (low as f64, high as f64),
                    Self::Categorical { .. } => unreachable!("handled above"),
                };
                let mut out: Vec<ParamValue> = (0..points)
                    .map(|k| self.from_internal(lo + (hi - lo) * k as f64 / (points - 1) as f64))
                    .collect();
                out.dedup();
                out
            }
        }
    }
}

/// A checked search space: dimensions by name (sorted, so the order is stable).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SearchSpace {
    /// The dimensions.
    pub dims: BTreeMap<String, Dimension>,
}

impl SearchSpace {
    /// Checks every dimension of a TOML table; `prefix` is the table's key path for errors
    /// (`tune.space`).
    pub fn from_file(file: &BTreeMap<String, DimensionFile>, prefix: &str) -> Result<Self> {
        if file.is_empty() {
            return Err(TuneError::invalid(
                prefix,
                "{}",
                "the search space is empty; add a dimension such as \
                 \"train.learning_rate\" = { float = [1e-4, 1e-1], log = true }",
            ));
        }
        let dims = file
            .iter()
            .map(|(name, d)| Ok((name.clone(), d.check(&format!("{prefix}.\"{name}\""))?)))
            .collect::<Result<_>>()?;
        Ok(Self { dims })
    }

    /// Parses and checks a TOML table of dimensions.
    pub fn from_toml(text: &str, prefix: &str) -> Result<Self> {
        let file: BTreeMap<String, DimensionFile> = toml::from_str(text)
            .map_err(|e| TuneError::invalid(prefix, "(toml)", e.to_string()))?;
        Self::from_file(&file, prefix)
    }

    /// The number of dimensions.
    pub fn len(&self) -> usize {
        self.dims.len()
    }

    /// Whether the space has no dimension.
    pub fn is_empty(&self) -> bool {
        self.dims.is_empty()
    }

    /// The parameters at a point of the unit cube (one coordinate per dimension, in order).
    pub fn from_unit(&self, u: &[f64]) -> Params {
        self.dims
            .iter()
            .zip(u)
            .map(|((name, d), &u)| (name.clone(), d.from_unit(u)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space(text: &str) -> Result<SearchSpace> {
        SearchSpace::from_toml(text, "tune.space")
    }

    #[test]
    fn parses_every_kind_and_maps_units_inside_the_bounds() {
        let s = space(
            r#"
            lr = { float = [1e-4, 1e-1], log = true }
            batch = { int = [32, 256], step = 32 }
            ratio = { float = [0.1, 0.9], step = 0.1 }
            arch = { choices = ["lenet5", "mlp", 3, true] }
            widths = { choices = [[8, 16], [16, 32]] }
            "#,
        )
        .unwrap();
        assert_eq!(s.len(), 5);
        assert_eq!(
            s.dims["widths"].from_unit(0.9),
            ParamValue::List(vec![ParamValue::Int(16), ParamValue::Int(32)])
        );
        for k in 0..100 {
            let u = k as f64 / 100.0;
            let p = s.from_unit(&[u, u, u, u, u]);
            let lr = p["lr"].as_f64().unwrap();
            assert!((1e-4..=1e-1).contains(&lr), "{lr}");
            let ParamValue::Int(b) = p["batch"] else {
                panic!("{:?}", p["batch"])
            };
            assert!((32..=256).contains(&b) && b % 32 == 0);
            let r = p["ratio"].as_f64().unwrap();
            assert!(
                ((r * 10.0).round() - r * 10.0).abs() < 1e-9 && (0.1..=0.9 + 1e-12).contains(&r)
            );
        }
        // Each of the 8 batch sizes owns an equal share of the unit interval.
        let counts = (0..800).fold([0; 8], |mut c, k| {
            let ParamValue::Int(b) = s.dims["batch"].from_unit((k as f64 + 0.5) / 800.0) else {
                unreachable!()
            };
            c[(b / 32 - 1) as usize] += 1;
            c
        });
        assert_eq!(counts, [100; 8]);
        assert_eq!(s.dims["arch"].from_unit(0.99), ParamValue::Bool(true));
        assert_eq!(s.dims["arch"].to_internal(&ParamValue::Int(3)), Some(2.0));
    }

    #[test]
    fn grids_cover_bounds_steps_and_categories() {
        let s = space(
            r#"
            lr = { float = [1e-4, 1e-2], log = true }
            batch = { int = [1, 3] }
            arch = { choices = ["a", "b"] }
            "#,
        )
        .unwrap();
        let lr: Vec<f64> = s.dims["lr"]
            .grid(3)
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert!(
            (lr[0] - 1e-4).abs() < 1e-12
                && (lr[1] - 1e-3).abs() < 1e-12
                && (lr[2] - 1e-2).abs() < 1e-12
        );
        assert_eq!(
            s.dims["batch"].grid(5),
            vec![ParamValue::Int(1), ParamValue::Int(2), ParamValue::Int(3)]
        );
        assert_eq!(s.dims["arch"].grid(5).len(), 2);
    }

    #[test]
    fn bad_dimensions_name_the_key_and_the_fix() {
        let cases = [
            ("a = { float = [1.0, 1.0] }", "empty or inverted"),
            ("a = { float = [2.0, 1.0] }", "empty or inverted"),
            ("a = { int = [5, 1] }", "empty or inverted"),
            ("a = { float = [0.0, 1.0], log = true }", "bounds > 0"),
            ("a = { int = [-1, 10], log = true }", "bounds > 0"),
            ("a = { int = [0, 10], step = 3 }", "divides high - low"),
            (
                "a = { float = [0.0, 1.0], step = 0.3 }",
                "divide high - low",
            ),
            ("a = { choices = [1] }", "at least two"),
            ("a = { choices = [1, 1] }", "repeat"),
            ("a = { float = [0.0, 1.0], int = [0, 1] }", "exactly one"),
            ("a = { floats = [0.0, 1.0] }", "unknown field"),
            ("", "empty"),
        ];
        for (text, want) in cases {
            let msg = space(text).unwrap_err().to_string();
            assert!(msg.contains(want), "{text}: {msg}");
            assert!(msg.starts_with("tune.space"), "{text}: {msg}");
        }
        let msg = space("a = { float = [0.0, 1.0], log = true }")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("tune.space.\"a\""), "{msg}");
    }
}
