//! Which pipeline keys a tune stage may search over, and a trial's settings with its
//! parameters applied. Trials that train `[model]` tune `train.*` (learning rate, batch size,
//! weight decay, epochs, optimizer, schedule, ...) and `model.*` (the `[model]` section's
//! keys, such as a MobileNet's `width` multiplier, a LeNet-5's `conv1`, or a CNN's `blocks` as
//! a choice among lists). Trials that run steps tune `train.*` and their steps' keys:
//! `prune.*` (`prune.target`, `prune.finetune_epochs`, ...), `quantize.*` (`quantize.bits`,
//! `quantize.calibration.method`, ...) and `distill.*` (`distill.temperature`,
//! `distill.alpha`, ...). Nested settings are named with dots; unset optional keys are
//! tunable too.

use anyhow::{Context, Result, anyhow};
use opt_arch::{ArchChoice, ZooArch};
use opt_core::model::ModelSpec;
use opt_core::train::TrainConfig;
use opt_tune::TuneConfig;
use opt_tune::space::{ParamValue, Params};
use serde_json::{Map, Value};

use crate::config::{PipelineFile, StageSection, check_step};
use crate::stage_run::step_kind;

/// A trial's settings: the pipeline's, with the trial's parameters applied.
#[derive(Debug, Clone)]
pub struct TrialSettings {
    /// `[train]`.
    pub train: TrainConfig,
    /// `[model]` (trials that train a model).
    pub model: ArchChoice,
    /// The steps (trials that run steps).
    pub steps: Vec<StageSection>,
}

/// The settings a dimension may name, as one JSON object by section.
fn sections(file: &PipelineFile, steps: &[StageSection]) -> Result<Map<String, Value>> {
    let mut doc = Map::new();
    doc.insert(
        "train".into(),
        serde_json::to_value(&file.train).context("serializing [train]")?,
    );
    if steps.is_empty() {
        doc.insert(
            "model".into(),
            serde_json::to_value(&file.model).context("serializing [model]")?,
        );
    }
    for step in steps {
        let settings = match step {
            StageSection::Prune { prune, .. } => serde_json::to_value(prune),
            StageSection::Quantize { quantize, .. } => serde_json::to_value(quantize),
            StageSection::Distill { distill, .. } => serde_json::to_value(distill),
            StageSection::Baseline { .. } | StageSection::Tune { .. } => continue,
        }
        .with_context(|| format!("serializing the {} step", step_kind(step)))?;
        doc.insert(step_kind(step).into(), settings);
    }
    Ok(doc)
}

/// Whether a value is a leaf a dimension can set (not a table, not a list of tables).
fn is_leaf(v: &Value) -> bool {
    match v {
        Value::Object(_) => false,
        Value::Array(items) => !items.iter().any(|i| matches!(i, Value::Object(_))),
        _ => true,
    }
}

fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                flatten(&format!("{prefix}.{k}"), child, out);
            }
        }
        leaf if is_leaf(leaf) => {
            let shown = if leaf.is_null() {
                "unset".to_string()
            } else {
                leaf.to_string()
            };
            out.push((prefix.to_string(), shown));
        }
        _ => {}
    }
}

/// Every key a dimension may name, with its current value (`model.arch` excepted: a trial
/// changes a model's settings, not its family).
pub fn tunable_keys(file: &PipelineFile, steps: &[StageSection]) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (section, v) in sections(file, steps)? {
        flatten(&section, &v, &mut out);
    }
    out.retain(|(k, _)| k != "model.arch");
    Ok(out)
}

fn unknown_key(file: &PipelineFile, steps: &[StageSection], key: &str) -> anyhow::Error {
    let keys = tunable_keys(file, steps).unwrap_or_default();
    let list: Vec<String> = keys.iter().map(|(k, v)| format!("{k} (now {v})")).collect();
    let hint = if steps.is_empty() {
        "; prune/quantize/distill keys need [[stages.trial]] steps of that kind"
    } else {
        "; `model.*` keys belong to trials that train [model] (no [[stages.trial]])"
    };
    anyhow!(
        "\"{key}\" is not a key this stage can tune{hint}; tunable keys: {}",
        list.join(", ")
    )
}

fn to_json(v: &ParamValue) -> Value {
    match v {
        ParamValue::Bool(b) => Value::Bool(*b),
        ParamValue::Int(i) => Value::from(*i),
        ParamValue::Float(f) => Value::from(*f),
        ParamValue::Str(s) => Value::String(s.clone()),
        ParamValue::List(v) => Value::Array(v.iter().map(to_json).collect()),
    }
}

fn from_json<T: serde::de::DeserializeOwned>(v: &Value, section: &str) -> Result<T> {
    serde_json::from_value(v.clone()).map_err(|e| anyhow!("{section}: {e}"))
}

/// The settings of a trial with `params`: the pipeline's `[train]` and `[model]`, and
/// `steps` with their settings overridden.
pub fn apply(
    file: &PipelineFile,
    steps: &[StageSection],
    params: &Params,
) -> Result<TrialSettings> {
    let mut doc = Value::Object(sections(file, steps)?);
    let keys: Vec<String> = tunable_keys(file, steps)?
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    for (key, value) in params {
        if !keys.contains(key) {
            return Err(unknown_key(file, steps, key));
        }
        let pointer = format!("/{}", key.replace('.', "/"));
        *doc.pointer_mut(&pointer).expect("a listed key exists") = to_json(value);
    }
    let train: TrainConfig = from_json(&doc["train"], "train")?;
    train.validate("train")?;
    let model = if steps.is_empty() {
        from_json(&doc["model"], "model")?
    } else {
        file.model.clone()
    };
    let mut applied = steps.to_vec();
    for step in &mut applied {
        let settings = &doc[step_kind(step)];
        match step {
            StageSection::Prune { prune, .. } => *prune = from_json(settings, "prune")?,
            StageSection::Quantize { quantize, .. } => *quantize = from_json(settings, "quantize")?,
            StageSection::Distill { distill, .. } => *distill = from_json(settings, "distill")?,
            StageSection::Baseline { .. } | StageSection::Tune { .. } => {}
        }
    }
    Ok(TrialSettings {
        train,
        model,
        steps: applied,
    })
}

/// The model a trial that trains `[model]` builds.
pub fn trial_spec(
    file: &PipelineFile,
    settings: &TrialSettings,
    input: opt_core::model::InputShape,
) -> Result<ModelSpec<ZooArch>> {
    let spec = ModelSpec {
        input,
        classes: file.data.classes,
        arch: settings.model.resolve(input)?,
    };
    spec.validate()?;
    Ok(spec)
}

/// Checks a tune stage before anything runs: the study settings, every dimension's key, and
/// the trial settings at every dimension's bounds (or each choice), so a bad range fails now
/// rather than in trial 17. `start` is the model the trials start from (steps), or the
/// `[model]` they train.
pub fn check(
    file: &PipelineFile,
    tune: &TuneConfig,
    steps: &[StageSection],
    start: &ModelSpec<ZooArch>,
    prefix: &str,
) -> Result<()> {
    let checked = tune.check(&format!("{prefix}.tune"), file.train.epochs as u32)?;
    for (name, dim) in &checked.def.space.dims {
        let probe = |v: ParamValue| -> Result<()> {
            let settings = apply(file, steps, &Params::from([(name.clone(), v.clone())]))?;
            if steps.is_empty() {
                trial_spec(file, &settings, start.input)?;
            }
            for (k, step) in settings.steps.iter().enumerate() {
                check_step(step, &format!("{prefix}.trial[{k}]"), start)?;
            }
            Ok(())
        };
        let values: Vec<ParamValue> = match dim.internal_bounds() {
            Some((lo, hi)) => vec![dim.from_internal(lo), dim.from_internal(hi)],
            None => dim.grid(2),
        };
        for v in values {
            probe(v.clone()).with_context(|| format!("{prefix}.tune.space.\"{name}\" = {v}"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use opt_core::model::InputShape;

    const INPUT: InputShape = InputShape {
        channels: 1,
        height: 28,
        width: 28,
    };

    fn file() -> PipelineFile {
        crate::config::parse(
            "version = 1\n[model]\narch = \"mlp\"\nhidden = [32]\n[train]\nepochs = 2\n[[stages]]\nkind = \"baseline\"\n",
        )
        .unwrap()
    }

    fn keys(f: &PipelineFile, steps: &[StageSection]) -> Vec<String> {
        tunable_keys(f, steps)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    }

    fn steps(toml_steps: &str) -> Vec<StageSection> {
        #[derive(serde::Deserialize)]
        struct Steps {
            trial: Vec<StageSection>,
        }
        toml::from_str::<Steps>(toml_steps).unwrap().trial
    }

    fn spec(f: &PipelineFile) -> ModelSpec<ZooArch> {
        ModelSpec {
            input: INPUT,
            classes: 10,
            arch: f.model.resolve(INPUT).unwrap(),
        }
    }

    #[test]
    fn lists_scalar_keys_and_applies_values() {
        let f = file();
        let keys = keys(&f, &[]);
        for k in [
            "train.learning_rate",
            "train.batch_size",
            "train.epochs",
            "train.weight_decay",
            "train.optimizer",
            "model.hidden",
        ] {
            assert!(keys.contains(&k.to_string()), "{k} in {keys:?}");
        }
        assert!(!keys.contains(&"model.arch".to_string()));
        let params = Params::from([
            ("train.learning_rate".to_string(), ParamValue::Float(0.01)),
            ("train.batch_size".to_string(), ParamValue::Int(32)),
            ("train.optimizer".to_string(), ParamValue::Str("sgd".into())),
        ]);
        let t = apply(&f, &[], &params).unwrap().train;
        assert_eq!((t.learning_rate, t.batch_size, t.epochs), (0.01, 32, 2));
        assert_eq!(format!("{:?}", t.optimizer).to_lowercase(), "sgd");
    }

    #[test]
    fn unknown_keys_list_the_tunable_ones() {
        let f = file();
        let params = Params::from([("train.learning_rat".to_string(), ParamValue::Float(0.01))]);
        let msg = apply(&f, &[], &params).unwrap_err().to_string();
        assert!(
            msg.contains("\"train.learning_rat\" is not a key")
                && msg.contains("train.learning_rate (now"),
            "{msg}"
        );
        for key in ["data.classes", "prune.target"] {
            let msg = apply(
                &f,
                &[],
                &Params::from([(key.to_string(), ParamValue::Int(3))]),
            )
            .unwrap_err()
            .to_string();
            assert!(msg.contains("not a key"), "{msg}");
        }
    }

    #[test]
    fn step_keys_are_tunable_and_applied_to_the_steps() {
        let f = file();
        let chain = steps(
            "[[trial]]\nkind = \"prune\"\n[trial.prune]\nmethod = \"unstructured\"\ntarget = 0.5\n\
             [[trial]]\nkind = \"quantize\"\n",
        );
        let keys = keys(&f, &chain);
        for k in [
            "prune.target",
            "prune.finetune_epochs",
            "prune.finetune_learning_rate",
            "quantize.bits",
            "quantize.calibration.method",
            "train.learning_rate",
        ] {
            assert!(keys.contains(&k.to_string()), "{k} in {keys:?}");
        }
        // A trial with steps keeps the model it is given.
        assert!(!keys.iter().any(|k| k.starts_with("model.")), "{keys:?}");
        let params = Params::from([
            ("prune.target".to_string(), ParamValue::Float(0.8)),
            (
                "prune.finetune_learning_rate".to_string(),
                ParamValue::Float(1e-3),
            ),
            ("quantize.bits".to_string(), ParamValue::Int(4)),
        ]);
        let s = apply(&f, &chain, &params).unwrap();
        let StageSection::Prune { prune, .. } = &s.steps[0] else {
            panic!("{:?}", s.steps[0])
        };
        assert_eq!(
            (prune.target, prune.finetune_learning_rate),
            (0.8, Some(1e-3))
        );
        let StageSection::Quantize { quantize, .. } = &s.steps[1] else {
            panic!("{:?}", s.steps[1])
        };
        assert_eq!(quantize.bits, 4);
        // The pipeline's own steps are unchanged.
        let StageSection::Prune { prune, .. } = &chain[0] else {
            unreachable!()
        };
        assert_eq!(prune.target, 0.5);
        let distill = steps("[[trial]]\nkind = \"distill\"\n");
        let s = apply(
            &f,
            &distill,
            &Params::from([
                ("distill.temperature".to_string(), ParamValue::Float(2.0)),
                ("distill.alpha".to_string(), ParamValue::Float(0.3)),
            ]),
        )
        .unwrap();
        let StageSection::Distill { distill, .. } = &s.steps[0] else {
            unreachable!()
        };
        assert_eq!((distill.temperature, distill.alpha), (2.0, 0.3));
    }

    #[test]
    fn bounds_are_checked_before_any_trial() {
        let f = file();
        let tune: TuneConfig =
            toml::from_str("space = { \"train.batch_size\" = { int = [0, 64] } }").unwrap();
        let msg = format!(
            "{:#}",
            check(&f, &tune, &[], &spec(&f), "stages[1]").unwrap_err()
        );
        assert!(
            msg.contains("stages[1].tune.space.\"train.batch_size\" = 0"),
            "{msg}"
        );
        let ok: TuneConfig = toml::from_str(
            "space = { \"train.learning_rate\" = { float = [1e-4, 1e-1], log = true }, \"model.hidden\" = { choices = [[16], [64, 32]] } }",
        )
        .unwrap();
        check(&f, &ok, &[], &spec(&f), "stages[1]").unwrap();
        let s = apply(
            &f,
            &[],
            &Params::from([(
                "model.hidden".to_string(),
                ParamValue::List(vec![ParamValue::Int(64), ParamValue::Int(32)]),
            )]),
        )
        .unwrap();
        assert!(format!("{:?}", s.model).contains("64"), "{:?}", s.model);
        // A prune target of 1.0 and 3-bit codes are refused at the bound, naming the key.
        let chain = steps("[[trial]]\nkind = \"prune\"\n[[trial]]\nkind = \"quantize\"\n");
        for (space, want) in [
            (
                "space = { \"prune.target\" = { float = [0.2, 1.0] } }",
                "stages[1].tune.space.\"prune.target\" = 1",
            ),
            (
                "space = { \"quantize.bits\" = { choices = [8, 3] } }",
                "stages[1].tune.space.\"quantize.bits\" = 3",
            ),
        ] {
            let tune: TuneConfig = toml::from_str(space).unwrap();
            let msg = format!(
                "{:#}",
                check(&f, &tune, &chain, &spec(&f), "stages[1]").unwrap_err()
            );
            assert!(msg.contains(want), "{msg}");
        }
    }
}
