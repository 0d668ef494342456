//! Depthwise 2-D convolution gradient kernels on plain `f32` slices (NCHW, contiguous),
//! parallel over planes (input gradient) or channels (weight gradient) with rayon.
//!
//! A depthwise convolution (`groups == channels_in == channels_out`, weight `[c, 1, kh, kw]`)
//! does `kh * kw` multiply-adds per output element, so it is bound by memory traffic, not
//! arithmetic. burn's CPU backends run its backward pass through generic paths: the input
//! gradient as a grouped transposed convolution and the weight gradient as one small
//! convolution per channel (`conv2d_weight_grad_groups`). These kernels walk each
//! `[h, w]` plane once per tap instead, with the row loops written so the compiler vectorizes
//! them (plain slices for stride 1, eight partial sums for the dot products).

use rayon::prelude::*;

/// Shape and options of one depthwise convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DepthwiseGeometry {
    /// Batch size.
    pub batch: usize,
    /// Channels (in = out = groups).
    pub channels: usize,
    /// Input height and width.
    pub input: [usize; 2],
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Stride per spatial axis.
    pub stride: [usize; 2],
    /// Symmetric zero padding per spatial axis.
    pub padding: [usize; 2],
    /// Dilation per spatial axis.
    pub dilation: [usize; 2],
}

impl DepthwiseGeometry {
    /// Output height and width (burn's and PyTorch's formula); `None` when the padded input is
    /// smaller than the dilated kernel.
    pub fn output(&self) -> Option<[usize; 2]> {
        let axis = |i: usize| {
            let span = self.dilation[i] * (self.kernel[i].checked_sub(1)?) + 1;
            let padded = self.input[i] + 2 * self.padding[i];
            padded
                .checked_sub(span)
                .map(|d| d / self.stride[i].max(1) + 1)
        };
        Some([axis(0)?, axis(1)?])
    }

    fn plane_in(&self) -> usize {
        self.input[0] * self.input[1]
    }

    fn taps(&self) -> usize {
        self.kernel[0] * self.kernel[1]
    }
}

/// The output positions `o` along one axis whose input index `o * stride + offset` lies in
/// `0..len`, as a range, and the offset (`tap * dilation - padding`).
fn valid_range(out_len: usize, len: usize, stride: usize, offset: isize) -> (usize, usize) {
    let stride = stride as isize;
    // o * stride + offset >= 0  =>  o >= ceil(-offset / stride)
    let lo = if offset >= 0 {
        0
    } else {
        (-offset + stride - 1) / stride
    };
    // o * stride + offset <= len - 1  =>  o <= floor((len - 1 - offset) / stride)
    let last = len as isize - 1 - offset;
    let hi = if last < 0 { 0 } else { last / stride + 1 };
    let hi = hi.min(out_len as isize);
    let lo = lo.min(hi);
    (lo as usize, hi as usize)
}

/// Per-tap row geometry shared by the three kernels: for output row `oi` and kernel row `a`,
/// the input row (if inside the image).
fn input_row(g: &DepthwiseGeometry, oi: usize, a: usize) -> Option<usize> {
    let i = (oi * g.stride[0] + a * g.dilation[0]) as isize - g.padding[0] as isize;
    (0..g.input[0] as isize).contains(&i).then_some(i as usize)
}

/// For each kernel column `b`: the valid output columns `lo..hi` and the input column read at
/// `lo` (`lo * stride + b * dilation - padding`).
fn column_table(g: &DepthwiseGeometry, out_w: usize) -> Vec<(usize, usize, usize)> {
    (0..g.kernel[1])
        .map(|b| {
            let offset = (b * g.dilation[1]) as isize - g.padding[1] as isize;
            let (lo, hi) = valid_range(out_w, g.input[1], g.stride[1], offset);
            let start = if lo < hi {
                (lo as isize * g.stride[1] as isize + offset) as usize
            } else {
                0
            };
            (lo, hi, start)
        })
        .collect()
}

/// `sum(u[i] * v[i])` with eight independent partial sums, so it vectorizes (a single running
/// sum is a serial dependency chain the compiler may not reorder).
fn dot(u: &[f32], v: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (u8, v8) = (u.chunks_exact(8), v.chunks_exact(8));
    let tail: f32 = u8
        .remainder()
        .iter()
        .zip(v8.remainder())
        .map(|(&a, &b)| a * b)
        .sum();
    for (a, b) in u8.zip(v8) {
        for k in 0..8 {
            acc[k] += a[k] * b[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Input gradient: scatters `grad[n, c, oi, oj] * w[c, a, b]` back to the input positions the
/// forward pass read. `grad` is `[batch, channels, oh, ow]`, `weight` `[channels, 1, kh, kw]`;
/// returns `[batch, channels, h, w]`.
pub fn input_grad(g: &DepthwiseGeometry, grad: &[f32], weight: &[f32]) -> Vec<f32> {
    let [oh, ow] = g.output().unwrap_or([0, 0]);
    let (plane_in, taps, w_in) = (g.plane_in(), g.taps(), g.input[1]);
    let mut dx = vec![0.0f32; g.batch * g.channels * plane_in];
    if oh * ow == 0 || plane_in == 0 {
        return dx;
    }
    let cols = column_table(g, ow);
    let stride = g.stride[1];
    dx.par_chunks_mut(plane_in)
        .enumerate()
        .for_each(|(plane, dx)| {
            let c = plane % g.channels;
            let grad = &grad[plane * oh * ow..(plane + 1) * oh * ow];
            let w = &weight[c * taps..(c + 1) * taps];
            for oi in 0..oh {
                let g_row = &grad[oi * ow..(oi + 1) * ow];
                for a in 0..g.kernel[0] {
                    let Some(ii) = input_row(g, oi, a) else {
                        continue;
                    };
                    let dx_row = &mut dx[ii * w_in..(ii + 1) * w_in];
                    for (b, &(lo, hi, start)) in cols.iter().enumerate() {
                        if lo >= hi {
                            continue;
                        }
                        let wt = w[a * g.kernel[1] + b];
                        let src = &g_row[lo..hi];
                        if stride == 1 {
                            let dst = &mut dx_row[start..start + src.len()];
                            for (d, &v) in dst.iter_mut().zip(src) {
                                *d += wt * v;
                            }
                        } else {
                            for (d, &v) in dx_row[start..].iter_mut().step_by(stride).zip(src) {
                                *d += wt * v;
                            }
                        }
                    }
                }
            }
        });
    dx
}

/// Weight gradient: `dw[c, a, b] = sum_{n, oi, oj} grad[n, c, oi, oj] * x[n, c, shifted]`.
/// `x` is `[batch, channels, h, w]`, `grad` `[batch, channels, oh, ow]`; returns
/// `[channels, 1, kh, kw]`. Each channel's sums over the batch accumulate in `f64`.
pub fn weight_grad(g: &DepthwiseGeometry, x: &[f32], grad: &[f32]) -> Vec<f32> {
    let [oh, ow] = g.output().unwrap_or([0, 0]);
    let (plane_in, taps, w_in) = (g.plane_in(), g.taps(), g.input[1]);
    let mut dw = vec![0.0f32; g.channels * taps];
    if oh * ow == 0 || taps == 0 {
        return dw;
    }
    let cols = column_table(g, ow);
    let stride = g.stride[1];
    dw.par_chunks_mut(taps).enumerate().for_each(|(c, dw)| {
        let mut acc = vec![0.0f64; taps];
        // Strided input columns are gathered into one contiguous buffer per row and tap.
        let mut gathered = vec![0.0f32; ow];
        let mut sums = vec![0.0f32; taps];
        for n in 0..g.batch {
            let plane = n * g.channels + c;
            let x = &x[plane * plane_in..(plane + 1) * plane_in];
            let grad = &grad[plane * oh * ow..(plane + 1) * oh * ow];
            sums.fill(0.0);
            for oi in 0..oh {
                let g_row = &grad[oi * ow..(oi + 1) * ow];
                for a in 0..g.kernel[0] {
                    let Some(ii) = input_row(g, oi, a) else {
                        continue;
                    };
                    let x_row = &x[ii * w_in..(ii + 1) * w_in];
                    for (b, &(lo, hi, start)) in cols.iter().enumerate() {
                        if lo >= hi {
                            continue;
                        }
                        let len = hi - lo;
                        let xs = if stride == 1 {
                            &x_row[start..start + len]
                        } else {
                            for (dst, &v) in gathered
                                .iter_mut()
                                .zip(x_row[start..].iter().step_by(stride))
                            {
                                *dst = v;
                            }
                            &gathered[..len]
                        };
                        sums[a * g.kernel[1] + b] += dot(&g_row[lo..hi], xs);
                    }
                }
            }
            for (total, &s) in acc.iter_mut().zip(&sums) {
                *total += s as f64;
            }
        }
        for (d, a) in dw.iter_mut().zip(acc) {
            *d = a as f32;
        }
    });
    dw
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_range_keeps_indices_inside_the_row() {
        // stride 1, padding 1, tap 0: o - 1 >= 0 => o >= 1; o - 1 <= 4 => o <= 5 (out_len 5).
        assert_eq!(valid_range(5, 5, 1, -1), (1, 5));
        // tap 2 of a 3-wide kernel with padding 1: o + 1 <= 4 => o <= 3.
        assert_eq!(valid_range(5, 5, 1, 1), (0, 4));
        // stride 2: o * 2 - 1 >= 0 => o >= 1; o * 2 - 1 <= 6 => o <= 3.
        assert_eq!(valid_range(4, 7, 2, -1), (1, 4));
        // a tap entirely outside the input.
        assert_eq!(valid_range(3, 2, 1, 5), (0, 0));
    }

    #[test]
    fn output_size_matches_the_convolution_formula() {
        let g = DepthwiseGeometry {
            batch: 1,
            channels: 1,
            input: [28, 7],
            kernel: [3, 5],
            stride: [2, 1],
            padding: [1, 2],
            dilation: [1, 1],
        };
        assert_eq!(g.output(), Some([14, 7]));
        let tiny = DepthwiseGeometry {
            input: [1, 1],
            padding: [0, 0],
            ..g
        };
        assert_eq!(tiny.output(), None);
    }
}
