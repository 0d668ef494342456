//! The burn modules built from a [`ModelSpec`]: LeNet-300-100 style MLPs, Caffe LeNet-5 and the
//! small conv-BN-ReLU CNN, behind one [`Model`] enum and the [`Classifier`] trait.

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Tensor, backend::Backend};

use super::arch::Architecture;
use super::spec::{Arch, InputShape, ModelSpec};

/// Called after every layer that has parameters with the layer's name and its output. Tests
/// use the shapes to check the analytic MAC count; distillation reads the tensors of the layers
/// it matches (FitNets hints).
pub type LayerObserver<'a, B> = &'a mut dyn FnMut(&str, LayerOutput<'_, B>);

/// One parameterized layer's output as a forward pass reports it: a feature map or, after a
/// linear layer, a vector per image.
#[derive(Debug, Clone, Copy)]
pub enum LayerOutput<'t, B: Backend> {
    /// `[batch, channels, height, width]`.
    Map(&'t Tensor<B, 4>),
    /// `[batch, features]`.
    Vector(&'t Tensor<B, 2>),
}

impl<B: Backend> LayerOutput<'_, B> {
    /// The shape without the batch dimension.
    pub fn shape(&self) -> Vec<usize> {
        match self {
            LayerOutput::Map(t) => t.dims()[1..].to_vec(),
            LayerOutput::Vector(t) => t.dims()[1..].to_vec(),
        }
    }

    /// The output as a feature map; a vector `[n, f]` becomes `[n, f, 1, 1]`.
    pub fn to_map(&self) -> Tensor<B, 4> {
        match self {
            LayerOutput::Map(t) => (*t).clone(),
            LayerOutput::Vector(t) => {
                let [n, f] = t.dims();
                (*t).clone().reshape([n, f, 1, 1])
            }
        }
    }
}

impl<'t, B: Backend> From<&'t Tensor<B, 4>> for LayerOutput<'t, B> {
    fn from(t: &'t Tensor<B, 4>) -> Self {
        LayerOutput::Map(t)
    }
}

impl<'t, B: Backend> From<&'t Tensor<B, 2>> for LayerOutput<'t, B> {
    fn from(t: &'t Tensor<B, 2>) -> Self {
        LayerOutput::Vector(t)
    }
}

/// What every model family provides: images in, logits out.
pub trait Classifier<B: Backend> {
    /// Logits for a batch.
    ///
    /// # Shapes
    /// - images: `[batch, channels, height, width]`
    /// - output: `[batch, classes]`
    fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        self.forward_observed(images, &mut |_, _| {})
    }

    /// Like [`Classifier::forward`], reporting each parameterized layer's output.
    fn forward_observed(&self, images: Tensor<B, 4>, observe: LayerObserver<'_, B>)
    -> Tensor<B, 2>;
}

/// Reports `t` to `obs` under `name`.
pub fn observe<'t, B: Backend>(
    obs: LayerObserver<'_, B>,
    name: &str,
    t: impl Into<LayerOutput<'t, B>>,
) {
    obs(name, t.into());
}

/// Fully connected network: flatten, then linear + ReLU for each hidden layer, linear head.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    /// Hidden layers followed by the output layer.
    pub layers: Vec<Linear<B>>,
}

impl<B: Backend> Classifier<B> for Mlp<B> {
    fn forward_observed(&self, images: Tensor<B, 4>, obs: LayerObserver<'_, B>) -> Tensor<B, 2> {
        let mut x = images.flatten::<2>(1, 3);
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x);
            observe(obs, &format!("layers.{i}"), &x);
            if i < last {
                x = relu(x);
            }
        }
        x
    }
}

/// Caffe LeNet-5 (Deep Compression variant: no activation after the convolutions).
#[derive(Module, Debug)]
pub struct LeNet5<B: Backend> {
    /// 5x5 convolution, input channels to `conv1`.
    pub conv1: Conv2d<B>,
    /// 5x5 convolution, `conv1` to `conv2` channels.
    pub conv2: Conv2d<B>,
    /// 2x2 max-pooling, stride 2.
    pub pool: MaxPool2d,
    /// Flattened features to `fc1`.
    pub fc1: Linear<B>,
    /// `fc1` to classes.
    pub fc2: Linear<B>,
}

impl<B: Backend> Classifier<B> for LeNet5<B> {
    fn forward_observed(&self, images: Tensor<B, 4>, obs: LayerObserver<'_, B>) -> Tensor<B, 2> {
        let x = self.conv1.forward(images);
        observe(obs, "conv1", &x);
        let x = self.conv2.forward(self.pool.forward(x));
        observe(obs, "conv2", &x);
        let x = self.pool.forward(x).flatten::<2>(1, 3);
        let x = self.fc1.forward(x);
        observe(obs, "fc1", &x);
        let x = self.fc2.forward(relu(x));
        observe(obs, "fc2", &x);
        x
    }
}

/// One conv 3x3 + batch norm + ReLU + max-pool 2 block.
#[derive(Module, Debug)]
pub struct ConvBlock<B: Backend> {
    /// 3x3 convolution, padding 1, no bias (the batch norm has one).
    pub conv: Conv2d<B>,
    /// Batch normalization over the output channels.
    pub bn: BatchNorm<B>,
    /// 2x2 max-pooling, stride 2.
    pub pool: MaxPool2d,
}

/// Small modern CNN: conv blocks, then fc + ReLU and a linear head.
#[derive(Module, Debug)]
pub struct Cnn<B: Backend> {
    /// The conv-BN-ReLU-pool blocks.
    pub blocks: Vec<ConvBlock<B>>,
    /// Flattened features to the hidden width.
    pub fc: Linear<B>,
    /// Hidden width to classes.
    pub head: Linear<B>,
}

impl<B: Backend> Classifier<B> for Cnn<B> {
    fn forward_observed(&self, images: Tensor<B, 4>, obs: LayerObserver<'_, B>) -> Tensor<B, 2> {
        let mut x = images;
        for (i, b) in self.blocks.iter().enumerate() {
            x = b.conv.forward(x);
            observe(obs, &format!("blocks.{i}.conv"), &x);
            x = batch_norm(&b.bn, x);
            observe(obs, &format!("blocks.{i}.bn"), &x);
            x = b.pool.forward(relu(x));
        }
        let x = self.fc.forward(x.flatten::<2>(1, 3));
        observe(obs, "fc", &x);
        let x = self.head.forward(relu(x));
        observe(obs, "head", &x);
        x
    }
}

/// Any model optkit builds from a [`ModelSpec`].
// Boxing a variant would hide it from burn's Module derive; models are moved rarely.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Model<B: Backend> {
    /// See [`Mlp`].
    Mlp(Mlp<B>),
    /// See [`LeNet5`].
    Lenet5(LeNet5<B>),
    /// See [`Cnn`].
    Cnn(Cnn<B>),
}

impl<B: Backend> Classifier<B> for Model<B> {
    fn forward_observed(&self, images: Tensor<B, 4>, obs: LayerObserver<'_, B>) -> Tensor<B, 2> {
        match self {
            Model::Mlp(m) => m.forward_observed(images, obs),
            Model::Lenet5(m) => m.forward_observed(images, obs),
            Model::Cnn(m) => m.forward_observed(images, obs),
        }
    }
}

/// Forces lazy parameters to initialize (`Param::val` fills the cell in place).
struct Materialize;

impl<B: Backend> ModuleVisitor<B> for Materialize {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let _ = param.val();
    }
}

/// burn's `BatchNorm` computation (per-channel affine normalization with the running statistics
/// in inference; batch statistics, running-average update with the module's momentum and biased
/// variance in training), written for the CPU backends' fast paths:
/// - statistics are reduced per axis of the free `[n, c, h*w]` view instead of through
///   `swap_dims` + `reshape`, which burn-flex copies;
/// - every per-channel operand is materialized as `[n, c, 1]`: burn-flex broadcasts a `[1, c, 1]`
///   operand element by element (60 ms for one multiply of a `[64, 144, 28, 28]` tensor) but runs
///   a per-row `[n, c, 1]` operand through its SIMD path (3.5 ms);
/// - inference folds the statistics into one scale and one shift (two passes instead of four).
///
/// Measured on burn-flex: 17x faster than `BatchNorm::forward` in inference and 6x faster
/// quickstart CNN training (`cargo xtask bench`). With [`crate::ops::set_fast_paths`]`(false)`
/// it is `BatchNorm::forward`.
pub fn batch_norm<B: Backend>(bn: &BatchNorm<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let momentum = BN_MOMENTUM.with(|m| m.get());
    if !crate::ops::fast_paths() && momentum.is_none() {
        return bn.forward(x);
    }
    let [n, channels, h, w] = x.dims();
    let device = x.device();
    // [n, c, h*w] is a free reshape of a contiguous tensor.
    let flat = x.reshape([n, channels, h * w]);
    let per_row = |t: Tensor<B, 3>| t.repeat_dim(0, n);
    let per_channel = |t: Tensor<B, 1>| t.reshape([1, channels, 1]);
    if !B::ad_enabled(&device) {
        let mean = bn.running_mean.value().to_device(&device);
        let var = bn.running_var.value().to_device(&device);
        let scale = bn.gamma.val().div(var.add_scalar(bn.epsilon).sqrt());
        let shift = bn.beta.val().sub(mean.mul(scale.clone()));
        return flat
            .mul(per_row(per_channel(scale)))
            .add(per_row(per_channel(shift)))
            .reshape([n, channels, h, w]);
    }
    let stats = |t: Tensor<B, 3>| t.mean_dim(2).mean_dim(0);
    let mean = stats(flat.clone());
    let centered = flat.sub(per_row(mean.clone()));
    let var = stats(centered.clone().square());
    let m = momentum.unwrap_or(bn.momentum);
    let update = |state: &burn::module::RunningState<Tensor<B, 1>>, batch: &Tensor<B, 3>| {
        let old = state.value_sync().to_device(&device);
        let new = old
            .mul_scalar(1.0 - m)
            .add(batch.clone().detach().reshape([channels]).mul_scalar(m));
        state.update(new.detach());
    };
    update(&bn.running_mean, &mean);
    update(&bn.running_var, &var);
    let scale = per_channel(bn.gamma.val()).div(var.add_scalar(bn.epsilon).sqrt());
    centered
        .mul(per_row(scale))
        .add(per_row(per_channel(bn.beta.val())))
        .reshape([n, channels, h, w])
}

thread_local! {
    static BN_MOMENTUM: std::cell::Cell<Option<f64>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with every [`batch_norm`] on this thread updating its running statistics with
/// `momentum` instead of the layer's own. Re-estimating statistics after pruning uses
/// `1 / (k + 1)` for the k-th batch (0-based), which makes them the plain average over the
/// batches. Layers that call burn's `BatchNorm::forward` directly are not affected.
pub fn with_bn_momentum<R>(momentum: f64, f: impl FnOnce() -> R) -> R {
    let old = BN_MOMENTUM.with(|m| m.replace(Some(momentum)));
    let out = f();
    BN_MOMENTUM.with(|m| m.set(old));
    out
}

fn pool2() -> MaxPool2d {
    MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init()
}

impl<A: Architecture> ModelSpec<A> {
    /// Builds the burn module with freshly initialized weights.
    ///
    /// The weights are materialized here: burn initializes parameters lazily, and a clone of a
    /// lazy parameter draws its own values, so saving `model.clone()` would store weights the
    /// model never had.
    pub fn init<B: Backend>(&self, device: &B::Device) -> A::Model<B> {
        let model = self.arch.build::<B>(self.input, self.classes, device);
        model.visit(&mut Materialize);
        model
    }
}

/// Builds one of opt-core's own families (see [`Arch`]).
pub(crate) fn build<B: Backend>(
    arch: &Arch,
    input: InputShape,
    classes: usize,
    device: &B::Device,
) -> Model<B> {
    let c = input.channels;
    match arch {
        Arch::Mlp { hidden } => {
            let mut prev = c * input.height * input.width;
            let mut layers = Vec::new();
            for &h in hidden.iter().chain(std::iter::once(&classes)) {
                layers.push(LinearConfig::new(prev, h).init(device));
                prev = h;
            }
            Model::Mlp(Mlp { layers })
        }
        Arch::Lenet5 { conv1, conv2, fc1 } => {
            let side = |s: usize| ((s - 4) / 2 - 4) / 2;
            let fc1_in = conv2 * side(input.height) * side(input.width);
            Model::Lenet5(LeNet5 {
                conv1: Conv2dConfig::new([c, *conv1], [5, 5]).init(device),
                conv2: Conv2dConfig::new([*conv1, *conv2], [5, 5]).init(device),
                pool: pool2(),
                fc1: LinearConfig::new(fc1_in, *fc1).init(device),
                fc2: LinearConfig::new(*fc1, classes).init(device),
            })
        }
        Arch::Cnn { blocks, fc } => {
            let mut prev = c;
            let mut mods = Vec::new();
            for &b in blocks {
                mods.push(ConvBlock {
                    conv: Conv2dConfig::new([prev, b], [3, 3])
                        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                        .with_bias(false)
                        .init(device),
                    bn: BatchNormConfig::new(b).init(device),
                    pool: pool2(),
                });
                prev = b;
            }
            let shrink = 1usize << blocks.len();
            let flat = prev * (input.height / shrink) * (input.width / shrink);
            Model::Cnn(Cnn {
                blocks: mods,
                fc: LinearConfig::new(flat, *fc).init(device),
                head: LinearConfig::new(*fc, classes).init(device),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{TestAutodiff, device, rng_lock};
    use burn::module::AutodiffModule;
    use burn::tensor::backend::AutodiffBackend;
    use burn::tensor::{Distribution, Tolerance};

    #[test]
    fn fast_batch_norm_matches_burn_in_training_and_inference() {
        let _rng = rng_lock();
        let dev = device();
        let gamma = Tensor::<TestAutodiff, 1>::random([3], Distribution::Uniform(0.5, 1.5), &dev);
        let make = || {
            let mut bn = BatchNormConfig::new(3).init::<TestAutodiff>(&dev);
            bn.gamma = Param::from_tensor(gamma.clone());
            bn
        };
        let (ours, theirs) = (make(), make());
        for _ in 0..2 {
            let x = Tensor::<TestAutodiff, 4>::random(
                [4, 3, 5, 6],
                Distribution::Normal(2.0, 3.0),
                &dev,
            );
            // Independent leaves (from the same values), one per graph.
            let data = x.into_data();
            let leaf = || Tensor::<TestAutodiff, 4>::from_data(data.clone(), &dev).require_grad();
            let (xa, xb) = (leaf(), leaf());
            // A non-uniform upstream gradient, so the backward pass is checked too.
            let weight =
                Tensor::<TestAutodiff, 4>::random([4, 3, 5, 6], Distribution::Default, &dev);
            let a = batch_norm(&ours, xa.clone());
            let b = theirs.forward(xb.clone());
            a.clone()
                .into_data()
                .assert_approx_eq::<f32>(&b.clone().into_data(), Tolerance::default());
            let ga = a.mul(weight.clone()).sum().backward();
            let gb = b.mul(weight).sum().backward();
            let grads = |g: &<TestAutodiff as AutodiffBackend>::Gradients,
                         x: &Tensor<TestAutodiff, 4>,
                         bn: &BatchNorm<TestAutodiff>| {
                (
                    x.grad(g).unwrap().into_data(),
                    bn.gamma.grad(g).unwrap().into_data(),
                    bn.beta.grad(g).unwrap().into_data(),
                )
            };
            let ((ax, ag, ab), (bx, bg, bb)) = (grads(&ga, &xa, &ours), grads(&gb, &xb, &theirs));
            ax.assert_approx_eq::<f32>(&bx, Tolerance::default());
            ag.assert_approx_eq::<f32>(&bg, Tolerance::default());
            ab.assert_approx_eq::<f32>(&bb, Tolerance::default());
        }
        let rm = |bn: &BatchNorm<TestAutodiff>| {
            (
                bn.running_mean.value().into_data(),
                bn.running_var.value().into_data(),
            )
        };
        let ((am, av), (bm, bv)) = (rm(&ours), rm(&theirs));
        am.assert_approx_eq::<f32>(&bm, Tolerance::default());
        av.assert_approx_eq::<f32>(&bv, Tolerance::default());
        // Inference with the running statistics the two training passes left behind.
        let x =
            Tensor::<TestAutodiff, 4>::random([2, 3, 4, 4], Distribution::Normal(2.0, 3.0), &dev)
                .inner();
        let a = batch_norm(&ours.valid(), x.clone()).into_data();
        let b = theirs.valid().forward(x).into_data();
        a.assert_approx_eq::<f32>(&b, Tolerance::default());
    }
}
