//! The visual search service: an HTTP JSON API (search by image or by item, embed, add and
//! remove with a bearer token, health, readiness, Prometheus metrics, OpenAPI) and a web page,
//! over the binary index, with image decoding and embedding on a bounded worker pool.
//!
//! The service depends on the [`unisight_core::Embedder`] trait only; the CLI hands it ONNX
//! Runtime sessions. With an experiment it serves several arms (model + index), splits users
//! between them by a stable hash, logs what is shown and what users do in the format training
//! reads, and runs side-by-side rater studies.
#![deny(missing_docs)]

mod app;
mod engagement;
mod events;
mod images;
mod items;
mod metrics;
mod openapi;
mod ops;
mod page;
pub mod pool;
mod search;
mod search_queue;
pub mod study;

use std::net::SocketAddr;
use std::sync::Arc;

pub use app::{router, AppState, Arm, ServiceConfig};

/// Serves `state` on `addr` until Ctrl-C; calls `ready` with the bound address (port 0 picks a
/// free one) before accepting requests.
///
/// # Errors
/// Binding or serving fails.
pub async fn serve(
    addr: SocketAddr,
    state: AppState,
    ready: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    ready(listener.local_addr()?);
    axum::serve(listener, router(Arc::new(state)))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}

/// [`serve`] on a runtime of its own, for callers that are not async.
///
/// # Errors
/// Building the runtime, binding or serving fails.
pub fn serve_blocking(
    addr: SocketAddr,
    state: AppState,
    ready: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(addr, state, ready))
}
