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
/// # Errors
/// [`Error::Malformed`] for a wrong dtype or rank, I/O errors naming the file.
pub fn read_npy<T>(path: &Path) -> Result<(usize, usize, Vec<T>)>
where
    T: npyz::Deserialize,
{
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let npy = npyz::NpyFile::new(BufReader::new(file))
        .map_err(|e| Error::malformed(path, format!("not a .npy file: {e}")))?;
    let shape = npy.shape().to_vec();
    if shape.len() != 2 {
        return Err(Error::malformed(
            path,
            format!("expected a 2-d array, found shape {shape:?}"),
        ));
    }
    let dtype = npy.dtype();
    let data: Vec<T> = npy
        .into_vec()
        .map_err(|e| Error::malformed(path, format!("dtype {dtype:?}: {e}")))?;
    Ok((shape[0] as usize, shape[1] as usize, data))
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
        let line = line.map_err(|e| Error::io(path, e))?;
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
