//! Which pipeline keys a tune stage may search over, and a trial's settings with its
//! parameters applied: `train.*` (learning rate, batch size, weight decay, epochs, optimizer,
//! schedule, ...) and `model.*` (the `[model]` section's scalar keys, such as a MobileNet's
//! `width` multiplier, a LeNet-5's `conv1`, or a CNN's `blocks` as a choice among lists).

use anyhow::{Context, Result, anyhow, bail};
use opt_arch::ArchChoice;
use opt_core::model::{InputShape, ModelSpec};
use opt_core::train::TrainConfig;
use opt_tune::TuneConfig;
use opt_tune::space::{ParamValue, Params};

use crate::config::PipelineFile;

/// The sections a dimension may name.
const SECTIONS: [&str; 2] = ["train", "model"];

fn sections(file: &PipelineFile) -> Result<toml::Table> {
    let mut doc = toml::Table::new();
    doc.insert(
        "train".into(),
        toml::Value::try_from(&file.train).context("serializing [train]")?,
    );
    doc.insert(
        "model".into(),
        toml::Value::try_from(&file.model).context("serializing [model]")?,
    );
    Ok(doc)
}

/// Every key a dimension may name, with its current value (the keys of `[train]` and
/// `[model]` except `model.arch`; list-valued keys take categorical choices of lists).
pub fn tunable_keys(file: &PipelineFile) -> Result<Vec<(String, String)>> {
    let doc = sections(file)?;
    let mut out = Vec::new();
    for section in SECTIONS {
        for (k, v) in doc[section].as_table().into_iter().flatten() {
            let structural =
                matches!(v, toml::Value::Table(_)) || (section == "model" && k == "arch");
            if !structural {
                out.push((format!("{section}.{k}"), v.to_string()));
            }
        }
    }
    Ok(out)
}

fn unknown_key(file: &PipelineFile, key: &str) -> anyhow::Error {
    let keys = tunable_keys(file).unwrap_or_default();
    let list: Vec<String> = keys.iter().map(|(k, v)| format!("{k} (now {v})")).collect();
    anyhow!(
        "\"{key}\" is not a key this pipeline can tune; tunable keys: {}",
        list.join(", ")
    )
}

fn to_toml(v: &ParamValue) -> toml::Value {
    match v {
        ParamValue::Bool(b) => toml::Value::Boolean(*b),
        ParamValue::Int(i) => toml::Value::Integer(*i),
        ParamValue::Float(f) => toml::Value::Float(*f),
        ParamValue::Str(s) => toml::Value::String(s.clone()),
        ParamValue::List(v) => toml::Value::Array(v.iter().map(to_toml).collect()),
    }
}

/// The training settings and model of a trial: the pipeline's, with `params` applied.
pub fn apply(file: &PipelineFile, params: &Params) -> Result<(TrainConfig, ArchChoice)> {
    let mut doc = sections(file)?;
    let keys: Vec<String> = tunable_keys(file)?.into_iter().map(|(k, _)| k).collect();
    for (key, value) in params {
        let Some((section, field)) = key.split_once('.').filter(|_| keys.contains(key)) else {
            return Err(unknown_key(file, key));
        };
        doc.get_mut(section)
            .and_then(toml::Value::as_table_mut)
            .expect("both sections exist")
            .insert(field.to_string(), to_toml(value));
    }
    let train: TrainConfig = doc["train"]
        .clone()
        .try_into()
        .map_err(|e| anyhow!("train: {e}"))?;
    train.validate("train")?;
    let model: ArchChoice = doc["model"]
        .clone()
        .try_into()
        .map_err(|e| anyhow!("model: {e}"))?;
    Ok((train, model))
}

/// Checks a tune stage before anything runs: the study settings, every dimension's key, and
/// the trial settings at every dimension's bounds (or each choice), so a bad range fails now
/// rather than in trial 17.
pub fn check(
    file: &PipelineFile,
    tune: &TuneConfig,
    prefix: &str,
    input: InputShape,
) -> Result<()> {
    let checked = tune.check(prefix, file.train.epochs as u32)?;
    for (name, dim) in &checked.def.space.dims {
        let probe = |v: ParamValue| -> Result<()> {
            let (_, arch) = apply(file, &Params::from([(name.clone(), v.clone())]))?;
            let spec = ModelSpec {
                input,
                classes: file.data.classes,
                arch: arch.resolve(input)?,
            };
            spec.validate()?;
            Ok(())
        };
        let values: Vec<ParamValue> = match dim.internal_bounds() {
            Some((lo, hi)) => vec![dim.from_internal(lo), dim.from_internal(hi)],
            None => dim.grid(2),
        };
        for v in values {
            probe(v.clone()).with_context(|| format!("{prefix}.space.\"{name}\" = {v}"))?;
        }
    }
    if checked
        .def
        .space
        .dims
        .keys()
        .any(|k| !SECTIONS.iter().any(|s| k.starts_with(&format!("{s}."))))
    {
        bail!("{prefix}.space: dimensions name `train.*` or `[model]` keys (`model.*`)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> PipelineFile {
        crate::config::parse(
            "version = 1\n[model]\narch = \"mlp\"\nhidden = [32]\n[train]\nepochs = 2\n[[stages]]\nkind = \"baseline\"\n",
        )
        .unwrap()
    }

    #[test]
    fn lists_scalar_keys_and_applies_values() {
        let f = file();
        let keys: Vec<String> = tunable_keys(&f)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        for k in [
            "train.learning_rate",
            "train.batch_size",
            "train.epochs",
            "train.weight_decay",
            "train.optimizer",
        ] {
            assert!(keys.contains(&k.to_string()), "{k} in {keys:?}");
        }
        let params = Params::from([
            ("train.learning_rate".to_string(), ParamValue::Float(0.01)),
            ("train.batch_size".to_string(), ParamValue::Int(32)),
            ("train.optimizer".to_string(), ParamValue::Str("sgd".into())),
        ]);
        let (train, _) = apply(&f, &params).unwrap();
        assert_eq!(
            (train.learning_rate, train.batch_size, train.epochs),
            (0.01, 32, 2)
        );
        assert_eq!(format!("{:?}", train.optimizer).to_lowercase(), "sgd");
    }

    #[test]
    fn unknown_keys_list_the_tunable_ones() {
        let f = file();
        let params = Params::from([("train.learning_rat".to_string(), ParamValue::Float(0.01))]);
        let msg = apply(&f, &params).unwrap_err().to_string();
        assert!(
            msg.contains("\"train.learning_rat\" is not a key")
                && msg.contains("train.learning_rate (now"),
            "{msg}"
        );
        let msg = apply(
            &f,
            &Params::from([("data.classes".to_string(), ParamValue::Int(3))]),
        )
        .unwrap_err()
        .to_string();
        assert!(msg.contains("not a key"), "{msg}");
    }

    #[test]
    fn bounds_are_checked_before_any_trial() {
        let f = file();
        let input = InputShape {
            channels: 1,
            height: 28,
            width: 28,
        };
        let tune: TuneConfig =
            toml::from_str("space = { \"train.batch_size\" = { int = [0, 64] } }").unwrap();
        let msg = format!(
            "{:#}",
            check(&f, &tune, "stages[1].tune", input).unwrap_err()
        );
        assert!(
            msg.contains("stages[1].tune.space.\"train.batch_size\" = 0"),
            "{msg}"
        );
        let ok: TuneConfig = toml::from_str(
            "space = { \"train.learning_rate\" = { float = [1e-4, 1e-1], log = true }, \"model.hidden\" = { choices = [[16], [64, 32]] } }",
        )
        .unwrap();
        check(&f, &ok, "stages[1].tune", input).unwrap();
        let (_, arch) = apply(
            &f,
            &Params::from([(
                "model.hidden".to_string(),
                ParamValue::List(vec![ParamValue::Int(64), ParamValue::Int(32)]),
            )]),
        )
        .unwrap();
        assert!(format!("{arch:?}").contains("64"), "{arch:?}");
    }
}
