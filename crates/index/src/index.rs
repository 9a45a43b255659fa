//! An index directory: a manifest naming write-once segments and their tombstones.
//!
//! Every mutation writes new files (`create_new`, fsync), fsyncs the directory, then commits by
//! atomically replacing `MANIFEST.json` (temp file, fsync, rename, fsync the directory). The
//! manifest is the only source of truth: a process killed at any point reopens to the last
//! committed manifest, and files it does not list are garbage from an interrupted mutation,
//! removed when a writer next opens the index.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ivf::BinaryIvf;
use crate::kernels::Kernel;
use crate::rerank::AsymmetricQuery;
use crate::scan::{self, CodeBlock, ScanOptions};
use crate::segment::{self, FloatKind, ItemRow, Layout, Segment};
use crate::topk::Hit;
use crate::{tombstones, Error, Result};

#[cfg(not(target_endian = "little"))]
compile_error!("unisight-index maps little-endian files directly and needs a little-endian target");

/// Manifest format version written by this build.
pub const MANIFEST_VERSION: u32 = 1;
const MANIFEST: &str = "MANIFEST.json";
const LOCK: &str = "LOCK";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    format_version: u32,
    bits: usize,
    #[serde(default)]
    floats: Option<FloatSpec>,
    /// Written only when false, so manifests of indexes with keys stay as they were.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    keys: bool,
    generation: u64,
    next_id: u64,
    segments: Vec<SegmentEntry>,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FloatSpec {
    dim: usize,
    kind: FloatKind,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SegmentEntry {
    file: String,
    rows: usize,
    #[serde(default)]
    tombstones: Option<String>,
}

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

/// How to re-score Hamming candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rerank {
    /// Return the Hamming order.
    None,
    /// Cosine of the float query with stored floats (needs an index with floats).
    Float,
    /// Inner product of the float query with the stored sign bits (no floats needed).
    Asymmetric,
}

/// One result of a search.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Scored {
    /// Internal id.
    pub id: u64,
    /// Hamming distance to the query code.
    pub distance: u32,
    /// Re-ranking score (higher is better), when re-ranked.
    pub score: Option<f32>,
}

/// One query of a batched search ([`Index::search_reranked_batch`]).
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    /// Packed query code, the index's code width.
    pub code: &'a [u8],
    /// The query's float embedding (re-ranking needs it).
    pub float: Option<&'a [f32]>,
    /// Results wanted.
    pub k: usize,
    /// How the Hamming shortlist is re-scored.
    pub mode: Rerank,
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

struct LiveSegment {
    segment: Segment,
    deleted: Vec<u64>,
    deleted_rows: Vec<u32>,
}

impl LiveSegment {
    fn is_deleted(&self, row: usize) -> bool {
        (self.deleted[row / 64] >> (row % 64)) & 1 == 1
    }
}

/// How an index with an inverted file searches ([`Index::build_ivf`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IvfSettings {
    /// Lists (centroids).
    pub lists: usize,
    /// Lists scanned per query.
    pub probes: usize,
}

struct AttachedIvf {
    ivf: BinaryIvf,
    probes: usize,
    kernel: Kernel,
}

/// An open index. Opened for writing it holds an exclusive lock on `LOCK`; readers take none.
pub struct Index {
    dir: PathBuf,
    manifest: Manifest,
    segments: Vec<LiveSegment>,
    writable: Option<File>,
    keys: Option<HashMap<String, u64>>,
    ivf: Option<AttachedIvf>,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn plain_file_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['/', '\\']) && name != "." && name != ".."
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
        let mut index = Index {
            dir: dir.into(),
            manifest,
            segments: Vec::new(),
            writable: Some(lock),
            keys: Some(HashMap::new()),
            ivf: None,
        };
        index.commit(index.manifest.clone())?;
        Ok(index)
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
        let manifest_path = dir.join(MANIFEST);
        let text = match std::fs::read_to_string(&manifest_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotAnIndex { path: dir.into() })
            }
            Err(e) => return Err(Error::io(&manifest_path, e)),
        };
        let manifest: Manifest = serde_json::from_str(&text)
            .map_err(|e| Error::corrupt(&manifest_path, e.to_string()))?;
        if manifest.format_version != MANIFEST_VERSION {
            return Err(Error::UnsupportedVersion {
                path: manifest_path,
                found: manifest.format_version,
                oldest: MANIFEST_VERSION,
                newest: MANIFEST_VERSION,
            });
        }
        let layout = Layout {
            bits: manifest.bits,
            floats: manifest.floats.map(|f| (f.dim, f.kind)),
            keys: manifest.keys,
        };
        if layout.bits == 0 || !layout.bits.is_multiple_of(64) {
            return Err(Error::corrupt(
                &manifest_path,
                "bits must be a multiple of 64",
            ));
        }
        let mut segments = Vec::with_capacity(manifest.segments.len());
        let mut last_id = None;
        for entry in &manifest.segments {
            if !plain_file_name(&entry.file)
                || entry
                    .tombstones
                    .as_deref()
                    .is_some_and(|t| !plain_file_name(t))
            {
                return Err(Error::corrupt(
                    &manifest_path,
                    format!("file name {:?} escapes the index", entry.file),
                ));
            }
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
            keys: None,
            ivf: None,
        })
    }

    /// The directory of the index.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Column layout.
    pub fn layout(&self) -> Layout {
        Layout {
            bits: self.manifest.bits,
            floats: self.manifest.floats.map(|f| (f.dim, f.kind)),
            keys: self.manifest.keys,
        }
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

    /// Builds an inverted file over the live codes ([`BinaryIvf`], k-majority centroids learned
    /// from a sample, `seed` for the sample): from then on a search scans only the `probes` lists
    /// nearest to each query instead of every code, which makes it approximate (recall is traded
    /// for speed through `probes`) and its cost nearly independent of the index's size. Adds and
    /// removals keep the lists current (new codes go to their nearest list; the centroids stay as
    /// learned). The inverted file lives in memory (a copy of the codes and ids) and is rebuilt
    /// when the index is opened again.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for zero lists or probes, or an empty index (nothing to learn
    /// the lists from).
    pub fn build_ivf(&mut self, lists: usize, probes: usize, seed: u64) -> Result<IvfSettings> {
        if lists == 0 || probes == 0 {
            return Err(Error::InvalidInput(format!(
                "an inverted file needs at least one list and one probe (got {lists} lists, \
                 {probes} probes)"
            )));
        }
        if self.is_empty() {
            return Err(Error::InvalidInput(
                "an inverted file learns its lists from the index's codes: the index is empty"
                    .into(),
            ));
        }
        let words = self.layout().code_words();
        let mut codes = Vec::with_capacity(self.len() * words);
        let mut ids = Vec::with_capacity(self.len());
        for live in &self.segments {
            let seg_codes = live.segment.codes();
            for (row, &id) in live.segment.ids().iter().enumerate() {
                if !live.is_deleted(row) {
                    codes.extend_from_slice(&seg_codes[row * words..(row + 1) * words]);
                    ids.push(id);
                }
            }
        }
        const ITERATIONS: usize = 10;
        let ivf = BinaryIvf::build(&codes, &ids, words, lists, ITERATIONS, seed);
        let settings = IvfSettings {
            lists: ivf.nlist(),
            probes: probes.min(ivf.nlist()),
        };
        self.ivf = Some(AttachedIvf {
            ivf,
            probes: settings.probes,
            kernel: Kernel::detect(),
        });
        Ok(settings)
    }

    /// Changes how many lists a search through the inverted file scans (capped at the lists);
    /// returns the settings now in force, or `None` when no inverted file is built.
    pub fn set_ivf_probes(&mut self, probes: usize) -> Option<IvfSettings> {
        let attached = self.ivf.as_mut()?;
        attached.probes = probes.clamp(1, attached.ivf.nlist());
        self.ivf_settings()
    }

    /// The inverted file's settings, when searches go through one.
    pub fn ivf_settings(&self) -> Option<IvfSettings> {
        self.ivf.as_ref().map(|a| IvfSettings {
            lists: a.ivf.nlist(),
            probes: a.probes,
        })
    }

    fn locate(&self, id: u64) -> Option<(usize, usize)> {
        let seg = self
            .segments
            .partition_point(|s| s.segment.ids().first().is_some_and(|&f| f <= id));
        let seg = seg.checked_sub(1)?;
        let row = self.segments[seg].segment.row_of(id)?;
        (!self.segments[seg].is_deleted(row)).then_some((seg, row))
    }

    /// The stored item with `id`.
    ///
    /// # Errors
    /// [`Error::UnknownItem`] for an id not in the index (or deleted).
    pub fn item(&self, id: u64) -> Result<Item> {
        let (seg, row) = self
            .locate(id)
            .ok_or_else(|| Error::UnknownItem(format!("id {id}")))?;
        let s = &self.segments[seg].segment;
        Ok(Item {
            id,
            key: s.key(row)?.into_owned(),
            path: s.item_path(row)?.to_owned(),
        })
    }

    /// Every live item, in id order.
    pub fn items(&self) -> impl Iterator<Item = Result<Item>> + '_ {
        self.segments.iter().flat_map(|live| {
            (0..live.segment.rows())
                .filter(|&r| !live.is_deleted(r))
                .map(move |r| {
                    Ok(Item {
                        id: live.segment.ids()[r],
                        key: live.segment.key(r)?.into_owned(),
                        path: live.segment.item_path(r)?.to_owned(),
                    })
                })
        })
    }

    /// The packed code of item `id`.
    pub fn code(&self, id: u64) -> Result<&[u8]> {
        let (seg, row) = self
            .locate(id)
            .ok_or_else(|| Error::UnknownItem(format!("id {id}")))?;
        Ok(self.segments[seg].segment.code_bytes_of(row))
    }

    /// The stored float vector of item `id`, if the index keeps floats.
    pub fn floats(&self, id: u64) -> Result<Option<Vec<f32>>> {
        let (seg, row) = self
            .locate(id)
            .ok_or_else(|| Error::UnknownItem(format!("id {id}")))?;
        Ok(self.segments[seg].segment.float_row(row))
    }

    /// The id of the live item with external key `key` (builds a key map on first use).
    pub fn id_of_key(&mut self, key: &str) -> Result<Option<u64>> {
        Ok(self.key_map()?.get(key).copied())
    }

    fn key_map(&mut self) -> Result<&mut HashMap<String, u64>> {
        if self.keys.is_none() {
            let mut map = HashMap::with_capacity(self.len());
            for item in self.items() {
                let item = item?;
                map.insert(item.key, item.id);
            }
            self.keys = Some(map);
        }
        Ok(self.keys.as_mut().expect("just built"))
    }

    fn blocks(&self) -> Vec<CodeBlock<'_>> {
        self.segments
            .iter()
            .map(|s| CodeBlock {
                codes: s.segment.codes(),
                ids: s.segment.ids(),
                deleted: (!s.deleted_rows.is_empty()).then_some(s.deleted.as_slice()),
            })
            .collect()
    }

    fn words_of(&self, codes: &[u8]) -> Result<Vec<u64>> {
        let cb = self.layout().code_bytes();
        if !codes.len().is_multiple_of(cb) {
            return Err(Error::InvalidInput(format!(
                "query codes have {} bytes, not a multiple of the index's {cb}-byte codes",
                codes.len()
            )));
        }
        Ok(codes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect())
    }

    /// Top-k Hamming search for a batch of packed query codes (concatenated): exact, or through
    /// the inverted file when one is built ([`Index::build_ivf`]).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the query length does not fit the code width.
    pub fn search(&self, codes: &[u8], k: usize, options: &ScanOptions) -> Result<Vec<Vec<Hit>>> {
        let words = self.words_of(codes)?;
        if let Some(attached) = &self.ivf {
            return Ok(words
                .chunks_exact(self.layout().code_words())
                .map(|q| attached.ivf.search(q, k, attached.probes, attached.kernel))
                .collect());
        }
        Ok(scan::search(
            &self.blocks(),
            self.layout().code_words(),
            &words,
            k,
            options,
        ))
    }

    /// Top-k for one query: the `k * factor` nearest by Hamming, re-scored as `mode` says
    /// (`query_float` is the query's float embedding, needed unless `mode` is `None`).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a missing query vector, a dimension mismatch or float
    /// re-ranking on an index without floats.
    pub fn search_reranked(
        &self,
        code: &[u8],
        query_float: Option<&[f32]>,
        k: usize,
        factor: usize,
        mode: Rerank,
        options: &ScanOptions,
    ) -> Result<Vec<Scored>> {
        let query = Query {
            code,
            float: query_float,
            k,
            mode,
        };
        Ok(self
            .search_reranked_batch(&[query], factor, options)?
            .pop()
            .unwrap_or_default())
    }

    /// [`Index::search_reranked`] for several queries in one pass over the codes: every code is
    /// loaded once for the whole batch, which is what makes concurrent searches of a service
    /// cheaper together than one by one. Each query keeps its own k and re-ranking mode.
    ///
    /// # Errors
    /// As [`Index::search_reranked`], for the first query that is invalid (nothing is searched
    /// then).
    pub fn search_reranked_batch(
        &self,
        queries: &[Query<'_>],
        factor: usize,
        options: &ScanOptions,
    ) -> Result<Vec<Vec<Scored>>> {
        let shortlist_of = |q: &Query<'_>| {
            if q.mode == Rerank::None {
                q.k
            } else {
                q.k.saturating_mul(factor.max(1))
            }
        };
        for q in queries {
            self.check_rerank(q)?;
        }
        let shortlist = queries.iter().map(shortlist_of).max().unwrap_or(0);
        let codes: Vec<u8> = queries
            .iter()
            .flat_map(|q| q.code.iter().copied())
            .collect();
        let hits = self.search(&codes, shortlist, options)?;
        Ok(queries
            .iter()
            .zip(hits)
            .map(|(q, mut hits)| {
                hits.truncate(shortlist_of(q));
                self.rescore(q, hits)
            })
            .collect())
    }

    /// Refuses a query whose re-ranking cannot run on this index.
    fn check_rerank(&self, q: &Query<'_>) -> Result<()> {
        if q.code.len() != self.layout().code_bytes() {
            return Err(Error::InvalidInput(format!(
                "a query code has {} bytes, the index's codes {}",
                q.code.len(),
                self.layout().code_bytes()
            )));
        }
        if q.mode == Rerank::None {
            return Ok(());
        }
        let v = q.float.ok_or_else(|| {
            Error::InvalidInput("re-ranking needs the query's float embedding".into())
        })?;
        match q.mode {
            Rerank::Float => {
                let (dim, _) = self.layout().floats.ok_or_else(|| {
                    Error::InvalidInput(
                        "this index keeps no floats: use asymmetric re-ranking".into(),
                    )
                })?;
                check_dim(v, dim)
            }
            Rerank::Asymmetric => check_dim(v, self.layout().bits),
            Rerank::None => Ok(()),
        }
    }

    /// Re-scores one query's Hamming shortlist (checked by [`Index::check_rerank`]).
    fn rescore(&self, q: &Query<'_>, hits: Vec<Hit>) -> Vec<Scored> {
        let (mode, Some(v)) = (q.mode, q.float) else {
            return unranked(hits);
        };
        let score: Box<dyn Fn(usize, usize) -> f32 + '_> = match mode {
            Rerank::None => return unranked(hits),
            Rerank::Float => Box::new(move |seg, row| {
                self.segments[seg]
                    .segment
                    .floats()
                    .expect("checked: layout has floats")
                    .cosine(v, row)
            }),
            Rerank::Asymmetric => {
                let aq = AsymmetricQuery::new(v);
                Box::new(move |seg, row| aq.score(self.segments[seg].segment.code_bytes_of(row)))
            }
        };
        let mut scored: Vec<Scored> = hits
            .into_iter()
            .filter_map(|h| {
                let (seg, row) = self.locate(h.id)?;
                Some(Scored {
                    id: h.id,
                    distance: h.distance,
                    score: Some(score(seg, row)),
                })
            })
            .collect();
        scored.sort_by(|a, b| {
            b.score
                .partial_cmp(&a.score)
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(a.id.cmp(&b.id))
        });
        scored.truncate(q.k);
        scored
    }

    fn writer(&self) -> Result<()> {
        if self.writable.is_none() {
            return Err(Error::InvalidInput(
                "index opened read-only; open it writable to change it".into(),
            ));
        }
        Ok(())
    }

    /// Adds items in one commit; returns their new ids. Keys must be new and unique.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for duplicate keys or codes/floats of the wrong size (nothing is
    /// written then); I/O errors (the index stays at the previous commit).
    pub fn add(&mut self, items: &[NewItem<'_>]) -> Result<Vec<u64>> {
        self.writer()?;
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let layout = self.layout();
        if layout.keys {
            let keys = self.key_map()?;
            let mut seen = std::collections::HashSet::new();
            for item in items {
                if keys.contains_key(item.key) || !seen.insert(item.key) {
                    return Err(Error::InvalidInput(format!(
                        "key {:?} is already in the index",
                        item.key
                    )));
                }
            }
        } else if let Some(item) = items
            .iter()
            .find(|i| !i.key.is_empty() || !i.path.is_empty())
        {
            return Err(Error::InvalidInput(format!(
                "item {:?}: this index keeps no keys or paths (an item's key is its id); add \
                 items without them",
                item.key
            )));
        }
        for item in items {
            if item.code.len() != layout.code_bytes() {
                return Err(Error::InvalidInput(format!(
                    "item {:?}: code has {} bytes, index expects {}",
                    item.key,
                    item.code.len(),
                    layout.code_bytes()
                )));
            }
        }
        let first = self.manifest.next_id;
        let generation = self.manifest.generation + 1;
        let file = format!("seg-{generation:010}.usg");
        let path = self.dir.join(&file);
        let rows = items.iter().enumerate().map(|(i, it)| ItemRow {
            id: first + i as u64,
            key: it.key,
            path: it.path,
            code: it.code,
            floats: it.floats,
        });
        if let Err(e) = segment::write_segment(&path, layout, rows) {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        let segment = Segment::open(&path)?;
        let mut next = self.manifest.clone();
        next.generation = generation;
        next.next_id = first + items.len() as u64;
        next.segments.push(SegmentEntry {
            file,
            rows: items.len(),
            tombstones: None,
        });
        self.commit(next)?;
        if let Some(attached) = self.ivf.as_mut() {
            let words = segment.layout().code_words();
            for (row, &id) in segment.ids().iter().enumerate() {
                let code = &segment.codes()[row * words..(row + 1) * words];
                attached.ivf.insert(code, id, attached.kernel);
            }
        }
        self.segments.push(LiveSegment::new(segment, Vec::new()));
        let ids: Vec<u64> = (first..first + items.len() as u64).collect();
        if let Some(keys) = self.keys.as_mut() {
            for (item, &id) in items.iter().zip(&ids) {
                let key = if layout.keys {
                    item.key.to_owned()
                } else {
                    id.to_string()
                };
                keys.insert(key, id);
            }
        }
        Ok(ids)
    }

    /// Deletes items by id in one commit (tombstones); returns how many were live.
    ///
    /// # Errors
    /// [`Error::UnknownItem`] if any id is not live (nothing is changed then); I/O errors.
    pub fn remove(&mut self, ids: &[u64]) -> Result<usize> {
        self.writer()?;
        let mut per_segment: HashMap<usize, Vec<u32>> = HashMap::new();
        for &id in ids {
            let (seg, row) = self
                .locate(id)
                .ok_or_else(|| Error::UnknownItem(format!("id {id}")))?;
            per_segment.entry(seg).or_default().push(row as u32);
        }
        if per_segment.is_empty() {
            return Ok(0);
        }
        let generation = self.manifest.generation + 1;
        let mut next = self.manifest.clone();
        let mut new_rows = Vec::new();
        let mut removed = 0;
        for (&seg, rows) in &per_segment {
            let mut all = self.segments[seg].deleted_rows.clone();
            all.extend(rows);
            all.sort_unstable();
            all.dedup();
            removed += all.len() - self.segments[seg].deleted_rows.len();
            let stem = next.segments[seg].file.trim_end_matches(".usg").to_owned();
            let name = format!("{stem}.{generation:010}.del");
            tombstones::write(&self.dir.join(&name), &all)?;
            next.segments[seg].tombstones = Some(name);
            new_rows.push((seg, all));
        }
        next.generation = generation;
        self.commit(next)?;
        if let Some(attached) = self.ivf.as_mut() {
            let words = self.manifest.bits / 64;
            for (&seg, rows) in &per_segment {
                let segment = &self.segments[seg].segment;
                for &row in rows {
                    let row = row as usize;
                    let code = &segment.codes()[row * words..(row + 1) * words];
                    attached
                        .ivf
                        .remove(code, segment.ids()[row], attached.kernel);
                }
            }
        }
        for (seg, rows) in new_rows {
            let segment = &mut self.segments[seg];
            segment.set_deleted(rows);
        }
        self.keys = None;
        Ok(removed)
    }

    /// Rewrites all live items into one segment, dropping deleted rows, in one commit.
    ///
    /// # Errors
    /// I/O errors (the index stays at the previous commit).
    pub fn compact(&mut self) -> Result<()> {
        self.writer()?;
        let layout = self.layout();
        let generation = self.manifest.generation + 1;
        let file = format!("seg-{generation:010}.usg");
        let path = self.dir.join(&file);
        let mut live = Vec::new();
        for (s, seg) in self.segments.iter().enumerate() {
            for row in 0..seg.segment.rows() {
                if !seg.is_deleted(row) {
                    live.push((s, row));
                }
            }
        }
        let floats: Vec<Option<Vec<f32>>> = live
            .iter()
            .map(|&(s, r)| self.segments[s].segment.float_row(r))
            .collect();
        let keys = live
            .iter()
            .map(|&(s, r)| self.segments[s].segment.key(r))
            .collect::<Result<Vec<_>>>()?;
        let mut rows = Vec::with_capacity(live.len());
        for (i, &(s, r)) in live.iter().enumerate() {
            let seg = &self.segments[s].segment;
            rows.push(ItemRow {
                id: seg.ids()[r],
                key: &keys[i],
                path: seg.item_path(r)?,
                code: seg.code_bytes_of(r),
                floats: floats[i].as_deref(),
            });
        }
        let mut next = self.manifest.clone();
        next.generation = generation;
        next.segments.clear();
        if !rows.is_empty() {
            if let Err(e) = segment::write_segment(&path, layout, rows.into_iter()) {
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
            next.segments.push(SegmentEntry {
                file,
                rows: live.len(),
                tombstones: None,
            });
        }
        let new_segments = if live.is_empty() {
            Vec::new()
        } else {
            vec![LiveSegment::new(Segment::open(&path)?, Vec::new())]
        };
        self.commit(next)?;
        self.segments = new_segments;
        self.collect_garbage()
    }

    /// Makes every new file durable, then swaps the manifest atomically.
    fn commit(&mut self, next: Manifest) -> Result<()> {
        unisight_core::atomic::sync_dir(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let json = serde_json::to_vec_pretty(&next).expect("manifest serialises");
        let path = self.dir.join(MANIFEST);
        unisight_core::atomic::atomic_write_bytes(&path, &json).map_err(|e| match e {
            unisight_core::Error::Io { path, source } => Error::Io { path, source },
            other => Error::io(&path, std::io::Error::other(other.to_string())),
        })?;
        self.manifest = next;
        Ok(())
    }

    /// Removes files of ours that the manifest does not list.
    fn collect_garbage(&self) -> Result<()> {
        let listed: std::collections::HashSet<&str> = self
            .manifest
            .segments
            .iter()
            .flat_map(|s| std::iter::once(s.file.as_str()).chain(s.tombstones.as_deref()))
            .collect();
        let entries = std::fs::read_dir(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&self.dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let ours = (name.starts_with("seg-")
                && (name.ends_with(".usg") || name.ends_with(".del")))
                || (name.starts_with(".MANIFEST.json.tmp-"));
            if ours && !listed.contains(name) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(())
    }
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

    fn set_deleted(&mut self, rows: Vec<u32>) {
        self.deleted.fill(0);
        for &r in &rows {
            self.deleted[r as usize / 64] |= 1 << (r % 64);
        }
        self.deleted_rows = rows;
    }
}

fn check_dim(q: &[f32], dim: usize) -> Result<()> {
    if q.len() != dim {
        return Err(Error::InvalidInput(format!(
            "query vector has {} values, index expects {dim}",
            q.len()
        )));
    }
    Ok(())
}

fn take_lock(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked { path }),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&path, e)),
    }
}

/// Hamming hits as results without a re-ranking score.
fn unranked(hits: Vec<Hit>) -> Vec<Scored> {
    hits.into_iter()
        .map(|h| Scored {
            id: h.id,
            distance: h.distance,
            score: None,
        })
        .collect()
}
