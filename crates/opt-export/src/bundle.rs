//! Deployment bundles: a folder holding a model as optkit saved it (`model.json` with the
//! spec, normalization and class names, and its weights or int8 file), the model exported to
//! the requested formats, and `manifest.json` (input shape and type, normalization, class
//! names, output, and every file's size and SHA-256). The folder is built beside the
//! destination and renamed into place, so a reader sees the old bundle or the new one, never
//! a mix; a destination that exists and is not a bundle is refused, not overwritten.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use opt_core::fsutil::{read_json, write_atomic, write_json_atomic};
use opt_core::model::Architecture;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{ExportError, Result};
use crate::format::{ExportFormat, export_bytes};
use crate::onnx_graph::{INPUT, OUTPUT};
use crate::source::SourceModel;

/// File name of the manifest in a bundle.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Version of the manifest this optkit writes and reads.
pub const MANIFEST_VERSION: u32 = 1;

/// The model's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Input name in the exported graphs.
    pub name: String,
    /// Element type the exported graphs take.
    pub dtype: String,
    /// Shape of one image, `[channels, height, width]`; the batch dimension comes first and
    /// may have any size.
    pub shape: [usize; 3],
    /// Layout of a batch.
    pub layout: String,
    /// How raw 8-bit pixels become the input values.
    pub normalization: NormalizationSpec,
}

/// The input normalization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NormalizationSpec {
    /// Mean of the training pixels scaled to [0, 1].
    pub mean: f32,
    /// Their standard deviation.
    pub std: f32,
    /// The formula.
    pub formula: String,
}

/// The model's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// Output name in the exported graphs.
    pub name: String,
    /// What it holds.
    pub meaning: String,
    /// Number of classes.
    pub classes: usize,
}

/// One file of a bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Path relative to the bundle.
    pub path: String,
    /// What the file is.
    pub role: String,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256 of its contents, lowercase hex.
    pub sha256: String,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`MANIFEST_VERSION`].
    pub format_version: u32,
    /// Tool and version that wrote it.
    pub producer: String,
    /// Model name (the pipeline candidate).
    pub name: String,
    /// `float32` or `int8`.
    pub kind: String,
    /// The architecture in words.
    pub architecture: String,
    /// The input.
    pub input: InputSpec,
    /// The output.
    pub output: OutputSpec,
    /// Class names in label order.
    pub class_names: Vec<String>,
    /// Every file but the manifest.
    pub files: Vec<FileEntry>,
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn role_of(path: &str, kind: &str) -> String {
    let format = ExportFormat::ALL
        .into_iter()
        .find(|f| f.file_name() == path);
    match format {
        Some(ExportFormat::Onnx) => format!("ONNX opset 17 ({kind})"),
        Some(ExportFormat::Safetensors) => {
            "safetensors, PyTorch state-dict names and layouts".into()
        }
        Some(ExportFormat::Burn) => "burn Burnpack record of the burn module".into(),
        None if path == opt_core::artifact::MODEL_FILE => {
            "spec: architecture, normalization and class names (optkit model.json)".into()
        }
        None => format!("optkit {kind} model file (read by opt-core / opt-quant)"),
    }
}

fn staging_path(dest: &Path, tag: &str) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bundle".into());
    dest.with_file_name(format!(".{name}.{tag}-{}", std::process::id()))
}

/// Writes the bundle of the model folder `src` (name `name`) with the exported `formats` into
/// `dest`, replacing a bundle already there. Every export is computed before anything is
/// written.
///
/// # Errors
/// [`ExportError::CannotHold`] for a format the model cannot be exported to;
/// [`ExportError::Destination`] when `dest` is a file, or a folder that is not a bundle;
/// file errors.
pub fn write_bundle<B: Backend>(
    src: &Path,
    dest: &Path,
    formats: &[ExportFormat],
    name: &str,
    device: &B::Device,
) -> Result<Manifest> {
    let dest_err = |problem: String| ExportError::Destination {
        path: dest.to_path_buf(),
        problem,
    };
    if dest.exists() {
        if !dest.is_dir() {
            return Err(dest_err(
                "is an existing file; choose a folder for the bundle".into(),
            ));
        }
        let empty = std::fs::read_dir(dest)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !empty && !dest.join(MANIFEST_FILE).is_file() {
            return Err(dest_err(format!(
                "exists and is not an optkit bundle (no {MANIFEST_FILE}); choose another folder \
                 or remove it, it is not overwritten"
            )));
        }
    }
    if let (Ok(a), Ok(b)) = (src.canonicalize(), dest.canonicalize())
        && a == b
    {
        return Err(dest_err(
            "is the model folder itself; choose another folder for the bundle".into(),
        ));
    }
    let source = SourceModel::<B>::load(src, device)?;
    let mut contents: Vec<(String, Vec<u8>)> = Vec::new();
    for rel in source.files() {
        let path = src.join(&rel);
        let bytes =
            std::fs::read(&path).map_err(|e| opt_core::CoreError::io("reading", &path, e))?;
        contents.push((rel.to_string_lossy().into_owned(), bytes));
    }
    for &format in formats {
        let bytes = export_bytes(&source, format, src, name)?;
        contents.push((format.file_name().into(), bytes));
    }
    let meta = source.meta();
    let kind = source.kind();
    let files = contents
        .iter()
        .map(|(path, bytes)| FileEntry {
            path: path.clone(),
            role: role_of(path, kind),
            bytes: bytes.len() as u64,
            sha256: sha256_hex(bytes),
        })
        .collect();
    let input = meta.spec.input;
    let manifest = Manifest {
        format_version: MANIFEST_VERSION,
        producer: format!("optkit {}", env!("CARGO_PKG_VERSION")),
        name: name.into(),
        kind: kind.into(),
        architecture: meta.spec.arch.describe(),
        input: InputSpec {
            name: INPUT.into(),
            dtype: "float32".into(),
            shape: [input.channels, input.height, input.width],
            layout: "NCHW, batch first (any size)".into(),
            normalization: NormalizationSpec {
                mean: meta.normalization.mean,
                std: meta.normalization.std,
                formula: "(pixel / 255 - mean) / std".into(),
            },
        },
        output: OutputSpec {
            name: OUTPUT.into(),
            meaning: "logits (softmax gives class probabilities), [batch, classes], float32".into(),
            classes: meta.spec.classes,
        },
        class_names: meta.class_names.clone(),
        files,
    };
    let staging = staging_path(dest, "tmp");
    let _ = std::fs::remove_dir_all(&staging);
    let written = (|| -> Result<()> {
        for (path, bytes) in &contents {
            write_atomic(&staging.join(path), bytes)?;
        }
        write_json_atomic(&staging.join(MANIFEST_FILE), &manifest)?;
        Ok(())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    let old = staging_path(dest, "old");
    let swap = (|| -> std::io::Result<()> {
        if dest.exists() {
            let _ = std::fs::remove_dir_all(&old);
            std::fs::rename(dest, &old)?;
        }
        std::fs::rename(&staging, dest)?;
        let _ = std::fs::remove_dir_all(&old);
        Ok(())
    })();
    swap.map_err(|e| {
        let _ = std::fs::remove_dir_all(&staging);
        dest_err(format!("moving the new bundle into place: {e}"))
    })?;
    tracing::info!(bundle = %dest.display(), kind, files = manifest.files.len(), "bundle written");
    Ok(manifest)
}

/// Reads a bundle's manifest and checks every file it lists (present, same size, same
/// SHA-256).
///
/// # Errors
/// [`ExportError::Bundle`] naming the first file that is missing or differs.
pub fn open_bundle(dir: &Path) -> Result<Manifest> {
    let bad = |problem: String| ExportError::Bundle {
        path: dir.to_path_buf(),
        problem,
    };
    if !dir.join(MANIFEST_FILE).is_file() {
        return Err(bad(format!(
            "no {MANIFEST_FILE}: not a bundle (write one with `optkit export` or a pipeline's \
             [deploy] section)"
        )));
    }
    let manifest: Manifest = read_json(&dir.join(MANIFEST_FILE))?;
    if manifest.format_version != MANIFEST_VERSION {
        return Err(bad(format!(
            "manifest format_version {} (this optkit reads {MANIFEST_VERSION})",
            manifest.format_version
        )));
    }
    for f in &manifest.files {
        let bytes = std::fs::read(dir.join(&f.path))
            .map_err(|e| bad(format!("{} listed in the manifest: {e}", f.path)))?;
        let sum = sha256_hex(&bytes);
        if bytes.len() as u64 != f.bytes || sum != f.sha256 {
            return Err(bad(format!(
                "{} does not match the manifest ({} bytes, sha256 {sum}; manifest: {} bytes, \
                 sha256 {}): the file was changed or damaged, export the bundle again",
                f.path,
                bytes.len(),
                f.bytes,
                f.sha256
            )));
        }
    }
    Ok(manifest)
}
