//! The embedding folder that `unisight embed` writes and `index build` and `eval` read.
//!
//! - `embeddings.npy`: float32 `[N, D]`, L2-normalised embeddings;
//! - `codes.npy`: uint8 `[N, D/8]`, exactly `numpy.packbits(x > 0, axis=1)`;
//! - `items.jsonl`: one `{"id": ..., "path": ...}` per row, in row order;
//! - `meta.json`: model, D, date, counts and failures (written by the producer).
//!
//! Every file is written atomically, so a folder never holds a half-written file.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use npyz::WriterBuilder;
use serde::{Deserialize, Serialize};

use crate::atomic::atomic_write;
use crate::{Error, Result};

/// File name of the float embeddings.
pub const EMBEDDINGS_FILE: &str = "embeddings.npy";
/// File name of the packed codes.
pub const CODES_FILE: &str = "codes.npy";
/// File name of the row -> item list.
pub const ITEMS_FILE: &str = "items.jsonl";
/// File name of the run summary.
pub const META_FILE: &str = "meta.json";

/// One row of `items.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemRecord {
    /// Unique id of the item (by default its path relative to the input root).
    pub id: String,
    /// Path of the image as given.
    pub path: String,
    /// Label, when the input manifest had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// An image that was skipped, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// Input id.
    pub id: String,
    /// Path as given.
    pub path: String,
    /// One-line reason.
    pub reason: String,
}

/// What an embedding run did: the folder's `meta.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EmbedMeta {
    /// Model id.
    pub model: String,
    /// Backend that ran inference.
    pub backend: String,
    /// Embedding dimension.
    pub dim: usize,
    /// Seconds since the Unix epoch when the run finished.
    pub finished_unix: u64,
    /// Images listed.
    pub inputs: usize,
    /// Images embedded.
    pub embedded: usize,
    /// Images skipped.
    pub failed: usize,
    /// Chunks reused from an earlier, interrupted run.
    pub resumed_chunks: usize,
    /// Images per second of this run (decode to files, excluding resumed chunks).
    pub images_per_second: f64,
    /// The skipped images and why.
    pub failures: Vec<Failure>,
    /// The share of a catalog this folder holds (`unisight embed --shard I/N`); none: all of
    /// its inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<crate::shard::Shard>,
}

/// Writes a row-major matrix as `.npy` atomically.
///
/// # Errors
/// I/O errors naming the file.
pub fn write_npy<T>(path: &Path, rows: usize, cols: usize, data: &[T]) -> Result<()>
where
    T: npyz::AutoSerialize + npyz::Serialize + Copy,
{
    assert_eq!(data.len(), rows * cols, "matrix data length");
    atomic_write(path, |w| {
        let mut writer = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&[rows as u64, cols as u64])
            .writer(w)
            .begin_nd()?;
        writer.extend(data.iter().copied())?;
        writer.finish()
    })
}

/// Reads a 2-d `.npy` matrix: `(rows, cols, data)`.
///
/// Shape, dtype, order and length are checked against the file before anything is allocated,
/// so a crafted header cannot ask for more memory than the file holds.
///
/// # Errors
/// [`Error::Malformed`] for a wrong dtype, rank or order, or a shape that does not match the
/// file's length; I/O errors naming the file.
pub fn read_npy<T>(path: &Path) -> Result<(usize, usize, Vec<T>)>
where
    T: npyz::Deserialize,
{
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let data_offset = npy_data_offset(&mut file)
        .map_err(|e| Error::malformed(path, format!("not a .npy file: {e}")))?;
    // the reader multiplies the shape out unchecked: refuse one that overflows first
    if shape_overflows(&mut file, data_offset) {
        return Err(Error::malformed(
            path,
            "the header's shape has more than 2^64 elements",
        ));
    }
    let npy = npyz::NpyFile::new(BufReader::new(file))
        .map_err(|e| Error::malformed(path, format!("not a .npy file: {e}")))?;
    let shape = npy.shape().to_vec();
    let &[rows, cols] = shape.as_slice() else {
        return Err(Error::malformed(
            path,
            format!("expected a 2-d array, found shape {shape:?}"),
        ));
    };
    if npy.order() != npyz::Order::C {
        return Err(Error::malformed(
            path,
            "a Fortran-ordered (column-major) array; write it in C order \
             (numpy.ascontiguousarray)",
        ));
    }
    let dtype = npy.dtype();
    let item_bytes = dtype.num_bytes().unwrap_or(0) as u64;
    let needed = rows
        .checked_mul(cols)
        .and_then(|n| n.checked_mul(item_bytes));
    let held = file_len.saturating_sub(data_offset);
    if needed != Some(held) || item_bytes == 0 {
        return Err(Error::malformed(
            path,
            format!(
                "shape ({rows}, {cols}) of dtype {dtype:?} needs {} bytes, but the file holds {held} after its header",
                needed.map_or("more than 2^64".to_string(), |n| n.to_string())
            ),
        ));
    }
    let (rows, cols) = (usize::try_from(rows), usize::try_from(cols));
    let (Ok(rows), Ok(cols)) = (rows, cols) else {
        return Err(Error::malformed(path, "shape too large for this machine"));
    };
    let data: Vec<T> = npy
        .into_vec()
        .map_err(|e| Error::malformed(path, format!("dtype {dtype:?}: {e}")))?;
    Ok((rows, cols, data))
}

/// Whether the `shape` tuple in the header (the bytes before `data_offset`) multiplies out past
/// `u64`; a header that cannot be read is left to the `.npy` reader to refuse.
fn shape_overflows(file: &mut std::fs::File, data_offset: u64) -> bool {
    use std::io::{Read, Seek};
    let mut header = vec![0u8; usize::try_from(data_offset.min(1 << 20)).unwrap_or(0)];
    let read = file.read_exact(&mut header).is_ok() && file.rewind().is_ok();
    let text = String::from_utf8_lossy(&header);
    let Some(dims) = read
        .then(|| text.split_once("'shape'"))
        .flatten()
        .and_then(|(_, rest)| rest.split_once('('))
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(dims, _)| dims)
    else {
        return false;
    };
    dims.split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.trim_end_matches('L').parse::<u64>())
        .try_fold(1u64, |acc, d| d.ok().and_then(|d| acc.checked_mul(d)))
        .is_none()
}

/// Where a `.npy` file's data begins: magic, version, then a 2-byte (version 1) or 4-byte
/// (versions 2 and 3) header length.
fn npy_data_offset(file: &mut std::fs::File) -> std::io::Result<u64> {
    use std::io::{Read, Seek};
    let mut head = [0u8; 12];
    file.read_exact(&mut head)?;
    file.rewind()?;
    if &head[..6] != b"\x93NUMPY" {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "no .npy magic",
        ));
    }
    Ok(match head[6] {
        1 => 10 + u64::from(u16::from_le_bytes([head[8], head[9]])),
        _ => 12 + u64::from(u32::from_le_bytes([head[8], head[9], head[10], head[11]])),
    })
}

/// Writes `items.jsonl` atomically.
///
/// # Errors
/// I/O errors naming the file.
pub fn write_items(path: &Path, items: &[ItemRecord]) -> Result<()> {
    atomic_write(path, |w| {
        for item in items {
            serde_json::to_writer(&mut *w, item)?;
            w.write_all(b"\n")?;
        }
        Ok(())
    })
}

/// Reads `items.jsonl`; a bad line is reported with its number.
///
/// # Errors
/// [`Error::Malformed`] naming the file and line.
pub fn read_items(path: &Path) -> Result<Vec<ItemRecord>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut items = Vec::new();
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => {
                Error::malformed(path, format!("line {}: not valid UTF-8", n + 1))
            }
            _ => Error::io(path, e),
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let item: ItemRecord = serde_json::from_str(&line)
            .map_err(|e| Error::malformed(path, format!("line {}: {e}", n + 1)))?;
        items.push(item);
    }
    Ok(items)
}

/// An embedding folder loaded into memory, with its parts checked to line up.
#[derive(Debug, Clone)]
pub struct EmbeddingSet {
    /// Embedding dimension D.
    pub dim: usize,
    /// `[N, D]` float32.
    pub embeddings: Vec<f32>,
    /// `[N, code_bytes]` packed codes.
    pub codes: Vec<u8>,
    /// Bytes per code.
    pub code_bytes: usize,
    /// One record per row.
    pub items: Vec<ItemRecord>,
}

impl EmbeddingSet {
    /// Loads a folder that must be complete (its `meta.json` written, no `.partial/` left by a
    /// killed run), with what its `meta.json` says: the check before folders are merged.
    ///
    /// # Errors
    /// [`Error::Malformed`] for an incomplete folder or an unreadable `meta.json`; as
    /// [`EmbeddingSet::load`].
    pub fn load_complete(dir: &Path) -> Result<(EmbeddingSet, EmbedMeta)> {
        let meta_path = dir.join(META_FILE);
        if dir.join(".partial").exists() || !meta_path.exists() {
            return Err(Error::malformed(
                dir,
                "incomplete: `unisight embed` did not finish here (no meta.json, or a \
                 .partial/ folder); re-run it to resume",
            ));
        }
        let bytes = std::fs::read(&meta_path).map_err(|e| Error::io(&meta_path, e))?;
        let meta: EmbedMeta = serde_json::from_slice(&bytes)
            .map_err(|e| Error::malformed(&meta_path, e.to_string()))?;
        let set = EmbeddingSet::load(dir)?;
        if set.dim != meta.dim || set.len() != meta.embedded {
            return Err(Error::malformed(
                &meta_path,
                format!(
                    "says {} items of D = {}, the folder holds {} of D = {}",
                    meta.embedded,
                    meta.dim,
                    set.len(),
                    set.dim
                ),
            ));
        }
        Ok((set, meta))
    }

    /// Loads a folder to add to an index: checked as [`EmbeddingSet::load_complete`] when
    /// `unisight embed` made it (a `meta.json` or a `.partial/` is there), so a killed run's
    /// stale files are never taken; a folder made by other tools (neither) as it is.
    ///
    /// # Errors
    /// As [`EmbeddingSet::load_complete`] or [`EmbeddingSet::load`].
    pub fn load_for_index(dir: &Path) -> Result<EmbeddingSet> {
        if dir.join(".partial").exists() || dir.join(META_FILE).exists() {
            Ok(EmbeddingSet::load_complete(dir)?.0)
        } else {
            EmbeddingSet::load(dir)
        }
    }

    /// Loads `dir/{embeddings.npy, codes.npy, items.jsonl}`.
    ///
    /// # Errors
    /// [`Error::Malformed`] when row counts or widths disagree, naming the file.
    pub fn load(dir: &Path) -> Result<EmbeddingSet> {
        let path = |name: &str| -> PathBuf { dir.join(name) };
        let (n, dim, embeddings) = read_npy::<f32>(&path(EMBEDDINGS_FILE))?;
        let (nc, code_bytes, codes) = read_npy::<u8>(&path(CODES_FILE))?;
        let items = read_items(&path(ITEMS_FILE))?;
        if nc != n {
            return Err(Error::malformed(
                path(CODES_FILE),
                format!("{nc} rows but {EMBEDDINGS_FILE} has {n}"),
            ));
        }
        if code_bytes != crate::code::code_bytes(dim) {
            return Err(Error::malformed(
                path(CODES_FILE),
                format!("{code_bytes} bytes per code but D = {dim}"),
            ));
        }
        if items.len() != n {
            return Err(Error::malformed(
                path(ITEMS_FILE),
                format!("{} items but {EMBEDDINGS_FILE} has {n} rows", items.len()),
            ));
        }
        Ok(EmbeddingSet {
            dim,
            embeddings,
            codes,
            code_bytes,
            items,
        })
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Embedding of row `i`.
    pub fn embedding(&self, i: usize) -> &[f32] {
        &self.embeddings[i * self.dim..(i + 1) * self.dim]
    }

    /// Code of row `i`.
    pub fn code(&self, i: usize) -> &[u8] {
        &self.codes[i * self.code_bytes..(i + 1) * self.code_bytes]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version-1 `.npy` file with `header` (a Python dict literal) and `data`.
    fn npy_bytes(header: &str, data: &[u8]) -> Vec<u8> {
        let mut h = header.to_string();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(' ');
        }
        h.push('\n');
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend((h.len() as u16).to_le_bytes());
        b.extend(h.as_bytes());
        b.extend(data);
        b
    }

    #[test]
    fn crafted_npy_headers_are_refused_before_allocating() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.npy");
        let read = |header: &str, data: &[u8]| {
            std::fs::write(&path, npy_bytes(header, data)).unwrap();
            read_npy::<f32>(&path).map_err(|e| e.to_string())
        };
        let f32s: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let (r, c, v) = read(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }",
            &f32s,
        )
        .unwrap();
        assert_eq!((r, c, v), (2, 2, vec![1.0, 2.0, 3.0, 4.0]));
        // a shape far beyond the file (this once aborted on the allocation)
        let e = read(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1024, 1099511627776), }",
            &f32s,
        )
        .unwrap_err();
        assert!(
            e.contains("e.npy") && e.contains("needs") && e.contains("holds 16"),
            "{e}"
        );
        // a shape whose element count itself overflows (the one that once panicked `index build`)
        let e = read(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1024, 144115188075855872), }",
            &f32s,
        )
        .unwrap_err();
        assert!(e.contains("2^64"), "{e}");
        // a short file
        let e = read(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }",
            &f32s[..12],
        )
        .unwrap_err();
        assert!(e.contains("holds 12"), "{e}");
        // column-major data would be read scrambled
        let e = read(
            "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }",
            &f32s,
        )
        .unwrap_err();
        assert!(e.contains("Fortran"), "{e}");
        // another dtype
        let e = read(
            "{'descr': '|u1', 'fortran_order': False, 'shape': (4, 4), }",
            &f32s,
        )
        .unwrap_err();
        assert!(e.contains("dtype"), "{e}");
        let e = read(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (16,), }",
            &f32s,
        )
        .unwrap_err();
        assert!(e.contains("2-d"), "{e}");
    }

    #[test]
    fn set_round_trip_and_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write_npy(&d.join(EMBEDDINGS_FILE), 2, 16, &[0.5f32; 32]).unwrap();
        write_npy(&d.join(CODES_FILE), 2, 2, &[1u8, 2, 3, 4]).unwrap();
        let items = vec![
            ItemRecord {
                id: "a".into(),
                path: "a.jpg".into(),
                label: None,
            },
            ItemRecord {
                id: "b".into(),
                path: "b.jpg".into(),
                label: Some("x".into()),
            },
        ];
        write_items(&d.join(ITEMS_FILE), &items).unwrap();
        let set = EmbeddingSet::load(d).unwrap();
        assert_eq!(set.code(1), &[3, 4]);
        assert_eq!(set.items, items);
        write_items(&d.join(ITEMS_FILE), &items[..1]).unwrap();
        let err = EmbeddingSet::load(d).unwrap_err().to_string();
        assert!(
            err.contains("items.jsonl") && err.contains("1 items"),
            "{err}"
        );
        std::fs::write(
            d.join(ITEMS_FILE),
            "{\"id\":\"a\",\"path\":\"a\"}\nnot json\n",
        )
        .unwrap();
        let err = read_items(&d.join(ITEMS_FILE)).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
    }
}
