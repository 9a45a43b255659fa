//! The search thread. Every search of the service (by image and by item) is queued here; the
//! thread takes whatever is waiting, up to a batch, and answers it with one pass over the codes
//! ([`Index::search_reranked_batch`]). Alone, a query's scan is split over the configured
//! threads for latency; under load, concurrent queries share passes, so a scan of a large index
//! costs each of them a fraction of a pass instead of a whole one. While images are being
//! embedded the cores belong to the model: a scan split over threads then only preempts it, so
//! the scan stays on the search thread alone.

use std::sync::{Arc, RwLock};

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use serde::Serialize;
use tokio::sync::oneshot;
use unisight_index::{Index, Query, Rerank, ScanOptions};

use crate::pool::InFlight;

/// One result as the API returns it.
#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    /// External key.
    pub key: String,
    /// Path or URL of the item's image.
    pub path: String,
    /// Hamming distance to the query's code.
    pub distance: u32,
    /// Re-ranking score (cosine), when re-ranked.
    pub score: Option<f32>,
}

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

/// Why a search produced no results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchError {
    /// The query does not fit the index (the reason says why).
    BadQuery(String),
    /// The index could not be read.
    Index(String),
}

type Reply = oneshot::Sender<Result<Vec<Hit>, SearchError>>;

/// The queue was full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

/// Handle of the search thread.
pub struct SearchQueue {
    sender: Sender<(SearchJob, Reply)>,
}

impl SearchQueue {
    /// Starts the thread over `index`: at most `queue` searches wait, at most `max_batch` share
    /// a pass, and each pass is split over `threads` unless `embedding` (images queued or being
    /// embedded, [`crate::pool::EmbedPool::in_flight`]) is above zero.
    pub fn start(
        index: Arc<RwLock<Index>>,
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
                serve_searches(&index, &receiver, &passes);
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

fn serve_searches(index: &RwLock<Index>, receiver: &Receiver<(SearchJob, Reply)>, passes: &Passes) {
    let rerank_factor = passes.rerank_factor;
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        while batch.len() < passes.max_batch {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // a writer that panicked leaves the index unusable: every search says so (and /readyz
        // answers 503) instead of the thread ending and the queue refusing as if merely busy
        let Ok(index) = index.read() else {
            for (_, reply) in batch {
                let _ = reply.send(Err(SearchError::Index("index lock poisoned".into())));
            }
            continue;
        };
        let options = &ScanOptions {
            threads: if passes.embedding.get() > 0 {
                1
            } else {
                passes.threads
            },
            ..ScanOptions::default()
        };
        let queries: Vec<Query> = batch.iter().map(|(job, _)| query_of(job)).collect();
        let answers = match index.search_reranked_batch(&queries, rerank_factor, options) {
            Ok(results) => results.into_iter().map(|r| resolve(&index, r)).collect(),
            // one bad query must not fail the others: answer each on its own
            Err(_) => queries
                .iter()
                .map(|q| {
                    index
                        .search_reranked_batch(std::slice::from_ref(q), rerank_factor, options)
                        .map_err(|e| SearchError::BadQuery(e.to_string()))
                        .and_then(|mut r| resolve(&index, r.pop().unwrap_or_default()))
                })
                .collect::<Vec<_>>(),
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

/// Item keys and paths of scored ids.
fn resolve(index: &Index, scored: Vec<unisight_index::Scored>) -> Result<Vec<Hit>, SearchError> {
    scored
        .into_iter()
        .map(|s| {
            let item = index
                .item(s.id)
                .map_err(|e| SearchError::Index(e.to_string()))?;
            Ok(Hit {
                key: item.key,
                path: item.path,
                distance: s.distance,
                score: s.score,
            })
        })
        .collect()
}
