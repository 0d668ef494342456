//! Reader for the IDX format of MNIST and Fashion-MNIST (raw or gzip-compressed).
//!
//! An IDX file starts with a 4-byte magic number: two zero bytes, a type byte (`0x08` for
//! unsigned bytes, the only type the image datasets use) and the number of dimensions; then one
//! big-endian `u32` per dimension, then the values. Image files have magic 2051 (rank 3),
//! label files 2049 (rank 1).

use std::io::{BufRead, Read};
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

/// The most data bytes an IDX file may declare (8 GiB; Fashion-MNIST's training images are
/// 47 MB).
pub const MAX_IDX_BYTES: u64 = 1 << 33;

/// Reads an IDX file from disk, gunzipping it when it starts with the gzip magic bytes. The
/// file is streamed: the header is read first and no more data than it declares is ever read
/// or inflated, so a damaged file or a decompression bomb is an error, not a memory hog.
pub fn read_idx_file(path: &Path, expected_magic: u32) -> Result<IdxArray> {
    let origin = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| CoreError::io("reading", path, e))?;
    let meta = file
        .metadata()
        .map_err(|e| CoreError::io("reading", path, e))?;
    if !meta.is_file() {
        return Err(CoreError::Idx {
            path: origin,
            problem: "not a regular file; point at the IDX file itself".into(),
        });
    }
    let mut reader = std::io::BufReader::new(file);
    let gzip = reader
        .fill_buf()
        .map_err(|e| CoreError::io("reading", path, e))?
        .starts_with(&GZIP_MAGIC);
    if gzip {
        read_idx(
            flate2::read::GzDecoder::new(reader),
            expected_magic,
            &origin,
            true,
        )
    } else {
        read_idx(reader, expected_magic, &origin, false)
    }
}

/// Decodes IDX bytes (raw or gzip) and checks the magic number, rank and length.
///
/// `origin` names the file in error messages.
pub fn parse_idx(bytes: &[u8], expected_magic: u32, origin: &str) -> Result<IdxArray> {
    if bytes.starts_with(&GZIP_MAGIC) {
        read_idx(
            flate2::read::GzDecoder::new(bytes),
            expected_magic,
            origin,
            true,
        )
    } else {
        read_idx(bytes, expected_magic, origin, false)
    }
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Reads into `buf` until it is full or the stream ends; the number of bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn read_idx(mut r: impl Read, expected_magic: u32, origin: &str, gzip: bool) -> Result<IdxArray> {
    let err = |problem: String| CoreError::Idx {
        path: origin.to_string(),
        problem,
    };
    let io = |e: std::io::Error| {
        if gzip {
            err(format!(
                "corrupt or truncated gzip stream ({e}); re-download the file"
            ))
        } else {
            err(format!("cannot read the file ({e})"))
        }
    };
    let mut head = [0u8; 4];
    let got = read_full(&mut r, &mut head).map_err(io)?;
    if got < 4 {
        return Err(err(format!(
            "file is {got} bytes long, too short for an IDX header; the file is truncated"
        )));
    }
    let magic = u32::from_be_bytes(head);
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
    let rank = head[3] as usize;
    let mut dims_bytes = vec![0u8; 4 * rank];
    let got = read_full(&mut r, &mut dims_bytes).map_err(io)?;
    if got < dims_bytes.len() {
        return Err(err(format!(
            "header declares {rank} dimensions but the file ends after {} bytes; the file is truncated",
            4 + got
        )));
    }
    let dims: Vec<usize> = dims_bytes
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    let expected = dims
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d as u64))
        .filter(|&n| n <= MAX_IDX_BYTES)
        .ok_or_else(|| {
            err(format!(
                "dimensions {dims:?} declare more than {MAX_IDX_BYTES} bytes of data; the \
                 header is damaged or this is not an image dataset optkit reads"
            ))
        })?;
    // Reserve what the header declares only up to a modest size: a lying header grows the
    // buffer only as far as real data arrives.
    let mut data = Vec::with_capacity(expected.min(64 << 20) as usize);
    r.take(expected + 1).read_to_end(&mut data).map_err(io)?;
    let available = data.len() as u64;
    if available < expected {
        return Err(err(format!(
            "dimensions {dims:?} need {expected} bytes of data but only {available} are present; \
             the file is truncated"
        )));
    }
    if available > expected {
        let what = if gzip {
            "the file inflates to more than its header declares"
        } else {
            "trailing garbage after the data"
        };
        return Err(err(format!(
            "dimensions {dims:?} need {expected} bytes of data but more are present; {what}"
        )));
    }
    Ok(IdxArray { dims, data })
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

    /// Dimensions whose product overflows, or declares more than any dataset, are refused
    /// before anything is allocated.
    #[test]
    fn rejects_impossible_dimensions() {
        let mut raw = encode_idx(IMAGES_MAGIC, &[1, 1, 1], &[0]);
        for (i, d) in [u32::MAX, u32::MAX, u32::MAX].iter().enumerate() {
            raw[4 + 4 * i..8 + 4 * i].copy_from_slice(&d.to_be_bytes());
        }
        for bytes in [raw.clone(), gzip(&raw)] {
            let e = parse_idx(&bytes, IMAGES_MAGIC, "big")
                .unwrap_err()
                .to_string();
            assert!(e.contains("declare more than"), "{e}");
        }
    }

    /// A gzip stream that inflates past what its header declares stops at the declared size
    /// plus one byte (a 6.8 MB file once took 3.1 GB of memory).
    #[test]
    fn a_gzip_bomb_stops_at_the_declared_size() {
        let mut raw = encode_idx(LABELS_MAGIC, &[4], &[1, 2, 3, 4]);
        raw.extend(std::iter::repeat_n(0u8, 50 << 20));
        let bomb = gzip(&raw);
        assert!(bomb.len() < 1 << 20);
        let e = parse_idx(&bomb, LABELS_MAGIC, "bomb")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("inflates to more than its header declares"),
            "{e}"
        );
    }

    #[test]
    fn rejects_trailing_bytes() {
        let mut raw = encode_idx(LABELS_MAGIC, &[2], &[1, 2]);
        raw.push(9);
        let e = parse_idx(&raw, LABELS_MAGIC, "l").unwrap_err().to_string();
        assert!(e.contains("trailing"), "{e}");
    }
}
