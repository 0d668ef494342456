//! FitNets hints (Romero et al. 2015): a student layer's output is mapped by a learned 1x1
//! convolution (the adapter) to the teacher layer's channels and pulled towards the teacher's
//! output with a mean squared error. Layers are chosen by the names a forward pass reports;
//! spatial sizes are matched by average pooling the larger map by an integer factor.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn::tensor::module::avg_pool2d;
use opt_core::model::Classifier;
use serde::{Deserialize, Serialize};

use crate::config::HintConfig;
use crate::error::{DistillError, Result};

/// The parameterized layers of a model with their output shapes (`[c, h, w]`; a linear layer's
/// `[f]` reads as `[f, 1, 1]`), from one forward pass of a blank image, and the number of
/// classes.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerTable {
    /// Output classes (logit width).
    pub classes: usize,
    /// Layers in forward order.
    pub layers: Vec<(String, [usize; 3])>,
}

impl LayerTable {
    /// Probes `model` with one zero image of shape `input` (`[c, h, w]`).
    pub fn probe<B: Backend, M: Classifier<B>>(
        model: &M,
        input: [usize; 3],
        device: &B::Device,
    ) -> Self {
        let mut layers = Vec::new();
        let x = Tensor::<B, 4>::zeros([1, input[0], input[1], input[2]], device);
        let logits = model.forward_observed(x, &mut |name, out| {
            let s = out.shape();
            let shape = match s.len() {
                1 => [s[0], 1, 1],
                _ => [s[0], s[1], s[2]],
            };
            layers.push((name.to_string(), shape));
        });
        Self {
            classes: logits.dims()[1],
            layers,
        }
    }

    fn find(&self, name: &str, role: &str) -> Result<[usize; 3]> {
        self.layers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| *s)
            .ok_or_else(|| {
                let names: Vec<&str> = self.layers.iter().map(|(n, _)| n.as_str()).collect();
                DistillError::Mismatch(format!(
                    "hint layer {name:?} is not a layer of the {role}; valid names: {}",
                    names.join(", ")
                ))
            })
    }
}

/// One forward pass of `model` that also returns the outputs of `layers`, in their order, as
/// feature maps (a linear output `[n, f]` as `[n, f, 1, 1]`). The names must be layers of the
/// model ([`plan_hints`] checks them against a probe).
pub fn forward_capturing<B: Backend, M: Classifier<B>>(
    model: &M,
    images: Tensor<B, 4>,
    layers: &[&str],
) -> (Tensor<B, 2>, Vec<Tensor<B, 4>>) {
    let mut feats: Vec<Option<Tensor<B, 4>>> = vec![None; layers.len()];
    let logits = model.forward_observed(images, &mut |name, out| {
        for (i, l) in layers.iter().enumerate() {
            if *l == name {
                feats[i] = Some(out.to_map());
            }
        }
    });
    let feats = feats
        .into_iter()
        .zip(layers)
        .map(|(f, l)| {
            f.unwrap_or_else(|| panic!("{l} is not a layer of this model; plan_hints checks names"))
        })
        .collect();
    (logits, feats)
}

/// One planned hint: the two layers, their shapes and the pooling that makes them meet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HintPair {
    /// Student layer.
    pub student: String,
    /// Teacher layer.
    pub teacher: String,
    /// Student output `[c, h, w]`.
    pub student_shape: [usize; 3],
    /// Teacher output `[c, h, w]`.
    pub teacher_shape: [usize; 3],
    /// Average-pooling window applied to the student map (`[1, 1]`: none).
    pub student_pool: [usize; 2],
    /// Average-pooling window applied to the teacher map (`[1, 1]`: none).
    pub teacher_pool: [usize; 2],
}

/// Checks every hint against both models' layers and plans the spatial matching. `key` names
/// the setting in errors (`stages[2].distill.hints`).
pub fn plan_hints(
    hints: &[HintConfig],
    student: &LayerTable,
    teacher: &LayerTable,
    key: &str,
) -> Result<Vec<HintPair>> {
    hints
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let at = |e: DistillError| DistillError::Mismatch(format!("{key}[{i}]: {e}"));
            let s = student.find(&h.student, "student").map_err(at)?;
            let t = teacher.find(&h.teacher, "teacher").map_err(at)?;
            let (sp, tp) = match_spatial([s[1], s[2]], [t[1], t[2]]).ok_or_else(|| {
                DistillError::Mismatch(format!(
                    "{key}[{i}]: student {} is {}x{} and teacher {} is {}x{}; their spatial \
                     sizes cannot be matched (one must be an integer multiple of the other in \
                     both directions): pick layers at the same resolution",
                    h.student, s[1], s[2], h.teacher, t[1], t[2]
                ))
            })?;
            Ok(HintPair {
                student: h.student.clone(),
                teacher: h.teacher.clone(),
                student_shape: s,
                teacher_shape: t,
                student_pool: sp,
                teacher_pool: tp,
            })
        })
        .collect()
}

/// Pooling windows `(student, teacher)` that bring both maps to the smaller size, or `None`.
fn match_spatial(s: [usize; 2], t: [usize; 2]) -> Option<([usize; 2], [usize; 2])> {
    if s == t {
        Some(([1, 1], [1, 1]))
    } else if s[0].is_multiple_of(t[0]) && s[1].is_multiple_of(t[1]) {
        Some(([s[0] / t[0], s[1] / t[1]], [1, 1]))
    } else if t[0].is_multiple_of(s[0]) && t[1].is_multiple_of(s[1]) {
        Some(([1, 1], [t[0] / s[0], t[1] / s[1]]))
    } else {
        None
    }
}

/// Average-pools `x` by `window` (stride = window); `[1, 1]` returns it unchanged.
pub fn pool<B: Backend>(x: Tensor<B, 4>, window: [usize; 2]) -> Tensor<B, 4> {
    if window == [1, 1] {
        x
    } else {
        avg_pool2d(x, window, window, [0, 0], true, false)
    }
}

/// The learned 1x1 adapters, one per hint (student channels to teacher channels).
#[derive(Module, Debug)]
pub struct Adapters<B: Backend> {
    /// One 1x1 convolution with bias per hint.
    pub convs: Vec<Conv2d<B>>,
}

impl<B: Backend> Adapters<B> {
    /// Freshly initialized adapters for `pairs` (parameters materialized, so clones agree).
    pub fn new(pairs: &[HintPair], device: &B::Device) -> Self {
        let convs = pairs
            .iter()
            .map(|p| {
                let conv = Conv2dConfig::new([p.student_shape[0], p.teacher_shape[0]], [1, 1])
                    .init(device);
                let _ = conv.weight.val();
                if let Some(b) = &conv.bias {
                    let _ = b.val();
                }
                conv
            })
            .collect();
        Self { convs }
    }

    /// Mean over hints of the mean squared error between the adapted student maps and the
    /// teacher maps (both already captured at their layers' full resolution).
    pub fn loss(
        &self,
        pairs: &[HintPair],
        student: &[Tensor<B, 4>],
        teacher: &[Tensor<B, 4>],
    ) -> Tensor<B, 1> {
        let terms: Vec<Tensor<B, 1>> = pairs
            .iter()
            .zip(&self.convs)
            .zip(student.iter().zip(teacher))
            .map(|((p, conv), (s, t))| {
                let s = conv.forward(pool(s.clone(), p.student_pool));
                let t = pool(t.clone().detach(), p.teacher_pool);
                s.sub(t).square().mean()
            })
            .collect();
        let k = terms.len().max(1) as f64;
        Tensor::cat(terms, 0).sum().div_scalar(k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opt_core::model::{InputShape, ModelSpec};
    use opt_core::test_util::{TestBackend, device, rng_lock};

    fn table(arch: &str) -> LayerTable {
        let input = InputShape {
            channels: 1,
            height: 28,
            width: 28,
        };
        let spec = ModelSpec::preset(arch, input, 10).unwrap();
        let m = spec.init::<TestBackend>(&device());
        LayerTable::probe(&m, [1, 28, 28], &device())
    }

    fn hint(s: &str, t: &str) -> HintConfig {
        HintConfig {
            student: s.into(),
            teacher: t.into(),
        }
    }

    #[test]
    fn probing_reports_every_layer_and_the_classes() {
        let _g = rng_lock();
        let t = table("lenet5");
        assert_eq!(t.classes, 10);
        let names: Vec<&str> = t.layers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["conv1", "conv2", "fc1", "fc2"]);
        assert_eq!(t.layers[1].1, [50, 8, 8]);
        assert_eq!(t.layers[2].1, [500, 1, 1]);
    }

    #[test]
    fn hints_are_planned_with_pooling_or_refused_with_the_valid_names() {
        let _g = rng_lock();
        let (lenet, cnn) = (table("lenet5"), table("cnn"));
        // cnn blocks.0.conv is 28x28, lenet conv2 8x8: 28 is no multiple of 8.
        let e = plan_hints(&[hint("blocks.0.conv", "conv2")], &cnn, &lenet, "hints")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cannot be matched") && e.contains("28x28"),
            "{e}"
        );
        // lenet conv1 is 24x24, cnn blocks.1.conv 14x14 and blocks.2.conv 7x7: no.
        // Pooling: lenet conv1 (24x24) against lenet conv2 (8x8) pools the student by 3.
        let p = plan_hints(&[hint("conv1", "conv2")], &lenet, &lenet, "hints").unwrap();
        assert_eq!(p[0].student_pool, [3, 3]);
        assert_eq!(p[0].teacher_pool, [1, 1]);
        // A vector layer matches any map by global pooling of the map.
        let p = plan_hints(&[hint("fc1", "blocks.2.conv")], &lenet, &cnn, "hints").unwrap();
        assert_eq!(p[0].teacher_pool, [7, 7]);
        let e = plan_hints(&[hint("conv3", "conv2")], &lenet, &lenet, "d.hints")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("d.hints[0]")
                && e.contains("\"conv3\"")
                && e.contains("conv1, conv2, fc1, fc2"),
            "{e}"
        );
        let e = plan_hints(&[hint("conv2", "head")], &lenet, &lenet, "h")
            .unwrap_err()
            .to_string();
        assert!(e.contains("of the teacher"), "{e}");
    }

    #[test]
    fn the_hint_loss_is_zero_for_an_identity_adapter_and_positive_otherwise() {
        let _g = rng_lock();
        let pair = HintPair {
            student: "a".into(),
            teacher: "b".into(),
            student_shape: [3, 4, 4],
            teacher_shape: [3, 2, 2],
            student_pool: [2, 2],
            teacher_pool: [1, 1],
        };
        let mut adapters = Adapters::<TestBackend>::new(std::slice::from_ref(&pair), &device());
        let eye: Vec<f32> = (0..9).map(|i| if i % 4 == 0 { 1.0 } else { 0.0 }).collect();
        let conv = &mut adapters.convs[0];
        conv.weight = burn::module::Param::from_tensor(
            Tensor::<TestBackend, 1>::from_floats(eye.as_slice(), &device()).reshape([3, 3, 1, 1]),
        );
        conv.bias = Some(burn::module::Param::from_tensor(Tensor::zeros(
            [3],
            &device(),
        )));
        let s = Tensor::<TestBackend, 4>::random(
            [2, 3, 4, 4],
            burn::tensor::Distribution::Default,
            &device(),
        );
        let t = pool(s.clone(), [2, 2]);
        let zero: f32 = adapters
            .loss(
                std::slice::from_ref(&pair),
                std::slice::from_ref(&s),
                std::slice::from_ref(&t),
            )
            .into_scalar();
        assert!(zero.abs() < 1e-10, "{zero}");
        let off: f32 = adapters
            .loss(&[pair], &[s], &[t.add_scalar(0.5)])
            .into_scalar();
        assert!((off - 0.25).abs() < 1e-5, "{off}");
    }
}
