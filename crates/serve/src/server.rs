//! The listener: HTTP/1.1 connections under three limits a client cannot lift: a deadline for
//! each request's headers (which is also how long an idle keep-alive connection may wait for its
//! next request: hyper reads the next head under the same timer), a deadline for the whole
//! request with its body ([`crate::layers`]), and a cap on open connections (more wait in the
//! kernel's backlog, unaccepted). Ctrl-C (or the caller's signal) stops accepting and lets open
//! requests finish for up to [`DRAIN`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;

use crate::app::{router, AppState};

/// How long a stopping service waits for open requests.
pub const DRAIN: Duration = Duration::from_secs(10);

/// Serves `state` on `addr` until Ctrl-C; calls `ready` with the bound address (port 0 picks a
/// free one) before accepting requests.
///
/// # Errors
/// Binding fails.
pub async fn serve(
    addr: SocketAddr,
    state: AppState,
    ready: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    serve_until(addr, state, ready, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}

/// [`serve`] until `stop` completes.
///
/// # Errors
/// Binding fails.
pub async fn serve_until(
    addr: SocketAddr,
    state: AppState,
    ready: impl FnOnce(SocketAddr),
    stop: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    ready(listener.local_addr()?);
    let header_timeout = state.config.header_timeout;
    let max_connections = state.config.max_connections.max(1);
    let app = router(Arc::new(state));
    let open = Arc::new(Semaphore::new(max_connections));
    let (stopping, stopped) = watch::channel(false);
    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            p = open.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            () = &mut stop => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(connection) => connection,
                Err(e) => {
                    // out of file descriptors and the like: wait instead of spinning
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        // every request knows its peer (the per-client rate limit's key)
        let app = app.clone();
        let service = service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            app.clone().oneshot(request)
        });
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = stopped.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    let _ = stopping.send(true);
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(DRAIN, open.acquire_many(all)).await;
    Ok(())
}

/// [`serve`] on a runtime of its own, for callers that are not async.
///
/// # Errors
/// Building the runtime or binding fails.
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
