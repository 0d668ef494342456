//! Deployment bundles: a folder holding a model as optkit saved it (`model.json` with the
//! spec, normalization and class names, and its weights or int8 file), the model exported to
//! the requested formats, and `manifest.json` (see [`crate::manifest`]). The folder is built
//! beside the destination and renamed into place, so a reader sees the old bundle or the new
//! one, never a mix; when the swap fails half-way the old bundle is put back. A destination
//! that exists is replaced only when it is empty or an optkit bundle (its manifest parses,
//! has a known version and lists every file the folder holds); anything else is refused and
//! left untouched.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use opt_core::artifact::read_weights;
use opt_core::fsutil::{
    MAX_JSON_BYTES, parent_dir, read_capped, read_json, sync_dir, write_atomic, write_json_atomic,
};
use opt_core::model::Architecture;

use crate::error::{ExportError, Result};
use crate::format::{ExportFormat, export_bytes};
pub use crate::manifest::{
    FileEntry, InputSpec, MANIFEST_FILE, MANIFEST_VERSION, Manifest, NormalizationSpec, OutputSpec,
    is_plain_file_name, open_bundle, sha256_hex,
};
use crate::onnx_graph::{INPUT, OUTPUT};
use crate::source::SourceModel;

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

/// A new folder beside `dest` named `.<name>.<tag>-<pid>-<k>`, created here (so it holds
/// nothing but what optkit puts in it).
fn fresh_sibling(dest: &Path, name: &str, tag: &str) -> std::io::Result<PathBuf> {
    let mut k = 0u32;
    loop {
        let p = dest.with_file_name(format!(".{name}.{tag}-{}-{k}", std::process::id()));
        match std::fs::create_dir(&p) {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && k < 1000 => k += 1,
            Err(e) => return Err(e),
        }
    }
}

/// Why the existing folder `dest` may not be replaced, if it may not: it must be empty or an
/// optkit bundle whose manifest parses, has a known version and lists every entry present.
/// Returns the files to remove once the new bundle is in place.
fn replaceable(dest: &Path) -> std::result::Result<Vec<String>, String> {
    let mut present = Vec::new();
    for entry in std::fs::read_dir(dest).map_err(|e| format!("cannot list it ({e})"))? {
        let entry = entry.map_err(|e| format!("cannot list it ({e})"))?;
        present.push(entry.file_name().to_string_lossy().into_owned());
    }
    if present.is_empty() {
        return Ok(present);
    }
    if !present.iter().any(|p| p == MANIFEST_FILE) {
        return Err(format!("no {MANIFEST_FILE}"));
    }
    let manifest: Manifest = read_json(&dest.join(MANIFEST_FILE))
        .map_err(|e| format!("its {MANIFEST_FILE} is not an optkit manifest: {e}"))?;
    manifest.check()?;
    let listed: Vec<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
    if let Some(extra) = present
        .iter()
        .find(|p| p.as_str() != MANIFEST_FILE && !listed.contains(&p.as_str()))
    {
        return Err(format!(
            "it holds {extra}, which its {MANIFEST_FILE} does not list"
        ));
    }
    Ok(present)
}

/// Puts the staged folder `staging` at `dest`. An existing `dest` (checked replaceable, its
/// entries `old_files`) is first moved aside, then removed file by file once the new bundle is
/// in place; if moving the new one in fails, the old one is moved back. `rename` is
/// `std::fs::rename` (tests pass one that fails).
fn swap_into_place(
    staging: &Path,
    dest: &Path,
    old_files: Option<&[String]>,
    name: &str,
    rename: &dyn Fn(&Path, &Path) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let Some(old_files) = old_files else {
        return rename(staging, dest);
    };
    // A fresh, empty name for the old bundle: created, then removed so it can be renamed to.
    let aside = fresh_sibling(dest, name, "old")?;
    std::fs::remove_dir(&aside)?;
    rename(dest, &aside)?;
    if let Err(e) = rename(staging, dest) {
        rename(&aside, dest).map_err(|back| {
            std::io::Error::other(format!(
                "{e}; and putting the old bundle back failed too ({back}): it is in {}",
                aside.display()
            ))
        })?;
        return Err(e);
    }
    for f in old_files {
        let _ = std::fs::remove_file(aside.join(f));
    }
    let _ = std::fs::remove_dir(&aside);
    Ok(())
}

/// Writes the bundle of the model folder `src` (name `name`) with the exported `formats` into
/// `dest`, replacing a bundle already there. Every export is computed before anything is
/// written.
///
/// # Errors
/// [`ExportError::CannotHold`] for a format the model cannot be exported to;
/// [`ExportError::Destination`] when `dest` is a file, or a folder that is neither empty nor
/// an optkit bundle; file errors.
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
    let Some(dest_name) = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|_| !dest.ends_with(".."))
    else {
        return Err(dest_err(
            "names no folder; give the path of a new folder for the bundle, such as deploy/model"
                .into(),
        ));
    };
    let old_files = if dest.exists() {
        if !dest.is_dir() {
            return Err(dest_err(
                "is an existing file; choose a folder for the bundle".into(),
            ));
        }
        let files = replaceable(dest).map_err(|why| {
            dest_err(format!(
                "exists and is not an optkit bundle ({why}); choose another folder or empty \
                 it, it is not overwritten"
            ))
        })?;
        Some(files)
    } else {
        None
    };
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
        let bytes = if rel.as_os_str() == opt_core::artifact::MODEL_FILE {
            read_capped(&path, MAX_JSON_BYTES, "a model.json")?
        } else {
            read_weights(src, source.meta())?
        };
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
    let parent = parent_dir(dest);
    std::fs::create_dir_all(parent)
        .map_err(|e| opt_core::CoreError::io("creating directory", parent, e))?;
    let staging = fresh_sibling(dest, &dest_name, "tmp")
        .map_err(|e| dest_err(format!("cannot create a folder beside it ({e})")))?;
    // Only what this call created is ever removed: the staging folder and its files.
    let remove_staging = || {
        for (path, _) in &contents {
            let _ = std::fs::remove_file(staging.join(path));
        }
        let _ = std::fs::remove_file(staging.join(MANIFEST_FILE));
        let _ = std::fs::remove_dir(&staging);
    };
    let written = (|| -> Result<()> {
        for (path, bytes) in &contents {
            write_atomic(&staging.join(path), bytes)?;
        }
        write_json_atomic(&staging.join(MANIFEST_FILE), &manifest)?;
        Ok(())
    })();
    if let Err(e) = written {
        remove_staging();
        return Err(e);
    }
    let swapped = swap_into_place(&staging, dest, old_files.as_deref(), &dest_name, &|a, b| {
        std::fs::rename(a, b)
    });
    if let Err(e) = swapped {
        remove_staging();
        return Err(dest_err(format!("moving the new bundle into place: {e}")));
    }
    sync_dir(parent)?;
    tracing::info!(bundle = %dest.display(), kind, files = manifest.files.len(), "bundle written");
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("optkit-bundle-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// When the new bundle cannot be moved in, the old one is back in place, whole.
    #[test]
    fn a_failed_swap_restores_the_old_bundle() {
        let root = tmp("swap");
        let dest = root.join("bundle");
        std::fs::create_dir(&dest).unwrap();
        std::fs::write(dest.join("model.json"), b"old").unwrap();
        let staging = root.join("new");
        std::fs::create_dir(&staging).unwrap();
        std::fs::write(staging.join("model.json"), b"new").unwrap();
        let calls = std::cell::Cell::new(0);
        let failing_second = |a: &Path, b: &Path| {
            calls.set(calls.get() + 1);
            if calls.get() == 2 {
                Err(std::io::Error::other("disk full"))
            } else {
                std::fs::rename(a, b)
            }
        };
        let old = vec!["model.json".to_string()];
        let e = swap_into_place(&staging, &dest, Some(&old), "bundle", &failing_second)
            .unwrap_err()
            .to_string();
        assert!(e.contains("disk full"), "{e}");
        assert_eq!(std::fs::read(dest.join("model.json")).unwrap(), b"old");
        let names: Vec<_> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!names.iter().any(|n| n.contains(".old-")), "{names:?}");
        // The same swap with working renames replaces it and removes the old files.
        swap_into_place(&staging, &dest, Some(&old), "bundle", &|a, b| {
            std::fs::rename(a, b)
        })
        .unwrap();
        assert_eq!(std::fs::read(dest.join("model.json")).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 1);
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn only_empty_folders_and_complete_bundles_are_replaceable() {
        let root = tmp("replaceable");
        assert_eq!(replaceable(&root).unwrap(), Vec::<String>::new());
        // A web app's public/ folder with a manifest.json of its own.
        std::fs::write(
            root.join(MANIFEST_FILE),
            br#"{"name": "My App", "icons": []}"#,
        )
        .unwrap();
        std::fs::write(root.join("index.html"), b"<html>").unwrap();
        let e = replaceable(&root).unwrap_err();
        assert!(e.contains("not an optkit manifest"), "{e}");
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn plain_file_names_only() {
        for ok in ["model.json", "weights.safetensors", "a b.onnx"] {
            assert!(is_plain_file_name(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "/etc/hostname",
            "a/b",
            "a\\b",
            ".hidden",
            "x\0y",
        ] {
            assert!(!is_plain_file_name(bad), "{bad}");
        }
    }
}
