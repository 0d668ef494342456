//! The pipeline TOML file: raw serde (`PipelineFile`, unknown keys rejected) and the validated
//! [`Pipeline`] (ranges checked, paths resolved, errors that point at the key).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use opt_arch::{ArchChoice, ZooArch};
use opt_core::data::DataSource;
use opt_core::model::ModelSpec;
use opt_core::train::TrainConfig;
use opt_distill::DistillConfig;
use opt_prune::PruneConfig;
use opt_quant::QuantConfig;
use serde::{Deserialize, Serialize};

pub use crate::config_sections::{DataSection, ReportSection, SourceKind};

/// One `[[stages]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum StageSection {
    /// Train the model of `[model]` with `[train]` and measure it.
    Baseline {
        /// Candidate name (default `baseline`).
        name: Option<String>,
        /// Architecture of this candidate (default: `[model]`), so one run can train several
        /// baselines and compare them.
        model: Option<ArchChoice>,
    },
    /// Prune the model of an earlier stage (`from`, default the previous stage), fine-tune it
    /// and measure it.
    Prune {
        /// Candidate name (default `prune`).
        name: Option<String>,
        /// The stage whose model is pruned (default: the previous stage).
        from: Option<String>,
        /// `[stages.prune]`: method, criterion, target, schedule, fine-tuning, exclusions,
        /// overrides, rounding (see opt_prune::PruneConfig).
        #[serde(default)]
        prune: PruneConfig,
    },
    /// Quantize the model of an earlier stage (`from`, default the previous stage) and measure
    /// it: int8 weights and activations on the integer path (post-training or
    /// quantization-aware), or weight-only 8/4-bit codes.
    Quantize {
        /// Candidate name (default `quantize`).
        name: Option<String>,
        /// The stage whose model is quantized (default: the previous stage).
        from: Option<String>,
        /// `[stages.quantize]`: method, bits, weights_only, granularity, block_size,
        /// calibration, qat (see opt_quant::QuantConfig).
        #[serde(default)]
        quantize: QuantConfig,
    },
    /// Knowledge distillation: train a student on a teacher's soft targets (and optional
    /// hints) and measure it. The student is an earlier stage's model (`from`, default the
    /// previous stage: recovery after pruning) or a fresh model of the `student` architecture;
    /// the teacher is an earlier stage (`teacher`, default the first stage) or a saved model
    /// folder (`teacher_model`).
    Distill {
        /// Candidate name (default `distill`).
        name: Option<String>,
        /// The stage whose model is the student (default: the previous stage).
        from: Option<String>,
        /// Train a fresh student of this architecture instead (same keys as `[model]`).
        student: Option<ArchChoice>,
        /// The stage whose model teaches (default: the first stage).
        teacher: Option<String>,
        /// A saved model folder as teacher (relative to the config file's directory).
        teacher_model: Option<PathBuf>,
        /// `[stages.distill]`: temperature, alpha, hints, hint_weight, epochs, learning_rate,
        /// cache_teacher (see opt_distill::DistillConfig).
        #[serde(default)]
        distill: DistillConfig,
    },
    /// Hyperparameter search: a study whose trials either train `[model]` with `[train]`
    /// overridden by each trial's parameters (`train.*`, `model.*` keys), or run a chain of
    /// prune/quantize/distill steps (`[[stages.trial]]`) on an earlier stage's model with their
    /// settings overridden (`prune.*`, `quantize.*`, `distill.*`, `train.*` keys); the best
    /// trial (or the most accurate one on the Pareto front) becomes the candidate.
    Tune {
        /// Candidate name (default `tune`); also the default study name.
        name: Option<String>,
        /// With `[[stages.trial]]`: the stage whose model the trials start from (default: the
        /// previous stage).
        from: Option<String>,
        /// `[[stages.trial]]`: the prune, quantize and distill steps every trial runs, in
        /// order, each on the previous one's model (at most one of each kind; written like
        /// stages, without `name` and `from`). Empty: trials train `[model]`.
        #[serde(default)]
        trial: Vec<StageSection>,
        /// `[stages.tune]`: study, storage, trials, objectives, constraints, watch, sampler,
        /// early_stopping, stale_after_s, space (see opt_tune::TuneConfig).
        #[serde(default)]
        tune: opt_tune::TuneConfig,
    },
}

/// The raw file, exactly as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineFile {
    /// Schema version; must be 1.
    pub version: u32,
    /// Backend to use unless `--backend` is given (`flex`, `ndarray`, `wgpu`).
    pub backend: Option<String>,
    /// `[data]`.
    #[serde(default)]
    pub data: DataSection,
    /// `[model]`: `arch` (mlp, lenet5, cnn, mobilenet_v1, mobilenet_v2, mobilenet_v3_large,
    /// mobilenet_v3_small, efficientnet_b0..b7) plus widths or preset knobs.
    pub model: ArchChoice,
    /// `[train]`.
    #[serde(default)]
    pub train: TrainConfig,
    /// `[[stages]]`, run in order.
    pub stages: Vec<StageSection>,
    /// `[constraints]`: the largest accuracy drop against the baseline (points, or "1%"
    /// relative), optional ceilings (max_latency_ms, max_size_bytes, max_macs) and what "best"
    /// means among the candidates that meet them (prefer = size, latency, macs, accuracy).
    #[serde(default)]
    pub constraints: opt_core::select::Constraints,
    /// `[deploy]`: a deployment bundle of the best candidate (or a named one) written into the
    /// run's output folder at the end: formats (onnx, safetensors, burn), path, candidate.
    pub deploy: Option<crate::export_cmd::DeployConfig>,
    /// `[report]`.
    #[serde(default)]
    pub report: ReportSection,
}

/// Command-line values that override the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--out`.
    pub out: Option<PathBuf>,
    /// `--backend`.
    pub backend: Option<String>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--seed` (replaces `train.seed`: weight initialization, data order and split).
    pub seed: Option<u64>,
    /// `--force <stage>`: stages to run again even when an earlier run's result is reusable.
    pub force: Vec<String>,
}

/// A checked pipeline, ready to run.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// The config file.
    pub config_path: PathBuf,
    /// The file's contents after overrides.
    pub file: PipelineFile,
    /// Resolved data source.
    pub source: DataSource,
    /// Run directory.
    pub out: PathBuf,
    /// Backend name, if chosen by file or flag.
    pub backend: Option<String>,
    /// Stages to run again even when reusable (`--force`).
    pub force: Vec<String>,
    /// `optkit tune --resume`: a tune stage continues its stored study and refuses to start
    /// a new one.
    pub resume_study: bool,
}

pub use crate::stage_graph::TeacherSource;

/// The largest settings file optkit reads (a pipeline file is a few kB).
pub const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// Reads a settings file as UTF-8 text: a regular file of at most [`MAX_CONFIG_BYTES`].
pub fn read_text(path: &Path) -> Result<String> {
    let bytes = opt_core::fsutil::read_capped(path, MAX_CONFIG_BYTES, "a settings file")?;
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{} is not UTF-8 text (invalid byte at offset {}); give a TOML file",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })
}

/// Reads, parses and validates a pipeline file.
pub fn load(path: &Path, overrides: Overrides) -> Result<Pipeline> {
    let text = read_text(path).with_context(|| {
        format!(
            "cannot read config file {}; check the path given to --config",
            path.display()
        )
    })?;
    from_text(&text, path, overrides).with_context(|| format!("invalid config {}", path.display()))
}

/// Parses and validates pipeline TOML `text` as the file `path` would be (relative paths in
/// it are taken relative to `path`'s folder).
pub fn from_text(text: &str, path: &Path, overrides: Overrides) -> Result<Pipeline> {
    let file = parse(text)?;
    validate(path, file, overrides)
}

/// Parses TOML text; errors carry the dotted key path and the line.
pub fn parse(text: &str) -> Result<PipelineFile> {
    parse_toml(text)
}

/// Parses any TOML settings type; errors carry the dotted key path and the line.
pub fn parse_toml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    let de = toml::Deserializer::new(text);
    match serde_path_to_error::deserialize::<_, T>(de) {
        Ok(f) => Ok(f),
        Err(e) => {
            let key = e.path().to_string();
            let inner = e.into_inner();
            // One line: TOML's messages may span several.
            let msg = inner
                .message()
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("; ");
            let line = inner
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
            let at = line.map(|l| format!(" (line {l})")).unwrap_or_default();
            if key == "." || key.is_empty() {
                bail!("{msg}{at}")
            }
            bail!("key `{key}`{at}: {msg}")
        }
    }
}

fn validate(path: &Path, mut file: PipelineFile, ov: Overrides) -> Result<Pipeline> {
    if file.version != 1 {
        bail!(
            "version = {}: this optkit reads version 1; write `version = 1`",
            file.version
        );
    }
    let base = path.parent().unwrap_or(Path::new("."));
    let source = match (&ov.data_dir, file.data.source, &file.data.path) {
        (Some(dir), _, _) => {
            file.data.source = SourceKind::Dir;
            file.data.path = Some(dir.clone());
            // Recorded absolute in every model.json, so it names the same files from anywhere.
            DataSource::Dir { path: dir.clone() }.relative_to(Path::new("."))
        }
        (None, SourceKind::Embedded, None) => DataSource::Embedded,
        (None, SourceKind::Embedded, Some(_)) => {
            bail!(
                "data.path is set but data.source = \"embedded\"; set data.source = \"dir\" or remove data.path"
            )
        }
        (None, SourceKind::Dir, Some(p)) => DataSource::Dir { path: p.clone() }.relative_to(base),
        (None, SourceKind::Dir, None) => {
            bail!(
                "data.source = \"dir\" needs data.path (or --data-dir <dir>) pointing at the IDX files"
            )
        }
    };
    if file.data.classes < 2 || file.data.classes > 256 {
        bail!(
            "data.classes = {}: must be between 2 and 256",
            file.data.classes
        );
    }
    let vs = file.data.validation_split;
    if !(vs > 0.0 && vs < 1.0) {
        bail!("data.validation_split = {vs}: must be strictly between 0 and 1, for example 0.1");
    }
    for (key, v) in [
        ("train_limit", file.data.train_limit),
        ("test_limit", file.data.test_limit),
    ] {
        if v == Some(0) {
            bail!("data.{key} = 0: must be at least 1, or left out to use all items");
        }
    }
    if let Some(seed) = ov.seed {
        file.train.seed = seed;
    }
    file.train.validate("train")?;
    file.report.measure().validate("report")?;
    file.constraints.validate("constraints")?;
    if file.stages.is_empty() {
        bail!("no [[stages]]: add at least `[[stages]]\\nkind = \"baseline\"`");
    }
    if !matches!(file.stages[0], StageSection::Baseline { .. }) {
        bail!("stages[0] must be the baseline stage (kind = \"baseline\")");
    }
    let mut names = std::collections::HashSet::new();
    for (i, s) in file.stages.iter().enumerate() {
        match s {
            StageSection::Prune { prune, .. } => prune.validate(&format!("stages[{i}].prune"))?,
            StageSection::Quantize { quantize, .. } => {
                quantize.validate(&format!("stages[{i}].quantize"))?
            }
            StageSection::Distill {
                distill,
                from,
                student,
                teacher,
                teacher_model,
                ..
            } => {
                distill.validate(&format!("stages[{i}].distill"))?;
                if from.is_some() && student.is_some() {
                    bail!(
                        "stages[{i}]: `from` and `student` are both set; a distill stage trains \
                         either an earlier stage's model (from) or a fresh one (student)"
                    );
                }
                if teacher.is_some() && teacher_model.is_some() {
                    bail!(
                        "stages[{i}]: `teacher` and `teacher_model` are both set; name an \
                         earlier stage or a saved model folder, not both"
                    );
                }
            }
            StageSection::Tune {
                tune, trial, from, ..
            } => {
                tune.check(&format!("stages[{i}].tune"), file.train.epochs as u32)?;
                check_trial_steps(i, trial, from.is_some(), tune)?;
            }
            StageSection::Baseline { .. } => {}
        }
        let name = stage_name(s);
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            bail!(
                "stages[{i}].name = {name:?}: use letters, digits, '-' and '_' only (it names a folder)"
            );
        }
        if !names.insert(name.to_string()) {
            bail!(
                "stages[{i}].name = {name:?}: another stage already has this name; names must be unique"
            );
        }
    }
    if let Some(d) = &file.deploy {
        let names: Vec<String> = file
            .stages
            .iter()
            .map(|s| stage_name(s).to_string())
            .collect();
        d.validate(&names)?;
    }
    for name in &ov.force {
        if !file.stages.iter().any(|s| stage_name(s) == name) {
            let names: Vec<&str> = file.stages.iter().map(stage_name).collect();
            bail!(
                "--force {name:?}: no stage has this name; stages: {}",
                names.join(", ")
            );
        }
    }
    let out = ov.out.unwrap_or_else(|| file.report.out.clone());
    let backend = ov.backend.or_else(|| file.backend.clone());
    let p = Pipeline {
        config_path: path.to_path_buf(),
        file,
        source,
        out,
        backend,
        force: ov.force,
        resume_study: false,
    };
    for i in 0..p.file.stages.len() {
        p.source_of(i)?;
        if p.distill_step(i).is_some() {
            p.teacher_of(i)?;
        }
    }
    Ok(p)
}

/// Checks a prune, quantize or distill step's settings against the model it will run on
/// (`prefix` names the step, for example `stages[2]` or `stages[2].trial[0]`): a structured
/// prune on a family without channel groups, or the int8 integer path on a model it cannot
/// run, is refused here, before any training.
pub fn check_step(step: &StageSection, prefix: &str, spec: &ModelSpec<ZooArch>) -> Result<()> {
    match step {
        StageSection::Prune { prune, .. } => {
            opt_prune::check_config(spec, prune, &format!("{prefix}.prune"))?;
        }
        StageSection::Quantize { quantize, .. } => {
            quantize.validate(&format!("{prefix}.quantize"))?;
            if !quantize.is_weights_only() && !matches!(spec.arch, ZooArch::Core(_)) {
                bail!(
                    "the int8 integer path runs opt-core's mlp, lenet5 and cnn; {} is not one of \
                     them. Quantize its weights only (weights_only = true) or choose another model",
                    spec.describe()
                );
            }
        }
        StageSection::Distill { distill, .. } => distill.validate(&format!("{prefix}.distill"))?,
        StageSection::Baseline { .. } | StageSection::Tune { .. } => {
            bail!("{prefix}: only prune, quantize and distill run as steps on a model")
        }
    }
    Ok(())
}

/// The structure of a tune stage's `[[stages.trial]]`: prune, quantize and distill steps, at
/// most one of each, without names or sources of their own.
fn check_trial_steps(
    i: usize,
    trial: &[StageSection],
    has_from: bool,
    tune: &opt_tune::TuneConfig,
) -> Result<()> {
    if trial.is_empty() {
        if has_from {
            bail!(
                "stages[{i}].from is set but the stage has no [[stages.trial]] steps; trials \
                 that train [model] start from scratch. Add steps (prune, quantize, distill) or \
                 remove `from`"
            );
        }
        return Ok(());
    }
    let mut kinds = Vec::new();
    for (k, step) in trial.iter().enumerate() {
        let at = format!("stages[{i}].trial[{k}]");
        let kind = crate::stage_run::step_kind(step);
        let (name, from) = match step {
            StageSection::Prune { name, from, .. } | StageSection::Quantize { name, from, .. } => {
                (name, from)
            }
            StageSection::Distill {
                name,
                from,
                student,
                teacher,
                teacher_model,
                ..
            } => {
                if student.is_some() && k > 0 {
                    bail!(
                        "{at}.student: a fresh student can only be the first step (this step \
                         would discard the model of step {}); move the distill step first or \
                         remove `student`",
                        k - 1
                    );
                }
                if teacher.is_some() && teacher_model.is_some() {
                    bail!("{at}: `teacher` and `teacher_model` are both set; name one");
                }
                (name, from)
            }
            StageSection::Baseline { .. } | StageSection::Tune { .. } => bail!(
                "{at}.kind = \"{kind}\": a trial runs prune, quantize and distill steps; \
                 baseline and tune are stages of their own"
            ),
        };
        if name.is_some() || from.is_some() {
            bail!(
                "{at}: a trial step has no `name` or `from` of its own; set `from` on the tune \
                 stage (the steps run in order, each on the previous one's model)"
            );
        }
        if kinds.contains(&kind) {
            bail!(
                "{at}.kind = \"{kind}\": a trial runs at most one {kind} step (its dimensions \
                 are named `{kind}.<key>`)"
            );
        }
        kinds.push(kind);
    }
    if tune.early_stopping.kind != opt_tune::pruner::EarlyStoppingKind::None {
        bail!(
            "stages[{i}].tune.early_stopping.kind = {:?}: early stopping needs a validation \
             accuracy per epoch, and trials of prune/quantize/distill steps report only their \
             final value; set early_stopping = {{ kind = \"none\" }}",
            format!("{:?}", tune.early_stopping.kind).to_lowercase()
        );
    }
    Ok(())
}

/// The candidate name of a stage.
pub fn stage_name(s: &StageSection) -> &str {
    match s {
        StageSection::Baseline { name, .. } => name.as_deref().unwrap_or("baseline"),
        StageSection::Prune { name, .. } => name.as_deref().unwrap_or("prune"),
        StageSection::Quantize { name, .. } => name.as_deref().unwrap_or("quantize"),
        StageSection::Distill { name, .. } => name.as_deref().unwrap_or("distill"),
        StageSection::Tune { name, .. } => name.as_deref().unwrap_or("tune"),
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
