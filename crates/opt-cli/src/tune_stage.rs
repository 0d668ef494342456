//! The `tune` stage: a study whose trials each either train the pipeline's `[model]` with
//! `[train]` overridden by the trial's parameters (reporting validation accuracy per epoch, so
//! early stopping can end them), or run the stage's prune/quantize/distill steps on an
//! earlier stage's model with the trial's settings. Every trial is saved and measured like a
//! candidate. The best trial (one objective) or the most accurate trial of the Pareto front
//! (several) becomes the stage's candidate; the report lists every trial.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::backend::AutodiffBackend;
use opt_arch::{ZooArch, ZooModel};
use opt_core::artifact::{WeightsFormat, load_model};
use opt_core::eval::EvalReport;
use opt_core::fsutil::write_json_atomic;
use opt_core::model::{InputShape, ModelSpec};
use opt_core::train::{EpochStats, TrainHooks, TrainReport, seed_backend, train};
use opt_tune::study::{Outcome, Reporter, Study, WorkerConfig};
use opt_tune::trial::{Trial, TrialState};
use opt_tune::{TuneConfig, pareto};

use crate::config::{PipelineFile, StageSection};
use crate::stage_run::{
    StepContext, StepOutput, TeacherRef, run_step, save_and_measure, step_kind,
};
use crate::tune_keys::{TrialSettings, apply, trial_spec};
pub use crate::tune_report::{ChosenStep, TrialRow, TuneReport};
use crate::tune_report::{progress_line, row};
use crate::tune_study::{RunWriter, StudyId, storage_url};

/// What a tune stage needs from the pipeline.
pub struct TuneInput<'a, B: AutodiffBackend> {
    /// The pipeline file (its `[model]` and `[train]` are the trials' starting point).
    pub file: &'a PipelineFile,
    /// The stage's settings.
    pub tune: &'a TuneConfig,
    /// The steps every trial runs (`[[stages.trial]]`); empty: trials train `[model]`.
    pub steps: &'a [StageSection],
    /// The stage's index (for error messages).
    pub index: usize,
    /// The stage's folder.
    pub dir: &'a Path,
    /// Data, `[train]`, measurement settings, device (the test split only measures; it never
    /// selects anything).
    pub ctx: &'a StepContext<'a, B>,
    /// Image shape.
    pub input: InputShape,
    /// The model the steps start from (trials with steps).
    pub start: Option<(&'a ModelSpec<ZooArch>, &'a ZooModel<B::InnerBackend>)>,
    /// A distill step's teacher.
    pub teacher: Option<TeacherRef<'a, B::InnerBackend>>,
    /// The run's single writer, when workers may share the run folder.
    pub writer: Option<&'a RunWriter>,
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

fn trial_dir(dir: &Path, study: &StudyId, number: u64) -> PathBuf {
    dir.join("trials")
        .join(&study.tag)
        .join(format!("{number:05}"))
}

/// Trains one trial that trains `[model]`; `Err(outcome)` when it was pruned or failed.
fn train_trial<B: AutodiffBackend>(
    inp: &TuneInput<'_, B>,
    settings: &TrialSettings,
    reporter: Option<&mut Reporter<'_>>,
    report_accuracy: bool,
) -> Result<std::result::Result<Trained<B::InnerBackend>, Outcome>> {
    let device = inp.ctx.device;
    let spec = trial_spec(inp.file, settings, inp.input)?;
    seed_backend::<B>(device, settings.train.seed);
    let model = spec.init::<B>(device);
    let mut hook = TrialHook {
        reporter,
        report_accuracy,
        pruned: false,
        diverged: None,
    };
    let (model, report) = train(model, inp.ctx.data, &settings.train, device, &mut hook);
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

/// The metrics of a measured model: validation `accuracy` (the objective), the test split's
/// `test_accuracy`, and the measured costs.
fn metrics_of(valid_accuracy: f64, eval: &EvalReport) -> BTreeMap<String, f64> {
    BTreeMap::from([
        ("accuracy".to_string(), valid_accuracy),
        ("test_accuracy".to_string(), eval.accuracy),
        ("latency_ms".to_string(), eval.latency_b1_ms_p50),
        ("latency_p95_ms".to_string(), eval.latency_b1_ms_p95),
        ("throughput".to_string(), eval.throughput_per_s),
        ("size_bytes".to_string(), eval.size_bytes as f64),
        ("params".to_string(), eval.params as f64),
        ("nonzero_params".to_string(), eval.nonzero_params as f64),
        ("macs".to_string(), eval.macs as f64),
    ])
}

/// Saves and measures a trained trial; its metrics.
fn measure_trial<B: AutodiffBackend>(
    inp: &TuneInput<'_, B>,
    t: &Trained<B::InnerBackend>,
    dir: &Path,
) -> Result<BTreeMap<String, f64>> {
    let eval = save_and_measure(inp.ctx, dir, &t.spec, &t.model, WeightsFormat::Dense)?;
    write_json_atomic(&dir.join("train.json"), &t.train)?;
    let mut metrics = metrics_of(t.train.best_val_accuracy, &eval);
    metrics.insert("epochs".into(), t.train.epochs.len() as f64);
    metrics.insert("train_seconds".into(), t.train.seconds);
    Ok(metrics)
}

/// Runs a trial's steps in order, each on the previous one's model: the last into `dir`,
/// the others into `dir/steps/<k>-<kind>/`. Returns every step's output.
fn run_steps<B: AutodiffBackend>(
    inp: &TuneInput<'_, B>,
    settings: &TrialSettings,
    dir: &Path,
) -> Result<Vec<StepOutput<B::InnerBackend>>> {
    let Some((spec, model)) = inp.start else {
        bail!("the trials' steps have no input model");
    };
    let ctx = StepContext::<B> {
        train: &settings.train,
        ..*inp.ctx
    };
    let mut outs: Vec<StepOutput<B::InnerBackend>> = Vec::new();
    for (k, step) in settings.steps.iter().enumerate() {
        let step_dir = if k + 1 == settings.steps.len() {
            dir.to_path_buf()
        } else {
            dir.join("steps").join(format!("{k}-{}", step_kind(step)))
        };
        let input = match outs.last() {
            Some(o) => (&o.spec, &o.model),
            None => (spec, model),
        };
        let out = run_step(&ctx, step, &step_dir, input, inp.teacher)?;
        outs.push(out);
    }
    Ok(outs)
}

/// The metrics of a trial's steps (the last one's model; epochs summed over the steps).
fn steps_metrics<B: burn::tensor::backend::Backend>(
    outs: &[StepOutput<B>],
) -> BTreeMap<String, f64> {
    let last = outs.last().expect("a trial has at least one step");
    let mut metrics = metrics_of(last.valid_accuracy, &last.eval);
    let trained = outs.iter().filter_map(|o| o.train.as_ref());
    metrics.insert(
        "epochs".into(),
        trained.clone().map(|t| t.epochs.len() as f64).sum(),
    );
    metrics.insert("train_seconds".into(), trained.map(|t| t.seconds).sum());
    metrics
}

/// Runs the study (until it holds `tune.trials` trials) and makes the chosen trial the
/// stage's candidate in the stage's folder: a trained model is copied from its trial folder
/// (or trained again when another worker ran it elsewhere), steps are run again into it.
pub fn run_tune<B: AutodiffBackend>(
    inp: &TuneInput<'_, B>,
    study_id: &StudyId,
    out: &Path,
) -> Result<(StepOutput<B::InnerBackend>, Option<opt_tune::lease::Lease>)> {
    let stored = study_id.stored();
    let study_name = stored.as_str();
    let prefix = format!("stages[{}].tune", inp.index);
    let checked = inp.tune.check(&prefix, inp.file.train.epochs as u32)?;
    let storage = opt_tune::storage::open(&storage_url(inp.tune, out))?;
    // Printed and stored with its password masked.
    let url = storage.url();
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
        let settings = match apply(inp.file, inp.steps, &trial.params) {
            Ok(s) => s,
            Err(e) => {
                setup_error = Some(e);
                return Outcome::Failed("could not be set up".into());
            }
        };
        let dir = trial_dir(inp.dir, study_id, trial.number);
        let outcome = if inp.steps.is_empty() {
            match train_trial::<B>(inp, &settings, Some(&mut *reporter), report_accuracy) {
                Err(e) => {
                    setup_error = Some(e);
                    return Outcome::Failed("could not be set up".into());
                }
                Ok(Err(outcome)) => outcome,
                Ok(Ok(trained)) => match measure_trial::<B>(inp, &trained, &dir) {
                    Ok(metrics) => Outcome::Complete(metrics),
                    Err(e) => Outcome::Failed(format!("{e:#}")),
                },
            }
        } else {
            match run_steps::<B>(inp, &settings, &dir) {
                Ok(outs) => diverged(&outs)
                    .map(Outcome::Failed)
                    .unwrap_or_else(|| Outcome::Complete(steps_metrics(&outs))),
                Err(e) => Outcome::Failed(format!("{e:#}")),
            }
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
    // From here on this worker writes the stage's result: one worker at a time (the lease is
    // handed to the pipeline, which holds it until the stage's marker is written).
    let lease = inp.writer.map(RunWriter::hold).transpose()?;
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
    let settings = apply(inp.file, inp.steps, &chosen_trial.params)?;
    let (spec, model, eval, train_report, bits, chosen_steps, step_summary) =
        if inp.steps.is_empty() {
            let (spec, model, train) =
                load_or_retrain::<B>(inp, study_id, &chosen_trial, &settings)?;
            let eval = save_and_measure(inp.ctx, inp.dir, &spec, &model, WeightsFormat::Dense)?;
            if let Some(t) = &train {
                write_json_atomic(&inp.dir.join("train.json"), t)?;
            }
            (spec, model, eval, train, None, Vec::new(), Vec::new())
        } else {
            tracing::info!(
                trial = chosen,
                "running the chosen trial's steps again into {}",
                inp.dir.display()
            );
            let outs = run_steps::<B>(inp, &settings, inp.dir)
                .with_context(|| format!("running trial {chosen}'s steps again"))?;
            let steps: Vec<ChosenStep> = outs
                .iter()
                .map(|o| ChosenStep {
                    kind: o.kind.to_string(),
                    details: o.details.clone(),
                })
                .collect();
            let summary: Vec<String> = outs
                .iter()
                .flat_map(|o| o.summary.iter().map(move |l| format!("{}: {l}", o.kind)))
                .collect();
            // The training curve shown is the last step's that trained (a quantize step after
            // a prune step has none of its own).
            let train = outs.iter().rev().find_map(|o| o.train.clone());
            let last = outs
                .into_iter()
                .last()
                .expect("a trial has at least one step");
            (
                last.spec, last.model, last.eval, train, last.bits, steps, summary,
            )
        };
    let rows: Vec<TrialRow> = trials.iter().map(|t| row(inp.file, inp.steps, t)).collect();
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
        chosen_steps,
    };
    let mut summary = report.summary();
    summary.extend(step_summary);
    let out = StepOutput {
        kind: "tune",
        method: Some(format!("{:?}", inp.tune.sampler.kind).to_lowercase()),
        bits,
        spec,
        model,
        eval,
        valid_accuracy: chosen_trial
            .metrics
            .get("accuracy")
            .copied()
            .unwrap_or(f64::NAN),
        train: train_report,
        details: serde_json::to_value(&report)?,
        summary,
    };
    Ok((out, lease))
}

/// Why a trial's steps count as diverged: a training loss that is not finite.
fn diverged<B: burn::tensor::backend::Backend>(outs: &[StepOutput<B>]) -> Option<String> {
    outs.iter().find_map(|o| {
        let t = o.train.as_ref()?;
        let e = t
            .epochs
            .iter()
            .find(|e| !e.train_loss.is_finite() || !e.val_loss.is_finite())?;
        Some(format!(
            "{} step diverged at epoch {}: training loss {}, validation loss {}",
            o.kind, e.epoch, e.train_loss, e.val_loss
        ))
    })
}

/// The chosen trial's spec, model and (when recorded) training report.
type Chosen<B> = (ModelSpec<ZooArch>, ZooModel<B>, Option<TrainReport>);

/// The chosen trial's model from its folder, or trained again with its parameters when
/// another worker ran it somewhere this process cannot read.
fn load_or_retrain<B: AutodiffBackend>(
    inp: &TuneInput<'_, B>,
    study: &StudyId,
    trial: &Trial,
    settings: &TrialSettings,
) -> Result<Chosen<B::InnerBackend>> {
    let device = inp.ctx.device;
    let dir = trial_dir(inp.dir, study, trial.number);
    // Trials that train [model] save float models; the folder is this study's own.
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
    match train_trial::<B>(inp, settings, None, false)? {
        Ok(t) => Ok((t.spec, t.model, Some(t.train))),
        Err(o) => bail!("retraining trial {} did not finish: {o:?}", trial.number),
    }
}
