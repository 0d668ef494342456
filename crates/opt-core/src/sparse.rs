//! The sparse weights file (`weights.sparse`): what an unstructured-pruned model is stored in,
//! so its size on disk really shrinks. Decoding gives back every tensor bit for bit, so the
//! reloaded dense model computes identical outputs.
//!
//! Layout: the magic `OPTKSPRS`, a little-endian `u32` version (1), a `u32` header length, the
//! JSON header (one entry per tensor: name, shape, encoding, non-zero count; the payload
//! length), then the zlib-compressed payload (zlib's Adler-32 checksum catches corruption).
//! Per tensor the payload holds either every value (`dense`) or a bitmask of the non-zero
//! positions (bit `i % 8` of byte `i / 8`) followed by the non-zero values (`bitmask`),
//! whichever is smaller. Values are float32 with their bytes regrouped by significance (all
//! lowest bytes, then the next, ...), which lets the compressor exploit the shared exponents.
//! A value counts as non-zero when any bit is set, so `-0.0` is kept exactly.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use crate::framed::{Cursor, FrameError, read_framed, tensor_sizes, write_framed};
use crate::weights::HostTensor;

/// First bytes of a sparse weights file.
pub const MAGIC: &[u8; 8] = b"OPTKSPRS";
/// Version of the layout this optkit writes and reads.
pub const VERSION: u32 = 1;
/// Default file name of sparse weights in a model folder.
pub const SPARSE_WEIGHTS_FILE: &str = "weights.sparse";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Encoding {
    Dense,
    Bitmask,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    shape: Vec<usize>,
    encoding: Encoding,
    nonzero: usize,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    tensors: Vec<Entry>,
    payload_bytes: usize,
}

/// Whether `bytes` start like a sparse weights file.
pub fn is_sparse(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

fn shuffle(values: &[f32], out: &mut Vec<u8>) {
    for k in 0..4 {
        out.extend(values.iter().map(|v| v.to_le_bytes()[k]));
    }
}

fn unshuffle(bytes: &[u8]) -> Vec<f32> {
    let n = bytes.len() / 4;
    (0..n)
        .map(|i| f32::from_le_bytes([bytes[i], bytes[n + i], bytes[2 * n + i], bytes[3 * n + i]]))
        .collect()
}

/// Encodes tensors (by name) into the sparse file format.
pub fn encode_sparse(tensors: &BTreeMap<String, HostTensor>) -> Vec<u8> {
    let mut payload = Vec::new();
    let mut entries = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let n = t.values.len();
        let nonzero: Vec<f32> = t
            .values
            .iter()
            .copied()
            .filter(|v| v.to_bits() != 0)
            .collect();
        let encoding = if n.div_ceil(8) + 4 * nonzero.len() < 4 * n {
            Encoding::Bitmask
        } else {
            Encoding::Dense
        };
        match encoding {
            Encoding::Dense => shuffle(&t.values, &mut payload),
            Encoding::Bitmask => {
                let mut mask = vec![0u8; n.div_ceil(8)];
                for (i, v) in t.values.iter().enumerate() {
                    if v.to_bits() != 0 {
                        mask[i / 8] |= 1 << (i % 8);
                    }
                }
                payload.extend_from_slice(&mask);
                shuffle(&nonzero, &mut payload);
            }
        }
        entries.push(Entry {
            name: name.clone(),
            shape: t.shape.clone(),
            encoding,
            nonzero: nonzero.len(),
        });
    }
    let header = serde_json::to_vec(&Header {
        tensors: entries,
        payload_bytes: payload.len(),
    })
    .expect("a header of strings and numbers always serializes");
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(&payload).expect("writing to a Vec cannot fail");
    let compressed = z.finish().expect("writing to a Vec cannot fail");
    write_framed(MAGIC, VERSION, &header, &compressed, false)
}

/// Decodes a sparse weights file into dense tensors holding at most `max_values` values in
/// all (what the model it belongs to holds; nothing larger is allocated). Every inconsistency
/// (truncation, bad checksum, a mask that disagrees with its count, a shape that does not fit,
/// a header that declares more than its tensors need) is an error that says what is wrong.
pub fn decode_sparse(
    bytes: &[u8],
    max_values: usize,
) -> Result<BTreeMap<String, HostTensor>, String> {
    let corrupt = |what: String| format!("corrupt sparse weights file: {what}");
    let (header, body) = read_framed(bytes, MAGIC, VERSION, false).map_err(|e| match e {
        FrameError::Corrupt(what) => corrupt(what),
        FrameError::Version(v) => {
            format!("sparse weights version {v}; this optkit reads version {VERSION}")
        }
    })?;
    let header: Header = serde_json::from_slice(header)
        .map_err(|e| corrupt(format!("header is not valid ({e})")))?;
    // What the tensors can need at most (every value stored densely), checked before the
    // payload is inflated, so a small file cannot claim gigabytes.
    let sizes = tensor_sizes(
        header
            .tensors
            .iter()
            .map(|e| (e.name.as_str(), e.shape.as_slice())),
        max_values,
    )
    .map_err(corrupt)?;
    let most = sizes.iter().fold(0usize, |a, &n| {
        a.saturating_add(n.saturating_mul(4).saturating_add(n.div_ceil(8)))
    });
    if header.payload_bytes > most {
        return Err(corrupt(format!(
            "the header declares a payload of {} bytes, more than its tensors can need ({most})",
            header.payload_bytes
        )));
    }
    let mut payload = Vec::with_capacity(header.payload_bytes);
    flate2::read::ZlibDecoder::new(body)
        .take(header.payload_bytes as u64 + 1)
        .read_to_end(&mut payload)
        .map_err(|e| {
            corrupt(format!(
                "payload does not decompress ({e}); truncated or damaged"
            ))
        })?;
    if payload.len() != header.payload_bytes {
        return Err(corrupt(format!(
            "payload has {} bytes, the header says {}",
            payload.len(),
            header.payload_bytes
        )));
    }
    let mut cursor = Cursor::new(&payload);
    let mut take =
        |len: usize, name: &str| cursor.take(len, &format!("tensor {name}")).map_err(corrupt);
    let mut out = BTreeMap::new();
    for (e, &n) in header.tensors.iter().zip(&sizes) {
        let values = match e.encoding {
            Encoding::Dense => unshuffle(take(4 * n, &e.name)?),
            Encoding::Bitmask => {
                let mask = take(n.div_ceil(8), &e.name)?.to_vec();
                let ones: usize = mask.iter().map(|b| b.count_ones() as usize).sum();
                if ones != e.nonzero {
                    return Err(corrupt(format!(
                        "tensor {}: the mask has {ones} set bits, the header says {} non-zeros",
                        e.name, e.nonzero
                    )));
                }
                let nz = unshuffle(take(4 * e.nonzero, &e.name)?);
                let mut it = nz.into_iter();
                (0..n)
                    .map(|i| {
                        if mask[i / 8] >> (i % 8) & 1 == 1 {
                            it.next().unwrap_or(0.0)
                        } else {
                            0.0
                        }
                    })
                    .collect()
            }
        };
        if out
            .insert(
                e.name.clone(),
                HostTensor {
                    shape: e.shape.clone(),
                    values,
                },
            )
            .is_some()
        {
            return Err(corrupt(format!("tensor {} appears twice", e.name)));
        }
    }
    cursor.finish().map_err(corrupt)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BTreeMap<String, HostTensor> {
        let mut m = BTreeMap::new();
        // 90% zeros, a negative zero and a NaN: all must come back bit for bit.
        let mut v: Vec<f32> = (0..1000)
            .map(|i| if i % 10 == 3 { (i as f32).sin() } else { 0.0 })
            .collect();
        v[5] = -0.0;
        v[7] = f32::NAN;
        m.insert(
            "a.weight".to_string(),
            HostTensor {
                shape: vec![10, 100],
                values: v,
            },
        );
        m.insert(
            "a.bias".to_string(),
            HostTensor {
                shape: vec![3],
                values: vec![1.0, -2.5, 3.25],
            },
        );
        m
    }

    #[test]
    fn round_trips_bit_for_bit_and_shrinks() {
        let t = sample();
        let bytes = encode_sparse(&t);
        let back = decode_sparse(&bytes, 1 << 20).unwrap();
        for (name, a) in &t {
            let b = &back[name];
            assert_eq!(a.shape, b.shape);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a.values), bits(&b.values), "{name}");
        }
        assert!(bytes.len() < 4003 / 4, "{}", bytes.len());
    }

    #[test]
    fn corruption_is_an_error_not_a_panic() {
        let bytes = encode_sparse(&sample());
        for cut in [0, 10, 20, bytes.len() / 2, bytes.len() - 1] {
            let e = decode_sparse(&bytes[..cut], 1 << 20).unwrap_err();
            assert!(e.contains("corrupt sparse weights file"), "{cut}: {e}");
        }
        let mut flipped = bytes.clone();
        let last = flipped.len() - 6;
        flipped[last] ^= 0x55;
        assert!(decode_sparse(&flipped, 1 << 20).is_err());
        let mut version = bytes;
        version[8] = 9;
        assert!(
            decode_sparse(&version, 1 << 20)
                .unwrap_err()
                .contains("version 9")
        );
    }

    /// A header may not claim more than the model holds, nor a payload larger than its
    /// tensors need (`payload_bytes = 2^64 - 1` once overflowed the reader).
    #[test]
    fn headers_that_claim_too_much_are_refused_before_allocating() {
        let bytes = encode_sparse(&sample());
        let e = decode_sparse(&bytes, 1002).unwrap_err();
        assert!(e.contains("1003 values") && e.contains("1002"), "{e}");
        let (header, body) = read_framed(&bytes, MAGIC, VERSION, false).unwrap();
        let mut h: serde_json::Value = serde_json::from_slice(header).unwrap();
        let forge = |h: &serde_json::Value| {
            write_framed(MAGIC, VERSION, &serde_json::to_vec(h).unwrap(), body, false)
        };
        for claim in [u64::MAX, 1 << 40] {
            h["payload_bytes"] = claim.into();
            let e = decode_sparse(&forge(&h), 1 << 20).unwrap_err();
            assert!(e.contains("more than its tensors can need"), "{e}");
        }
        h["payload_bytes"] = 16.into();
        h["tensors"][0]["shape"] = serde_json::json!([usize::MAX, 2]);
        let forged = forge(&h);
        assert!(
            decode_sparse(&forged, 1 << 20)
                .unwrap_err()
                .contains("impossible shape")
        );
    }
}
