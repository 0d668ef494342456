//! The framing optkit's binary files share (`weights.sparse`, `weights.wq`, opt-quant's
//! `model.int8`): an 8-byte magic, a little-endian `u32` version, a `u32` header length, the
//! JSON header, the body, and optionally a CRC-32 of everything before it. Reading checks each
//! part in that order and says which one is wrong; [`Cursor`] takes the body apart with bounds
//! checks, so a damaged file is an error, never a panic.

/// Why a framed file could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The bytes are not a well-formed file of this kind (the text says what is wrong).
    Corrupt(String),
    /// The file is well formed but of another version of the layout.
    Version(u32),
}

/// Frames `header` (JSON) and `body` after `magic` and `version`, with a trailing CRC-32 when
/// `checksum` is set.
pub fn write_framed(
    magic: &[u8; 8],
    version: u32,
    header: &[u8],
    body: &[u8],
    checksum: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(20 + header.len() + body.len());
    out.extend_from_slice(magic);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(header);
    out.extend_from_slice(body);
    if checksum {
        let mut crc = flate2::Crc::new();
        crc.update(&out);
        out.extend_from_slice(&crc.sum().to_le_bytes());
    }
    out
}

/// Splits a framed file into its JSON header and its body, checking the magic, the length,
/// the version, the checksum (when `checksum` is set) and the header length, in that order.
pub fn read_framed<'a>(
    bytes: &'a [u8],
    magic: &[u8; 8],
    version: u32,
    checksum: bool,
) -> Result<(&'a [u8], &'a [u8]), FrameError> {
    let corrupt = |s: String| Err(FrameError::Corrupt(s));
    if !bytes.starts_with(magic) {
        return corrupt(format!(
            "it does not start with {}",
            String::from_utf8_lossy(magic)
        ));
    }
    let min = if checksum { 20 } else { 16 };
    if bytes.len() < min {
        return corrupt(format!("{} bytes, shorter than the header", bytes.len()));
    }
    let word = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let found = word(8);
    if found != version {
        return Err(FrameError::Version(found));
    }
    let body = if checksum {
        let (body, tail) = bytes.split_at(bytes.len() - 4);
        let mut crc = flate2::Crc::new();
        crc.update(body);
        if crc.sum().to_le_bytes() != tail {
            return corrupt("the checksum does not match (truncated or damaged file)".into());
        }
        body
    } else {
        bytes
    };
    let header_len = word(12) as usize;
    let rest = &body[16..];
    if header_len > rest.len() {
        return corrupt(format!(
            "header of {header_len} bytes but only {} bytes follow (truncated file?)",
            rest.len()
        ));
    }
    Ok(rest.split_at(header_len))
}

/// Reads a body front to back; every read past its end is an error naming what was read.
#[derive(Debug)]
pub struct Cursor<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, at: 0 }
    }

    /// The next `len` bytes, which hold `what`.
    pub fn take(&mut self, len: usize, what: &str) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(len)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| format!("{what} runs past the end of the payload"))?;
        let s = &self.data[self.at..end];
        self.at = end;
        Ok(s)
    }

    /// The next `n` little-endian float32 values, which hold `what`.
    pub fn f32s(&mut self, n: usize, what: &str) -> Result<Vec<f32>, String> {
        let len = n
            .checked_mul(4)
            .ok_or_else(|| format!("{what}: {n} values cannot be stored"))?;
        Ok(self
            .take(len, what)?
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    /// Checks that every byte was read.
    pub fn finish(self) -> Result<(), String> {
        match self.data.len() - self.at {
            0 => Ok(()),
            left => Err(format!(
                "{left} payload bytes are not described by the header"
            )),
        }
    }
}

/// The number of values of each tensor a header lists (`(name, shape)`), checked before
/// anything is allocated: every shape's product must fit and all of them together may hold at
/// most `max_values` values (what the model the file belongs to holds).
pub fn tensor_sizes<'a>(
    tensors: impl IntoIterator<Item = (&'a str, &'a [usize])>,
    max_values: usize,
) -> Result<Vec<usize>, String> {
    let mut sizes = Vec::new();
    let mut total = 0usize;
    for (name, shape) in tensors {
        let n = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| format!("tensor {name} has an impossible shape {shape:?}"))?;
        total = total.saturating_add(n);
        sizes.push(n);
    }
    if total > max_values {
        return Err(format!(
            "its tensors hold {total} values, more than the {max_values} of the model it \
             belongs to"
        ));
    }
    Ok(sizes)
}

/// The little-endian bytes of float32 values.
pub fn f32_bytes(values: &[f32]) -> impl Iterator<Item = u8> + '_ {
    values.iter().flat_map(|v| v.to_le_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC: &[u8; 8] = b"OPTKTEST";

    #[test]
    fn round_trips_and_names_each_damage() {
        for checksum in [false, true] {
            let bytes = write_framed(MAGIC, 3, b"{\"a\":1}", &[1, 2, 3], checksum);
            let (h, b) = read_framed(&bytes, MAGIC, 3, checksum).unwrap();
            assert_eq!((h, b), (&b"{\"a\":1}"[..], &[1u8, 2, 3][..]));
            assert_eq!(
                read_framed(&bytes, MAGIC, 4, checksum),
                Err(FrameError::Version(3))
            );
            assert!(matches!(
                read_framed(&bytes, b"OPTKELSE", 3, checksum),
                Err(FrameError::Corrupt(s)) if s.contains("OPTKELSE")
            ));
            for cut in [0, 5, 15] {
                assert!(matches!(
                    read_framed(&bytes[..cut], MAGIC, 3, checksum),
                    Err(FrameError::Corrupt(_))
                ));
            }
        }
        let mut bytes = write_framed(MAGIC, 1, b"{}", &[9; 10], true);
        bytes[20] ^= 1;
        assert!(matches!(
            read_framed(&bytes, MAGIC, 1, true),
            Err(FrameError::Corrupt(s)) if s.contains("checksum")
        ));
    }

    #[test]
    fn cursor_reads_within_bounds() {
        let data: Vec<u8> = f32_bytes(&[1.5, -2.0]).chain([7u8]).collect();
        let mut c = Cursor::new(&data);
        assert_eq!(c.f32s(2, "scales").unwrap(), [1.5, -2.0]);
        assert!(c.take(2, "codes").unwrap_err().contains("codes"));
        let mut c = Cursor::new(&data);
        c.take(8, "x").unwrap();
        assert!(c.finish().unwrap_err().contains("1 payload bytes"));
    }
}
