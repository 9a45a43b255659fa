//! Building the trunk cache: the images no earlier run cached are decoded and their views
//! rendered on every core by one thread, a chunk ahead of the frozen graph on ONNX Runtime,
//! whose float16 rows a third thread writes; so decoding, inference and writing overlap.

use std::path::Path;
use std::sync::mpsc::sync_channel;

use half::f16;
use rayon::prelude::*;
use serde::Serialize;
use unisight_core::progress::Progress;
use unisight_data::decode::{load_rgb, DecodeLimits};
use unisight_embed::OrtEmbedder;
use unisight_model::UnifiedModel;

use super::front::{
    float_graph, install_once, int8_graph, CachedFront, FrontGraph, CALIBRATION_IMAGES,
    CALIBRATION_VIEWS,
};
use super::store::{image_id, Store, StoredImage};
use super::views::render_view;
use super::{CacheEntry, TrunkCache};
use crate::config::{AugmentConfig, FrontPrecision};
use crate::network::TrainFrom;
use crate::{Error, Result};

/// Images per committed chunk.
const CHUNK: usize = 64;
/// Rows per ONNX Runtime call (measured with `bench_train cache` at 4 to 64: all within the
/// run-to-run noise of each other here).
const ORT_BATCH: usize = 32;

/// What a cache folder is for: views of one frozen front (its float graph and arithmetic),
/// augmentation and seed. The image list is not part of it, so runs over other task files share
/// what they have in common; nor are an int8 front's calibrated ranges: the first build of a
/// folder fixes them (its `frozen.onnx`) for every later one.
#[derive(Serialize)]
struct FrontKey<'a> {
    version: u32,
    graph_crc: u32,
    train_from: TrainFrom,
    input_size: usize,
    preprocess: unisight_core::Preprocess,
    augment: &'a AugmentConfig,
    seed: u64,
    #[serde(skip_serializing_if = "FrontPrecision::is_float32")]
    precision: FrontPrecision,
    /// Bits of the int8 front's weights (none for the float front, whose keys stay as they were).
    #[serde(skip_serializing_if = "Option::is_none")]
    int8_weight_bits: Option<u32>,
}

/// One chunk of images decoded and rendered: per image, its pixels or why it failed.
struct Rendered {
    images: Vec<usize>,
    pixels: Vec<std::result::Result<Vec<f32>, String>>,
}

/// Computes the cache of `entries` under `root`, reusing every image an earlier run (of this or
/// another task file, finished or killed) cached with the same front, augmentation and seed.
///
/// # Errors
/// ONNX export or runtime errors; I/O errors naming the file. Unreadable images are not errors:
/// they are listed in [`TrunkCache::failures`].
pub fn build(
    root: &Path,
    model: &UnifiedModel,
    front: CachedFront,
    entries: &[CacheEntry],
    augment: &AugmentConfig,
    seed: u64,
    progress: bool,
) -> Result<TrunkCache> {
    let FrontGraph {
        graph,
        output,
        row_shape,
        end_block,
    } = float_graph(model, front.train_from)?;
    let int8_end = match (front.precision, end_block) {
        (FrontPrecision::Float32, _) => None,
        (FrontPrecision::Int8, Some(end)) => Some(end),
        (FrontPrecision::Int8, None) => {
            return Err(Error::Data(
                "an int8 front quantizes blocks; training from the pooled features has none".into(),
            ))
        }
    };
    let key = serde_json::to_vec(&FrontKey {
        version: 2,
        graph_crc: crc32c::crc32c(&graph),
        train_from: front.train_from,
        input_size: model.spec.input_size,
        preprocess: model.spec.preprocess,
        augment,
        seed,
        precision: front.precision,
        int8_weight_bits: int8_end.map(|_| unisight_model::onnx::INT8_WEIGHT_BITS),
    })
    .expect("the front key serialises");
    let dir = root.join(format!("front-{:08x}", crc32c::crc32c(&key)));
    let row_len = row_shape.iter().product::<usize>();
    let mut store = Store::open(&dir, row_len)?;

    let ids: Vec<Option<String>> = entries.par_iter().map(image_id).collect();
    let todo: Vec<usize> = (0..entries.len())
        .filter(|&i| {
            ids[i]
                .as_ref()
                .is_none_or(|id| store.find(id, entries[i].views).is_none())
        })
        .collect();
    let total_views: usize = entries.iter().map(|e| e.views).sum();
    let todo_views: usize = todo.iter().map(|&i| entries[i].views).sum();
    let bar = Progress::new("trunk cache", total_views as u64, "views", progress);
    bar.resume_at((total_views - todo_views) as u64);
    let mut failures = Vec::new();
    if !todo.is_empty() {
        if todo.len() < entries.len() && progress {
            bar.println(&format!(
                "trunk cache: {} of {} images already cached in {}",
                entries.len() - todo.len(),
                entries.len(),
                dir.display()
            ));
        }
        let library =
            unisight_model::assets::onnxruntime_path(&unisight_model::assets::assets_dir())?;
        unisight_embed::init_onnxruntime(&library)?;
        let renderer = Renderer {
            entries,
            augment,
            seed,
            size: model.spec.input_size,
            preprocess: model.spec.preprocess,
        };
        let onnx_path = dir.join("frozen.onnx");
        if !onnx_path.exists() {
            let graph = match int8_end {
                None => graph,
                Some(end) => {
                    let started = std::time::Instant::now();
                    let sample = renderer.render(&todo[..todo.len().min(CALIBRATION_IMAGES)]);
                    let len = 3 * model.spec.input_size.pow(2);
                    let pixels: Vec<f32> = sample
                        .pixels
                        .iter()
                        .flatten()
                        .flat_map(|px| &px[..px.len().min(CALIBRATION_VIEWS * len)])
                        .copied()
                        .collect();
                    let views = pixels.len() / len;
                    let graph = int8_graph(model, end, &pixels, views, &dir)?;
                    if progress {
                        bar.println(&format!(
                            "trunk cache: int8 front calibrated on {views} views in {:.1} s",
                            started.elapsed().as_secs_f64()
                        ));
                    }
                    graph
                }
            };
            install_once(&onnx_path, &graph)?;
        }
        let ort = OrtEmbedder::new(&onnx_path, model.spec.clone(), 0)?;
        failures = pipeline(
            &renderer, &todo, &ids, ort, output, row_len, &mut store, &bar,
        )?;
    }
    bar.finish();

    let mut locations = Vec::with_capacity(entries.len());
    for (e, id) in entries.iter().zip(&ids) {
        locations.push(id.as_ref().and_then(|id| store.find(id, e.views)));
    }
    store.map(locations.iter().flatten().map(|l| l.chunk))?;
    Ok(TrunkCache {
        row_shape,
        zeros: vec![f16::ZERO; row_len],
        store,
        views: entries.iter().map(|e| e.views).collect(),
        locations,
        failures,
    })
}

/// Decodes and renders the views of a chunk's images.
struct Renderer<'a> {
    entries: &'a [CacheEntry],
    augment: &'a AugmentConfig,
    seed: u64,
    size: usize,
    preprocess: unisight_core::Preprocess,
}

impl Renderer<'_> {
    fn render(&self, images: &[usize]) -> Rendered {
        let limits = DecodeLimits::default();
        let len = 3 * self.size * self.size;
        let pixels = images
            .par_iter()
            .map(|&i| {
                let e = &self.entries[i];
                let image = load_rgb(&e.file, &limits).map_err(|err| err.to_string())?;
                let mut px = vec![0f32; e.views * len];
                for (v, out) in px.chunks_exact_mut(len).enumerate() {
                    render_view(
                        &image,
                        &e.key,
                        v,
                        self.augment,
                        self.seed,
                        self.size,
                        self.preprocess,
                        out,
                    );
                }
                Ok(px)
            })
            .collect();
        Rendered {
            images: images.to_vec(),
            pixels,
        }
    }
}

/// Runs the three stages over `todo` and returns the images that failed: (key, reason).
#[allow(clippy::too_many_arguments)]
fn pipeline(
    renderer: &Renderer,
    todo: &[usize],
    ids: &[Option<String>],
    mut ort: OrtEmbedder,
    output: &str,
    row_len: usize,
    store: &mut Store,
    bar: &Progress,
) -> Result<Vec<(String, String)>> {
    let entries = renderer.entries;
    let (rendered_tx, rendered_rx) = sync_channel::<Rendered>(1);
    let (rows_tx, rows_rx) = sync_channel::<(Vec<StoredImage>, Vec<f32>)>(2);
    let mut failures = Vec::new();
    std::thread::scope(|scope| -> Result<()> {
        scope.spawn(move || {
            for chunk in todo.chunks(CHUNK) {
                if rendered_tx.send(renderer.render(chunk)).is_err() {
                    return; // inference stopped on an error
                }
            }
        });
        let writer = scope.spawn(move || -> Result<()> {
            for (images, values) in rows_rx {
                let rows: Vec<f16> = values.iter().map(|&v| f16::from_f32(v)).collect();
                store.commit(images, &rows)?;
            }
            Ok(())
        });
        let inference = (|| -> Result<()> {
            // one buffer for every chunk: a fresh one of a chunk's size (hundreds of MB) costs
            // more in page faults than the copy itself
            let mut pixels = Vec::new();
            for chunk in rendered_rx {
                let mut images = Vec::new();
                pixels.clear();
                for (i, px) in chunk.images.iter().zip(chunk.pixels) {
                    let e = &entries[*i];
                    match (px, &ids[*i]) {
                        (Ok(px), Some(id)) => {
                            images.push(StoredImage {
                                id: id.clone(),
                                key: e.key.clone(),
                                views: e.views,
                            });
                            pixels.extend(px);
                        }
                        (Ok(_), None) => {
                            failures.push((e.key.clone(), "the file vanished while reading".into()))
                        }
                        (Err(reason), _) => {
                            bar.println(&format!("skipping {}: {reason}", e.file.display()));
                            failures.push((e.key.clone(), reason));
                        }
                    }
                }
                let views: usize = chunk.images.iter().map(|&i| entries[i].views).sum();
                if images.is_empty() {
                    bar.inc(views as u64);
                    continue; // nothing readable: nothing to commit
                }
                let values = infer(&mut ort, &pixels, output, row_len)?;
                if rows_tx.send((images, values)).is_err() {
                    break; // the writer failed; its error is returned below
                }
                bar.inc(views as u64);
            }
            Ok(())
        })();
        drop(rows_tx);
        let written = writer.join().expect("the cache writer does not panic");
        inference.and(written)
    })?;
    Ok(failures)
}

/// The frozen graph's `output` for every row of `pixels`, in batches.
fn infer(ort: &mut OrtEmbedder, pixels: &[f32], output: &str, row_len: usize) -> Result<Vec<f32>> {
    let size = unisight_core::Embedder::spec(ort).input_size;
    let input_len = 3 * size * size;
    let mut values = Vec::with_capacity(pixels.len() / input_len * row_len);
    for batch in pixels.chunks(ORT_BATCH * input_len) {
        let n = batch.len() / input_len;
        let out = ort
            .run_outputs(batch, n, &[output])?
            .pop()
            .expect("one output");
        if out.len() != n * row_len {
            return Err(Error::Data(format!(
                "frozen graph gave {} values for {n} images, expected {row_len} each",
                out.len()
            )));
        }
        values.extend(out);
    }
    Ok(values)
}
