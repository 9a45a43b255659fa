//! The embedded backend: the unisight index in this process, behind a read-write lock (searches
//! share it, a mutation takes it alone), with its own key map kept current on add and remove.

use std::path::Path;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use unisight_index::{Index, IvfSettings, Query, ScanOptions};

use crate::{Backend, Description, Error, Hit, NewItem, Result, SearchKind, Shape, StoredItem};

/// Seed of the inverted file's sample, so that a restarted service has the same lists.
const IVF_SEED: u64 = 1;

/// The unisight index as a [`Backend`].
pub struct Embedded {
    index: RwLock<Index>,
    shape: Shape,
    writable: bool,
}

impl Embedded {
    /// Opens the index folder `dir`, for writing (holding its writer lock) when `writable`,
    /// with an inverted file of `ivf` lists and probes when asked (built from the codes now:
    /// approximate search, nearly as fast at 1M items as at 10k), and its key map loaded before
    /// the first request needs it.
    ///
    /// # Errors
    /// The folder holds no readable index, another process writes it, or the inverted file
    /// cannot be built (an empty index).
    pub fn open(dir: &Path, writable: bool, ivf: Option<IvfSettings>) -> Result<Self> {
        let mut index = if writable {
            Index::open_writable(dir)?
        } else {
            Index::open(dir)?
        };
        if let Some(ivf) = ivf {
            index.build_ivf(ivf.lists, ivf.probes, IVF_SEED)?;
        }
        index.load_keys()?;
        Ok(Self::new(index, writable))
    }

    /// Wraps an open index; `writable` must say whether it was opened for writing.
    pub fn new(index: Index, writable: bool) -> Self {
        let layout = index.layout();
        Embedded {
            shape: Shape {
                bits: layout.bits,
                float_dim: layout.floats.map(|(dim, _)| dim),
            },
            index: RwLock::new(index),
            writable,
        }
    }

    fn read(&self) -> Result<RwLockReadGuard<'_, Index>> {
        // a writer that panicked mid-change leaves the index unusable until a restart
        self.index
            .read()
            .map_err(|_| Error::Unavailable("the index lock is poisoned".into()))
    }

    fn write(&self) -> Result<RwLockWriteGuard<'_, Index>> {
        if !self.writable {
            return Err(Error::ReadOnly);
        }
        self.index
            .write()
            .map_err(|_| Error::Unavailable("the index lock is poisoned".into()))
    }
}

impl Backend for Embedded {
    fn shape(&self) -> Shape {
        self.shape
    }

    fn describe(&self) -> Result<Description> {
        let index = self.read()?;
        if !index.is_on_disk() {
            return Err(Error::Unavailable(format!(
                "{}: the index folder is gone",
                index.dir().display()
            )));
        }
        Ok(Description {
            kind: "embedded",
            location: index.dir().display().to_string(),
            shape: self.shape,
            items: index.len(),
            bytes: Some(index.stats().file_bytes),
            search: match index.ivf_settings() {
                Some(s) => SearchKind::Ivf {
                    lists: s.lists,
                    probes: s.probes,
                },
                None => SearchKind::Exact,
            },
        })
    }

    fn count(&self) -> Result<usize> {
        Ok(self.read()?.len())
    }

    fn search(
        &self,
        queries: &[Query<'_>],
        rerank_factor: usize,
        threads: usize,
    ) -> Result<Vec<Vec<Hit>>> {
        let index = self.read()?;
        let options = ScanOptions {
            threads: threads.max(1),
            ..ScanOptions::default()
        };
        let scored = index.search_reranked_batch(queries, rerank_factor, &options)?;
        scored
            .into_iter()
            .map(|hits| {
                hits.into_iter()
                    .map(|s| {
                        let item = index.item(s.id)?;
                        Ok(Hit {
                            key: item.key,
                            path: item.path,
                            distance: s.distance,
                            score: s.score,
                        })
                    })
                    .collect()
            })
            .collect()
    }

    fn get(&self, key: &str) -> Result<Option<StoredItem>> {
        let index = self.read()?;
        let Some(id) = index.id_of_key(key)? else {
            return Ok(None);
        };
        let item = index.item(id)?;
        Ok(Some(StoredItem {
            key: item.key,
            path: item.path,
            code: index.code(id)?.to_vec(),
            floats: index.floats(id)?,
        }))
    }

    fn add(&self, items: &[NewItem<'_>]) -> Result<()> {
        self.write()?.add(items)?;
        Ok(())
    }

    fn remove(&self, keys: &[&str]) -> Result<usize> {
        let mut index = self.write()?;
        // looked up under the write lock, so a concurrent removal is not removed twice
        let mut ids = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(id) = index.id_of_key(key)? {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Ok(0);
        }
        Ok(index.remove(&ids)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use unisight_index::{IndexConfig, Rerank};

    fn index(dir: &Path) -> Embedded {
        let mut index = Index::create(
            dir,
            IndexConfig {
                bits: 64,
                floats: None,
                keys: true,
            },
        )
        .unwrap();
        index
            .add(&[
                NewItem {
                    key: "a",
                    path: "a.jpg",
                    code: &[0xff; 8],
                    floats: None,
                },
                NewItem {
                    key: "b",
                    path: "b.jpg",
                    code: &[0x0f; 8],
                    floats: None,
                },
            ])
            .unwrap();
        Embedded::new(index, true)
    }

    #[test]
    fn searches_gets_adds_and_removes_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let backend = index(&dir.path().join("i"));
        let query = Query {
            code: &[0x0f; 8],
            float: None,
            k: 2,
            mode: Rerank::None,
        };
        let hits = backend.search(&[query], 4, 1).unwrap();
        assert_eq!(hits[0][0].key, "b");
        assert_eq!(hits[0][1].distance, 32);
        assert_eq!(backend.get("a").unwrap().unwrap().code, vec![0xff; 8]);
        assert!(backend.get("c").unwrap().is_none());
        let dup = NewItem {
            key: "a",
            path: "x",
            code: &[0; 8],
            floats: None,
        };
        assert!(matches!(backend.add(&[dup]), Err(Error::DuplicateKey(_))));
        assert_eq!(backend.remove(&["a", "a", "zz"]).unwrap(), 1);
        assert_eq!(backend.count().unwrap(), 1);
        assert_eq!(backend.describe().unwrap().items, 1);
    }

    #[test]
    fn a_read_only_index_refuses_changes() {
        let dir = tempfile::tempdir().unwrap();
        drop(index(&dir.path().join("i")));
        let backend = Embedded::open(&dir.path().join("i"), false, None).unwrap();
        assert!(matches!(backend.remove(&["a"]), Err(Error::ReadOnly)));
        assert_eq!(backend.count().unwrap(), 2);
    }
}
