//! `conv2d` with faster CPU paths for the two convolutions efficient networks are made of.
//!
//! burn-flex and burn-ndarray differentiate every convolution with burn's generic backward
//! (`burn-backend` `conv2d_weight_backward`), which is slow for exactly these shapes (measured
//! on burn-flex, batch 64 at 28x28, see `cargo xtask bench`):
//! - **depthwise** (`groups == channels_in == channels_out`): the weight gradient runs one small
//!   convolution per channel; replaced by the plane kernels of [`super::depthwise`], forward
//!   and both gradients;
//! - **pointwise** (1x1, stride 1, no padding, `groups == 1`): the weight gradient runs as a
//!   convolution whose kernel is the whole gradient image, and the input gradient as a
//!   transposed convolution (a scalar loop on ndarray); replaced by batched matrix products,
//!   `grad[n] @ x[n]^T` summed over the batch (25x faster for 144 -> 24 channels on flex) and
//!   `W^T @ grad[n]`.
//!
//! The forward pass is the backend's own convolution; only the backward differs. The fast
//! paths apply to `f32` tensors of `Autodiff<Flex>` (feature `flex`) or
//! `Autodiff<NdArray<f32>>` (feature `ndarray`), recognised at run time through `Any`, so
//! models stay generic over `Backend`. Every other backend (wgpu, whose grouped-convolution
//! backward is native), inference, and every other convolution go through
//! `burn::tensor::module::conv2d` unchanged. The tests check values and both gradients against
//! burn's convolution on random inputs.

use std::any::Any;

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::backend::Backend;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Tensor};

#[cfg(any(feature = "flex", feature = "ndarray"))]
use super::depthwise::DepthwiseGeometry;

/// Which fast path a convolution can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(any(feature = "flex", feature = "ndarray")), allow(dead_code))]
enum ConvKind {
    Depthwise,
    Pointwise,
}

impl ConvKind {
    fn of(x: [usize; 4], weight: [usize; 4], options: &ConvOptions<2>) -> Option<ConvKind> {
        let [_, cin, _, _] = x;
        let [cout, per_group, kh, kw] = weight;
        if options.groups == cin && cout == cin && per_group == 1 && cin > 1 {
            return Some(ConvKind::Depthwise);
        }
        let unit = |v: [usize; 2]| v == [1, 1];
        if options.groups == 1
            && [kh, kw] == [1, 1]
            && unit(options.stride)
            && options.padding == [0, 0]
            && per_group == cin
        {
            return Some(ConvKind::Pointwise);
        }
        None
    }
}

/// 2-D convolution: `burn::tensor::module::conv2d` with symmetric padding, taking the fast CPU
/// paths described in the module docs when they apply.
pub fn conv2d<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    options: ConvOptions<2>,
) -> Tensor<B, 4> {
    let kind = ConvKind::of(x.dims(), weight.dims(), &options).filter(|_| super::fast_paths());
    let fast = kind
        .filter(|_| x.dtype() == DType::F32 && weight.dtype() == DType::F32)
        .and_then(|kind| dispatch(&x, &weight, &options, kind));
    match (fast, bias) {
        (Some(y), None) => y,
        (Some(y), Some(bias)) => {
            let [n, c, h, w] = y.dims();
            // A [n, c, 1] operand takes burn-flex's per-row broadcast path (see batch_norm).
            let bias = bias.reshape([1, c, 1]).repeat_dim(0, n);
            y.reshape([n, c, h * w]).add(bias).reshape([n, c, h, w])
        }
        (None, bias) => burn::tensor::module::conv2d(x, weight, bias, options),
    }
}

/// `Conv2d::forward` through [`conv2d`]; modules with asymmetric or `Same` padding take burn's
/// own forward.
pub fn conv2d_module<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let padding = match conv.padding {
        PaddingConfig2d::Valid => [0, 0],
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => {
            [top, left]
        }
        _ => return conv.forward(x),
    };
    let options = ConvOptions::new(conv.stride, padding, conv.dilation, conv.groups);
    conv2d(
        x,
        conv.weight.val(),
        conv.bias.as_ref().map(|b| b.val()),
        options,
    )
}

/// The value itself when `S` and `T` are the same type.
#[cfg_attr(not(any(feature = "flex", feature = "ndarray")), allow(dead_code))]
fn same<S: Any, T: Any + Clone>(value: &S) -> Option<T> {
    (value as &dyn Any).downcast_ref::<T>().cloned()
}

#[allow(unused_variables)]
fn dispatch<B: Backend>(
    x: &Tensor<B, 4>,
    weight: &Tensor<B, 4>,
    options: &ConvOptions<2>,
    kind: ConvKind,
) -> Option<Tensor<B, 4>> {
    #[cfg(feature = "flex")]
    if let Some(y) = cpu::on::<B, burn_flex::Flex>(x, weight, options, kind) {
        return Some(y);
    }
    #[cfg(feature = "ndarray")]
    if let Some(y) = cpu::on::<B, burn_ndarray::NdArray<f32>>(x, weight, options, kind) {
        return Some(y);
    }
    None
}

#[cfg(any(feature = "flex", feature = "ndarray"))]
mod cpu {
    use super::*;
    use crate::ops::depthwise;
    use burn::backend::Autodiff;
    use burn::backend::autodiff::checkpoint::base::Checkpointer;
    use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
    use burn::tensor::ops::FloatTensor;
    use burn::tensor::{TensorData, TensorMetadata, TensorPrimitive};

    /// Runs the fast path when `B` is `Autodiff<I>`. The forward pass is `I::conv2d` either
    /// way (burn-flex has a fast depthwise forward); only the backward differs.
    pub(super) fn on<B: Backend, I: Backend>(
        x: &Tensor<B, 4>,
        weight: &Tensor<B, 4>,
        options: &ConvOptions<2>,
        kind: ConvKind,
    ) -> Option<Tensor<B, 4>> {
        let x = same::<_, Tensor<Autodiff<I>, 4>>(x)?;
        let w = same::<_, Tensor<Autodiff<I>, 4>>(weight)?;
        same(&tracked::<I>(x, w, options.clone(), kind))
    }

    fn geometry(x: [usize; 4], weight: [usize; 4], options: &ConvOptions<2>) -> DepthwiseGeometry {
        DepthwiseGeometry {
            batch: x[0],
            channels: x[1],
            input: [x[2], x[3]],
            kernel: [weight[2], weight[3]],
            stride: options.stride,
            padding: options.padding,
            dilation: options.dilation,
        }
    }

    fn shape<I: Backend>(t: &FloatTensor<I>) -> [usize; 4] {
        let s = t.shape();
        [s[0], s[1], s[2], s[3]]
    }

    /// Calls `f` with the tensor's values as `f32`: borrowed from a contiguous burn-flex tensor,
    /// otherwise copied out through `into_data` (measured 30 ms for a 29 MB flex tensor, more
    /// than the kernel itself).
    fn with_values<I: Backend, R>(t: &FloatTensor<I>, f: impl FnOnce(&[f32]) -> R) -> R {
        #[cfg(feature = "flex")]
        if let Some(values) = (t as &dyn Any)
            .downcast_ref::<burn_flex::FlexTensor>()
            .and_then(|t| t.as_slice::<f32>())
        {
            return f(values);
        }
        let data = Tensor::<I, 4>::from_primitive(TensorPrimitive::Float(t.clone()))
            .into_data()
            .convert::<f32>();
        match data.as_slice::<f32>() {
            Ok(values) => f(values),
            Err(_) => f(&data.iter::<f32>().collect::<Vec<_>>()),
        }
    }

    fn from_vec<I: Backend>(
        values: Vec<f32>,
        shape: [usize; 4],
        device: &I::Device,
    ) -> FloatTensor<I> {
        Tensor::<I, 4>::from_data(TensorData::new(values, shape), device)
            .into_primitive()
            .tensor()
    }

    /// Input gradient of a depthwise convolution. With stride 1 it is the depthwise convolution
    /// of the output gradient with the spatially flipped kernel (padding `d * (k - 1) - p`),
    /// which runs on the backend's own depthwise forward; other strides use the scatter kernel.
    fn depthwise_input_grad<I: Backend>(
        g: &DepthwiseGeometry,
        grad: FloatTensor<I>,
        weight: FloatTensor<I>,
        options: &ConvOptions<2>,
    ) -> FloatTensor<I> {
        let pad = |i: usize| (g.dilation[i] * (g.kernel[i] - 1)).checked_sub(g.padding[i]);
        if let ([1, 1], Some(ph), Some(pw)) = (g.stride, pad(0), pad(1)) {
            let flipped = I::float_flip(weight, &[2, 3]);
            let flipped_options = ConvOptions::new([1, 1], [ph, pw], options.dilation, g.channels);
            return I::conv2d(grad, flipped, None, flipped_options);
        }
        let device = I::float_device(&grad);
        let dx = with_values::<I, _>(&grad, |grad| {
            with_values::<I, _>(&weight, |weight| depthwise::input_grad(g, grad, weight))
        });
        from_vec::<I>(dx, [g.batch, g.channels, g.input[0], g.input[1]], &device)
    }

    #[derive(Debug)]
    struct FastConvBackward(ConvKind);

    impl<I: Backend> Backward<I, 2> for FastConvBackward {
        type State = (FloatTensor<I>, FloatTensor<I>, ConvOptions<2>);

        fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
            let [node_x, node_w] = ops.parents;
            let grad = grads.consume::<I>(&ops.node);
            let (x, weight, options) = ops.state;
            match self.0 {
                ConvKind::Depthwise => {
                    let g = geometry(shape::<I>(&x), shape::<I>(&weight), &options);
                    if let Some(node) = node_w {
                        let device = I::float_device(&x);
                        let dw = with_values::<I, _>(&x, |x| {
                            with_values::<I, _>(&grad, |grad| depthwise::weight_grad(&g, x, grad))
                        });
                        let shape = [g.channels, 1, g.kernel[0], g.kernel[1]];
                        grads.register::<I>(node.id, from_vec::<I>(dw, shape, &device));
                    }
                    if let Some(node) = node_x {
                        let dx = depthwise_input_grad::<I>(&g, grad, weight, &options);
                        grads.register::<I>(node.id, dx);
                    }
                }
                ConvKind::Pointwise => {
                    // Per image, a 1x1 convolution is `y = W x` with `x` as [cin, h*w]: both
                    // gradients are batched matrix products (burn's generic backward runs the
                    // input gradient as a transposed convolution, a scalar loop on ndarray, and
                    // the weight gradient as a convolution with the gradient image as kernel).
                    let [n, cin, h, w] = shape::<I>(&x);
                    let [_, cout, oh, ow] = shape::<I>(&grad);
                    let tensor = |t| Tensor::<I, 4>::from_primitive(TensorPrimitive::Float(t));
                    let grad = tensor(grad).reshape([n, cout, oh * ow]);
                    if let Some(node) = node_x {
                        let wt = tensor(weight).reshape([cout, cin]).transpose();
                        let dx = wt
                            .unsqueeze::<3>()
                            .matmul(grad.clone())
                            .reshape([n, cin, h, w])
                            .into_primitive()
                            .tensor();
                        grads.register::<I>(node.id, dx);
                    }
                    if let Some(node) = node_w {
                        let x = tensor(x).reshape([n, cin, h * w]).swap_dims(1, 2);
                        let dw = grad
                            .matmul(x)
                            .sum_dim(0)
                            .reshape([cout, cin, 1, 1])
                            .into_primitive()
                            .tensor();
                        grads.register::<I>(node.id, dw);
                    }
                }
            }
        }
    }

    fn tracked<I: Backend>(
        x: Tensor<Autodiff<I>, 4>,
        weight: Tensor<Autodiff<I>, 4>,
        options: ConvOptions<2>,
        kind: ConvKind,
    ) -> Tensor<Autodiff<I>, 4> {
        let x = x.into_primitive().tensor();
        let weight = weight.into_primitive().tensor();
        let out = match FastConvBackward(kind)
            .prepare::<NoCheckpointing>([x.node.clone(), weight.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = I::conv2d(
                    x.primitive.clone(),
                    weight.primitive.clone(),
                    None,
                    options.clone(),
                );
                prep.finish((x.primitive, weight.primitive, options), y)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(I::conv2d(x.primitive, weight.primitive, None, options))
            }
        };
        Tensor::from_primitive(TensorPrimitive::Float(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{TestAutodiff, device, rng_lock};
    use burn::tensor::backend::AutodiffBackend;
    use burn::tensor::{Distribution, TensorData, Tolerance};

    struct Case {
        x: [usize; 4],
        weight: [usize; 4],
        options: ConvOptions<2>,
        bias: bool,
    }

    fn depthwise(
        c: usize,
        hw: [usize; 2],
        k: [usize; 2],
        s: usize,
        p: [usize; 2],
        d: usize,
    ) -> Case {
        Case {
            x: [3, c, hw[0], hw[1]],
            weight: [c, 1, k[0], k[1]],
            options: ConvOptions::new([s, s], p, [d, d], c),
            bias: false,
        }
    }

    /// Our conv2d and burn's on the same random inputs: output, input gradient, weight
    /// gradient and bias gradient, under a random upstream gradient.
    fn check_on<T: AutodiffBackend>(case: &Case, dev: &T::Device) {
        let random = |shape: [usize; 4]| {
            Tensor::<T, 4>::random(shape, Distribution::Normal(0.0, 1.0), dev).into_data()
        };
        let (xd, wd) = (random(case.x), random(case.weight));
        let bias = Tensor::<T, 1>::random([case.weight[0]], Distribution::Default, dev);
        let leaf = |data: &TensorData| Tensor::<T, 4>::from_data(data.clone(), dev).require_grad();
        let run = |ours: bool| {
            let (x, w) = (leaf(&xd), leaf(&wd));
            let b = case
                .bias
                .then(|| Tensor::<T, 1>::from_data(bias.to_data(), dev).require_grad());
            let y = if ours {
                conv2d(x.clone(), w.clone(), b.clone(), case.options.clone())
            } else {
                burn::tensor::module::conv2d(x.clone(), w.clone(), b.clone(), case.options.clone())
            };
            (x, w, b, y)
        };
        let (x1, w1, b1, y1) = run(true);
        let (x2, w2, b2, y2) = run(false);
        let tol = Tolerance::<f32>::rel_abs(1e-4, 1e-4);
        y1.to_data().assert_approx_eq::<f32>(&y2.to_data(), tol);
        let upstream = Tensor::<T, 4>::random(y1.dims(), Distribution::Default, dev);
        let g1 = y1.mul(upstream.clone()).sum().backward();
        let g2 = y2.mul(upstream).sum().backward();
        let grad = |t: &Tensor<T, 4>, g: &T::Gradients| t.grad(g).expect("gradient").into_data();
        grad(&x1, &g1).assert_approx_eq::<f32>(&grad(&x2, &g2), tol);
        grad(&w1, &g1).assert_approx_eq::<f32>(&grad(&w2, &g2), tol);
        if let (Some(b1), Some(b2)) = (b1, b2) {
            let (d1, d2) = (
                b1.grad(&g1).expect("bias grad"),
                b2.grad(&g2).expect("bias grad"),
            );
            d1.into_data().assert_approx_eq::<f32>(&d2.into_data(), tol);
        }
    }

    fn check(case: &Case) {
        check_on::<TestAutodiff>(case, &device());
        // The same fast path on ndarray (its tensors are copied out instead of borrowed).
        #[cfg(feature = "ndarray")]
        check_on::<burn::backend::Autodiff<burn_ndarray::NdArray<f32>>>(case, &Default::default());
    }

    #[test]
    fn depthwise_matches_burn_values_and_gradients() {
        let _rng = rng_lock();
        let cases = [
            // MobileNet shapes: 3x3 and 5x5, stride 1 and 2, "same" padding.
            depthwise(8, [9, 9], [3, 3], 1, [1, 1], 1),
            depthwise(8, [9, 9], [3, 3], 2, [1, 1], 1),
            depthwise(5, [10, 7], [5, 5], 2, [2, 2], 1),
            depthwise(5, [10, 7], [5, 5], 1, [2, 2], 1),
            // No padding, padding larger than the flipped kernel's, dilation, odd sizes.
            depthwise(4, [8, 6], [3, 3], 1, [0, 0], 1),
            depthwise(4, [6, 6], [3, 3], 1, [3, 3], 1),
            depthwise(4, [11, 9], [3, 3], 1, [2, 2], 2),
            depthwise(4, [11, 9], [3, 3], 3, [1, 0], 2),
            depthwise(3, [5, 8], [3, 1], 2, [1, 0], 1),
            depthwise(2, [3, 3], [3, 3], 2, [0, 0], 1),
        ];
        for case in &cases {
            check(case);
        }
        let mut with_bias = depthwise(6, [7, 7], [3, 3], 1, [1, 1], 1);
        with_bias.bias = true;
        check(&with_bias);
    }

    #[test]
    fn pointwise_matches_burn_values_and_gradients() {
        let _rng = rng_lock();
        for (cin, cout, bias) in [(6, 4, false), (4, 9, true), (1, 3, false)] {
            check(&Case {
                x: [3, cin, 5, 4],
                weight: [cout, cin, 1, 1],
                options: ConvOptions::new([1, 1], [0, 0], [1, 1], 1),
                bias,
            });
        }
        // 1x1 spatial inputs, as in squeeze-excitation.
        check(&Case {
            x: [4, 8, 1, 1],
            weight: [2, 8, 1, 1],
            options: ConvOptions::new([1, 1], [0, 0], [1, 1], 1),
            bias: true,
        });
    }

    #[test]
    fn only_depthwise_and_plain_pointwise_take_a_fast_path() {
        let k = |x, w, o: ConvOptions<2>| ConvKind::of(x, w, &o);
        let opts = |s, p, g| ConvOptions::new([s, s], [p, p], [1, 1], g);
        assert_eq!(
            k([1, 8, 5, 5], [8, 1, 3, 3], opts(1, 1, 8)),
            Some(ConvKind::Depthwise)
        );
        assert_eq!(
            k([1, 8, 5, 5], [8, 8, 1, 1], opts(1, 0, 1)),
            Some(ConvKind::Pointwise)
        );
        // Channel multiplier 2, grouped, strided or padded 1x1, a dense 3x3: burn's path.
        assert_eq!(k([1, 8, 5, 5], [16, 1, 3, 3], opts(1, 1, 8)), None);
        assert_eq!(k([1, 8, 5, 5], [8, 2, 3, 3], opts(1, 1, 4)), None);
        assert_eq!(k([1, 8, 5, 5], [8, 8, 1, 1], opts(2, 0, 1)), None);
        assert_eq!(k([1, 8, 5, 5], [8, 8, 1, 1], opts(1, 1, 1)), None);
        assert_eq!(k([1, 8, 5, 5], [8, 8, 3, 3], opts(1, 1, 1)), None);
        // A single channel is an ordinary convolution.
        assert_eq!(k([1, 1, 5, 5], [1, 1, 3, 3], opts(1, 1, 1)), None);
    }

    /// The comparisons above are only meaningful if the fast path ran: on burn-flex it must.
    #[cfg(all(feature = "flex", not(feature = "test-wgpu")))]
    #[test]
    fn the_fast_path_runs_on_autodiff_flex() {
        let dev = device();
        let x = Tensor::<TestAutodiff, 4>::zeros([1, 4, 5, 5], &dev);
        let w = Tensor::<TestAutodiff, 4>::zeros([4, 1, 3, 3], &dev);
        let options = ConvOptions::new([1, 1], [1, 1], [1, 1], 4);
        assert!(dispatch(&x, &w, &options, ConvKind::Depthwise).is_some());
        let inner = x.inner();
        let w = w.inner();
        assert!(dispatch(&inner, &w, &options, ConvKind::Depthwise).is_none());
    }
}
