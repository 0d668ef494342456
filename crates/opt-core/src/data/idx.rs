//! Reader for the IDX format of MNIST and Fashion-MNIST (raw or gzip-compressed).
//!
//! An IDX file starts with a 4-byte magic number: two zero bytes, a type byte (`0x08` for
//! unsigned bytes, the only type the image datasets use) and the number of dimensions; then one
//! big-endian `u32` per dimension, then the values. Image files have magic 2051 (rank 3),
//! label files 2049 (rank 1).

use std::io::Read;
use std::path::Path;

use crate::error::{CoreError, Result};

/// Magic number of an IDX file of unsigned-byte images (rank 3).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned-byte labels (rank 1).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// The decoded contents of an IDX file of unsigned bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// Dimensions, outermost first.
    pub dims: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<u8>,
}

/// Reads an IDX file from disk, gunzipping it when it starts with the gzip magic bytes.
pub fn read_idx_file(path: &Path, expected_magic: u32) -> Result<IdxArray> {
    let bytes = std::fs::read(path).map_err(|e| CoreError::io("reading", path, e))?;
    parse_idx(&bytes, expected_magic, &path.display().to_string())
}

/// Decodes IDX bytes (raw or gzip) and checks the magic number, rank and length.
///
/// `origin` names the file in error messages.
pub fn parse_idx(bytes: &[u8], expected_magic: u32, origin: &str) -> Result<IdxArray> {
    let err = |problem: String| CoreError::Idx {
        path: origin.to_string(),
        problem,
    };
    let raw;
    let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .map_err(|e| {
                err(format!(
                    "corrupt or truncated gzip stream ({e}); re-download the file"
                ))
            })?;
        raw = out;
        &raw[..]
    } else {
        bytes
    };
    if bytes.len() < 4 {
        return Err(err(format!(
            "file is {} bytes long, too short for an IDX header; the file is truncated",
            bytes.len()
        )));
    }
    let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if magic != expected_magic {
        let what = if expected_magic == IMAGES_MAGIC {
            "images"
        } else {
            "labels"
        };
        return Err(err(format!(
            "wrong magic number {magic} (0x{magic:08x}), expected {expected_magic} for an IDX {what} file; \
             is this the right file?"
        )));
    }
    let rank = bytes[3] as usize;
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        return Err(err(format!(
            "header declares {rank} dimensions but the file ends after {} bytes; the file is truncated",
            bytes.len()
        )));
    }
    let dims: Vec<usize> = (0..rank)
        .map(|i| {
            let o = 4 + 4 * i;
            u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]) as usize
        })
        .collect();
    let expected: usize = dims.iter().product();
    let available = bytes.len() - header;
    if available < expected {
        return Err(err(format!(
            "dimensions {dims:?} need {expected} bytes of data but only {available} are present; \
             the file is truncated"
        )));
    }
    if available > expected {
        return Err(err(format!(
            "dimensions {dims:?} need {expected} bytes of data but {available} are present; \
             trailing garbage after the data"
        )));
    }
    Ok(IdxArray {
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// Encodes an array as raw (uncompressed) IDX bytes. Used by tests and data tools.
pub fn encode_idx(magic: u32, dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 4 * dims.len() + data.len());
    let magic = (magic & 0xffff_ff00) | dims.len() as u32;
    out.extend_from_slice(&magic.to_be_bytes());
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn round_trips_raw_and_gzip() {
        let data: Vec<u8> = (0..2 * 3 * 4).map(|i| i as u8).collect();
        let raw = encode_idx(IMAGES_MAGIC, &[2, 3, 4], &data);
        let a = parse_idx(&raw, IMAGES_MAGIC, "x").unwrap();
        assert_eq!(a.dims, vec![2, 3, 4]);
        assert_eq!(a.data, data);
        let b = parse_idx(&gzip(&raw), IMAGES_MAGIC, "x").unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn rejects_wrong_magic() {
        let raw = encode_idx(LABELS_MAGIC, &[3], &[1, 2, 3]);
        let e = parse_idx(&raw, IMAGES_MAGIC, "f.idx")
            .unwrap_err()
            .to_string();
        assert!(e.contains("wrong magic number 2049"), "{e}");
        assert!(e.contains("expected 2051"), "{e}");
    }

    #[test]
    fn rejects_truncated_data_header_and_gzip() {
        let raw = encode_idx(LABELS_MAGIC, &[5], &[1, 2, 3, 4, 5]);
        let e = parse_idx(&raw[..raw.len() - 1], LABELS_MAGIC, "l")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("truncated") && e.contains("only 4 are present"),
            "{e}"
        );
        let e = parse_idx(&raw[..6], LABELS_MAGIC, "l")
            .unwrap_err()
            .to_string();
        assert!(e.contains("truncated"), "{e}");
        let gz = gzip(&raw);
        let e = parse_idx(&gz[..gz.len() / 2], LABELS_MAGIC, "l")
            .unwrap_err()
            .to_string();
        assert!(e.contains("gzip"), "{e}");
    }

    #[test]
    fn rejects_trailing_bytes() {
        let mut raw = encode_idx(LABELS_MAGIC, &[2], &[1, 2]);
        raw.push(9);
        let e = parse_idx(&raw, LABELS_MAGIC, "l").unwrap_err().to_string();
        assert!(e.contains("trailing"), "{e}");
    }
}
