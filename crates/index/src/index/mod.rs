//! An index directory: a manifest naming write-once segments and their tombstones.
//!
//! Every mutation writes new files (`create_new`, fsync), fsyncs the directory, then commits by
//! atomically replacing `MANIFEST.json` (temp file, fsync, rename, fsync the directory). The
//! manifest is the only source of truth: a process killed at any point reopens to the last
//! committed manifest, and files it does not list are garbage from an interrupted mutation,
//! removed when a writer next opens the index.
//!
//! The handle's work is split by what it does: [`manifest`] (the committed state), [`lock`]
//! (one writer), [`lookup`] (items by id and key), [`search`] (Hamming search, re-ranking, the
//! inverted file), [`write`] (add and remove) and [`gc`] (compaction, garbage files).

mod gc;
mod lock;
mod lookup;
mod manifest;
mod search;
mod write;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Serialize;

use crate::segment::{FloatKind, Layout, Segment};
use crate::{tombstones, Error, Result};
use lock::take_lock;
use manifest::{FloatSpec, Manifest, MANIFEST};

pub use manifest::MANIFEST_VERSION;
pub use search::{IvfSettings, Query, Rerank, RerankRequest, Scored};

#[cfg(not(target_endian = "little"))]
compile_error!("unisight-index maps little-endian files directly and needs a little-endian target");

/// Settings of a new index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexConfig {
    /// Code width in bits, a multiple of 64.
    pub bits: usize,
    /// Keep float vectors of this dimension and kind for re-ranking.
    pub floats: Option<(usize, FloatKind)>,
    /// Keep each item's string key and path. Off, an item costs only its code and id (plus
    /// floats): its key is its id in decimal and items are added without key or path.
    pub keys: bool,
}

/// An item to add.
#[derive(Debug, Clone, Copy)]
pub struct NewItem<'a> {
    /// Unique external key (e.g. the `id` of `items.jsonl`).
    pub key: &'a str,
    /// Image path, shown in results.
    pub path: &'a str,
    /// Packed code (`numpy.packbits` order), `bits / 8` bytes.
    pub code: &'a [u8],
    /// Float embedding, required when the index keeps floats.
    pub floats: Option<&'a [f32]>,
}

/// An item as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    /// Internal id, assigned on add.
    pub id: u64,
    /// External key.
    pub key: String,
    /// Image path.
    pub path: String,
}

/// Counts and sizes of an index.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    /// Code width.
    pub bits: usize,
    /// Float storage, if any.
    pub floats: Option<(usize, FloatKind)>,
    /// Live items.
    pub items: usize,
    /// Deleted items still occupying space until compaction.
    pub deleted: usize,
    /// Segment files.
    pub segments: usize,
    /// Bytes of all committed files.
    pub file_bytes: u64,
    /// Commit generation.
    pub generation: u64,
}

/// A committed segment and which of its rows are deleted.
struct LiveSegment {
    segment: Segment,
    /// One bit per row, set when deleted (what the scan skips).
    deleted: Vec<u64>,
    /// The deleted rows, sorted (what the tombstone file holds).
    deleted_rows: Vec<u32>,
}

impl LiveSegment {
    fn new(segment: Segment, deleted_rows: Vec<u32>) -> Self {
        let mut live = LiveSegment {
            deleted: vec![0; segment.rows().div_ceil(64)],
            segment,
            deleted_rows: Vec::new(),
        };
        live.set_deleted(deleted_rows);
        live
    }

    fn live_rows(&self) -> usize {
        self.segment.rows() - self.deleted_rows.len()
    }

    fn is_deleted(&self, row: usize) -> bool {
        (self.deleted[row / 64] >> (row % 64)) & 1 == 1
    }

    fn set_deleted(&mut self, rows: Vec<u32>) {
        self.deleted.fill(0);
        for &r in &rows {
            self.deleted[r as usize / 64] |= 1 << (r % 64);
        }
        self.deleted_rows = rows;
    }
}

/// An open index. Opened for writing it holds an exclusive lock on `LOCK`; readers take none.
pub struct Index {
    dir: PathBuf,
    manifest: Manifest,
    segments: Vec<LiveSegment>,
    writable: Option<File>,
    /// Key -> id of every live item, built on first use (indexes with keys only) and kept
    /// current by [`Index::add`] and [`Index::remove`].
    keys: OnceLock<HashMap<String, u64>>,
    ivf: Option<search::AttachedIvf>,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Index {
    /// Creates an empty index in `dir` (created if missing; must not hold an index yet).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad code width or an existing index; I/O errors.
    pub fn create(dir: &Path, config: IndexConfig) -> Result<Index> {
        if config.bits == 0 || !config.bits.is_multiple_of(64) {
            return Err(Error::InvalidInput(format!(
                "code width {} bits: must be a positive multiple of 64",
                config.bits
            )));
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let lock = take_lock(dir)?;
        if dir.join(MANIFEST).exists() {
            return Err(Error::InvalidInput(format!(
                "{}: an index already exists here",
                dir.display()
            )));
        }
        let manifest = Manifest {
            format_version: MANIFEST_VERSION,
            bits: config.bits,
            floats: config.floats.map(|(dim, kind)| FloatSpec { dim, kind }),
            keys: config.keys,
            generation: 0,
            next_id: 0,
            segments: Vec::new(),
        };
        let index = Index {
            dir: dir.into(),
            manifest,
            segments: Vec::new(),
            writable: Some(lock),
            keys: OnceLock::from(HashMap::new()),
            ivf: None,
        };
        index.manifest.commit(&index.dir)?;
        Ok(index)
    }

    /// Creates a new index at `dir` and fills it with `fill`, all or nothing: the index is built
    /// in a hidden sibling folder (`.NAME.building`) and renamed to `dir` only once `fill`
    /// succeeded (an empty `dir` is replaced), so a failed or killed build leaves no index at `dir` and a re-run starts
    /// afresh (a stale building folder is removed unless a live build holds its lock).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when `dir` holds anything; [`Error::Locked`] when another build
    /// of `dir` is running; what `fill` returns; I/O errors.
    pub fn build_new<E: From<Error>>(
        dir: &Path,
        config: IndexConfig,
        fill: impl FnOnce(&mut Index) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let occupied = match std::fs::read_dir(dir) {
            Ok(mut entries) => entries.next().is_some(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(Error::io(dir, e).into()),
        };
        if occupied {
            return Err(Error::InvalidInput(format!(
                "{}: already exists and is not empty; choose a new folder (or `unisight index \
                 add` to an index)",
                dir.display()
            ))
            .into());
        }
        let name = dir
            .file_name()
            .ok_or_else(|| Error::InvalidInput(format!("{}: not a folder name", dir.display())))?;
        let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
        let parent = parent.unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        let building = parent.join(format!(".{}.building", name.to_string_lossy()));
        if building.exists() {
            // a build that was killed; a running one holds the lock
            drop(take_lock(&building)?);
            std::fs::remove_dir_all(&building).map_err(|e| Error::io(&building, e))?;
        }
        let result = Index::create(&building, config)
            .map_err(E::from)
            .and_then(|mut index| fill(&mut index));
        if let Err(e) = result {
            let _ = std::fs::remove_dir_all(&building);
            return Err(e);
        }
        std::fs::rename(&building, dir).map_err(|e| Error::io(dir, e))?;
        unisight_core::atomic::sync_dir(parent).map_err(|e| Error::io(parent, e))?;
        Ok(())
    }

    /// Opens an index read-only (no lock; committed files are immutable).
    ///
    /// # Errors
    /// [`Error::NotAnIndex`], or any corruption, version or I/O error naming the file.
    pub fn open(dir: &Path) -> Result<Index> {
        Self::open_inner(dir, None)
    }

    /// Opens an index for writing: takes the writer lock and removes files left by interrupted
    /// mutations.
    ///
    /// # Errors
    /// As [`Index::open`], plus [`Error::Locked`].
    pub fn open_writable(dir: &Path) -> Result<Index> {
        let lock = take_lock(dir)?;
        let index = Self::open_inner(dir, Some(lock))?;
        index.collect_garbage()?;
        Ok(index)
    }

    fn open_inner(dir: &Path, lock: Option<File>) -> Result<Index> {
        let manifest = Manifest::read(dir)?;
        let manifest_path = dir.join(MANIFEST);
        let layout = manifest.layout();
        let mut segments = Vec::with_capacity(manifest.segments.len());
        let mut last_id = None;
        for entry in &manifest.segments {
            let segment = Segment::open(&dir.join(&entry.file))?;
            if segment.layout() != layout || segment.rows() != entry.rows {
                return Err(Error::corrupt(
                    segment.path(),
                    "segment layout or row count differs from the manifest",
                ));
            }
            if let (Some(last), Some(&first)) = (last_id, segment.ids().first()) {
                if first <= last {
                    return Err(Error::corrupt(
                        segment.path(),
                        "ids overlap the previous segment",
                    ));
                }
            }
            last_id = segment.ids().last().copied().or(last_id);
            let deleted_rows = match &entry.tombstones {
                Some(t) => tombstones::read(&dir.join(t), segment.rows())?,
                None => Vec::new(),
            };
            segments.push(LiveSegment::new(segment, deleted_rows));
        }
        if last_id.is_some_and(|l| l >= manifest.next_id) {
            return Err(Error::corrupt(
                &manifest_path,
                "next_id not above every stored id",
            ));
        }
        Ok(Index {
            dir: dir.into(),
            manifest,
            segments,
            writable: lock,
            keys: OnceLock::new(),
            ivf: None,
        })
    }

    /// The directory of the index.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the committed manifest is still on disk: an open index keeps answering from its
    /// maps after its folder is removed, but can no longer be changed or reopened, which a
    /// service reports as not ready.
    pub fn is_on_disk(&self) -> bool {
        self.dir.join(MANIFEST).is_file()
    }

    /// Column layout.
    pub fn layout(&self) -> Layout {
        self.manifest.layout()
    }

    /// Number of live items.
    pub fn len(&self) -> usize {
        self.segments
            .iter()
            .map(|s| s.segment.rows() - s.deleted_rows.len())
            .sum()
    }

    /// True when no live item is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counts and sizes.
    pub fn stats(&self) -> Stats {
        Stats {
            bits: self.manifest.bits,
            floats: self.layout().floats,
            items: self.len(),
            deleted: self.segments.iter().map(|s| s.deleted_rows.len()).sum(),
            segments: self.segments.len(),
            file_bytes: self
                .segments
                .iter()
                .map(|s| s.segment.file_bytes() as u64)
                .sum(),
            generation: self.manifest.generation,
        }
    }

    /// Commits `next` and makes it the index's state.
    fn commit(&mut self, next: Manifest) -> Result<()> {
        next.commit(&self.dir)?;
        self.manifest = next;
        Ok(())
    }

    fn writer(&self) -> Result<()> {
        if self.writable.is_none() {
            return Err(Error::InvalidInput(
                "index opened read-only; open it writable to change it".into(),
            ));
        }
        Ok(())
    }
}
