//! Weight-only quantization: the weights of every convolution and linear layer become 8- or
//! 4-bit symmetric codes with one scale per tensor, per row or per block of consecutive values
//! (burn's `QuantValue::Q8S`/`Q4S` with `QuantLevel::Tensor`/`Block` and min-max calibration
//! compute the same codes: checked by a test against `Tensor::quantize_dynamic`); biases and
//! batch-norm tensors stay float. The result is stored by [`opt_core::qweights`] (4-bit codes
//! packed two per byte, float16 scales) and dequantized on load: the file shrinks, the model
//! runs at float speed.
//!
//! burn's own quantized records are not used for storage: burn-flex keeps one byte per 4-bit
//! value, burn-ndarray does not run 4-bit schemes, and the safetensors store rejects quantized
//! tensors (see the burn 0.21 guide, section 3).

use std::collections::BTreeMap;

use half::f16;
use opt_core::qweights::{QuantTensor, StoredTensor};
use opt_core::weights::HostTensor;
use serde::Serialize;

use crate::qmodel::Granularity;

/// What a weight-only quantization changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WeightOnlyReport {
    /// Bits per weight code.
    pub bits: u32,
    /// How scales are shared.
    pub granularity: Granularity,
    /// Values per scale for [`Granularity::PerBlock`].
    pub block_size: usize,
    /// Tensors quantized (convolution and linear weights).
    pub tensors_quantized: usize,
    /// Values quantized.
    pub values_quantized: usize,
    /// Values kept in float (biases, batch norm).
    pub values_float: usize,
    /// Largest `|w − dequantized(w)|` over the quantized values.
    pub max_abs_error: f32,
    /// Mean `|w − dequantized(w)|` over the quantized values.
    pub mean_abs_error: f32,
}

/// Symmetric codes of `values` in `[−(2^(bits−1) − 1), 2^(bits−1) − 1]` with one scale per
/// `block` consecutive values (`absmax / qmax`; an all-zero block gets scale 1). With
/// `f16_scales` the scales are rounded to float16 first, so the stored scale is the one the
/// codes were computed with.
pub fn quantize_tensor(
    shape: &[usize],
    values: &[f32],
    bits: u32,
    block: usize,
    f16_scales: bool,
) -> QuantTensor {
    let qmax = ((1i32 << (bits - 1)) - 1) as f32;
    let block = block.max(1);
    let scales: Vec<f32> = values
        .chunks(block)
        .map(|c| {
            let m = c.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let s = if m > 0.0 { m / qmax } else { 1.0 };
            if f16_scales {
                // Round up to a representable scale so the largest value still fits.
                let h = f16::from_f32(s).to_f32();
                if h < s {
                    f16::from_bits(f16::from_f32(s).to_bits() + 1).to_f32()
                } else if h > 0.0 {
                    h
                } else {
                    f16::MIN_POSITIVE_SUBNORMAL.to_f32()
                }
            } else {
                s
            }
        })
        .collect();
    let codes = values
        .iter()
        .enumerate()
        .map(|(i, &v)| (v / scales[i / block]).round().clamp(-qmax, qmax) as i8)
        .collect();
    QuantTensor {
        shape: shape.to_vec(),
        bits,
        block,
        scales,
        codes,
    }
}

/// Quantizes every tensor with at least two dimensions (convolution and linear weights) of
/// `tensors`; the others stay float. Per channel means one scale per row of the stored tensor:
/// per output channel of a convolution `[out, in, k, k]`, per input feature of burn's linear
/// weight `[in, out]`.
pub fn quantize_weights_only(
    tensors: &BTreeMap<String, HostTensor>,
    bits: u32,
    granularity: Granularity,
    block_size: usize,
) -> (BTreeMap<String, StoredTensor>, WeightOnlyReport) {
    let mut report = WeightOnlyReport {
        bits,
        granularity,
        block_size,
        tensors_quantized: 0,
        values_quantized: 0,
        values_float: 0,
        max_abs_error: 0.0,
        mean_abs_error: 0.0,
    };
    let mut err_sum = 0.0f64;
    let out = tensors
        .iter()
        .map(|(name, t)| {
            let stored = if t.shape.len() >= 2 && !t.values.is_empty() {
                let block = match granularity {
                    Granularity::PerTensor => t.values.len(),
                    Granularity::PerChannel => t.values.len() / t.shape[0].max(1),
                    Granularity::PerBlock => block_size,
                };
                let q = quantize_tensor(&t.shape, &t.values, bits, block, true);
                for (a, b) in t.values.iter().zip(q.dequantize().values) {
                    let e = (a - b).abs();
                    report.max_abs_error = report.max_abs_error.max(e);
                    err_sum += e as f64;
                }
                report.tensors_quantized += 1;
                report.values_quantized += t.values.len();
                StoredTensor::Quant(q)
            } else {
                report.values_float += t.values.len();
                StoredTensor::Float(t.clone())
            };
            (name.clone(), stored)
        })
        .collect();
    report.mean_abs_error = (err_sum / report.values_quantized.max(1) as f64) as f32;
    (out, report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::quantization::{QuantLevel, QuantScheme, QuantStore, QuantValue};
    use burn::tensor::{Tensor, TensorData};
    use opt_core::test_util::{TestBackend, device};

    fn wave(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (i as f32 * 0.731).sin() * (1.0 + (i % 7) as f32))
            .collect()
    }

    /// Our codes are burn's: the same tensor through `quantize_dynamic` with the matching
    /// scheme dequantizes to the same values.
    #[test]
    fn matches_burns_quantizer() {
        let values = wave(64 * 32);
        for (bits, value) in [(8, QuantValue::Q8S), (4, QuantValue::Q4S)] {
            for (block, level) in [(32, QuantLevel::block([32])), (64 * 32, QuantLevel::Tensor)] {
                let scheme = QuantScheme::default()
                    .with_value(value)
                    .with_level(level)
                    .with_store(QuantStore::Native);
                let t = Tensor::<TestBackend, 2>::from_data(
                    TensorData::new(values.clone(), [64, 32]),
                    &device(),
                );
                let burn: Vec<f32> = t
                    .quantize_dynamic(&scheme)
                    .dequantize()
                    .into_data()
                    .into_vec()
                    .unwrap();
                let ours = quantize_tensor(&[64, 32], &values, bits, block, false).dequantize();
                for (i, (a, b)) in ours.values.iter().zip(&burn).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                        "{bits} bits, block {block}, value {i}: ours {a}, burn {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn error_is_within_half_a_step_and_only_weights_are_quantized() {
        let mut m = BTreeMap::new();
        m.insert(
            "fc.weight".to_string(),
            HostTensor {
                shape: vec![10, 20],
                values: wave(200),
            },
        );
        m.insert(
            "fc.bias".to_string(),
            HostTensor {
                shape: vec![20],
                values: wave(20),
            },
        );
        for (bits, g) in [
            (4, Granularity::PerBlock),
            (4, Granularity::PerChannel),
            (8, Granularity::PerTensor),
        ] {
            let (q, r) = quantize_weights_only(&m, bits, g, 16);
            assert_eq!((r.tensors_quantized, r.values_float), (1, 20));
            assert_eq!(q["fc.bias"], StoredTensor::Float(m["fc.bias"].clone()));
            let StoredTensor::Quant(w) = &q["fc.weight"] else {
                panic!("weight not quantized")
            };
            for (i, (a, b)) in m["fc.weight"]
                .values
                .iter()
                .zip(w.dequantize().values)
                .enumerate()
            {
                let step = w.scales[i / w.block];
                assert!((a - b).abs() <= 0.5 * step + 1e-7, "{bits} {g:?} {i}");
            }
            assert!(r.max_abs_error > 0.0 && r.mean_abs_error <= r.max_abs_error);
        }
    }
}
