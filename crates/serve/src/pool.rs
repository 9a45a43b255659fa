//! A bounded pool of embedding workers. Each worker thread owns one embedder (an ONNX Runtime
//! session) and decodes, preprocesses and embeds one image per job, off the async runtime. The
//! queue in front of the workers is bounded: when it is full, [`EmbedPool::submit`] refuses at
//! once, so a burst of slow requests turns into 503s instead of an ever-growing backlog.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_channel::{bounded, Sender, TrySendError};
use tokio::sync::oneshot;
use unisight_core::{Embedder, ModelSpec};
use unisight_data::decode::{decode_rgb, DecodeLimits};
use unisight_data::preprocess::to_input;

/// One embedded image.
#[derive(Debug, Clone)]
pub struct Embedded {
    /// L2-normalised embedding.
    pub embedding: Vec<f32>,
    /// Packed sign code of the projected vector.
    pub code: Vec<u8>,
}

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
        for (i, mut embedder) in embedders.into_iter().enumerate() {
            let receiver = receiver.clone();
            let in_flight = in_flight.clone();
            std::thread::Builder::new()
                .name(format!("embed-{i}"))
                .spawn(move || {
                    let spec = embedder.spec().clone();
                    let mut pixels = vec![0f32; 3 * spec.input_size * spec.input_size];
                    for job in receiver {
                        let result =
                            embed_bytes(embedder.as_mut(), &spec, &job.bytes, &limits, &mut pixels);
                        in_flight.fetch_sub(1, Ordering::Relaxed);
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
        }
    }

    /// Queues an image; the receiver yields its embedding.
    ///
    /// # Errors
    /// [`Busy`] when the queue is full.
    pub fn submit(
        &self,
        bytes: Vec<u8>,
    ) -> Result<oneshot::Receiver<Result<Embedded, JobError>>, Busy> {
        let (reply, receiver) = oneshot::channel();
        // counted before it can be taken, so a worker never takes the count below zero
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        match self.sender.try_send(Job { bytes, reply }) {
            Ok(()) => Ok(receiver),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.in_flight.fetch_sub(1, Ordering::Relaxed);
                Err(Busy)
            }
        }
    }

    /// Images queued or being embedded, as a live counter: the search thread reads it to leave
    /// the cores to the model while it works (see [`crate::search::SearchQueue::start`]).
    pub fn in_flight(&self) -> Arc<AtomicUsize> {
        self.in_flight.clone()
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
    spec: &ModelSpec,
    bytes: &[u8],
    limits: &DecodeLimits,
    pixels: &mut [f32],
) -> Result<Embedded, JobError> {
    let image = decode_rgb(bytes, limits).map_err(JobError::BadImage)?;
    to_input(&image, spec.input_size, spec.preprocess, pixels);
    let out = embedder
        .embed(pixels, 1)
        .map_err(|e| JobError::Inference(e.to_string()))?;
    Ok(Embedded {
        code: unisight_core::code::pack_signs(&out.projected),
        embedding: out.normalized,
    })
}
