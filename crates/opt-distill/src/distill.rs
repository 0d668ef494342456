//! The distillation run: the student (with its hint adapters) trained by opt-core's loop on
//! the distillation loss, the teacher copied and run in inference mode beside it.

use std::ops::ControlFlow;
use std::time::Instant;

use burn::module::{AutodiffModule, HasAutodiffModule, Module, ModuleDisplay};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor};
use opt_core::data::{Batch, Normalization};
use opt_core::eval::evaluate_accuracy;
use opt_core::model::{Classifier, LayerObserver};
use opt_core::train::{
    EpochStats, TrainConfig, TrainData, TrainHooks, TrainReport, train, trainable,
};
use serde::{Deserialize, Serialize};

use crate::config::DistillConfig;
use crate::error::{DistillError, Result};
use crate::hint::{Adapters, HintPair, LayerTable, forward_capturing, plan_hints};
use crate::loss::distillation_loss;
use crate::teacher::Teacher;

/// The student and its hint adapters, trained together (the adapters are dropped afterwards).
#[derive(Module, Debug)]
pub struct Pupil<B: Backend, M> {
    /// The student.
    pub student: M,
    /// One 1x1 adapter per hint.
    pub adapters: Adapters<B>,
}

impl<B: Backend, M: Classifier<B>> Classifier<B> for Pupil<B, M> {
    fn forward_observed(&self, images: Tensor<B, 4>, obs: LayerObserver<'_, B>) -> Tensor<B, 2> {
        self.student.forward_observed(images, obs)
    }
}

/// Loss terms of one epoch, averaged over its training items (already weighted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochTerms {
    /// 1-based epoch.
    pub epoch: usize,
    /// `α·T²·KL`.
    pub soft: f64,
    /// `(1 − α)·CE`.
    pub hard: f64,
    /// `β·hint MSE` (0 without hints).
    pub hint: f64,
}

/// What a distillation run did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DistillReport {
    /// Temperature T.
    pub temperature: f64,
    /// Soft-target weight α.
    pub alpha: f64,
    /// Hint weight β.
    pub hint_weight: f64,
    /// The planned hints.
    pub hints: Vec<HintPair>,
    /// Epochs and peak learning rate used.
    pub epochs: usize,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// Teacher's validation accuracy (its own normalization).
    pub teacher_val_accuracy: Option<f64>,
    /// Whether the teacher's logits were computed once and reused (`false`: the teacher ran on
    /// every batch, or was not needed).
    pub teacher_cached: bool,
    /// Seconds spent computing the cached teacher logits.
    pub teacher_cache_seconds: f64,
    /// Loss terms per epoch.
    pub terms: Vec<EpochTerms>,
    /// The training run (validation accuracy is the student's).
    pub train: TrainReport,
}

impl DistillReport {
    /// Short lines for the run report.
    pub fn summary(&self) -> Vec<String> {
        let mut out = vec![format!(
            "distilled at T = {}, alpha = {} for {} epochs (lr {:.1e}){}",
            self.temperature,
            self.alpha,
            self.epochs,
            self.learning_rate,
            self.teacher_val_accuracy
                .map(|a| format!("; teacher validation accuracy {a:.4}"))
                .unwrap_or_default()
        )];
        for h in &self.hints {
            out.push(format!(
                "hint {} {:?} -> teacher {} {:?} (beta {})",
                h.student, h.student_shape, h.teacher, h.teacher_shape, self.hint_weight
            ));
        }
        out.push(format!(
            "{:.0} training samples/s{}",
            self.train.samples_per_s,
            if self.teacher_cached {
                format!(
                    ", teacher logits cached in {:.1} s",
                    self.teacher_cache_seconds
                )
            } else {
                String::new()
            }
        ));
        out
    }
}

/// The teacher side of a run: the model, how its images are normalized.
pub struct TeacherInput<'a, T> {
    /// The trained teacher (inference backend); it is copied, never changed.
    pub model: &'a T,
    /// The normalization it was trained with.
    pub normalization: Normalization,
}

/// Checks a student/teacher pair for `cfg` before any training: settings in range (errors
/// name `key`), the same number of classes, hint layers that exist (the error lists the valid
/// names) and whose spatial sizes can be matched. `input` is one image's `[c, h, w]`. Returns
/// the planned hints.
pub fn check_pair<B, S, T>(
    student: &S,
    teacher: &T,
    input: [usize; 3],
    cfg: &DistillConfig,
    key: &str,
    device: &B::Device,
) -> Result<Vec<HintPair>>
where
    B: Backend,
    S: Classifier<B>,
    T: Classifier<B>,
{
    cfg.validate(key)?;
    let s_table = LayerTable::probe(student, input, device);
    let t_table = LayerTable::probe(teacher, input, device);
    if s_table.classes != t_table.classes {
        return Err(DistillError::Mismatch(format!(
            "the teacher has {} classes and the student {}: distillation matches their class \
             probabilities one to one, so both must predict the same classes",
            t_table.classes, s_table.classes
        )));
    }
    plan_hints(&cfg.hints, &s_table, &t_table, &format!("{key}.hints"))
}

/// Distills `teacher` into `student` (both inference-mode models, any opt-core classifiers
/// with the same classes) on `data`, with `train_cfg`'s optimizer and schedule and `cfg`'s
/// epochs, learning rate, temperature, α and hints. Returns the student of the best
/// validation epoch. Seed the backend first for reproducible adapters.
///
/// Errors (before any training): settings out of range, different numbers of classes, hint
/// layers that do not exist or whose spatial sizes cannot be matched.
pub fn distill<B, S, T>(
    student: &S,
    teacher: TeacherInput<'_, T>,
    data: TrainData<'_>,
    train_cfg: &TrainConfig,
    cfg: &DistillConfig,
    device: &B::Device,
) -> Result<(S, DistillReport)>
where
    B: AutodiffBackend,
    S: Module<B::InnerBackend> + Classifier<B::InnerBackend> + HasAutodiffModule<B> + ModuleDisplay,
    S::TrainModule: Classifier<B> + ModuleDisplay,
    T: Module<B::InnerBackend> + Classifier<B::InnerBackend> + HasAutodiffModule<B>,
{
    let input = [data.train.channels, data.train.height, data.train.width];
    let pairs = check_pair(student, teacher.model, input, cfg, "distill", device)?;
    let ft = TrainConfig {
        epochs: cfg.epochs.unwrap_or(train_cfg.epochs),
        learning_rate: cfg.learning_rate.unwrap_or(train_cfg.learning_rate),
        ..train_cfg.clone()
    };
    ft.validate("distill")?;
    let _span = tracing::info_span!(
        "distill",
        temperature = cfg.temperature,
        alpha = cfg.alpha,
        hints = pairs.len(),
        epochs = ft.epochs
    )
    .entered();

    let mut teach = Teacher::<B::InnerBackend, T>::new::<B>(
        teacher.model,
        teacher.normalization,
        data.batcher.norm,
    );
    let needs_teacher = cfg.needs_teacher();
    let teacher_val_accuracy = needs_teacher.then(|| {
        evaluate_accuracy(teach.model(), data.valid, &teach.batcher(), 256, device).accuracy
    });
    let cache = needs_teacher && cfg.cache_teacher && pairs.is_empty();
    let start = Instant::now();
    if cache {
        teach.cache_logits(data.train, device);
    }
    let teacher_cache_seconds = start.elapsed().as_secs_f64();
    if let Some(a) = teacher_val_accuracy {
        tracing::info!(teacher_val_accuracy = a, cached = cache, "teacher ready");
    }

    let pupil = Pupil::<B, S::TrainModule> {
        student: trainable::<B, S::TrainModule>(student.clone()),
        adapters: Adapters::new(&pairs, device),
    };
    let mut hook = DistillHook::<B, T> {
        teacher: &teach,
        cfg,
        pairs: &pairs,
        features: Vec::new(),
        sums: None,
        seen: 0,
        terms: Vec::new(),
    };
    let (trained, report) = train(pupil, data, &ft, device, &mut hook);
    let terms = hook.terms;
    Ok((
        trained.student,
        DistillReport {
            temperature: cfg.temperature,
            alpha: cfg.alpha,
            hint_weight: cfg.hint_weight,
            hints: pairs,
            epochs: ft.epochs,
            learning_rate: ft.learning_rate,
            teacher_val_accuracy,
            teacher_cached: cache,
            teacher_cache_seconds,
            terms,
            train: report,
        },
    ))
}

type Sums<B> = [Tensor<<B as AutodiffBackend>::InnerBackend, 1>; 3];

/// The training-loop hook: captures the student's hint layers in its forward pass, asks the
/// teacher for logits (cached or live) and features, and returns the distillation loss.
struct DistillHook<'a, B: AutodiffBackend, T> {
    teacher: &'a Teacher<B::InnerBackend, T>,
    cfg: &'a DistillConfig,
    pairs: &'a [HintPair],
    /// Student hint features of the current batch.
    features: Vec<Tensor<B, 4>>,
    /// Per-epoch sums of the weighted terms times batch size.
    sums: Option<Sums<B>>,
    seen: usize,
    terms: Vec<EpochTerms>,
}

impl<B, S, T> TrainHooks<B, Pupil<B, S>> for DistillHook<'_, B, T>
where
    B: AutodiffBackend,
    S: AutodiffModule<B> + Classifier<B>,
    T: Module<B::InnerBackend> + Classifier<B::InnerBackend>,
{
    fn forward(&mut self, model: &Pupil<B, S>, batch: &Batch<B>) -> Tensor<B, 2>
    where
        Pupil<B, S>: Classifier<B>,
    {
        if self.pairs.is_empty() {
            return model.forward(batch.images.clone());
        }
        let layers: Vec<&str> = self.pairs.iter().map(|p| p.student.as_str()).collect();
        let (logits, features) = forward_capturing(&model.student, batch.images.clone(), &layers);
        self.features = features;
        logits
    }

    fn loss(
        &mut self,
        model: &Pupil<B, S>,
        batch: &Batch<B>,
        logits: Tensor<B, 2>,
    ) -> Tensor<B, 1> {
        let device = logits.device();
        let n = batch.indices.len() as f64;
        let (teacher_logits, teacher_feats) = if !self.cfg.needs_teacher() {
            (logits.clone().detach(), Vec::new())
        } else if !self.pairs.is_empty() {
            let (l, f) = self
                .teacher
                .logits_and_features(batch.images.clone().inner(), self.pairs);
            (
                Tensor::from_inner(l),
                f.into_iter().map(Tensor::from_inner).collect(),
            )
        } else {
            let l = match self.teacher.cached(&batch.indices, &device) {
                Some(l) => l,
                None => self.teacher.logits(batch.images.clone().inner()),
            };
            (Tensor::from_inner(l), Vec::new())
        };
        let terms = distillation_loss(
            logits,
            teacher_logits,
            batch.targets.clone(),
            self.cfg.temperature,
            self.cfg.alpha,
        );
        let mut total = terms.total();
        let hint = if self.pairs.is_empty() {
            Tensor::<B, 1>::zeros([1], &device)
        } else {
            let student_feats = std::mem::take(&mut self.features);
            let h = model
                .adapters
                .loss(self.pairs, &student_feats, &teacher_feats)
                .mul_scalar(self.cfg.hint_weight);
            total = total + h.clone();
            h
        };
        let parts = [terms.soft, terms.hard, hint].map(|t| t.inner().mul_scalar(n));
        self.sums = Some(match self.sums.take() {
            Some([a, b, c]) => {
                let [x, y, z] = parts;
                [a + x, b + y, c + z]
            }
            None => parts,
        });
        self.seen += batch.indices.len();
        total
    }

    fn on_epoch_end(&mut self, stats: &EpochStats) -> ControlFlow<()> {
        let seen = self.seen.max(1) as f64;
        let read = |t: &Tensor<B::InnerBackend, 1>| t.clone().into_scalar().elem::<f64>() / seen;
        if let Some([soft, hard, hint]) = self.sums.take() {
            let terms = EpochTerms {
                epoch: stats.epoch,
                soft: read(&soft),
                hard: read(&hard),
                hint: read(&hint),
            };
            tracing::info!(
                epoch = stats.epoch,
                soft = format!("{:.4}", terms.soft),
                hard = format!("{:.4}", terms.hard),
                hint = format!("{:.4}", terms.hint),
                "distillation terms"
            );
            self.terms.push(terms);
        }
        self.seen = 0;
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HintConfig;
    use opt_core::data::{Batcher, DataSource, ImageDataset};
    use opt_core::model::{Arch, InputShape, Model, ModelSpec};
    use opt_core::test_util::{TestAutodiff, TestBackend, device, rng_lock};
    use opt_core::train::{DefaultHooks, seed_backend};

    const INPUT: InputShape = InputShape {
        channels: 1,
        height: 28,
        width: 28,
    };

    /// 400 training and 100 validation images of the embedded data.
    struct Fixture {
        train: ImageDataset,
        valid: ImageDataset,
        batcher: Batcher,
    }

    impl Fixture {
        fn new() -> Self {
            let all = DataSource::Embedded.load(10).unwrap().train.take(500);
            let (train, valid) = all.split(0.2, 1).unwrap();
            let batcher = Batcher {
                norm: Normalization::of(&train),
            };
            Self {
                train,
                valid,
                batcher,
            }
        }

        fn data(&self) -> TrainData<'_> {
            TrainData {
                train: &self.train,
                valid: &self.valid,
                batcher: self.batcher,
            }
        }
    }

    fn spec(arch: Arch, classes: usize) -> ModelSpec {
        ModelSpec {
            input: INPUT,
            classes,
            arch,
        }
    }

    fn cfg1() -> TrainConfig {
        TrainConfig {
            epochs: 1,
            batch_size: 50,
            learning_rate: 3e-3,
            seed: 2,
            ..Default::default()
        }
    }

    fn teacher(d: TrainData<'_>) -> Model<TestBackend> {
        seed_backend::<TestAutodiff>(&device(), 1);
        let m = spec(
            Arch::Cnn {
                blocks: vec![8, 16],
                fc: 32,
            },
            10,
        )
        .init::<TestAutodiff>(&device());
        train(m, d, &cfg1(), &device(), &mut DefaultHooks).0
    }

    #[test]
    fn distillation_trains_the_student_with_hints_and_leaves_the_teacher_alone() {
        let _g = rng_lock();
        let f = Fixture::new();
        let (d, batcher, v) = (f.data(), f.batcher, &f.valid);
        let teacher_model = teacher(d);
        let student = spec(
            Arch::Cnn {
                blocks: vec![4, 8],
                fc: 16,
            },
            10,
        )
        .init::<TestBackend>(&device());
        let probe = |m: &Model<TestBackend>| -> Vec<f32> {
            let b = batcher.batch::<TestBackend>(v, &[0, 1, 2], &device());
            m.forward(b.images).into_data().to_vec().unwrap()
        };
        let teacher_before = probe(&teacher_model);
        let student_before = probe(&student);
        let cfg = DistillConfig {
            temperature: 4.0,
            alpha: 0.7,
            hints: vec![HintConfig {
                student: "blocks.1.conv".into(),
                teacher: "blocks.1.conv".into(),
            }],
            hint_weight: 0.5,
            ..Default::default()
        };
        let (trained, report) = distill::<TestAutodiff, _, _>(
            &student,
            TeacherInput {
                model: &teacher_model,
                normalization: batcher.norm,
            },
            d,
            &cfg1(),
            &cfg,
            &device(),
        )
        .unwrap();
        assert_eq!(probe(&teacher_model), teacher_before, "the teacher changed");
        assert_ne!(probe(&trained), student_before, "the student did not train");
        assert_eq!(report.hints[0].student_shape, [8, 14, 14]);
        assert_eq!(report.hints[0].teacher_shape, [16, 14, 14]);
        assert!(!report.teacher_cached, "hints need the live teacher");
        let terms = &report.terms[0];
        assert!(
            terms.soft > 0.0 && terms.hard > 0.0 && terms.hint > 0.0,
            "{terms:?}"
        );
        // The loop's training loss is the sum of the three terms.
        let sum = terms.soft + terms.hard + terms.hint;
        assert!(
            (report.train.epochs[0].train_loss - sum).abs() < 1e-3 * sum,
            "{report:?}"
        );
    }

    #[test]
    fn cached_and_live_teacher_logits_give_the_same_run() {
        let _g = rng_lock();
        let f = Fixture::new();
        let (d, batcher) = (f.data(), f.batcher);
        let teacher_model = teacher(d);
        let student = spec(Arch::Mlp { hidden: vec![32] }, 10).init::<TestBackend>(&device());
        let run = |cache_teacher: bool| {
            seed_backend::<TestAutodiff>(&device(), 5);
            let cfg = DistillConfig {
                cache_teacher,
                ..Default::default()
            };
            let teacher = TeacherInput {
                model: &teacher_model,
                normalization: batcher.norm,
            };
            distill::<TestAutodiff, _, _>(&student, teacher, d, &cfg1(), &cfg, &device())
                .unwrap()
                .1
        };
        let (cached, live) = (run(true), run(false));
        assert!(cached.teacher_cached && !live.teacher_cached);
        let (a, b) = (&cached.terms[0], &live.terms[0]);
        assert!((a.soft - b.soft).abs() < 1e-4 * a.soft, "{a:?} vs {b:?}");
        assert_eq!(
            cached.train.epochs[0].val_accuracy,
            live.train.epochs[0].val_accuracy
        );
    }

    #[test]
    fn mismatched_pairs_are_refused_before_training() {
        let _g = rng_lock();
        let f = Fixture::new();
        let (d, batcher) = (f.data(), f.batcher);
        let lenet = ModelSpec::preset("lenet5", INPUT, 10)
            .unwrap()
            .init::<TestBackend>(&device());
        let seven = spec(Arch::Mlp { hidden: vec![16] }, 7).init::<TestBackend>(&device());
        let go = |student: &Model<TestBackend>, cfg: DistillConfig| {
            let teacher = TeacherInput {
                model: &lenet,
                normalization: batcher.norm,
            };
            distill::<TestAutodiff, _, _>(student, teacher, d, &cfg1(), &cfg, &device())
                .map(|_| ())
                .unwrap_err()
                .to_string()
        };
        let e = go(&seven, DistillConfig::default());
        assert!(e.contains("10 classes") && e.contains("student 7"), "{e}");
        let hint = |s: &str, t: &str| DistillConfig {
            hints: vec![HintConfig {
                student: s.into(),
                teacher: t.into(),
            }],
            ..Default::default()
        };
        let e = go(&lenet, hint("conv9", "conv2"));
        assert!(e.contains("conv1, conv2, fc1, fc2"), "{e}");
        let e = go(
            &lenet,
            DistillConfig {
                temperature: 0.0,
                ..Default::default()
            },
        );
        assert!(e.contains("distill.temperature = 0"), "{e}");
    }
}
