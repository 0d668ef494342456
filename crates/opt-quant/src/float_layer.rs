//! The float layers of the int8 model: a convolution or linear layer that accuracy-aware
//! quantization keeps in float runs here, in plain Rust on the dequantized 8-bit input (no
//! tensor backend on the integer path). Slower than the int8 kernels; used only for the few
//! layers whose quantization costs the most accuracy.

use crate::graph::Layer;

/// Weights and biases of a float layer.
pub fn float_values(layer: &Layer) -> Option<(&[f32], &[f32])> {
    match layer {
        Layer::Conv(c) => Some((&c.weight, &c.bias)),
        Layer::Linear(l) => Some((&l.weight, &l.bias)),
        Layer::MaxPool { .. } => None,
    }
}

/// `a · b` with eight partial sums, which the compiler turns into vector code.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// A float convolution or linear layer (bias and ReLU included) on `n` inputs of `shape`.
pub fn float_layer(
    layer: &Layer,
    x: &[f32],
    n: usize,
    shape: [usize; 3],
) -> (Vec<f32>, [usize; 3]) {
    match layer {
        Layer::Conv(c) => {
            let [ch, h, wd] = shape;
            let (k, s, p) = (c.kernel, c.stride, c.padding);
            let oh = (h + 2 * p - k) / s + 1;
            let ow = (wd + 2 * p - k) / s + 1;
            let (oc, kd) = (c.out_channels, ch * k * k);
            let mut patch = vec![0.0f32; kd];
            let mut y = vec![0.0f32; n * oc * oh * ow];
            for img in 0..n {
                let src = &x[img * ch * h * wd..(img + 1) * ch * h * wd];
                for oy in 0..oh {
                    for ox in 0..ow {
                        for (kk, v) in patch.iter_mut().enumerate() {
                            let (ci, ky, kx) = (kk / (k * k), kk / k % k, kk % k);
                            let iy = (oy * s + ky) as isize - p as isize;
                            let ix = (ox * s + kx) as isize - p as isize;
                            *v = if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < wd {
                                src[(ci * h + iy as usize) * wd + ix as usize]
                            } else {
                                0.0
                            };
                        }
                        for o in 0..oc {
                            let v = c.bias[o] + dot(&c.weight[o * kd..(o + 1) * kd], &patch);
                            y[((img * oc + o) * oh + oy) * ow + ox] =
                                if c.relu { v.max(0.0) } else { v };
                        }
                    }
                }
            }
            (y, [oc, oh, ow])
        }
        Layer::Linear(l) => {
            let mut y = Vec::with_capacity(n * l.outputs);
            for row in x.chunks(l.inputs).take(n) {
                for o in 0..l.outputs {
                    let v = l.bias[o] + dot(&l.weight[o * l.inputs..(o + 1) * l.inputs], row);
                    y.push(if l.relu { v.max(0.0) } else { v });
                }
            }
            (y, [l.outputs, 1, 1])
        }
        Layer::MaxPool { .. } => unreachable!("pooling layers are never kept as float layers"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{INPUT, Images};
    use crate::graph::{ConvLayer, FloatGraph, LinearLayer};
    use crate::qmodel::{ActivationScheme, Granularity};

    /// Keeping layers in float brings the logits closer to the float model's when weight
    /// rounding dominates (here: per-tensor scales stretched by one outlier weight per layer).
    #[test]
    fn float_layers_bring_logits_closer() {
        use crate::calibrate::calibrate;
        use opt_core::model::{Model, ModelSpec};
        use opt_core::test_util::{TestBackend, device};

        let f = Images::new(32);
        let (norm, input) = (f.norm, INPUT);
        <TestBackend as burn::tensor::backend::Backend>::seed(&device(), 9);
        let spec = ModelSpec::preset("lenet5", input, 10).unwrap();
        let model: Model<TestBackend> = spec.init(&device());
        let mut graph = FloatGraph::from_model(&model, input).unwrap();
        for layer in &mut graph.layers {
            if let Layer::Conv(ConvLayer { weight, .. })
            | Layer::Linear(LinearLayer { weight, .. }) = layer
            {
                let m = weight.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                weight[0] = 30.0 * m;
            }
        }
        let want = graph.forward(f.normalized(), &mut |_, _| {});
        let stats = calibrate::<TestBackend>(&graph, &f.train, &f.batcher, 128, &device()).unwrap();
        let err = |float: &[&str]| {
            let float: Vec<String> = float.iter().map(|s| s.to_string()).collect();
            let q = crate::qmodel::QuantModel::build_mixed(
                &graph,
                norm,
                &stats,
                Granularity::PerTensor,
                ActivationScheme::default(),
                &float,
            )
            .unwrap();
            let got = q.forward(&f.pixels, f.test.len(), 2);
            got.iter()
                .zip(&want)
                .map(|(a, b)| (a - b).powi(2))
                .sum::<f32>()
                .sqrt()
        };
        let none = err(&[]);
        let some = err(&["conv2", "fc1"]);
        let all = err(&["conv1", "conv2", "fc1", "fc2"]);
        assert!(
            all < some && some < none && all < 0.5 * none,
            "all float {all}, conv2 and fc1 float {some}, none float {none}"
        );
        let bad = crate::qmodel::QuantModel::build_mixed(
            &graph,
            norm,
            &stats,
            Granularity::PerTensor,
            ActivationScheme::default(),
            &["conv9".to_string()],
        )
        .unwrap_err()
        .to_string();
        assert!(
            bad.contains("conv9") && bad.contains("conv1, conv2, fc1, fc2"),
            "{bad}"
        );
    }
}
