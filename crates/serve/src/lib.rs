//! The visual search service: an HTTP JSON API (search by image or by item, embed, add and
//! remove with a bearer token, health, readiness, Prometheus metrics, OpenAPI) and a web page,
//! over the binary index, with image decoding and embedding on a bounded worker pool.
//!
//! The service depends on the [`unisight_core::Embedder`] trait only; the CLI hands it ONNX
//! Runtime sessions. With an experiment it serves several arms (model + index), splits users
//! between them by a stable hash, logs what is shown and what users do in the format training
//! reads, and runs side-by-side rater studies.
#![deny(missing_docs)]

mod admin;
mod app;
mod engagement;
mod events;
mod extract;
mod images;
mod items;
mod layers;
mod metrics;
mod openapi;
mod ops;
mod page;
pub mod pool;
mod search;
mod search_queue;
mod server;
pub mod study;

pub use app::{
    router, AppState, Arm, Reloader, ServiceConfig, DEFAULT_HEADER_TIMEOUT_S,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_REQUEST_DEADLINE_S, DEFAULT_TIMEOUT_S,
};
pub use engagement::DEFAULT_REMEMBER_BYTES;
pub use layers::HostCheck;
pub use server::{serve, serve_blocking, serve_until, DRAIN};
