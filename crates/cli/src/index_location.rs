//! Where an index lives, as `--index` and `index build --out` take it: a folder (the embedded
//! unisight index, the default) or `milvus://HOST:PORT/COLLECTION[?nprobe=N&timeout_s=S]` (a
//! collection of a Milvus server). Either is opened as one [`Backend`], so `serve`, `search` and
//! `index add/remove/stats` work the same on both: the choice is configuration, not code.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use unisight_backend::{Backend, Embedded, IvfSettings};
use unisight_milvus::{Milvus, MilvusUrl, ServerIndex};

/// `--server-index`: `flat` or `ivf:N` (N lists).
///
/// # Errors
/// Anything else, with what is expected.
pub fn parse_server_index(text: &str) -> Result<ServerIndex, String> {
    match text.split_once(':') {
        None if text == "flat" => Ok(ServerIndex::Flat),
        Some(("ivf", lists)) => match lists.parse::<usize>() {
            Ok(nlist) if (1..=65_536).contains(&nlist) => Ok(ServerIndex::Ivf { nlist }),
            _ => Err(format!(
                "`{lists}` lists: expected a number from 1 to 65536"
            )),
        },
        _ => Err(format!("`{text}`: expected `flat` or `ivf:N`")),
    }
}

/// An index folder or a Milvus collection.
#[derive(Debug, Clone)]
pub enum IndexLocation {
    /// A unisight index folder.
    Folder(PathBuf),
    /// A collection (or alias) of a Milvus server.
    Milvus(MilvusUrl),
}

impl FromStr for IndexLocation {
    type Err = unisight_milvus::BadUrl;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if MilvusUrl::is_milvus(text) {
            Ok(IndexLocation::Milvus(text.parse()?))
        } else {
            Ok(IndexLocation::Folder(PathBuf::from(text)))
        }
    }
}

impl fmt::Display for IndexLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IndexLocation::Folder(dir) => write!(f, "{}", dir.display()),
            IndexLocation::Milvus(url) => write!(f, "{url}"),
        }
    }
}

impl IndexLocation {
    /// Opens the index, for writing when `writable`, with an inverted file of `ivf` lists and
    /// probes built at open (an index folder only: a Milvus collection's inverted file is made
    /// by `index build --server-index ivf:N` and probed by the URL's `nprobe`).
    ///
    /// # Errors
    /// The folder or collection cannot be opened (missing, another writer, a server out of
    /// reach, a collection unisight did not make), or `ivf` is asked of a Milvus collection.
    pub fn open(&self, writable: bool, ivf: Option<IvfSettings>) -> Result<Arc<dyn Backend>> {
        let backend: Arc<dyn Backend> = match self {
            IndexLocation::Folder(dir) => {
                let start = std::time::Instant::now();
                let backend = Embedded::open(dir, writable, ivf)
                    .with_context(|| dir.display().to_string())?;
                if let Some(ivf) = ivf {
                    eprintln!(
                        "{}: inverted file of {} lists ({} probed per query, approximate) built \
                         in {:.1} s",
                        dir.display(),
                        ivf.lists,
                        ivf.probes,
                        start.elapsed().as_secs_f64()
                    );
                }
                Arc::new(backend)
            }
            IndexLocation::Milvus(url) => {
                if ivf.is_some() {
                    bail!(
                        "{url}: --ivf-lists applies to an index folder; a Milvus collection's \
                         inverted file is chosen when it is built (index build --server-index \
                         ivf:N) and probed by the address's ?nprobe=N"
                    );
                }
                Arc::new(Milvus::open(url, writable).with_context(|| url.to_string())?)
            }
        };
        Ok(backend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_location_is_a_folder_unless_it_is_a_milvus_address() {
        assert!(matches!(
            "out/index".parse::<IndexLocation>(),
            Ok(IndexLocation::Folder(p)) if p.as_path() == std::path::Path::new("out/index")
        ));
        let Ok(IndexLocation::Milvus(url)) =
            "milvus://127.0.0.1:19530/codes?nprobe=4".parse::<IndexLocation>()
        else {
            panic!("a Milvus address");
        };
        assert_eq!((url.port, url.nprobe), (19530, Some(4)));
        assert!("milvus://127.0.0.1:19530/"
            .parse::<IndexLocation>()
            .is_err());
    }

    #[test]
    fn server_indexes_are_flat_or_ivf_with_lists() {
        assert_eq!(parse_server_index("flat"), Ok(ServerIndex::Flat));
        assert_eq!(
            parse_server_index("ivf:64"),
            Ok(ServerIndex::Ivf { nlist: 64 })
        );
        for bad in ["ivf", "ivf:0", "ivf:x", "hnsw", "flat:2"] {
            assert!(parse_server_index(bad).is_err(), "{bad}");
        }
    }
}
