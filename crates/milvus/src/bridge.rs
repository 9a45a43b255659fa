//! The blocking face of the async Milvus client: every request runs on this backend's own
//! runtime, within a deadline, and its error becomes a [`unisight_backend::Error`] by what the
//! caller can do about it (a server that is down or restarting is `Unavailable`, never a hang).

use std::future::Future;
use std::time::Duration;

use milvus::v2::error::Error as ClientError;
use unisight_backend::Error;

/// A runtime of its own, so callers on any thread (a tokio worker of the service included)
/// can wait on the server without nesting runtimes.
pub(crate) struct Bridge {
    runtime: tokio::runtime::Runtime,
    timeout: Duration,
}

impl Bridge {
    pub(crate) fn new(timeout: Duration) -> Result<Self, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("milvus-client")
            .enable_all()
            .build()
            .map_err(|e| Error::Server(format!("cannot start the client's runtime: {e}")))?;
        Ok(Bridge { runtime, timeout })
    }

    /// Runs `request` on the runtime and waits for it, `what` naming it in errors.
    pub(crate) fn call<T, F>(&self, what: &str, request: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, ClientError>> + Send + 'static,
    {
        self.call_within(what, self.timeout, request)
    }

    /// [`Bridge::call`] with its own deadline (loading a collection takes longer than a search).
    pub(crate) fn call_within<T, F>(
        &self,
        what: &str,
        timeout: Duration,
        request: F,
    ) -> Result<T, Error>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, ClientError>> + Send + 'static,
    {
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        self.runtime.spawn(async move {
            let answer = tokio::time::timeout(timeout, request).await;
            let _ = sender.send(answer);
        });
        // the request's own timeout ends it; the margin covers a runtime slow to schedule it
        match receiver.recv_timeout(timeout + Duration::from_secs(1)) {
            Ok(Ok(answer)) => answer.map_err(|e| classify(what, e)),
            Ok(Err(_)) | Err(_) => Err(Error::Unavailable(format!(
                "{what}: no answer from the Milvus server within {:.1} s",
                timeout.as_secs_f64()
            ))),
        }
    }

    /// Runs `connect` on the runtime (the client's channel is bound to it).
    pub(crate) fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }
}

/// What a client error means to the caller.
pub(crate) fn classify(what: &str, error: ClientError) -> Error {
    match error {
        ClientError::RetryExhausted { source, .. } => classify(what, *source),
        ClientError::Grpc(status) => {
            use tonic::Code;
            match status.code() {
                Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => {
                    Error::Unavailable(format!("{what}: {}", status.message()))
                }
                _ => Error::Server(format!("{what}: {}", status.message())),
            }
        }
        ClientError::Timeout(why) => Error::Unavailable(format!("{what}: {why}")),
        ClientError::Server(e) if server_not_ready(e.reason()) => {
            Error::Unavailable(format!("{what}: {}", e.reason()))
        }
        ClientError::Validation(e) => Error::InvalidInput(format!("{what}: {e}")),
        e => Error::Server(format!("{what}: {e}")),
    }
}

/// Whether a server's refusal says it is starting, stopping or recovering (retry later) rather
/// than that the request is wrong.
fn server_not_ready(reason: &str) -> bool {
    let reason = reason.to_ascii_lowercase();
    [
        "not ready",
        "not healthy",
        "unhealthy",
        "unavailable",
        "not serving",
        "notserving",
        "not loaded",
        "no available",
        "stopping",
        "abnormal",
        "channel not available",
    ]
    .iter()
    .any(|s| reason.contains(s))
}
