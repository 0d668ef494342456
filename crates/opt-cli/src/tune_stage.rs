//! The `tune` stage: a study whose trials each train the pipeline's `[model]` with `[train]`
//! overridden by the trial's parameters, report validation accuracy per epoch (so early
//! stopping can end them), and are measured like every candidate. The best trial (one
//! objective) or the most accurate trial of the Pareto front (several) becomes the stage's
//! candidate; the report lists every trial.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::backend::AutodiffBackend;
use opt_arch::{ZooArch, ZooModel};
use opt_core::artifact::{ModelMeta, WeightsFormat, load_model, save_model_as};
use opt_core::data::ImageDataset;
use opt_core::eval::{EvalReport, MeasureConfig, Platform, measure};
use opt_core::fsutil::write_json_atomic;
use opt_core::model::{InputShape, ModelSpec};
use opt_core::train::{EpochStats, TrainData, TrainHooks, TrainReport, seed_backend, train};
use opt_tune::study::{Outcome, Reporter, Study, WorkerConfig};
use opt_tune::trial::{Trial, TrialState};
use opt_tune::{TuneConfig, pareto};
use serde::{Deserialize, Serialize};

use crate::config::PipelineFile;
use crate::tune_keys::apply;

/// What a tune stage needs from the pipeline.
pub struct TuneInput<'a> {
    /// The pipeline file (its `[model]` and `[train]` are the trials' starting point).
    pub file: &'a PipelineFile,
    /// The stage's settings.
    pub tune: &'a TuneConfig,
    /// The stage's index (for error messages).
    pub index: usize,
    /// The stage's folder.
    pub dir: &'a Path,
    /// Training and validation data.
    pub data: TrainData<'a>,
    /// The test split (trials are measured on it; it never selects anything).
    pub test: &'a ImageDataset,
    /// Image shape.
    pub input: InputShape,
    /// Metadata of a saved model of `spec`.
    pub meta: &'a dyn Fn(&ModelSpec<ZooArch>) -> ModelMeta<ZooArch>,
    /// Measurement settings.
    pub measure: MeasureConfig,
    /// Backend and device names.
    pub platform: Platform<'a>,
}

/// One trial in the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrialRow {
    /// Trial number.
    pub number: u64,
    /// complete, pruned, failed, running, waiting.
    pub state: TrialState,
    /// Its parameters.
    pub params: opt_tune::space::Params,
    /// Objective values (complete trials).
    pub values: Vec<f64>,
    /// Every metric measured (validation `accuracy`, `test_accuracy`, `latency_ms`, ...).
    pub metrics: BTreeMap<String, f64>,
    /// Epochs it trained.
    pub epochs_run: u32,
    /// Epochs it was configured for.
    pub epochs_budget: u32,
    /// Whether every constraint held.
    pub feasible: bool,
    /// Why it failed.
    pub message: Option<String>,
    /// The trial it re-runs.
    pub retry_of: Option<u64>,
    /// Wall time.
    pub seconds: Option<f64>,
}

/// The stage's details in report.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TuneReport {
    /// Study name.
    pub study: String,
    /// Storage URL.
    pub storage: String,
    /// Sampler and early-stopping settings.
    pub sampler: opt_tune::sampler::SamplerConfig,
    /// Early stopping.
    pub early_stopping: opt_tune::pruner::EarlyStoppingConfig,
    /// Objectives.
    pub objectives: Vec<opt_tune::objective::Objective>,
    /// Constraints.
    pub constraints: Vec<opt_tune::objective::Constraint>,
    /// Every trial of the study.
    pub trials: Vec<TrialRow>,
    /// The best trial (one objective) or the Pareto front (several), by number.
    pub front: Vec<u64>,
    /// The trial whose model is the candidate.
    pub chosen: u64,
    /// Trials this process ran.
    pub ran_here: Vec<u64>,
    /// Epochs trained over all finished trials, and what they would have trained without
    /// early stopping.
    pub epochs_run: u64,
    /// See `epochs_run`.
    pub epochs_budget: u64,
}

impl TuneReport {
    /// Summary lines for report.md.
    pub fn summary(&self) -> Vec<String> {
        let count = |s: TrialState| self.trials.iter().filter(|t| t.state == s).count();
        let saved = 1.0 - self.epochs_run as f64 / self.epochs_budget.max(1) as f64;
        let mut out = vec![format!(
            "study {} in {}: {} trials ({} complete, {} pruned, {} failed); {} of {} epochs trained ({:.0}% saved by early stopping)",
            self.study,
            self.storage,
            self.trials.len(),
            count(TrialState::Complete),
            count(TrialState::Pruned),
            count(TrialState::Failed),
            self.epochs_run,
            self.epochs_budget,
            100.0 * saved
        )];
        let label = if self.objectives.len() > 1 {
            "Pareto front"
        } else {
            "best trial"
        };
        for n in &self.front {
            if let Some(t) = self.trials.iter().find(|t| t.number == *n) {
                let values: Vec<String> = self
                    .objectives
                    .iter()
                    .zip(&t.values)
                    .map(|(o, v)| format!("{} {v:.4}", o.metric))
                    .collect();
                let params: Vec<String> =
                    t.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let chosen = if *n == self.chosen { " (chosen)" } else { "" };
                out.push(format!(
                    "{label}: trial {n}{chosen}: {} with {}",
                    values.join(", "),
                    params.join(", ")
                ));
            }
        }
        out
    }
}

/// The trial's hook: reports validation accuracy per epoch and stops when told to.
struct TrialHook<'r, 'a> {
    reporter: Option<&'r mut Reporter<'a>>,
    report_accuracy: bool,
    pruned: bool,
    diverged: Option<String>,
}

impl<B: AutodiffBackend, M> TrainHooks<B, M> for TrialHook<'_, '_> {
    fn on_epoch_end(&mut self, s: &EpochStats) -> ControlFlow<()> {
        if !s.train_loss.is_finite() || !s.val_loss.is_finite() {
            self.diverged = Some(format!(
                "diverged at epoch {}: training loss {}, validation loss {}",
                s.epoch, s.train_loss, s.val_loss
            ));
            return ControlFlow::Break(());
        }
        if let (Some(r), true) = (self.reporter.as_deref_mut(), self.report_accuracy)
            && r.report(s.epoch as u32, s.val_accuracy)
        {
            self.pruned = true;
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }
}

/// A trained trial.
struct Trained<B: burn::tensor::backend::Backend> {
    spec: ModelSpec<ZooArch>,
    model: ZooModel<B>,
    train: TrainReport,
}

fn trial_dir(dir: &Path, number: u64) -> PathBuf {
    dir.join("trials").join(format!("{number:05}"))
}

/// Trains one trial; `Err(outcome)` when it was pruned or failed.
fn train_trial<B: AutodiffBackend>(
    inp: &TuneInput<'_>,
    trial: &Trial,
    reporter: Option<&mut Reporter<'_>>,
    report_accuracy: bool,
    device: &B::Device,
) -> Result<std::result::Result<Trained<B::InnerBackend>, Outcome>> {
    let (train_cfg, arch) = apply(inp.file, &trial.params)?;
    let spec = ModelSpec {
        input: inp.input,
        classes: inp.file.data.classes,
        arch: arch.resolve(inp.input)?,
    };
    spec.validate()?;
    seed_backend::<B>(device, train_cfg.seed);
    let model = spec.init::<B>(device);
    let mut hook = TrialHook {
        reporter,
        report_accuracy,
        pruned: false,
        diverged: None,
    };
    let (model, report) = train(model, inp.data, &train_cfg, device, &mut hook);
    if let Some(why) = hook.diverged {
        return Ok(Err(Outcome::Failed(why)));
    }
    if hook.pruned {
        return Ok(Err(Outcome::Pruned));
    }
    Ok(Ok(Trained {
        spec,
        model,
        train: report,
    }))
}

/// Saves and measures a trained trial; its metrics.
fn measure_trial<B: AutodiffBackend>(
    inp: &TuneInput<'_>,
    t: &Trained<B::InnerBackend>,
    dir: &Path,
    device: &B::Device,
) -> Result<(EvalReport, BTreeMap<String, f64>)> {
    let saved = save_model_as(dir, &(inp.meta)(&t.spec), &t.model, WeightsFormat::Dense)?;
    write_json_atomic(&dir.join("train.json"), &t.train)?;
    let eval = measure(
        &t.model,
        &t.spec,
        &saved,
        inp.test,
        &inp.data.batcher,
        &inp.measure,
        inp.platform,
        device,
    );
    let metrics = BTreeMap::from([
        ("accuracy".to_string(), t.train.best_val_accuracy),
        ("test_accuracy".to_string(), eval.accuracy),
        ("latency_ms".to_string(), eval.latency_b1_ms_p50),
        ("latency_p95_ms".to_string(), eval.latency_b1_ms_p95),
        ("throughput".to_string(), eval.throughput_per_s),
        ("size_bytes".to_string(), eval.size_bytes as f64),
        ("params".to_string(), eval.params as f64),
        ("macs".to_string(), eval.macs as f64),
        ("epochs".to_string(), t.train.epochs.len() as f64),
        ("train_seconds".to_string(), t.train.seconds),
    ]);
    Ok((eval, metrics))
}

/// Where the study lives: a relative SQLite path is taken inside the run directory.
pub fn storage_url(tune: &TuneConfig, out: &Path) -> String {
    match tune.storage.as_deref() {
        None => format!("sqlite://{}", out.join("tune.db").display()),
        Some(url) => sqlite_relative_to(url, out),
    }
}

/// `url` with a relative SQLite file taken inside `base`; other URLs unchanged.
pub fn sqlite_relative_to(url: &str, base: &Path) -> String {
    match url.strip_prefix("sqlite://") {
        Some(path) if !Path::new(path).is_absolute() => {
            format!("sqlite://{}", base.join(path).display())
        }
        _ => url.to_string(),
    }
}

/// Opens every tune stage's storage and study before any training: a wrong URL, a missing
/// folder or a stored study with another definition fails now.
pub fn check_storages(p: &crate::config::Pipeline) -> Result<()> {
    for (i, stage) in p.file.stages.iter().enumerate() {
        let crate::config::StageSection::Tune { tune, .. } = stage else {
            continue;
        };
        let prefix = format!("stages[{i}].tune");
        let checked = tune.check(&prefix, p.file.train.epochs as u32)?;
        let url = storage_url(tune, &p.out);
        let name = tune
            .study
            .clone()
            .unwrap_or_else(|| crate::config::stage_name(stage).to_string());
        let mut storage =
            opt_tune::storage::open(&url).with_context(|| format!("{prefix}.storage"))?;
        storage
            .open_study(&name, &checked.def)
            .with_context(|| format!("{prefix}.study"))?;
    }
    Ok(())
}

/// The stage's result: the chosen trial's model, its spec, training report and the study.
pub struct TuneOutput<B: burn::tensor::backend::Backend> {
    /// Chosen trial's spec.
    pub spec: ModelSpec<ZooArch>,
    /// Its model.
    pub model: ZooModel<B>,
    /// Its training.
    pub train: Option<TrainReport>,
    /// The study.
    pub report: TuneReport,
}

/// Runs the study (until it holds `tune.trials` trials) and picks the candidate.
pub fn run_tune<B: AutodiffBackend>(
    inp: &TuneInput<'_>,
    study_name: &str,
    out: &Path,
    device: &B::Device,
) -> Result<TuneOutput<B::InnerBackend>> {
    let prefix = format!("stages[{}].tune", inp.index);
    let checked = inp.tune.check(&prefix, inp.file.train.epochs as u32)?;
    let url = storage_url(inp.tune, out);
    let storage = opt_tune::storage::open(&url)?;
    let worker = WorkerConfig {
        stale_after_s: inp.tune.stale_after_s,
        heartbeat_s: (inp.tune.stale_after_s / 4.0).clamp(0.2, 15.0),
        ..WorkerConfig::default()
    };
    let report_accuracy = checked.def.objectives[checked.def.watch].metric == "accuracy";
    let mut study = Study::open(
        storage,
        study_name,
        checked.def,
        checked.sampler,
        checked.pruner,
        worker,
    )?;
    let directions = study.def().objectives.clone();
    eprintln!(
        "optkit: study {study_name} in {url}: {} trials, sampler {:?}, early stopping {:?}",
        inp.tune.trials, inp.tune.sampler.kind, inp.tune.early_stopping.kind
    );
    let mut best: Option<(u64, f64)> = None;
    let mut setup_error = None;
    let ran = study.optimize(inp.tune.trials, |trial, reporter| {
        let started = std::time::Instant::now();
        let outcome =
            match train_trial::<B>(inp, trial, Some(&mut *reporter), report_accuracy, device) {
                Err(e) => {
                    setup_error = Some(e);
                    return Outcome::Failed("could not be set up".into());
                }
                Ok(Err(outcome)) => outcome,
                Ok(Ok(trained)) => match measure_trial::<B>(
                    inp,
                    &trained,
                    &trial_dir(inp.dir, trial.number),
                    device,
                ) {
                    Ok((_, metrics)) => Outcome::Complete(metrics),
                    Err(e) => Outcome::Failed(format!("{e:#}")),
                },
            };
        progress_line(
            trial,
            &outcome,
            reporter.trial(),
            &directions,
            &mut best,
            started.elapsed().as_secs_f64(),
        );
        outcome
    })?;
    if let Some(e) = setup_error {
        return Err(e.context(format!("{prefix}: a trial's settings could not be applied")));
    }
    let trials = study.trials()?;
    let def = study.def().clone();
    let front: Vec<u64> = pareto::front(&def, &trials)
        .iter()
        .map(|t| t.number)
        .collect();
    let watch = def.watch;
    let dir = def.objectives[watch].direction;
    let pick = |pool: Vec<&Trial>| {
        pool.into_iter()
            .min_by(|a, b| {
                dir.minimized(a.values[watch])
                    .total_cmp(&dir.minimized(b.values[watch]))
                    .then(a.number.cmp(&b.number))
            })
            .map(|t| t.number)
    };
    let chosen = match pick(
        trials
            .iter()
            .filter(|t| front.contains(&t.number))
            .collect(),
    ) {
        Some(n) => n,
        None => {
            let complete: Vec<&Trial> = trials
                .iter()
                .filter(|t| t.state == TrialState::Complete)
                .collect();
            match pick(complete) {
                Some(n) => {
                    tracing::warn!(
                        "no trial met the constraints; the candidate is trial {n}, the best on {}",
                        def.objectives[watch].metric
                    );
                    n
                }
                None => bail!(
                    "{prefix}: no trial of study {study_name} completed ({} trials: {}); see the trials' messages in {}",
                    trials.len(),
                    trials
                        .iter()
                        .map(|t| format!("#{} {}", t.number, t.state))
                        .collect::<Vec<_>>()
                        .join(", "),
                    url
                ),
            }
        }
    };
    let chosen_trial = trials
        .iter()
        .find(|t| t.number == chosen)
        .expect("picked from the trials")
        .clone();
    let (spec, model, train_report) = load_or_retrain::<B>(inp, &chosen_trial, device)?;
    let rows: Vec<TrialRow> = trials.iter().map(|t| row(inp.file, t)).collect();
    let report = TuneReport {
        study: study_name.to_string(),
        storage: url,
        sampler: inp.tune.sampler.clone(),
        early_stopping: inp.tune.early_stopping.clone(),
        objectives: def.objectives.clone(),
        constraints: def.constraints.clone(),
        epochs_run: rows
            .iter()
            .filter(|r| r.state.is_finished())
            .map(|r| u64::from(r.epochs_run))
            .sum(),
        epochs_budget: rows
            .iter()
            .filter(|r| r.state.is_finished())
            .map(|r| u64::from(r.epochs_budget))
            .sum(),
        trials: rows,
        front,
        chosen,
        ran_here: ran.iter().map(|t| t.number).collect(),
    };
    Ok(TuneOutput {
        spec,
        model,
        train: train_report,
        report,
    })
}

fn row(file: &PipelineFile, t: &Trial) -> TrialRow {
    let budget = apply(file, &t.params)
        .map(|(c, _)| c.epochs as u32)
        .unwrap_or(0);
    let run = t
        .metrics
        .get("epochs")
        .map(|e| *e as u32)
        .or(t.last_step())
        .unwrap_or(0);
    TrialRow {
        number: t.number,
        state: t.state,
        params: t.params.clone(),
        values: t.values.clone(),
        metrics: t.metrics.clone(),
        epochs_run: run,
        epochs_budget: budget,
        feasible: t.feasible(),
        message: t.message.clone(),
        retry_of: t.retry_of,
        seconds: t.duration_s(),
    }
}

/// The chosen trial's spec, model and (when recorded) training report.
type Chosen<B> = (ModelSpec<ZooArch>, ZooModel<B>, Option<TrainReport>);

/// The chosen trial's model from its folder, or trained again with its parameters when
/// another worker ran it somewhere this process cannot read.
fn load_or_retrain<B: AutodiffBackend>(
    inp: &TuneInput<'_>,
    trial: &Trial,
    device: &B::Device,
) -> Result<Chosen<B::InnerBackend>> {
    let dir = trial_dir(inp.dir, trial.number);
    if dir.join("model.json").is_file() {
        let (meta, model, _) = load_model::<B::InnerBackend, ZooArch>(&dir, device)
            .with_context(|| format!("trial {} model {}", trial.number, dir.display()))?;
        let train = std::fs::read_to_string(dir.join("train.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        return Ok((meta.spec, model, train));
    }
    tracing::warn!(
        trial = trial.number,
        "its model is not in {}; training it again",
        dir.display()
    );
    match train_trial::<B>(inp, trial, None, false, device)? {
        Ok(t) => Ok((t.spec, t.model, Some(t.train))),
        Err(o) => bail!("retraining trial {} did not finish: {o:?}", trial.number),
    }
}

/// One line of the live progress table (stderr).
fn progress_line(
    trial: &Trial,
    outcome: &Outcome,
    reported: &Trial,
    objectives: &[opt_tune::objective::Objective],
    best: &mut Option<(u64, f64)>,
    seconds: f64,
) {
    let params: Vec<String> = trial
        .params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let (state, values) = match outcome {
        Outcome::Complete(m) => {
            let vals: Vec<String> = objectives
                .iter()
                .map(|o| {
                    format!(
                        "{} {:.4}",
                        o.metric,
                        m.get(&o.metric).copied().unwrap_or(f64::NAN)
                    )
                })
                .collect();
            if let Some(v) = m.get(&objectives[0].metric)
                && best.is_none_or(|(_, b)| objectives[0].direction.better(*v, b))
            {
                *best = Some((trial.number, *v));
            }
            ("complete", vals.join(", "))
        }
        Outcome::Pruned => (
            "pruned",
            format!("stopped at epoch {}", reported.last_step().unwrap_or(0)),
        ),
        Outcome::Failed(why) => ("failed", why.clone()),
    };
    let best = best
        .map(|(n, v)| format!("best {} {v:.4} (#{n})", objectives[0].metric))
        .unwrap_or_default();
    eprintln!(
        "optkit: trial {:>3} {state:<8} {values} | {} | {seconds:.1} s | {best}",
        trial.number,
        params.join(" ")
    );
}
