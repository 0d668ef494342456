//! The weight-only quantized weights file (`weights.wq`): what a model whose weights were
//! quantized to 8 or 4 bits (activations still float) is stored in, so its size on disk really
//! shrinks. Loading dequantizes every tensor to float32 (`code · scale`), so the model then runs
//! on any backend at float speed: the file is smaller, the model is not faster.
//!
//! Layout: the magic `OPTKWQNT`, a little-endian `u32` version (1), a `u32` header length, the
//! JSON header (one entry per tensor: name, shape, bits, values per scale; the payload length),
//! the payload, then the CRC-32 of everything before it. Per quantized tensor the payload holds
//! its scales as float16 (one per block of `block` consecutive values, the last block may be
//! shorter) followed by its codes: one signed byte per value at 8 bits, two values per byte at
//! 4 bits (low nibble first, two's complement). Tensors kept in float (biases, batch-norm
//! parameters and statistics) are stored as float32.

use std::collections::BTreeMap;

use half::f16;
use serde::{Deserialize, Serialize};

use crate::framed::{Cursor, FrameError, f32_bytes, read_framed, tensor_sizes, write_framed};
use crate::weights::HostTensor;

/// First bytes of a weight-only quantized file.
pub const MAGIC: &[u8; 8] = b"OPTKWQNT";
/// Version of the layout this optkit writes and reads.
pub const VERSION: u32 = 1;
/// Default file name of weight-only quantized weights in a model folder.
pub const QUANT_WEIGHTS_FILE: &str = "weights.wq";

/// A tensor stored as integer codes and one scale per block: `value[i] = codes[i] ·
/// scales[i / block]`.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantTensor {
    /// Shape.
    pub shape: Vec<usize>,
    /// Bits per code (8 or 4); codes lie in `[-(2^(bits-1) - 1), 2^(bits-1) - 1]`.
    pub bits: u32,
    /// Consecutive values (row-major) sharing one scale.
    pub block: usize,
    /// One scale per block (exactly representable in float16).
    pub scales: Vec<f32>,
    /// One code per value.
    pub codes: Vec<i8>,
}

impl QuantTensor {
    /// The float values the codes stand for.
    pub fn dequantize(&self) -> HostTensor {
        HostTensor {
            shape: self.shape.clone(),
            values: self
                .codes
                .iter()
                .enumerate()
                .map(|(i, &c)| c as f32 * self.scales[i / self.block])
                .collect(),
        }
    }

    /// Bytes this tensor takes in the payload.
    pub fn payload_bytes(&self) -> usize {
        2 * self.scales.len() + packed_len(self.codes.len(), self.bits)
    }
}

/// One tensor of a weight-only quantized model.
#[derive(Debug, Clone, PartialEq)]
pub enum StoredTensor {
    /// Kept in float32.
    Float(HostTensor),
    /// Integer codes and scales.
    Quant(QuantTensor),
}

impl StoredTensor {
    /// The float values.
    pub fn dequantize(&self) -> HostTensor {
        match self {
            StoredTensor::Float(t) => t.clone(),
            StoredTensor::Quant(q) => q.dequantize(),
        }
    }
}

/// Every tensor of `stored`, dequantized to float32.
pub fn dequantize_all(stored: &BTreeMap<String, StoredTensor>) -> BTreeMap<String, HostTensor> {
    stored
        .iter()
        .map(|(k, v)| (k.clone(), v.dequantize()))
        .collect()
}

fn packed_len(n: usize, bits: u32) -> usize {
    if bits == 4 { n.div_ceil(2) } else { n }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    shape: Vec<usize>,
    /// 32 for float tensors.
    bits: u32,
    /// Values per scale (0 for float tensors).
    block: usize,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    tensors: Vec<Entry>,
    payload_bytes: usize,
}

/// Whether `bytes` start like a weight-only quantized file.
pub fn is_quant_weights(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// Encodes tensors (by name) into the weight-only quantized file format.
///
/// # Panics
/// When a quantized tensor is inconsistent (bits other than 4 or 8, a code outside its range,
/// a scale count that does not match the block size): these are programming errors of the
/// quantizer, not user input.
pub fn encode_quant_weights(tensors: &BTreeMap<String, StoredTensor>) -> Vec<u8> {
    let mut payload = Vec::new();
    let mut entries = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        match t {
            StoredTensor::Float(h) => {
                payload.extend(f32_bytes(&h.values));
                entries.push(Entry {
                    name: name.clone(),
                    shape: h.shape.clone(),
                    bits: 32,
                    block: 0,
                });
            }
            StoredTensor::Quant(q) => {
                let max = ((1i32 << (q.bits.clamp(1, 8) - 1)) - 1) as i8;
                assert!(
                    matches!(q.bits, 4 | 8)
                        && q.block > 0
                        && q.scales.len() == q.codes.len().div_ceil(q.block)
                        && q.codes.iter().all(|c| (-max..=max).contains(c)),
                    "inconsistent quantized tensor {name}"
                );
                payload.extend(
                    q.scales
                        .iter()
                        .flat_map(|&s| f16::from_f32(s).to_bits().to_le_bytes()),
                );
                if q.bits == 8 {
                    payload.extend(q.codes.iter().map(|&c| c as u8));
                } else {
                    payload.extend(q.codes.chunks(2).map(|p| {
                        let lo = p[0] as u8 & 0x0f;
                        let hi = p.get(1).map_or(0, |&c| c as u8 & 0x0f);
                        lo | hi << 4
                    }));
                }
                entries.push(Entry {
                    name: name.clone(),
                    shape: q.shape.clone(),
                    bits: q.bits,
                    block: q.block,
                });
            }
        }
    }
    let header = serde_json::to_vec(&Header {
        tensors: entries,
        payload_bytes: payload.len(),
    })
    .expect("a header of strings and numbers always serializes");
    write_framed(MAGIC, VERSION, &header, &payload, true)
}

/// Decodes a weight-only quantized file whose tensors hold at most `max_values` values in all
/// (what the model it belongs to holds). Every inconsistency (truncation, a checksum that does
/// not match, a shape or block that does not fit the payload, more values than allowed) is an
/// error that says what is wrong.
pub fn decode_quant_weights(
    bytes: &[u8],
    max_values: usize,
) -> Result<BTreeMap<String, StoredTensor>, String> {
    let corrupt = |what: String| format!("corrupt quantized weights file: {what}");
    let (header, payload) = read_framed(bytes, MAGIC, VERSION, true).map_err(|e| match e {
        FrameError::Corrupt(what) => corrupt(what),
        FrameError::Version(v) => {
            format!("quantized weights version {v}; this optkit reads version {VERSION}")
        }
    })?;
    let header: Header = serde_json::from_slice(header)
        .map_err(|e| corrupt(format!("header is not valid ({e})")))?;
    if payload.len() != header.payload_bytes {
        return Err(corrupt(format!(
            "payload has {} bytes, the header says {}",
            payload.len(),
            header.payload_bytes
        )));
    }
    let sizes = tensor_sizes(
        header
            .tensors
            .iter()
            .map(|e| (e.name.as_str(), e.shape.as_slice())),
        max_values,
    )
    .map_err(corrupt)?;
    let mut cursor = Cursor::new(payload);
    let mut take =
        |len: usize, name: &str| cursor.take(len, &format!("tensor {name}")).map_err(corrupt);
    let mut out = BTreeMap::new();
    for (e, &n) in header.tensors.iter().zip(&sizes) {
        let t = match (e.bits, e.block) {
            (32, 0) => StoredTensor::Float(HostTensor {
                shape: e.shape.clone(),
                values: take(4 * n, &e.name)?
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            }),
            (bits @ (4 | 8), block) if block > 0 => {
                let blocks = n.div_ceil(block);
                let scales: Vec<f32> = take(2 * blocks, &e.name)?
                    .chunks_exact(2)
                    .map(|b| f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32())
                    .collect();
                if let Some(s) = scales.iter().find(|s| !s.is_finite()) {
                    return Err(corrupt(format!("tensor {} has a scale of {s}", e.name)));
                }
                let raw = take(packed_len(n, bits), &e.name)?;
                let codes: Vec<i8> = if bits == 8 {
                    raw.iter().map(|&b| b as i8).collect()
                } else {
                    // Sign-extend each nibble.
                    let nib = |b: u8| ((b << 4) as i8) >> 4;
                    raw.iter()
                        .flat_map(|&b| [nib(b & 0x0f), nib(b >> 4)])
                        .take(n)
                        .collect()
                };
                StoredTensor::Quant(QuantTensor {
                    shape: e.shape.clone(),
                    bits,
                    block,
                    scales,
                    codes,
                })
            }
            (bits, block) => {
                return Err(corrupt(format!(
                    "tensor {} has {bits} bits and block {block}; this optkit reads 32-bit \
                     float tensors and 4- or 8-bit codes with a block of at least 1",
                    e.name
                )));
            }
        };
        if out.insert(e.name.clone(), t).is_some() {
            return Err(corrupt(format!("tensor {} appears twice", e.name)));
        }
    }
    cursor.finish().map_err(corrupt)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BTreeMap<String, StoredTensor> {
        let mut m = BTreeMap::new();
        m.insert(
            "a.weight".into(),
            StoredTensor::Quant(QuantTensor {
                shape: vec![3, 5],
                bits: 4,
                block: 4,
                scales: vec![0.5, 0.25, 1.0, 2.0],
                codes: vec![-7, 7, 0, 1, -1, 3, -3, 5, 6, -6, 2, -2, 4, -4, 7],
            }),
        );
        m.insert(
            "b.weight".into(),
            StoredTensor::Quant(QuantTensor {
                shape: vec![2, 3],
                bits: 8,
                block: 3,
                scales: vec![0.125, 0.0625],
                codes: vec![-127, 127, 0, 1, -2, 100],
            }),
        );
        m.insert(
            "a.bias".into(),
            StoredTensor::Float(HostTensor {
                shape: vec![3],
                values: vec![1.5, -0.0, f32::MIN_POSITIVE],
            }),
        );
        m
    }

    #[test]
    fn round_trips_exactly_and_packs_four_bit_codes() {
        let t = sample();
        let bytes = encode_quant_weights(&t);
        assert_eq!(decode_quant_weights(&bytes, 1 << 20).unwrap(), t);
        let payload: usize = t
            .values()
            .map(|s| match s {
                StoredTensor::Float(h) => 4 * h.values.len(),
                StoredTensor::Quant(q) => q.payload_bytes(),
            })
            .sum();
        // 15 four-bit codes take 8 bytes, 6 eight-bit codes 6.
        assert_eq!(payload, 8 + 8 + 4 + 6 + 12);
        let d = dequantize_all(&t);
        assert_eq!(d["a.weight"].values[..5], [-3.5, 3.5, 0.0, 0.5, -0.25]);
        assert_eq!(d["a.weight"].values[14], 14.0);
    }

    #[test]
    fn corruption_is_an_error_not_a_panic() {
        let bytes = encode_quant_weights(&sample());
        for cut in [0, 10, 19, bytes.len() / 2, bytes.len() - 1] {
            let e = decode_quant_weights(&bytes[..cut], 1 << 20).unwrap_err();
            assert!(e.contains("corrupt quantized weights file"), "{cut}: {e}");
        }
        for i in [30, bytes.len() - 10, bytes.len() - 2] {
            let mut flipped = bytes.clone();
            flipped[i] ^= 0x10;
            assert!(
                decode_quant_weights(&flipped, 1 << 20)
                    .unwrap_err()
                    .contains("checksum"),
                "{i}"
            );
        }
        let mut version = bytes;
        version[8] = 9;
        assert!(
            decode_quant_weights(&version, 1 << 20)
                .unwrap_err()
                .contains("version 9")
        );
    }
}
