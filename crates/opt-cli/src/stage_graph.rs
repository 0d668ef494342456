//! How a pipeline's stages relate: which earlier model each stage starts from and which
//! teacher it distills from, the model spec every stage starts from (checked before any
//! training), which stages' models later stages read, and each stage's content key for
//! resuming.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use opt_arch::{ArchChoice, ZooArch};
use opt_core::model::{InputShape, ModelSpec};

use crate::config::{Pipeline, StageSection, check_step, stage_name};

impl Pipeline {
    /// The validated model spec every stage starts from, in order, for images of shape
    /// `input`: a baseline's own, a prune stage's source model's. A structured prune stage on
    /// a family without channel groups is an error here, before any training.
    pub fn stage_specs(&self, input: InputShape) -> Result<Vec<ModelSpec<ZooArch>>> {
        let f = &self.file;
        let resolve = |arch: &ArchChoice, key: &str| -> Result<ModelSpec<ZooArch>> {
            let spec = ModelSpec {
                input,
                classes: f.data.classes,
                arch: arch.resolve(input).with_context(|| key.to_string())?,
            };
            spec.validate().with_context(|| key.to_string())?;
            Ok(spec)
        };
        let mut specs: Vec<ModelSpec<ZooArch>> = Vec::new();
        for (i, stage) in f.stages.iter().enumerate() {
            let at = |e: anyhow::Error| e.context(format!("stages[{i}] ({})", stage_name(stage)));
            let spec = match stage {
                StageSection::Baseline { model, .. } => {
                    resolve(model.as_ref().unwrap_or(&f.model), "model")?
                }
                StageSection::Distill {
                    student: Some(arch),
                    ..
                } => resolve(arch, &format!("stages[{i}].student"))?,
                StageSection::Tune { tune, trial, .. } => {
                    // The trials' starting point; the chosen trial's spec is known after the run.
                    let start = match trial.first() {
                        None => resolve(&f.model, "model")?,
                        Some(StageSection::Distill {
                            student: Some(arch),
                            ..
                        }) => resolve(arch, &format!("stages[{i}].trial[0].student"))?,
                        Some(_) => specs[self.source_of(i)?].clone(),
                    };
                    for (k, step) in trial.iter().enumerate() {
                        check_step(step, &format!("stages[{i}].trial[{k}]"), &start).map_err(at)?;
                    }
                    crate::tune_keys::check(f, tune, trial, &start, &format!("stages[{i}]"))
                        .map_err(at)?;
                    start
                }
                step => {
                    let spec = specs[self.source_of(i)?].clone();
                    check_step(step, &format!("stages[{i}]"), &spec).map_err(at)?;
                    spec
                }
            };
            specs.push(spec);
        }
        Ok(specs)
    }

    /// For each stage, whether a later stage reads its model (as the model it starts from or
    /// as a distillation teacher).
    pub fn models_read_later(&self) -> Result<Vec<bool>> {
        let mut read = vec![false; self.file.stages.len()];
        for i in 0..read.len() {
            for input in self.reads(i)? {
                if let TeacherSource::Stage(j) = input {
                    read[j] = true;
                }
            }
        }
        Ok(read)
    }

    /// What stage `i` reads besides the data: the earlier stage its steps start from, and its
    /// distillation teacher (an earlier stage or a saved folder).
    pub fn reads(&self, i: usize) -> Result<Vec<TeacherSource>> {
        let mut out = Vec::new();
        if self.runs_steps(i) {
            let s = self.source_of(i)?;
            if s != i {
                out.push(TeacherSource::Stage(s));
            }
        }
        if self.distill_step(i).is_some() {
            out.push(self.teacher_of(i)?);
        }
        Ok(out)
    }

    /// The content key of stage `i` (see [`crate::resume`]): its section, the backend, and
    /// everything its work depends on (see [`Self::depends_on`]).
    pub fn stage_key(
        &self,
        i: usize,
        data_digest: &str,
        outputs: &[String],
        backend: &str,
    ) -> Result<String> {
        let mut key = self.depends_on(i, data_digest, outputs)?;
        key["stage"] = serde_json::to_value(&self.file.stages[i])?;
        key["backend"] = backend.into();
        crate::resume::json_digest(&key)
    }

    /// The digest of what tune stage `i`'s trials depend on (see [`Self::depends_on`]) and
    /// the steps they run; the stored study's name carries it, so a study whose trials were
    /// made from other settings, data or models is never continued as if it were this one.
    pub fn trials_key(&self, i: usize, data_digest: &str, outputs: &[String]) -> Result<String> {
        let mut key = self.depends_on(i, data_digest, outputs)?;
        if let StageSection::Tune { trial, .. } = &self.file.stages[i] {
            key["steps"] = serde_json::to_value(trial)?;
        }
        crate::resume::json_digest(&key)
    }

    /// What stage `i`'s work depends on besides its own section: the training and model
    /// settings, the data section and the data's digest, the measurement settings, and the
    /// digests of the earlier stages' outputs it reads (`outputs`, by stage) or of a saved
    /// teacher's folder.
    fn depends_on(
        &self,
        i: usize,
        data_digest: &str,
        outputs: &[String],
    ) -> Result<serde_json::Value> {
        let f = &self.file;
        let inputs = self
            .reads(i)?
            .into_iter()
            .map(|input| match input {
                TeacherSource::Stage(j) => Ok(outputs[j].clone()),
                TeacherSource::Saved(dir) => crate::resume::folder_digest(&dir),
            })
            .collect::<Result<Vec<String>>>()?;
        let data = serde_json::json!({
            "classes": f.data.classes,
            "validation_split": f.data.validation_split,
            "train_limit": f.data.train_limit,
            "test_limit": f.data.test_limit,
        });
        Ok(serde_json::json!({
            "optkit": env!("CARGO_PKG_VERSION"),
            "train": f.train,
            "model": f.model,
            "data": data,
            "data_digest": data_digest,
            "measure": f.report.measure(),
            "inputs": inputs,
        }))
    }

    /// Index of the stage whose model stage `i` starts from (`from`, else the previous one).
    pub fn source_of(&self, i: usize) -> Result<usize> {
        let stages = &self.file.stages;
        match &stages[i] {
            StageSection::Tune { trial, from, .. } => match (trial.first(), from) {
                (
                    None
                    | Some(StageSection::Distill {
                        student: Some(_), ..
                    }),
                    _,
                ) => Ok(i),
                (Some(_), None) => Ok(i - 1),
                (Some(_), Some(from)) => self.earlier(i, "from", from),
            },
            StageSection::Baseline { .. }
            | StageSection::Distill {
                student: Some(_), ..
            } => Ok(i),
            StageSection::Prune { from: None, .. }
            | StageSection::Quantize { from: None, .. }
            | StageSection::Distill { from: None, .. } => Ok(i - 1),
            StageSection::Prune {
                from: Some(from), ..
            }
            | StageSection::Quantize {
                from: Some(from), ..
            }
            | StageSection::Distill {
                from: Some(from), ..
            } => self.earlier(i, "from", from),
        }
    }

    /// Index of the earlier stage named `name`, for the key `key` of stage `i`.
    fn earlier(&self, i: usize, key: &str, name: &str) -> Result<usize> {
        let stages = &self.file.stages;
        stages[..i]
            .iter()
            .position(|s| stage_name(s) == name)
            .ok_or_else(|| {
                let earlier: Vec<&str> = stages[..i].iter().map(stage_name).collect();
                anyhow::anyhow!(
                    "stages[{i}].{key} = {name:?}: no earlier stage has this name; earlier \
                     stages: {}",
                    earlier.join(", ")
                )
            })
    }

    /// Whether stage `i` runs steps on an input model: a prune, quantize or distill stage, or
    /// a tune stage with `[[stages.trial]]`.
    pub fn runs_steps(&self, i: usize) -> bool {
        match &self.file.stages[i] {
            StageSection::Baseline { .. } => false,
            StageSection::Tune { trial, .. } => !trial.is_empty(),
            _ => true,
        }
    }

    /// Stage `i`'s distill settings: the stage itself, or the distill step of a tune stage's
    /// trials.
    pub fn distill_step(&self, i: usize) -> Option<&StageSection> {
        match &self.file.stages[i] {
            s @ StageSection::Distill { .. } => Some(s),
            StageSection::Tune { trial, .. } => trial
                .iter()
                .find(|s| matches!(s, StageSection::Distill { .. })),
            _ => None,
        }
    }

    /// What produced stage `j`'s model: the stage itself, or the last step of a tune stage's
    /// trials.
    pub fn output_section(&self, j: usize) -> &StageSection {
        match &self.file.stages[j] {
            StageSection::Tune { trial, .. } if !trial.is_empty() => &trial[trial.len() - 1],
            s => s,
        }
    }

    /// What produced the input of stage `i`'s distill step: the step before it in a tune
    /// stage's trials, or the source stage's output.
    pub fn step_input_section(&self, i: usize) -> Result<&StageSection> {
        if let StageSection::Tune { trial, .. } = &self.file.stages[i]
            && let Some(k) = trial
                .iter()
                .position(|s| matches!(s, StageSection::Distill { .. }))
            && k > 0
        {
            return Ok(&trial[k - 1]);
        }
        Ok(self.output_section(self.source_of(i)?))
    }

    /// Where a distill stage's teacher comes from: an earlier stage's index, or a saved model
    /// folder (resolved against the config file's directory).
    pub fn teacher_of(&self, i: usize) -> Result<TeacherSource> {
        match self.distill_step(i).unwrap_or(&self.file.stages[i]) {
            StageSection::Distill {
                teacher_model: Some(dir),
                ..
            } => {
                let base = self.config_path.parent().unwrap_or(Path::new("."));
                Ok(TeacherSource::Saved(base.join(dir)))
            }
            StageSection::Distill {
                teacher: Some(t), ..
            } => Ok(TeacherSource::Stage(self.earlier(i, "teacher", t)?)),
            _ => Ok(TeacherSource::Stage(0)),
        }
    }
}

/// A distill stage's teacher.
#[derive(Debug, Clone, PartialEq)]
pub enum TeacherSource {
    /// An earlier stage's model (index into the stages).
    Stage(usize),
    /// A saved model folder.
    Saved(PathBuf),
}
