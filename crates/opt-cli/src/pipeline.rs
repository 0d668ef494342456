//! Runs a validated [`Pipeline`]: data, stages in order, one measured candidate per stage, and
//! the run report (`report.json`, `report.md`), every file written atomically.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::tensor::backend::AutodiffBackend;
use opt_arch::{ZooArch, ZooModel};
use opt_core::artifact::{ModelMeta, TestDataRef, WeightsFormat, load_model};
use opt_core::data::{Batcher, FASHION_MNIST_CLASSES, Normalization};
use opt_core::eval::Platform;
use opt_core::fsutil::{read_json, write_atomic, write_json_atomic};
use opt_core::model::{InputShape, ModelSpec};
use opt_core::report::{Candidate, PipelineReport};
use opt_core::train::{DefaultHooks, TrainData, seed_backend, train};

use crate::backend::{BackendKind, BackendTask};
use crate::config::{Pipeline, StageSection, TeacherSource, stage_name};
use crate::stage_run::{StepContext, StepOutput, run_step, save_and_measure};

/// Checks that the run directory can be used: an existing file there is an error, never replaced.
pub fn prepare_out_dir(out: &Path) -> Result<()> {
    if out.exists() && !out.is_dir() {
        bail!(
            "output path {} is an existing file, not a directory; choose another --out or move the file",
            out.display()
        );
    }
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create output directory {}", out.display()))
}

/// A distill stage's teacher once checked: an earlier stage's model, or a model read from a
/// saved folder with its normalization (read once, by the check).
enum StageTeacher<B: burn::tensor::backend::Backend> {
    Stage(usize),
    Saved(Normalization, Box<ZooModel<B>>),
}

/// Checks every distill stage's student/teacher pair (classes, hint layers and their spatial
/// sizes) on freshly built modules of the stages' architectures, before any training. Returns
/// each distill stage's teacher, by stage index, for the run to use.
fn check_distill_stages<B: AutodiffBackend>(
    p: &Pipeline,
    specs: &[ModelSpec<ZooArch>],
    input: InputShape,
    device: &B::Device,
) -> Result<Vec<Option<StageTeacher<B::InnerBackend>>>> {
    let dims = [input.channels, input.height, input.width];
    let mut teachers = Vec::new();
    teachers.resize_with(p.file.stages.len(), || None);
    for (i, stage) in p.file.stages.iter().enumerate() {
        let Some(StageSection::Distill {
            distill, student, ..
        }) = p.distill_step(i)
        else {
            continue;
        };
        let src = p.step_input_section(i)?;
        let undone = match src {
            StageSection::Quantize { .. } => {
                Some("a quantized model (training it in float would lose its quantization)")
            }
            StageSection::Prune { prune, .. } if prune.method != opt_prune::Method::Structured => {
                Some("an unstructured-pruned model (training it would refill its zeros)")
            }
            _ => None,
        };
        if let (None, Some(why)) = (student, undone) {
            bail!(
                "stages[{i}] ({}): its student is stage {}, {why}; distill before that stage \
                 (for example prune -> distill -> quantize), or name another `from`",
                stage_name(stage),
                stage_name(src)
            );
        }
        // A stage's spec before it runs has the layer names and resolutions of its output
        // (pruning changes widths only), which is what the check needs.
        let student = specs[i].init::<B::InnerBackend>(device);
        let key = format!("stages[{i}].distill");
        let checked = match p.teacher_of(i)? {
            TeacherSource::Stage(j) => {
                let teacher = specs[j].init::<B::InnerBackend>(device);
                teachers[i] = Some(StageTeacher::Stage(j));
                opt_distill::check_pair(&student, &teacher, dims, distill, &key, device)
            }
            TeacherSource::Saved(dir) => {
                let (meta, teacher, _) = load_model::<B::InnerBackend, ZooArch>(&dir, device)
                    .with_context(|| format!("stages[{i}].teacher_model {}", dir.display()))?;
                if meta.spec.input != input || meta.spec.classes != specs[i].classes {
                    bail!(
                        "stages[{i}].teacher_model {}: the teacher takes {:?} images into {} \
                         classes, the run's data is {input:?} with {} classes; give a teacher \
                         trained on this data",
                        dir.display(),
                        meta.spec.input,
                        meta.spec.classes,
                        specs[i].classes
                    );
                }
                let checked =
                    opt_distill::check_pair(&student, &teacher, dims, distill, &key, device);
                teachers[i] = Some(StageTeacher::Saved(meta.normalization, Box::new(teacher)));
                checked
            }
        };
        checked.with_context(|| format!("stages[{i}] ({})", stage_name(stage)))?;
    }
    Ok(teachers)
}

/// A stage's output model and its spec.
type StageModel<B> = (ModelSpec<ZooArch>, ZooModel<B>);

/// The pipeline as a backend task.
pub struct RunPipeline(pub Pipeline);

impl BackendTask for RunPipeline {
    type Output = PipelineReport;

    fn run<B: AutodiffBackend>(
        self,
        device: B::Device,
        backend: BackendKind,
        device_name: String,
    ) -> Result<PipelineReport> {
        let p = self.0;
        let f = &p.file;
        let start = Instant::now();
        let _span = tracing::info_span!("pipeline", config = %p.config_path.display(), backend = backend.name()).entered();

        let mut splits = p.source.load(f.data.classes)?;
        if let Some(n) = f.data.train_limit {
            splits.train = splits.train.take(n);
        }
        if let Some(n) = f.data.test_limit {
            splits.test = splits.test.take(n);
        }
        let (train_ds, valid_ds) = splits.train.split(f.data.validation_split, f.train.seed)?;
        let batcher = Batcher {
            norm: Normalization::of(&train_ds),
        };
        let input = InputShape {
            channels: train_ds.channels,
            height: train_ds.height,
            width: train_ds.width,
        };
        // Every stage's spec is checked before any training starts, and so is every split
        // against the model (the test split is measured only after training).
        let specs = p.stage_specs(input)?;
        for ds in [&train_ds, &valid_ds, &splits.test] {
            specs[0].check_data(ds).with_context(|| {
                format!("the data of {} does not fit the model", p.source.describe())
            })?;
        }
        let teachers = check_distill_stages::<B>(&p, &specs, input, &device)?;
        let data_digest = crate::resume::data_digest(&[&train_ds, &valid_ds, &splits.test]);
        crate::tune_study::check_storages(&p, &data_digest)?;
        tracing::info!(
            train = train_ds.len(),
            valid = valid_ds.len(),
            test = splits.test.len(),
            "pipeline ready"
        );
        let class_names: Vec<String> = if f.data.classes == 10 {
            FASHION_MNIST_CLASSES
                .iter()
                .map(|s| s.to_string())
                .collect()
        } else {
            (0..f.data.classes).map(|i| format!("class {i}")).collect()
        };

        let data = TrainData {
            train: &train_ds,
            valid: &valid_ds,
            batcher,
        };
        let meta = |spec: &ModelSpec<ZooArch>, format: WeightsFormat| ModelMeta {
            format_version: opt_core::artifact::FORMAT_VERSION,
            spec: spec.clone(),
            normalization: batcher.norm,
            class_names: class_names.clone(),
            weights: format.file_name().to_string(),
            test_data: Some(TestDataRef {
                source: p.source.clone(),
                test_limit: f.data.test_limit,
            }),
        };
        let platform = Platform {
            backend: backend.name(),
            device: &device_name,
        };
        let mut candidates = Vec::new();
        // Every stage's output model, so later stages can start from any earlier one (None:
        // reused from an earlier run and not needed by a later stage).
        let mut models: Vec<Option<StageModel<B::InnerBackend>>> = Vec::new();
        // Resume: the digest of each stage's output files, and which stages' models later
        // stages read (the data's digest is above).
        let mut outputs: Vec<String> = Vec::new();
        let mut reused: Vec<String> = Vec::new();
        let needed = p.models_read_later()?;
        let ctx = StepContext::<B> {
            data,
            train: &f.train,
            test: &splits.test,
            measure: f.report.measure(),
            platform,
            meta: &meta,
            device: &device,
        };
        // Workers sharing the run folder write into it one at a time (see RunWriter).
        let writer = crate::tune_study::RunWriter::of(&p)?;
        let hold = || writer.as_ref().map(|w| w.hold()).transpose();
        for (i, (stage, spec)) in f.stages.iter().zip(&specs).enumerate() {
            let name = stage_name(stage).to_string();
            let dir = p.out.join(&name);
            let _span = tracing::info_span!("stage", name = %name).entered();
            let mut writing = hold()?;
            let key = p.stage_key(i, &data_digest, &outputs, backend.name())?;
            if !p.force.contains(&name)
                && let Some(marker) = crate::resume::reusable(&dir, &key)
                && let Ok(candidate) = read_json::<Candidate>(&dir.join("report.json"))
            {
                // A later stage reads this model: it must load from the folder.
                let model = if needed[i] {
                    load_model::<B::InnerBackend, ZooArch>(&dir, &device)
                        .ok()
                        .map(|(meta, model, _)| (meta.spec, model))
                } else {
                    None
                };
                if !needed[i] || model.is_some() {
                    tracing::info!("reused: same settings, inputs and data as the earlier run");
                    eprintln!(
                        "optkit: {name}: reused from the earlier run in {}",
                        dir.display()
                    );
                    reused.push(name);
                    outputs.push(marker.output);
                    models.push(model);
                    candidates.push(candidate);
                    continue;
                }
            }
            crate::resume::clear(&dir)?;
            let model_of = |j: usize| {
                models[j]
                    .as_ref()
                    .with_context(|| format!("stage {j}'s model is not loaded"))
            };
            let teacher = match &teachers[i] {
                Some(StageTeacher::Saved(norm, model)) => Some((&**model, *norm)),
                Some(StageTeacher::Stage(j)) => Some((&model_of(*j)?.1, batcher.norm)),
                None => None,
            };
            // The model a step starts from: an earlier stage's, or a fresh student.
            let fresh;
            let start = if !p.runs_steps(i) {
                None
            } else if p.source_of(i)? == i {
                seed_backend::<B>(&device, f.train.seed);
                fresh = burn::module::AutodiffModule::valid(&spec.init::<B>(&device));
                Some((spec, &fresh))
            } else {
                let (s, m) = model_of(p.source_of(i)?)?;
                Some((s, m))
            };
            let out: StepOutput<B::InnerBackend> = match stage {
                StageSection::Baseline { .. } => {
                    tracing::info!(model = %spec.describe(), params = spec.params(), macs = spec.macs(), "training");
                    seed_backend::<B>(&device, f.train.seed);
                    let model = spec.init::<B>(&device);
                    let (model, train_report) =
                        train(model, data, &f.train, &device, &mut DefaultHooks);
                    let eval = save_and_measure(&ctx, &dir, spec, &model, WeightsFormat::Dense)?;
                    StepOutput {
                        kind: "baseline",
                        method: None,
                        bits: None,
                        spec: spec.clone(),
                        model,
                        eval,
                        valid_accuracy: train_report.best_val_accuracy,
                        train: Some(train_report),
                        details: serde_json::Value::Null,
                        summary: Vec::new(),
                    }
                }
                StageSection::Tune { tune, trial, .. } => {
                    // Trials run side by side with other workers; the result is written
                    // under the lock again (run_tune takes it after the study).
                    drop(writing.take());
                    let inp = crate::tune_stage::TuneInput {
                        file: f,
                        tune,
                        steps: trial,
                        index: i,
                        dir: &dir,
                        ctx: &ctx,
                        input,
                        start,
                        teacher,
                        writer: writer.as_ref(),
                    };
                    let key = p.trials_key(i, &data_digest, &outputs)?;
                    let study = crate::tune_study::StudyId::new(
                        tune.study.as_deref().unwrap_or(&name),
                        &key,
                        p.force.contains(&name),
                    );
                    if p.resume_study {
                        crate::tune_study::check_resumable(tune, &study, &p.out)?;
                    }
                    let (out, lease) = crate::tune_stage::run_tune::<B>(&inp, &study, &p.out)
                        .with_context(|| format!("stage {name}"))?;
                    writing = lease;
                    out
                }
                step => {
                    let start = start.context("a step's input model")?;
                    run_step(&ctx, step, &dir, start, teacher)
                        .with_context(|| format!("stage {name}"))?
                }
            };
            let candidate = Candidate {
                name: name.clone(),
                stage: out.kind.into(),
                method: out.method,
                bits: out.bits,
                model_dir: name.clone(),
                arch: out.spec.describe(),
                eval: out.eval,
                train: out.train,
                details: (!out.details.is_null()).then_some(out.details),
                summary: out.summary,
            };
            write_json_atomic(&dir.join("report.json"), &candidate)?;
            tracing::info!(accuracy = candidate.eval.accuracy, "candidate measured");
            candidates.push(candidate);
            outputs.push(crate::resume::mark_done(&dir, &key)?.output);
            models.push(Some((out.spec, out.model)));
            drop(writing);
        }
        let _writing = hold()?;
        let selection = opt_core::select::select(&candidates, &f.constraints);
        if let Some(sel) = &selection {
            tracing::info!(best = %sel.best, met = sel.met, "{}", sel.explanation);
        }
        let deployed = match (&f.deploy, &selection) {
            (Some(d), sel) => Some(deploy::<B::InnerBackend>(&p.out, d, sel.as_ref(), &device)?),
            (None, _) => None,
        };
        let report = PipelineReport {
            report_version: 1,
            config: p.config_path.display().to_string(),
            data: p.source.describe(),
            data_items: [train_ds.len(), valid_ds.len(), splits.test.len()],
            backend: backend.name().to_string(),
            seconds: start.elapsed().as_secs_f64(),
            best: selection.as_ref().map(|s| s.best.clone()),
            selection,
            reused,
            deployed,
            candidates,
        };
        write_json_atomic(&p.out.join("report.json"), &report)?;
        write_atomic(&p.out.join("report.md"), report.to_markdown().as_bytes())?;
        write_atomic(
            &p.out.join("report.html"),
            crate::report_html::render(&report).as_bytes(),
        )?;
        Ok(report)
    }
}

/// Writes the `[deploy]` bundle of the chosen candidate into `out` (the path was checked to
/// stay inside it when the config was read).
fn deploy<B: burn::tensor::backend::Backend>(
    out: &std::path::Path,
    d: &crate::export_cmd::DeployConfig,
    selection: Option<&opt_core::select::Selection>,
    device: &B::Device,
) -> Result<opt_core::report::Deployed> {
    let name = match (d.candidate.as_str(), selection) {
        ("best", Some(sel)) => sel.best.clone(),
        ("best", None) => anyhow::bail!("deploy.candidate = \"best\": no candidate was selected"),
        (named, _) => named.to_string(),
    };
    let dest = out.join(&d.path);
    let manifest =
        opt_export::write_bundle::<B>(&out.join(&name), &dest, &d.formats, &name, device)
            .with_context(|| format!("[deploy] of candidate {name}"))?;
    eprintln!("optkit: deployed {name} to {}", dest.display());
    Ok(opt_core::report::Deployed {
        candidate: name,
        path: d.path.display().to_string(),
        kind: manifest.kind,
        files: manifest
            .files
            .into_iter()
            .map(|f| opt_core::report::DeployedFile {
                path: f.path,
                bytes: f.bytes,
                sha256: f.sha256,
            })
            .collect(),
    })
}
