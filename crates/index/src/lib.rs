//! The binary-code index of unisight.
//!
//! Binary codes (one sign bit per embedding dimension, packed as `numpy.packbits`) make a unified
//! embedding cheap: 32 bytes per image at 256 bits. This crate searches them exactly and fast,
//! re-ranks by float cosine or asymmetrically, offers an IVF for sub-linear search, and keeps
//! them on disk crash-safely. It depends on no ML stack.
//!
//! - [`kernels`]: popcount(xor) kernels with runtime CPU dispatch;
//! - [`scan`]: the blocked, multi-query, multi-threaded exact scan, and [`TopK`];
//! - [`Index`]: a directory of write-once [`Segment`]s under an atomically swapped manifest,
//!   with tombstones and compaction; the byte layout is in `FORMAT.md`;
//! - [`rerank`]: float and asymmetric re-scoring;
//! - [`ivf`]: an inverted file over binary codes (k-majority centroids), and [`recall`]: what it
//!   finds of the exact answer on a given index.
//!
//! ```
//! use unisight_index::{Index, IndexConfig, NewItem, ScanOptions};
//! let dir = tempfile::tempdir()?;
//! let mut index = Index::create(dir.path(), IndexConfig { bits: 64, floats: None, keys: true })?;
//! let ids = index.add(&[
//!     NewItem { key: "a", path: "a.jpg", code: &[0xff; 8], floats: None },
//!     NewItem { key: "b", path: "b.jpg", code: &[0x0f; 8], floats: None },
//! ])?;
//! let hits = index.search(&[0x0f; 8], 1, &ScanOptions::default())?;
//! assert_eq!(hits[0][0].id, ids[1]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod error;
mod index;
pub mod ivf;
pub mod kernels;
mod mmap;
pub mod recall;
pub mod rerank;
pub mod scan;
mod segment;
mod tombstones;
mod topk;

pub use error::{Error, Result};
pub use index::{
    Index, IndexConfig, Item, IvfSettings, NewItem, Query, Rerank, RerankRequest, Scored, Stats,
    MANIFEST_VERSION,
};
pub use kernels::Kernel;
pub use scan::ScanOptions;
pub use segment::{FloatKind, Layout, Segment, FORMAT_VERSION, OLDEST_SUPPORTED_VERSION};
pub use topk::{Hit, TopK};
