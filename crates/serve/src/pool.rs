//! A bounded pool of embedding workers. Each worker thread owns one embedder (an ONNX Runtime
//! session) and decodes, preprocesses and embeds one image per job, off the async runtime. The
//! queue in front of the workers is bounded: when it is full, [`EmbedPool::submit`] refuses at
//! once, so a burst of slow requests turns into 503s instead of an ever-growing backlog. A job
//! whose requester is gone (timed out, disconnected) or whose deadline has passed is dropped
//! unprocessed: costly images abandoned by their clients do not delay the searches behind them.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{bounded, Sender, TrySendError};
use tokio::sync::oneshot;
use unisight_core::{Embedder, ImageEmbedding as Embedded, ModelSpec};
use unisight_data::decode::{decode_rgb, DecodeLimits};
use unisight_data::preprocess::embed_image;

/// Why a job produced no embedding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobError {
    /// The bytes are not an acceptable image (the reason says why).
    BadImage(String),
    /// The model failed.
    Inference(String),
}

struct Job {
    bytes: Vec<u8>,
    reply: oneshot::Sender<Result<Embedded, JobError>>,
    deadline: Instant,
}

/// The queue was full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

/// Worker threads behind a bounded queue.
pub struct EmbedPool {
    sender: Sender<Job>,
    spec: ModelSpec,
    workers: usize,
    in_flight: Arc<AtomicUsize>,
    abandoned: Arc<AtomicU64>,
}

/// A read-only view of a pool's count of images queued or being embedded.
#[derive(Debug, Clone)]
pub struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    /// The count now.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// Takes one from the count when dropped.
struct CountDown<'a>(&'a AtomicUsize);

impl Drop for CountDown<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl EmbedPool {
    /// Starts one worker per embedder; at most `queue` jobs wait for a worker.
    ///
    /// # Panics
    /// If `embedders` is empty (a caller bug).
    pub fn start(embedders: Vec<Box<dyn Embedder>>, queue: usize, limits: DecodeLimits) -> Self {
        assert!(!embedders.is_empty(), "at least one embedder");
        let spec = embedders[0].spec().clone();
        let workers = embedders.len();
        let (sender, receiver) = bounded::<Job>(queue.max(1));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let abandoned = Arc::new(AtomicU64::new(0));
        for (i, mut embedder) in embedders.into_iter().enumerate() {
            let receiver = receiver.clone();
            let in_flight = in_flight.clone();
            let abandoned = abandoned.clone();
            std::thread::Builder::new()
                .name(format!("embed-{i}"))
                .spawn(move || {
                    let mut pixels = Vec::new();
                    for job in receiver {
                        // counted down even if embedding panics (the worker ends then, and the
                        // search thread must not believe an image is still in flight)
                        let done = CountDown(&in_flight);
                        if job.reply.is_closed() || Instant::now() >= job.deadline {
                            abandoned.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        let result =
                            embed_bytes(embedder.as_mut(), &job.bytes, &limits, &mut pixels);
                        drop(done);
                        // the requester may have timed out and gone: nothing to do then
                        let _ = job.reply.send(result);
                    }
                })
                .expect("spawn an embedding worker");
        }
        EmbedPool {
            sender,
            spec,
            workers,
            in_flight,
            abandoned,
        }
    }

    /// Queues an image to be embedded before `deadline` (dropped unprocessed after it, or once
    /// the receiver is dropped); the receiver yields its embedding.
    ///
    /// # Errors
    /// [`Busy`] when the queue is full.
    pub fn submit(
        &self,
        bytes: Vec<u8>,
        deadline: Instant,
    ) -> Result<oneshot::Receiver<Result<Embedded, JobError>>, Busy> {
        let (reply, receiver) = oneshot::channel();
        // counted before it can be taken, so a worker never takes the count below zero
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        match self.sender.try_send(Job {
            bytes,
            reply,
            deadline,
        }) {
            Ok(()) => Ok(receiver),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.in_flight.fetch_sub(1, Ordering::Relaxed);
                Err(Busy)
            }
        }
    }

    /// Images queued or being embedded, as a live read-only view: the search thread reads it
    /// to leave the cores to the model while it works (see [`crate::search_queue::SearchQueue::start`]).
    pub fn in_flight(&self) -> InFlight {
        InFlight(self.in_flight.clone())
    }

    /// Jobs dropped unprocessed so far: their requester was gone or their deadline past.
    pub fn abandoned(&self) -> u64 {
        self.abandoned.load(Ordering::Relaxed)
    }

    /// Jobs waiting for a worker.
    pub fn queued(&self) -> usize {
        self.sender.len()
    }

    /// The model's description.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.workers
    }
}

fn embed_bytes(
    embedder: &mut dyn Embedder,
    bytes: &[u8],
    limits: &DecodeLimits,
    pixels: &mut Vec<f32>,
) -> Result<Embedded, JobError> {
    let image = decode_rgb(bytes, limits).map_err(JobError::BadImage)?;
    embed_image(embedder, &image, pixels).map_err(|e| JobError::Inference(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use unisight_core::{Architecture, Embeddings, Preprocess, Projection};

    /// An embedder that fails the way a backend bug would: by panicking.
    struct Panics(ModelSpec);

    impl Embedder for Panics {
        fn spec(&self) -> &ModelSpec {
            &self.0
        }
        fn embed(&mut self, _: &[f32], _: usize) -> unisight_core::Result<Embeddings> {
            panic!("injected failure")
        }
        fn backend(&self) -> &'static str {
            "panics"
        }
    }

    /// A 2 x 2 RGB PNG.
    const PNG: [u8; 74] = [
        0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44,
        0x52, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x02, 0x08, 0x02, 0x00, 0x00, 0x00, 0xfd,
        0xd4, 0x9a, 0x73, 0x00, 0x00, 0x00, 0x11, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8,
        0xcf, 0xc0, 0x00, 0x44, 0x60, 0xe2, 0x3f, 0x03, 0x00, 0x1d, 0xf0, 0x03, 0xfd, 0xa0, 0x33,
        0x09, 0x89, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
    ];

    /// A model of 4 x 4 inputs and 8 dimensions.
    fn tiny_spec() -> ModelSpec {
        ModelSpec {
            architecture: Architecture::EfficientnetLite0,
            input_size: 4,
            preprocess: Preprocess::Tf127,
            trunk_dim: 8,
            dim: 8,
            projection: Projection::Identity,
        }
    }

    #[test]
    fn a_worker_that_panics_leaves_nothing_counted_in_flight() {
        let spec = tiny_spec();
        let pool = EmbedPool::start(vec![Box::new(Panics(spec))], 4, DecodeLimits::default());
        let in_flight = pool.in_flight();
        let answer = pool
            .submit(PNG.to_vec(), far_deadline())
            .expect("queue has room");
        // the worker died with the job: its reply is dropped unanswered
        assert!(answer.blocking_recv().is_err());
        assert_eq!(in_flight.get(), 0);
    }

    fn far_deadline() -> Instant {
        Instant::now() + std::time::Duration::from_secs(60)
    }

    /// An embedder that takes `delay` per image and counts the images it embedded.
    struct Slow {
        spec: ModelSpec,
        delay: std::time::Duration,
        calls: Arc<AtomicUsize>,
    }

    impl Embedder for Slow {
        fn spec(&self) -> &ModelSpec {
            &self.spec
        }
        fn embed(&mut self, _: &[f32], batch: usize) -> unisight_core::Result<Embeddings> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(self.delay);
            Ok(Embeddings {
                dim: 8,
                normalized: vec![0.5; 8 * batch],
                projected: vec![0.5; 8 * batch],
            })
        }
        fn backend(&self) -> &'static str {
            "slow"
        }
    }

    #[test]
    fn jobs_whose_requester_left_or_whose_deadline_passed_are_dropped_unprocessed() {
        let spec = tiny_spec();
        let calls = Arc::new(AtomicUsize::new(0));
        let slow = Slow {
            spec,
            delay: std::time::Duration::from_millis(300),
            calls: calls.clone(),
        };
        let pool = EmbedPool::start(vec![Box::new(slow)], 8, DecodeLimits::default());
        // the first job holds the only worker while the others queue behind it
        let first = pool.submit(PNG.to_vec(), far_deadline()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let gone = pool.submit(PNG.to_vec(), far_deadline()).unwrap();
        drop(gone);
        let late = pool
            .submit(
                PNG.to_vec(),
                Instant::now() + std::time::Duration::from_millis(100),
            )
            .unwrap();
        let kept = pool.submit(PNG.to_vec(), far_deadline()).unwrap();
        assert!(first.blocking_recv().unwrap().is_ok());
        assert!(kept.blocking_recv().unwrap().is_ok());
        assert!(
            late.blocking_recv().is_err(),
            "a late job is answered by no one"
        );
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "only the wanted images were embedded"
        );
        assert_eq!(pool.abandoned(), 2);
        assert_eq!(pool.in_flight().get(), 0);
    }
}
