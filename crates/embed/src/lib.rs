//! Bulk embedding on ONNX Runtime.
//!
//! - [`OrtEmbedder`]: the [`unisight_core::Embedder`] on an exported ONNX graph, loading
//!   `libonnxruntime.so` at run time (the library of the PyPI `onnxruntime` wheel);
//! - [`run`]: the `unisight embed` job: decode in parallel with inference, batch, write the
//!   embedding folder (`embeddings.npy`, `codes.npy`, `items.jsonl`, `meta.json`), resuming a
//!   killed run chunk by chunk and skipping bad images with a reason.
#![deny(missing_docs)]

mod error;
mod ort_embedder;
mod pipeline;

pub use error::{Error, Result};
pub use ort_embedder::{init_onnxruntime, OrtEmbedder};
pub use pipeline::{run, EmbedOptions};
pub use unisight_core::artifacts::{EmbedMeta, Failure};
