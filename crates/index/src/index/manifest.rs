//! `MANIFEST.json`: the list of committed segments and tombstones, the only source of truth of
//! an index. Read with every check a file from disk needs; written by an atomic swap.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::segment::{FloatKind, Layout};
use crate::{Error, Result};

/// Manifest format version written by this build.
pub const MANIFEST_VERSION: u32 = 1;
/// The manifest's file name inside an index folder.
pub(crate) const MANIFEST: &str = "MANIFEST.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Manifest {
    pub(crate) format_version: u32,
    pub(crate) bits: usize,
    #[serde(default)]
    pub(crate) floats: Option<FloatSpec>,
    /// Written only when false, so manifests of indexes with keys stay as they were.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub(crate) keys: bool,
    pub(crate) generation: u64,
    pub(crate) next_id: u64,
    pub(crate) segments: Vec<SegmentEntry>,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FloatSpec {
    pub(crate) dim: usize,
    pub(crate) kind: FloatKind,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SegmentEntry {
    pub(crate) file: String,
    pub(crate) rows: usize,
    #[serde(default)]
    pub(crate) tombstones: Option<String>,
}

impl Manifest {
    /// Reads and checks `dir/MANIFEST.json`: version, code width and that every file it names
    /// stays inside the folder.
    ///
    /// # Errors
    /// [`Error::NotAnIndex`] when there is no manifest; corruption, version or I/O errors.
    pub(crate) fn read(dir: &Path) -> Result<Manifest> {
        let path = dir.join(MANIFEST);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotAnIndex { path: dir.into() })
            }
            Err(e) => return Err(Error::io(&path, e)),
        };
        let manifest: Manifest =
            serde_json::from_str(&text).map_err(|e| Error::corrupt(&path, e.to_string()))?;
        if manifest.format_version != MANIFEST_VERSION {
            return Err(Error::UnsupportedVersion {
                path,
                found: manifest.format_version,
                oldest: MANIFEST_VERSION,
                newest: MANIFEST_VERSION,
            });
        }
        if manifest.bits == 0 || !manifest.bits.is_multiple_of(64) {
            return Err(Error::corrupt(&path, "bits must be a multiple of 64"));
        }
        for entry in &manifest.segments {
            if !plain_file_name(&entry.file)
                || entry
                    .tombstones
                    .as_deref()
                    .is_some_and(|t| !plain_file_name(t))
            {
                return Err(Error::corrupt(
                    &path,
                    format!("file name {:?} escapes the index", entry.file),
                ));
            }
        }
        Ok(manifest)
    }

    /// The column layout the manifest describes.
    pub(crate) fn layout(&self) -> Layout {
        Layout {
            bits: self.bits,
            floats: self.floats.map(|f| (f.dim, f.kind)),
            keys: self.keys,
        }
    }

    /// Makes every new file in `dir` durable, then swaps this manifest in atomically.
    pub(crate) fn commit(&self, dir: &Path) -> Result<()> {
        unisight_core::atomic::sync_dir(dir).map_err(|e| Error::io(dir, e))?;
        let json = serde_json::to_vec_pretty(self).expect("manifest serialises");
        let path = dir.join(MANIFEST);
        unisight_core::atomic::atomic_write_bytes(&path, &json).map_err(|e| match e {
            unisight_core::Error::Io { path, source } => Error::Io { path, source },
            other => Error::io(&path, std::io::Error::other(other.to_string())),
        })
    }

    /// Every file this manifest lists (segments and tombstones).
    pub(crate) fn files(&self) -> impl Iterator<Item = &str> {
        self.segments
            .iter()
            .flat_map(|s| std::iter::once(s.file.as_str()).chain(s.tombstones.as_deref()))
    }
}

/// A name that stays inside the index folder: no separator, not `.` or `..`.
fn plain_file_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['/', '\\']) && name != "." && name != ".."
}
