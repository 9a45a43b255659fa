//! Shared vocabulary of unisight.
//!
//! Every other crate speaks in these terms:
//! - [`code`]: binary codes, the sign bits of an embedding packed exactly as
//!   `numpy.packbits(x > 0, axis=1)`, so users can hand them to FAISS as they are;
//! - [`ModelSpec`]: what a model expects as input (architecture, size, scaling) and what it emits;
//! - [`Embedder`]: the one trait that turns preprocessed pixels into embeddings, implemented by
//!   ONNX Runtime (`unisight-embed`) and burn (`unisight-model`);
//! - [`atomic`]: the temp-file, fsync, rename, fsync-dir helper every writer uses;
//! - [`artifacts`]: the embedding folder (`embeddings.npy`, `codes.npy`, `items.jsonl`, `meta.json`);
//! - [`progress`]: long work's progress, a bar on a terminal and a line every few seconds elsewhere;
//! - [`shard`]: a catalog split over machines, and the check before the shards are merged.
//!
//! ```
//! let code = unisight_core::code::pack_signs(&[0.5, -1.0, 0.0, 2.0, 1.0, -3.0, 4.0, 0.1]);
//! assert_eq!(code, vec![0b1001_1011]);
//! ```
#![deny(missing_docs)]

pub mod artifacts;
pub mod atomic;
pub mod code;
mod embedder;
mod error;
mod flip;
pub mod progress;
pub mod shard;
mod spec;
pub mod testing;

pub use embedder::{Embedder, Embeddings, ImageEmbedding};
pub use error::{Error, Result};
pub use flip::FlipAveraged;
pub use spec::{Architecture, ModelSpec, Preprocess, Projection, FEATURE_DIM};
