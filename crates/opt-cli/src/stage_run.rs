//! One prune, quantize or distill step on a given model: run, saved into a folder and
//! measured from disk. The pipeline runs its stages through it, and a tune stage runs each
//! trial's chain of such steps through it too, so a trial's candidate is built and measured
//! exactly like a stage's.

use std::path::Path;

use anyhow::{Context, Result, bail};
use burn::tensor::backend::AutodiffBackend;
use opt_arch::{ZooArch, ZooModel};
use opt_core::artifact::{ModelMeta, WeightsFormat, save_model_as};
use opt_core::data::{ImageDataset, Normalization};
use opt_core::eval::{EvalReport, MeasureConfig, Platform, evaluate_accuracy, measure};
use opt_core::model::ModelSpec;
use opt_core::train::{TrainConfig, TrainData, TrainReport, seed_backend};

use crate::config::StageSection;
use crate::quant_stage::{QuantStageInput, run_quantize};

/// What every step reads besides its settings and its input model.
pub struct StepContext<'a, B: AutodiffBackend> {
    /// Training and validation data.
    pub data: TrainData<'a>,
    /// `[train]` (fine-tuning starts from it).
    pub train: &'a TrainConfig,
    /// Test split (measurement only).
    pub test: &'a ImageDataset,
    /// Measurement settings.
    pub measure: MeasureConfig,
    /// Backend and device names.
    pub platform: Platform<'a>,
    /// model.json of a saved model of a spec, in a format.
    pub meta: &'a dyn Fn(&ModelSpec<ZooArch>, WeightsFormat) -> ModelMeta<ZooArch>,
    /// The device.
    pub device: &'a B::Device,
}

/// A teacher model and the normalization it was trained with.
pub type TeacherRef<'a, B> = (&'a ZooModel<B>, Normalization);

/// What one step produced.
pub struct StepOutput<B: burn::tensor::backend::Backend> {
    /// `prune`, `quantize` or `distill`.
    pub kind: &'static str,
    /// Method label for the report.
    pub method: Option<String>,
    /// Quantization bits.
    pub bits: Option<u32>,
    /// The output's spec.
    pub spec: ModelSpec<ZooArch>,
    /// The float model later steps start from.
    pub model: ZooModel<B>,
    /// Measured from the saved folder.
    pub eval: EvalReport,
    /// Validation accuracy of the model as saved (the integer path's for int8 models).
    pub valid_accuracy: f64,
    /// Fine-tuning or distillation training.
    pub train: Option<TrainReport>,
    /// The step's details for report.json.
    pub details: serde_json::Value,
    /// Lines for report.md.
    pub summary: Vec<String>,
}

/// Runs one prune, quantize or distill `step` on `input` (a distill step's student), saving
/// into `dir`. `teacher` is required by a distill step.
pub fn run_step<B: AutodiffBackend>(
    ctx: &StepContext<'_, B>,
    step: &StageSection,
    dir: &Path,
    input: (&ModelSpec<ZooArch>, &ZooModel<B::InnerBackend>),
    teacher: Option<TeacherRef<'_, B::InnerBackend>>,
) -> Result<StepOutput<B::InnerBackend>> {
    let (src_spec, src_model) = input;
    let device = ctx.device;
    let valid = |m: &ZooModel<B::InnerBackend>| {
        evaluate_accuracy(m, ctx.data.valid, &ctx.data.batcher, 256, device).accuracy
    };
    let save_and_measure =
        |spec: &ModelSpec<ZooArch>, model: &ZooModel<B::InnerBackend>, format: WeightsFormat| {
            save_and_measure(ctx, dir, spec, model, format)
        };
    seed_backend::<B>(device, ctx.train.seed);
    let out: Result<StepOutput<B::InnerBackend>> = match step {
        StageSection::Prune { prune, .. } => {
            tracing::info!(model = %src_spec.describe(), macs = src_spec.macs(), "pruning");
            let out = opt_prune::prune_model::<B, ZooArch>(
                src_spec, src_model, prune, ctx.data, ctx.train, device,
            )?;
            let eval = save_and_measure(&out.spec, &out.model, out.weights_format)?;
            Ok(StepOutput {
                kind: "prune",
                method: None,
                bits: None,
                valid_accuracy: valid(&out.model),
                summary: out.report.summary(),
                details: serde_json::to_value(&out.report)?,
                spec: out.spec,
                model: out.model,
                eval,
                train: out.train,
            })
        }
        StageSection::Quantize { quantize, .. } => {
            tracing::info!(model = %src_spec.describe(), method = quantize.method.name(), bits = quantize.bits, "quantizing");
            let out = run_quantize::<B>(
                QuantStageInput {
                    dir,
                    spec: src_spec,
                    model: src_model,
                    meta: (ctx.meta)(src_spec, WeightsFormat::Quant),
                    data: ctx.data,
                    train: ctx.train,
                    test: ctx.test,
                    measure: ctx.measure,
                    platform: ctx.platform,
                },
                quantize,
                device,
            )?;
            Ok(StepOutput {
                kind: "quantize",
                method: Some(quantize.method.name().to_string()),
                bits: Some(quantize.bits),
                spec: src_spec.clone(),
                model: out.model,
                eval: out.eval,
                valid_accuracy: out.valid_accuracy,
                train: out.train,
                details: serde_json::to_value(&out.details)?,
                summary: out.summary,
            })
        }
        StageSection::Distill { distill: dcfg, .. } => {
            let Some((teacher_model, normalization)) = teacher else {
                bail!("a distill step needs a teacher; none was given");
            };
            tracing::info!(student = %src_spec.describe(), macs = src_spec.macs(), "distilling");
            let (model, report) = opt_distill::distill::<B, _, _>(
                src_model,
                opt_distill::TeacherInput {
                    model: teacher_model,
                    normalization,
                },
                ctx.data,
                ctx.train,
                dcfg,
                device,
            )?;
            let eval = save_and_measure(src_spec, &model, WeightsFormat::Dense)?;
            let method = match (dcfg.alpha > 0.0, dcfg.hints.is_empty()) {
                (true, true) => "kd",
                (true, false) => "kd+hints",
                (false, false) => "hints",
                (false, true) => "labels only",
            };
            Ok(StepOutput {
                kind: "distill",
                method: Some(method.to_string()),
                bits: None,
                spec: src_spec.clone(),
                valid_accuracy: valid(&model),
                model,
                eval,
                train: Some(report.train.clone()),
                details: serde_json::to_value(&report)?,
                summary: report.summary(),
            })
        }
        StageSection::Baseline { .. } | StageSection::Tune { .. } => {
            bail!("only prune, quantize and distill run as steps on a given model")
        }
    };
    out.with_context(|| format!("{} step into {}", step_kind(step), dir.display()))
}

/// Saves a float model into `dir` and measures it as reloaded from disk.
pub fn save_and_measure<B: AutodiffBackend>(
    ctx: &StepContext<'_, B>,
    dir: &Path,
    spec: &ModelSpec<ZooArch>,
    model: &ZooModel<B::InnerBackend>,
    format: WeightsFormat,
) -> Result<EvalReport> {
    let saved = save_model_as(dir, &(ctx.meta)(spec, format), model, format)?;
    Ok(measure(
        model,
        spec,
        &saved,
        ctx.test,
        &ctx.data.batcher,
        &ctx.measure,
        ctx.platform,
        ctx.device,
    ))
}

/// The `kind` a stage section is written with.
pub fn step_kind(s: &StageSection) -> &'static str {
    match s {
        StageSection::Baseline { .. } => "baseline",
        StageSection::Prune { .. } => "prune",
        StageSection::Quantize { .. } => "quantize",
        StageSection::Distill { .. } => "distill",
        StageSection::Tune { .. } => "tune",
    }
}
