//! The `unisight embed` job.
//!
//! Work is cut into chunks of `chunk_size` images. A decoder thread prepares batches with rayon
//! while the calling thread runs inference, so decoding overlaps the model. Each finished chunk
//! is written atomically to `OUT/.partial/` (`chunk-N.npy`, then `chunk-N.json` as its commit
//! mark); a re-run with the same inputs and model skips committed chunks. At the end the chunks
//! are assembled into the final files, each written atomically, `meta.json` last, and the
//! partial folder is removed. A folder with `meta.json` is complete; one without is not.

use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use unisight_core::artifacts::{
    read_npy, write_items, write_npy, EmbedMeta, Failure, ItemRecord, CODES_FILE, EMBEDDINGS_FILE,
    ITEMS_FILE, META_FILE,
};
use unisight_core::atomic::atomic_write_bytes;
use unisight_core::code::pack_signs_into;
use unisight_core::progress::Progress;
use unisight_core::shard::Shard;
use unisight_core::Embedder;
use unisight_data::decode::{load_rgb, DecodeLimits};
use unisight_data::preprocess::to_input;
use unisight_data::sources::Input;

use crate::{Error, Result};

/// Settings of an embedding run.
#[derive(Debug, Clone)]
pub struct EmbedOptions {
    /// Images per inference call.
    pub batch_size: usize,
    /// Images per resumable chunk (a multiple of the batch size is best).
    pub chunk_size: usize,
    /// Decoding limits.
    pub limits: DecodeLimits,
    /// Identifies the model, so that a resumed run never mixes two models' chunks.
    pub model_id: String,
    /// Show progress (a bar on a terminal, a line every few seconds otherwise).
    pub progress: bool,
    /// The share of a catalog the inputs are (recorded in `meta.json`, so that the shards'
    /// folders can be checked when they are merged into one index).
    pub shard: Option<Shard>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ChunkMeta {
    items: Vec<ItemRecord>,
    failures: Vec<Failure>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Plan {
    fingerprint: u32,
    chunk_size: usize,
}

struct Batch {
    chunk: usize,
    ok: Vec<(usize, Vec<f32>)>,
    failed: Vec<Failure>,
}

/// Embeds `inputs` into `out` (see the module docs).
///
/// # Errors
/// I/O errors on the output folder and inference errors; a bad image is never an error.
pub fn run(
    inputs: &[Input],
    embedder: &mut dyn Embedder,
    out: &Path,
    options: &EmbedOptions,
) -> Result<EmbedMeta> {
    let started = Instant::now();
    let spec = embedder.spec().clone();
    let partial = out.join(".partial");
    std::fs::create_dir_all(&partial).map_err(|e| Error::Io {
        path: partial.clone(),
        source: e,
    })?;
    let plan = Plan {
        fingerprint: fingerprint(inputs, &options.model_id),
        chunk_size: options.chunk_size.max(1),
    };
    let plan_path = partial.join("plan.json");
    let same_plan = std::fs::read(&plan_path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Plan>(&b).ok())
        .is_some_and(|p| p == plan);
    if !same_plan {
        // another input list or model: start over
        let _ = std::fs::remove_dir_all(&partial);
        std::fs::create_dir_all(&partial).map_err(|e| Error::Io {
            path: partial.clone(),
            source: e,
        })?;
        atomic_write_bytes(
            &plan_path,
            &serde_json::to_vec(&plan).expect("plan serialises"),
        )?;
    }
    let _ = std::fs::remove_file(out.join(META_FILE));
    let chunks: Vec<&[Input]> = inputs.chunks(plan.chunk_size).collect();
    let done: Vec<bool> = (0..chunks.len())
        .map(|c| chunk_json(&partial, c).exists())
        .collect();
    let todo: Vec<usize> = (0..chunks.len()).filter(|&c| !done[c]).collect();
    let resumed = chunks.len() - todo.len();
    let todo_images: usize = todo.iter().map(|&c| chunks[c].len()).sum();

    let bar = Progress::new("embed", inputs.len() as u64, "images", options.progress);
    bar.resume_at((inputs.len() - todo_images) as u64);
    if resumed > 0 {
        eprintln!(
            "resuming: {resumed} of {} chunks already done",
            chunks.len()
        );
    }
    let size = spec.input_size;
    let per_image = 3 * size * size;
    let batch_size = options.batch_size.max(1);
    let (tx, rx) = sync_channel::<Batch>(2);
    let mut processed = 0usize;
    std::thread::scope(|scope| -> Result<()> {
        let producer = scope.spawn(|| {
            // owning the sender here closes the channel when decoding is done
            let tx = tx;
            for &c in &todo {
                for (b, batch) in chunks[c].chunks(batch_size).enumerate() {
                    let decoded: Vec<std::result::Result<Vec<f32>, String>> = batch
                        .par_iter()
                        .map(|input| {
                            let image =
                                load_rgb(&input.file, &options.limits).map_err(|e| match e {
                                    unisight_data::Error::BadImage { reason, .. } => reason,
                                    other => other.to_string(),
                                })?;
                            let mut pixels = vec![0f32; per_image];
                            to_input(&image, size, spec.preprocess, &mut pixels);
                            Ok(pixels)
                        })
                        .collect();
                    let mut ok = Vec::new();
                    let mut failed = Vec::new();
                    for (i, (input, result)) in batch.iter().zip(decoded).enumerate() {
                        match result {
                            Ok(p) => ok.push((b * batch_size + i, p)),
                            Err(reason) => failed.push(Failure {
                                id: input.id.clone(),
                                path: input.path.clone(),
                                reason,
                            }),
                        }
                    }
                    if tx
                        .send(Batch {
                            chunk: c,
                            ok,
                            failed,
                        })
                        .is_err()
                    {
                        return;
                    }
                }
            }
        });
        let mut current: Option<(usize, Vec<f32>, ChunkMeta)> = None;
        for batch in rx.iter() {
            if current.as_ref().is_some_and(|(c, _, _)| *c != batch.chunk) {
                let (c, emb, meta) = current.take().expect("checked");
                write_chunk(&partial, c, spec.dim, &emb, &meta)?;
            }
            let (_, emb, meta) = current.get_or_insert_with(|| {
                (
                    batch.chunk,
                    Vec::new(),
                    ChunkMeta {
                        items: Vec::new(),
                        failures: Vec::new(),
                    },
                )
            });
            for f in &batch.failed {
                // printed even when stderr is not a terminal (the bar is then hidden)
                bar.println(&format!("skipped {}: {}", f.path, f.reason));
            }
            meta.failures.extend(batch.failed.iter().cloned());
            if !batch.ok.is_empty() {
                let pixels: Vec<f32> = batch
                    .ok
                    .iter()
                    .flat_map(|(_, p)| p.iter().copied())
                    .collect();
                let out = embedder.embed(&pixels, batch.ok.len())?;
                emb.extend_from_slice(&out.normalized);
                for (offset, _) in &batch.ok {
                    let input = &chunks[batch.chunk][*offset];
                    meta.items.push(ItemRecord {
                        id: input.id.clone(),
                        path: input.path.clone(),
                        label: input.label.clone(),
                    });
                }
            }
            let n = batch.ok.len() + batch.failed.len();
            processed += n;
            bar.inc(n as u64);
        }
        if let Some((c, emb, meta)) = current.take() {
            write_chunk(&partial, c, spec.dim, &emb, &meta)?;
        }
        producer.join().expect("decoder thread does not panic");
        Ok(())
    })?;
    bar.finish();

    // assemble
    let mut embeddings = Vec::new();
    let mut items = Vec::new();
    let mut failures = Vec::new();
    for c in 0..chunks.len() {
        let meta: ChunkMeta =
            serde_json::from_slice(&std::fs::read(chunk_json(&partial, c)).map_err(|e| {
                Error::Io {
                    path: chunk_json(&partial, c),
                    source: e,
                }
            })?)
            .map_err(|e| Error::Io {
                path: chunk_json(&partial, c),
                source: e.into(),
            })?;
        if !meta.items.is_empty() {
            let (rows, cols, data) = read_npy::<f32>(&chunk_npy(&partial, c))?;
            if rows != meta.items.len() || cols != spec.dim {
                return Err(Error::Io {
                    path: chunk_npy(&partial, c),
                    source: std::io::Error::other("chunk rows do not match its item list"),
                });
            }
            embeddings.extend(data);
        }
        items.extend(meta.items);
        failures.extend(meta.failures);
    }
    let n = items.len();
    let code_bytes = spec.code_bytes();
    let mut codes = vec![0u8; n * code_bytes];
    for (row, code) in codes.chunks_exact_mut(code_bytes).enumerate() {
        pack_signs_into(&embeddings[row * spec.dim..(row + 1) * spec.dim], code);
    }
    write_npy(&out.join(EMBEDDINGS_FILE), n, spec.dim, &embeddings)?;
    write_npy(&out.join(CODES_FILE), n, code_bytes, &codes)?;
    write_items(&out.join(ITEMS_FILE), &items)?;
    let elapsed = started.elapsed().as_secs_f64();
    let summary = EmbedMeta {
        model: options.model_id.clone(),
        backend: embedder.backend().into(),
        dim: spec.dim,
        finished_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        inputs: inputs.len(),
        embedded: n,
        failed: failures.len(),
        resumed_chunks: resumed,
        images_per_second: if elapsed > 0.0 {
            processed as f64 / elapsed
        } else {
            0.0
        },
        failures,
        shard: options.shard,
    };
    atomic_write_bytes(
        &out.join(META_FILE),
        &serde_json::to_vec_pretty(&summary).expect("summary serialises"),
    )?;
    let _ = std::fs::remove_dir_all(&partial);
    Ok(summary)
}

fn chunk_json(partial: &Path, c: usize) -> PathBuf {
    partial.join(format!("chunk-{c:06}.json"))
}

fn chunk_npy(partial: &Path, c: usize) -> PathBuf {
    partial.join(format!("chunk-{c:06}.npy"))
}

fn write_chunk(partial: &Path, c: usize, dim: usize, emb: &[f32], meta: &ChunkMeta) -> Result<()> {
    if !meta.items.is_empty() {
        write_npy(&chunk_npy(partial, c), meta.items.len(), dim, emb)?;
    }
    // the JSON is the commit mark: written last
    atomic_write_bytes(
        &chunk_json(partial, c),
        &serde_json::to_vec(meta).expect("chunk meta serialises"),
    )?;
    Ok(())
}

fn fingerprint(inputs: &[Input], model: &str) -> u32 {
    let mut crc = crc32c::crc32c(model.as_bytes());
    for input in inputs {
        crc = crc32c::crc32c_append(crc, input.id.as_bytes());
        crc = crc32c::crc32c_append(crc, b"\0");
        crc = crc32c::crc32c_append(crc, input.path.as_bytes());
        crc = crc32c::crc32c_append(crc, b"\n");
    }
    crc
}
