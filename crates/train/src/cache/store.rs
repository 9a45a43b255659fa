//! The cache folder of one frozen front: every image's views computed by any run that used the
//! same front graph, augmentation settings and seed, wherever its task file listed the image.
//!
//! Images are stored in chunks, each `chunk-<crc>.bin` (float16 rows, little-endian, the views
//! of each image in turn) and then `chunk-<crc>.json` (its images, and the commit marker), both
//! written atomically and never changed after; the name is a checksum of the chunk's image ids,
//! so two runs writing the same chunk write the same bytes. An image is identified by its key
//! (which seeds its augmentation) and its file's bytes: a changed file is computed again, a
//! copied data set is not. A record with more views serves a request for fewer
//! (view 0, the plain crop, is the same in every record), so evaluation images reuse training
//! images' rows across runs. Chunk files are memory-mapped, not read into memory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use half::f16;
use memmap2::Mmap;
use serde::{Deserialize, Serialize};

use super::CacheEntry;
use crate::{Error, Result};

/// Version of the chunk records this build writes and reads.
const STORE_VERSION: u32 = 2;

/// One image of a chunk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct StoredImage {
    /// [`image_id`] of the image.
    pub id: String,
    /// Its key (for people reading the folder).
    pub key: String,
    /// Rows stored (views).
    pub views: usize,
}

#[derive(Serialize, Deserialize)]
struct ChunkRecord {
    version: u32,
    row_len: usize,
    images: Vec<StoredImage>,
}

/// Where one image's rows are.
#[derive(Debug, Clone, Copy)]
pub(super) struct Location {
    /// Index into [`Store::maps`].
    pub chunk: usize,
    /// Its first row in that chunk.
    pub first_row: usize,
    /// Rows stored.
    pub views: usize,
}

/// The committed chunks of one cache folder.
#[derive(Debug)]
pub(super) struct Store {
    dir: PathBuf,
    row_len: usize,
    /// Each chunk's data file.
    bins: Vec<PathBuf>,
    /// Chunk files a run reads, memory-mapped ([`Store::map`]); the folder's other chunks
    /// (images of other task files) are never opened.
    maps: Vec<Option<Mmap>>,
    found: HashMap<String, Location>,
}

/// An image's identity in the cache: a 128-bit hash of its key and its file's bytes, so a
/// file changed in place is a new image, and a data set copied or moved elsewhere (new paths,
/// new modification times) still finds its rows. `None` when the file cannot be read (it is then
/// decoded, fails, and is reported).
pub(super) fn image_id(entry: &CacheEntry) -> Option<String> {
    let bytes = std::fs::read(&entry.file).ok()?;
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(&(entry.key.len() as u64).to_le_bytes());
    hasher.update(entry.key.as_bytes());
    hasher.update(&bytes);
    Some(format!("{:032x}", hasher.digest128()))
}

impl Store {
    /// Opens (creating) `dir` and indexes its committed chunks.
    ///
    /// # Errors
    /// I/O errors naming the path; a chunk record that cannot be parsed or whose rows do not fit
    /// its data file (written by something else: delete the folder).
    pub fn open(dir: &Path, row_len: usize) -> Result<Store> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut store = Store {
            dir: dir.to_path_buf(),
            row_len,
            bins: Vec::new(),
            maps: Vec::new(),
            found: HashMap::new(),
        };
        let mut records: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|x| x == "json")
                    && p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("chunk-"))
            })
            .collect();
        records.sort();
        for record in records {
            store.add_chunk(&record)?;
        }
        Ok(store)
    }

    /// Where `id`'s rows are, when an image with at least `views` views is stored.
    pub fn find(&self, id: &str, views: usize) -> Option<Location> {
        self.found.get(id).copied().filter(|l| l.views >= views)
    }

    /// Maps the data files of `chunks` (the ones a run's images are in).
    ///
    /// # Errors
    /// I/O errors naming the file.
    pub fn map(&mut self, chunks: impl IntoIterator<Item = usize>) -> Result<()> {
        for chunk in chunks {
            if self.maps[chunk].is_none() {
                let bin = &self.bins[chunk];
                let file = std::fs::File::open(bin).map_err(|e| Error::io(bin, e))?;
                // SAFETY: chunk files are written once, atomically, and never changed after
                let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(bin, e))?;
                self.maps[chunk] = Some(map);
            }
        }
        Ok(())
    }

    /// Row `row` of chunk `chunk` (mapped by [`Store::map`]).
    pub fn row(&self, chunk: usize, row: usize) -> &[f16] {
        let map = self.maps[chunk]
            .as_ref()
            .expect("the chunks of located rows are mapped");
        let values: &[f16] = bytemuck::cast_slice(&map[..]);
        &values[row * self.row_len..(row + 1) * self.row_len]
    }

    /// Paths of a chunk holding `images` (named by their ids).
    pub fn chunk_paths(&self, images: &[StoredImage]) -> (PathBuf, PathBuf) {
        let ids: String = images.iter().map(|i| i.id.as_str()).collect();
        let name = format!("chunk-{:08x}", crc32c::crc32c(ids.as_bytes()));
        (
            self.dir.join(format!("{name}.bin")),
            self.dir.join(format!("{name}.json")),
        )
    }

    /// Writes a chunk (data, then its record) and indexes it.
    ///
    /// # Errors
    /// I/O errors naming the file.
    pub fn commit(&mut self, images: Vec<StoredImage>, rows: &[f16]) -> Result<()> {
        let (bin, json) = self.chunk_paths(&images);
        unisight_core::atomic::atomic_write_bytes(&bin, bytemuck::cast_slice(rows))?;
        let record = ChunkRecord {
            version: STORE_VERSION,
            row_len: self.row_len,
            images,
        };
        let bytes = serde_json::to_vec(&record).expect("a chunk record serialises");
        unisight_core::atomic::atomic_write_bytes(&json, &bytes)?;
        self.add_chunk(&json)
    }

    fn add_chunk(&mut self, json: &Path) -> Result<()> {
        let bad = |what: String| Error::Resume {
            path: json.to_path_buf(),
            what: format!(
                "{what} (a cache chunk not written by this version: delete the cache folder {})",
                self.dir.display()
            ),
        };
        let bytes = std::fs::read(json).map_err(|e| Error::io(json, e))?;
        let record: ChunkRecord = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        if record.version != STORE_VERSION || record.row_len != self.row_len {
            return Err(bad(format!(
                "version {} with rows of {}, expected version {STORE_VERSION} with rows of {}",
                record.version, record.row_len, self.row_len
            )));
        }
        let rows: usize = record.images.iter().map(|i| i.views).sum();
        let bin = json.with_extension("bin");
        let len = if rows == 0 {
            0
        } else {
            std::fs::metadata(&bin)
                .map_err(|e| Error::io(&bin, e))?
                .len() as usize
        };
        if len != rows * self.row_len * 2 {
            return Err(bad(format!(
                "{} holds {len} bytes, its record lists {rows} rows of {} float16 values",
                bin.display(),
                self.row_len
            )));
        }
        let chunk = self.bins.len();
        self.bins.push(bin);
        self.maps.push(None);
        let mut first_row = 0;
        for image in record.images {
            let location = Location {
                chunk,
                first_row,
                views: image.views,
            };
            first_row += image.views;
            let better = self
                .found
                .get(&image.id)
                .is_none_or(|old| old.views < image.views);
            if better {
                self.found.insert(image.id, location);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(dir: &Path, name: &str) -> CacheEntry {
        let file = dir.join(name);
        std::fs::write(&file, name).unwrap();
        CacheEntry {
            key: format!("set/{name}"),
            file,
            views: 2,
        }
    }

    #[test]
    fn committed_chunks_are_found_again_and_serve_fewer_views() {
        let tmp = tempfile::tempdir().unwrap();
        let a = entry(tmp.path(), "a.jpg");
        let b = entry(tmp.path(), "b.jpg");
        let (ia, ib) = (image_id(&a).unwrap(), image_id(&b).unwrap());
        let dir = tmp.path().join("cache");
        let mut store = Store::open(&dir, 3).unwrap();
        let rows: Vec<f16> = (0..9).map(|v| f16::from_f32(v as f32)).collect();
        store
            .commit(
                vec![
                    StoredImage {
                        id: ia.clone(),
                        key: a.key.clone(),
                        views: 2,
                    },
                    StoredImage {
                        id: ib.clone(),
                        key: b.key.clone(),
                        views: 1,
                    },
                ],
                &rows,
            )
            .unwrap();
        let mut reopened = Store::open(&dir, 3).unwrap();
        let la = reopened.find(&ia, 1).unwrap();
        reopened.map([la.chunk]).unwrap();
        assert_eq!(reopened.row(la.chunk, la.first_row + 1)[0].to_f32(), 3.0);
        let lb = reopened.find(&ib, 1).unwrap();
        assert_eq!(reopened.row(lb.chunk, lb.first_row)[2].to_f32(), 8.0);
        // b has one view: a request for two is not served from it
        assert!(reopened.find(&ib, 2).is_none());
        // another row length is another front: refused, naming the record
        let e = Store::open(&dir, 4).unwrap_err().to_string();
        assert!(e.contains("chunk-") && e.contains("rows of 3"), "{e}");
    }

    #[test]
    fn a_changed_file_is_a_new_image_and_a_copied_one_is_not() {
        let tmp = tempfile::tempdir().unwrap();
        let a = entry(tmp.path(), "a.jpg");
        let before = image_id(&a).unwrap();
        // the same bytes elsewhere, written later (a data set copied to another disk)
        let copy_dir = tmp.path().join("copy");
        std::fs::create_dir(&copy_dir).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::copy(&a.file, copy_dir.join("a.jpg")).unwrap();
        let copied = CacheEntry {
            file: copy_dir.join("a.jpg"),
            ..a.clone()
        };
        assert_eq!(image_id(&copied).unwrap(), before);
        std::fs::write(&a.file, "another photo").unwrap();
        assert_ne!(image_id(&a).unwrap(), before);
        let renamed = CacheEntry {
            key: "other/a.jpg".into(),
            ..a.clone()
        };
        assert_ne!(image_id(&renamed), image_id(&a));
        assert!(image_id(&entry(tmp.path(), "c.jpg")).is_some());
        let missing = CacheEntry {
            file: tmp.path().join("missing.jpg"),
            ..a
        };
        assert!(image_id(&missing).is_none());
    }
}
