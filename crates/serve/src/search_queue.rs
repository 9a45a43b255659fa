//! The search thread. Every search of the service (by image and by item) is queued here; the
//! thread takes whatever is waiting, up to a batch, and answers it with one call of the arm's
//! backend ([`Backend::search`]: one pass over the codes of the embedded index, one request to
//! a Milvus server). Alone, a query's scan is split over the configured
//! threads for latency; under load, concurrent queries share passes, so a scan of a large index
//! costs each of them a fraction of a pass instead of a whole one. While images are being
//! embedded the cores belong to the model: a scan split over threads then only preempts it, so
//! the scan stays on the search thread alone.

use std::sync::Arc;

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use tokio::sync::oneshot;
use unisight_backend::{Backend, Hit, Query, Rerank};

use crate::pool::InFlight;

/// A search to run.
#[derive(Debug)]
pub struct SearchJob {
    /// Packed query code.
    pub code: Vec<u8>,
    /// The query's float embedding, for re-ranking.
    pub float: Option<Vec<f32>>,
    /// Results wanted.
    pub k: usize,
    /// Re-ranking of the Hamming shortlist.
    pub mode: Rerank,
}

/// Why a search produced no results: the backend's error (a query that does not fit the
/// index is [`unisight_backend::Error::InvalidInput`], a server out of reach
/// [`unisight_backend::Error::Unavailable`]).
pub type SearchError = unisight_backend::Error;

type Reply = oneshot::Sender<Result<Vec<Hit>, SearchError>>;

/// The queue was full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

/// Handle of the search thread.
pub struct SearchQueue {
    sender: Sender<(SearchJob, Reply)>,
}

impl SearchQueue {
    /// Starts the thread over `backend`: at most `queue` searches wait, at most `max_batch` share
    /// a pass, and each pass is split over `threads` unless `embedding` (images queued or being
    /// embedded, [`crate::pool::EmbedPool::in_flight`]) is above zero.
    pub fn start(
        backend: Arc<dyn Backend>,
        queue: usize,
        max_batch: usize,
        threads: usize,
        rerank_factor: usize,
        embedding: InFlight,
    ) -> Self {
        let (sender, receiver) = bounded(queue.max(1));
        std::thread::Builder::new()
            .name("search".into())
            .spawn(move || {
                let passes = Passes {
                    max_batch: max_batch.max(1),
                    threads: threads.max(1),
                    rerank_factor,
                    embedding,
                };
                serve_searches(backend.as_ref(), &receiver, &passes);
            })
            .expect("spawn the search thread");
        SearchQueue { sender }
    }

    /// Searches waiting for the search thread.
    pub fn queued(&self) -> usize {
        self.sender.len()
    }

    /// Queues a search; the receiver yields its results.
    ///
    /// # Errors
    /// [`Busy`] when the queue is full.
    pub fn submit(
        &self,
        job: SearchJob,
    ) -> Result<oneshot::Receiver<Result<Vec<Hit>, SearchError>>, Busy> {
        let (reply, receiver) = oneshot::channel();
        match self.sender.try_send((job, reply)) {
            Ok(()) => Ok(receiver),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => Err(Busy),
        }
    }
}

/// How the search thread runs its passes.
struct Passes {
    max_batch: usize,
    threads: usize,
    rerank_factor: usize,
    embedding: InFlight,
}

fn serve_searches(backend: &dyn Backend, receiver: &Receiver<(SearchJob, Reply)>, passes: &Passes) {
    let rerank_factor = passes.rerank_factor;
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        while batch.len() < passes.max_batch {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let threads = if passes.embedding.get() > 0 {
            1
        } else {
            passes.threads
        };
        let queries: Vec<Query> = batch.iter().map(|(job, _)| query_of(job)).collect();
        let answers: Vec<Result<Vec<Hit>, SearchError>> =
            match backend.search(&queries, rerank_factor, threads) {
                Ok(results) => results.into_iter().map(Ok).collect(),
                // one bad query must not fail the others: answer each on its own (a backend
                // out of reach fails each of them again, within its deadline)
                Err(SearchError::InvalidInput(_)) if queries.len() > 1 => queries
                    .iter()
                    .map(|q| {
                        backend
                            .search(std::slice::from_ref(q), rerank_factor, threads)
                            .map(|mut r| r.pop().unwrap_or_default())
                    })
                    .collect(),
                Err(e) => (0..queries.len()).map(|_| Err(same_error(&e))).collect(),
            };
        drop(queries);
        for ((_, reply), answer) in batch.into_iter().zip(answers) {
            // the requester may have timed out and gone: nothing to do then
            let _ = reply.send(answer);
        }
    }
}

fn query_of(job: &SearchJob) -> Query<'_> {
    Query {
        code: &job.code,
        float: job.float.as_deref(),
        k: job.k,
        mode: job.mode,
    }
}

/// The error of a batch, for each of its searches: same kind, same reason.
fn same_error(e: &SearchError) -> SearchError {
    match e {
        SearchError::InvalidInput(why) => SearchError::InvalidInput(why.clone()),
        SearchError::Unavailable(why) => SearchError::Unavailable(why.clone()),
        SearchError::Busy => SearchError::Busy,
        other => SearchError::Server(other.to_string()),
    }
}
