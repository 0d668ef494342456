//! Atomic file writes: a temporary file in the same directory, flushed, renamed, and the
//! directory flushed, so a reader (or a restarted run, or the machine after a power cut) never
//! sees a half-written file. Bounded reads: a file read from a folder a user gave is refused
//! when it is not a regular file or is larger than what its header allows.

use std::io::{Read, Write};
use std::path::Path;

use crate::error::{CoreError, Result};

/// Writes `bytes` to `path` atomically (temporary file + rename), creating parent directories.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent_dir(path);
    std::fs::create_dir_all(dir).map_err(|e| CoreError::io("creating directory", dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(CoreError::io("writing", path, e));
    }
    sync_dir(dir)
}

/// The folder that holds `path` (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Flushes a directory's entries (a rename or a new file in it) to disk.
pub fn sync_dir(dir: &Path) -> Result<()> {
    // Opening a directory for reading and fsyncing it is how POSIX makes renames durable;
    // other systems have no such handle, and their renames are as durable as they get.
    #[cfg(unix)]
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| CoreError::io("flushing directory", dir, e))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Reads the regular file `path`, refusing anything else (a device such as `/dev/zero`, a
/// pipe, a folder) and any file larger than `max` bytes, which is what `what` allows (for
/// example "the model's 431,080 parameters"): the read never allocates more than that.
pub fn read_capped(path: &Path, max: u64, what: &str) -> Result<Vec<u8>> {
    let mut f = std::fs::File::open(path).map_err(|e| CoreError::io("reading", path, e))?;
    let meta = f
        .metadata()
        .map_err(|e| CoreError::io("reading", path, e))?;
    let too_large = |size: String| CoreError::TooLarge {
        path: path.to_path_buf(),
        size,
        max,
        what: what.to_string(),
    };
    if !meta.is_file() {
        return Err(CoreError::io(
            "reading",
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a regular file; give the path of a file optkit wrote",
            ),
        ));
    }
    if meta.len() > max {
        return Err(too_large(format!("{} bytes", meta.len())));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    (&mut f)
        .take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| CoreError::io("reading", path, e))?;
    if bytes.len() as u64 > max {
        return Err(too_large("more bytes than that".into()));
    }
    Ok(bytes)
}

/// The largest JSON file optkit reads from a folder a user gave (`model.json`, manifests,
/// markers, reports): far above what it writes, far below what could exhaust memory.
pub const MAX_JSON_BYTES: u64 = 64 << 20;

/// Serializes `value` as pretty JSON and writes it atomically.
pub fn write_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| CoreError::Json {
        path: path.to_path_buf(),
        source: e,
    })?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// Reads and parses a JSON file (a regular file of at most [`MAX_JSON_BYTES`]).
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = read_capped(path, MAX_JSON_BYTES, "a JSON file optkit writes")?;
    serde_json::from_slice(&bytes).map_err(|e| CoreError::Json {
        path: path.to_path_buf(),
        source: e,
    })
}

/// Size of `bytes` after gzip compression at the default level.
pub fn gzip_len(bytes: &[u8]) -> u64 {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).expect("writing to a Vec cannot fail");
    e.finish().expect("writing to a Vec cannot fail").len() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_atomically_and_leaves_no_temp_file() {
        let dir = std::env::temp_dir().join(format!("optkit-atomic-{}", std::process::id()));
        let path = dir.join("sub/x.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn capped_reads_refuse_devices_folders_and_large_files() {
        let dir = std::env::temp_dir().join(format!("optkit-capped-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("w");
        std::fs::write(&f, [7u8; 100]).unwrap();
        assert_eq!(read_capped(&f, 100, "x").unwrap().len(), 100);
        let e = read_capped(&f, 99, "the header's 99 bytes")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("100 bytes") && e.contains("99") && e.contains("the header's 99 bytes"),
            "{e}"
        );
        let e = read_capped(&dir, 1 << 20, "x").unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        #[cfg(unix)]
        {
            let e = read_capped(Path::new("/dev/zero"), 1 << 20, "x")
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("/dev/zero") && e.contains("not a regular file"),
                "{e}"
            );
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn gzip_shrinks_redundant_bytes() {
        assert!(gzip_len(&[0u8; 10_000]) < 200);
    }
}
