//! The index backend boundary. The service, `unisight search` and the scale-out tools talk to a
//! [`Backend`]: search a batch of codes (with optional float re-ranking), get an item by key,
//! add, remove, count and describe. Two implementations: [`Embedded`], the unisight index in
//! this process (the default), and the Milvus backend of the `unisight-milvus` crate. Which one
//! a service uses is configuration (`--index DIR` or `--index milvus://HOST:PORT/COLLECTION`),
//! never a code change, and this crate links neither the index's engine choices nor any client.
#![deny(missing_docs)]

mod embedded;
mod error;

use serde::Serialize;

pub use embedded::Embedded;
pub use error::{Error, Result};
pub use unisight_index::{IvfSettings, Query, Rerank, RerankRequest};

/// One result of a search, resolved to the item's key and path.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    /// External key.
    pub key: String,
    /// Path or URL of the item's image.
    pub path: String,
    /// Hamming distance to the query's code.
    pub distance: u32,
    /// Re-ranking score (cosine or asymmetric inner product), when re-ranked.
    pub score: Option<f32>,
}

/// An item as a backend stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredItem {
    /// External key.
    pub key: String,
    /// Path or URL of the item's image.
    pub path: String,
    /// Packed code (`numpy.packbits` order).
    pub code: Vec<u8>,
    /// Float embedding, when the backend keeps floats.
    pub floats: Option<Vec<f32>>,
}

/// An item to add (the same as the embedded index takes).
pub use unisight_index::NewItem;

/// What every item of a backend looks like: fixed when it is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Shape {
    /// Code width in bits.
    pub bits: usize,
    /// Dimension of the kept float vectors (`None`: no floats, float re-ranking is refused).
    pub float_dim: Option<usize>,
}

impl Shape {
    /// The re-ranking a query with (`has_float`) or without its float embedding gets on a
    /// backend of this shape: the one policy every backend and caller uses
    /// ([`RerankRequest::resolve`]).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] as [`RerankRequest::resolve`] says.
    pub fn rerank_for(&self, request: RerankRequest, has_float: bool) -> Result<Rerank> {
        request
            .resolve(self.float_dim.is_some(), has_float)
            .map_err(Error::from)
    }
}

/// What a backend is and holds now, for readiness, logs and `unisight index stats`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Description {
    /// `embedded` or `milvus`.
    pub kind: &'static str,
    /// Folder or URL it serves.
    pub location: String,
    /// Code width and floats.
    pub shape: Shape,
    /// Live items.
    pub items: usize,
    /// Bytes the index takes on disk, when the backend knows.
    pub bytes: Option<u64>,
    /// How a search runs: `exact`, `ivf` (lists and probes) or the server's index type.
    pub search: SearchKind,
}

/// How a backend's searches run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SearchKind {
    /// Every code is compared (the exact answer).
    Exact,
    /// An inverted file: the `probes` of `lists` lists nearest to the query are scanned.
    Ivf {
        /// Lists.
        lists: usize,
        /// Lists scanned per query.
        probes: usize,
    },
}

/// A searchable, changeable set of binary codes. Every method may block (a remote backend waits
/// on its server, within its own deadline); none may hang: a server that cannot be reached is
/// [`Error::Unavailable`].
pub trait Backend: Send + Sync {
    /// Code width and floats; fixed while the backend is open, known without I/O.
    fn shape(&self) -> Shape;

    /// What the backend is and how many items it holds now.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when its store cannot be reached or read.
    fn describe(&self) -> Result<Description>;

    /// Live items.
    ///
    /// # Errors
    /// As [`Backend::describe`].
    fn count(&self) -> Result<usize> {
        Ok(self.describe()?.items)
    }

    /// Top-k of each query: the `k * rerank_factor` nearest by Hamming distance re-scored as
    /// each query's mode says (or the `k` nearest without re-ranking), best first. A scan may
    /// be split over `threads` where the backend scans in this process.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a query that does not fit the backend (code width, float
    /// dimension, re-ranking it cannot do); nothing is answered then.
    fn search(
        &self,
        queries: &[Query<'_>],
        rerank_factor: usize,
        threads: usize,
    ) -> Result<Vec<Vec<Hit>>>;

    /// The item with this key, code and floats included.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the store cannot be read.
    fn get(&self, key: &str) -> Result<Option<StoredItem>>;

    /// Adds items, durable before this returns; a key already present (or given twice) is
    /// [`Error::DuplicateKey`] and nothing is added.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a code or float vector of the wrong size,
    /// [`Error::ReadOnly`] on a backend opened for reading.
    fn add(&self, items: &[NewItem<'_>]) -> Result<()>;

    /// Removes the items with these keys, durable before this returns; returns how many were
    /// there (unknown keys are skipped).
    ///
    /// # Errors
    /// As [`Backend::add`].
    fn remove(&self, keys: &[&str]) -> Result<usize>;
}
