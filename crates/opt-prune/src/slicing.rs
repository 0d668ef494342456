//! Host-tensor arithmetic along one axis of a channel group: per-channel reductions (for
//! importance) and keeping a subset of channels (for structured pruning).

use opt_core::model::TensorSlice;
use opt_core::weights::HostTensor;

/// Entries along `axis`, the product of the dimensions before it and after it.
fn split(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    let outer = shape[..axis].iter().product();
    let inner = shape[axis + 1..].iter().product();
    (outer, shape[axis], inner)
}

/// Adds `f(value, other)` of every entry to its channel's total (`other` is the entry of
/// `paired` at the same index when given, else 0).
pub fn per_channel(
    t: &HostTensor,
    slice: &TensorSlice,
    channels: usize,
    paired: Option<&[f32]>,
    f: impl Fn(f32, f32) -> f64,
) -> Vec<f64> {
    let (outer, len, inner) = split(&t.shape, slice.axis);
    debug_assert_eq!(len, channels * slice.block);
    let mut out = vec![0.0f64; channels];
    for o in 0..outer {
        for a in 0..len {
            let c = a / slice.block;
            let start = (o * len + a) * inner;
            let mut acc = 0.0;
            for i in start..start + inner {
                acc += f(t.values[i], paired.map_or(0.0, |p| p[i]));
            }
            out[c] += acc;
        }
    }
    out
}

/// The tensor with only channels `kept` (ascending) along the slice's axis.
pub fn keep_channels(t: &HostTensor, slice: &TensorSlice, kept: &[usize]) -> HostTensor {
    let (outer, len, inner) = split(&t.shape, slice.axis);
    let b = slice.block;
    let mut values = Vec::with_capacity(outer * kept.len() * b * inner);
    for o in 0..outer {
        for &k in kept {
            let start = (o * len + k * b) * inner;
            values.extend_from_slice(&t.values[start..start + b * inner]);
        }
    }
    let mut shape = t.shape.clone();
    shape[slice.axis] = kept.len() * b;
    HostTensor { shape, values }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opt_core::model::SliceRole;

    #[test]
    fn keeps_blocks_along_an_axis() {
        // [2, 6]: axis 1 holds 3 channels of block 2.
        let t = HostTensor {
            shape: vec![2, 6],
            values: (0..12).map(|v| v as f32).collect(),
        };
        let s = TensorSlice::new("x", 1, SliceRole::Consumer).with_block(2);
        let k = keep_channels(&t, &s, &[0, 2]);
        assert_eq!(k.shape, vec![2, 4]);
        assert_eq!(k.values, vec![0.0, 1.0, 4.0, 5.0, 6.0, 7.0, 10.0, 11.0]);
        let sums = per_channel(&t, &s, 3, None, |v, _| v as f64);
        assert_eq!(
            sums,
            vec![
                0.0 + 1.0 + 6.0 + 7.0,
                2.0 + 3.0 + 8.0 + 9.0,
                4.0 + 5.0 + 10.0 + 11.0
            ]
        );
        let s0 = TensorSlice::new("x", 0, SliceRole::Producer);
        let k = keep_channels(&t, &s0, &[1]);
        assert_eq!(k.values, (6..12).map(|v| v as f32).collect::<Vec<_>>());
    }
}
