//! Image inputs of unisight.
//!
//! - [`sources`]: what to embed: a folder (recursively), or a CSV / JSONL manifest of paths with
//!   optional ids and labels. Manifest paths are resolved inside their root and may not escape it;
//!   a malformed line is reported with its number.
//! - [`datasets`]: labelled datasets in their own layouts (Grocery Store, ImageFolder, manifests).
//! - [`fashion_mnist`]: Debian's Fashion-MNIST package as an ImageFolder data set.
//! - [`engagement`]: engagement logs (query, result, click/save) and the rule that makes them classes.
//! - [`decode`]: guarded decoding of JPEG, PNG and WebP with EXIF orientation applied; sizes are
//!   checked from the header before any pixel buffer is allocated.
//! - [`preprocess`]: centre square crop, resize, scale, NCHW float32, as the model spec says.
#![deny(missing_docs)]

pub mod datasets;
pub mod decode;
mod error;
pub mod fashion_mnist;
pub mod preprocess;
pub mod sources;

pub use error::{Error, Result};
