//! The trunk-map cache of the cached-trunk training mode.
//!
//! The frozen front of the trunk (stem and the blocks before the first trainable one) is the
//! expensive part of a forward pass and never changes during training, so its output is
//! computed once, for several augmented views of every training image (view 0 is the plain
//! centre crop, the one evaluation uses), by ONNX Runtime on a graph exported from the burn
//! model (about 10x faster than burn here), and stored as float16.
//!
//! On disk: `DIR/<fingerprint>/` where the fingerprint covers the frozen graph's bytes, the
//! images and view counts, the augmentation settings and the seed, so a cache is never reused
//! for a different run. Entries are written in chunks (`chunk-N.bin`, then `chunk-N.json` as
//! the commit marker listing the images that failed), each atomically: a killed build resumes
//! at the first missing chunk. An unreadable image is skipped and counted, never fatal.

use std::path::{Path, PathBuf};

use half::f16;
use indicatif::{ProgressBar, ProgressStyle};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use unisight_data::decode::{load_rgb, DecodeLimits};
use unisight_data::preprocess::{crop_to_input, to_input, Crop};
use unisight_embed::OrtEmbedder;
use unisight_model::UnifiedModel;

use crate::config::AugmentConfig;
use crate::network::TrainFrom;
use crate::plan::mix;
use crate::{Error, Result};

/// Images per committed chunk.
const CHUNK: usize = 64;
/// Rows per ONNX Runtime call.
const ORT_BATCH: usize = 32;

/// One image to cache.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CacheEntry {
    /// Unique key (seeds its augmentation).
    pub key: String,
    /// File.
    pub file: PathBuf,
    /// Views: 1 = plain only; more = plain + augmented.
    pub views: usize,
}

/// Cached trunk outputs, in memory.
#[derive(Debug)]
pub struct TrunkCache {
    /// Shape of one row (`[C, h, w]` or `[trunk_dim]`).
    pub row_shape: Vec<usize>,
    row_len: usize,
    first_row: Vec<usize>,
    views: Vec<usize>,
    ok: Vec<bool>,
    data: Vec<f16>,
    /// Images that could not be read: (key, reason).
    pub failures: Vec<(String, String)>,
}

impl TrunkCache {
    /// Row of `entry`, `view`.
    pub fn row(&self, entry: usize, view: usize) -> &[f16] {
        let r = self.first_row[entry] + view.min(self.views[entry] - 1);
        &self.data[r * self.row_len..(r + 1) * self.row_len]
    }

    /// Whether `entry` was read (failed images have no rows worth using).
    pub fn is_ok(&self, entry: usize) -> bool {
        self.ok[entry]
    }

    /// Values per row.
    pub fn row_len(&self) -> usize {
        self.row_len
    }
}

#[derive(Serialize, Deserialize)]
struct ChunkMeta {
    failed: Vec<(usize, String)>,
}

#[derive(Serialize)]
struct Fingerprint<'a> {
    version: u32,
    graph_crc: u32,
    train_from: TrainFrom,
    augment: &'a AugmentConfig,
    seed: u64,
    entries: &'a [CacheEntry],
}

/// Computes (or resumes, or reuses) the cache of `entries` under `root`.
///
/// # Errors
/// ONNX export or runtime errors; I/O errors naming the file. Unreadable images are not errors:
/// they are listed in [`TrunkCache::failures`].
pub fn build(
    root: &Path,
    model: &UnifiedModel,
    train_from: TrainFrom,
    entries: &[CacheEntry],
    augment: &AugmentConfig,
    seed: u64,
    progress: bool,
) -> Result<TrunkCache> {
    let blocks = unisight_model::efficientnet::block_strides(model.spec.architecture).len();
    let (graph, output, row_shape) = match train_from {
        TrainFrom::Stem => {
            return Err(Error::Data(
                "training from the stem reads pixels; there is nothing to cache".into(),
            ))
        }
        TrainFrom::Pooled => (
            unisight_model::onnx::export(model)?,
            unisight_model::onnx::OUTPUT_FEATURES,
            vec![model.spec.trunk_dim],
        ),
        other => {
            let end = other.first_block(blocks);
            let graph = unisight_model::onnx::export_prefix(model, end)?;
            let channels = model.trunk.blocks[end - 1].project.conv.weight.dims()[0];
            // TF-SAME: every stride-s layer maps n to ceil(n / s); the stem has stride 2
            let side = unisight_model::efficientnet::block_strides(model.spec.architecture)[..end]
                .iter()
                .fold(model.spec.input_size.div_ceil(2), |n, &s| n.div_ceil(s));
            (
                graph,
                unisight_model::onnx::OUTPUT_MAP,
                vec![channels, side, side],
            )
        }
    };
    let fingerprint = serde_json::to_vec(&Fingerprint {
        version: 1,
        graph_crc: crc32c::crc32c(&graph),
        train_from,
        augment,
        seed,
        entries,
    })
    .expect("fingerprint serialises");
    let dir = root.join(format!("{:08x}", crc32c::crc32c(&fingerprint)));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let onnx_path = dir.join("frozen.onnx");
    if !onnx_path.exists() {
        unisight_core::atomic::atomic_write_bytes(&onnx_path, &graph)?;
    }
    let library = unisight_model::assets::onnxruntime_path(&unisight_model::assets::assets_dir())?;
    unisight_embed::init_onnxruntime(&library)?;
    let mut ort = OrtEmbedder::new(&onnx_path, model.spec.clone(), 0)?;
    let size = model.spec.input_size;
    let preprocess = model.spec.preprocess;
    let limits = DecodeLimits::default();

    let chunks = entries.len().div_ceil(CHUNK);
    let bar = if progress {
        ProgressBar::new(entries.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "trunk cache {bar:30} {pos}/{len} images  {per_sec}  ETA {eta}",
        )
        .expect("valid template"),
    );
    let row_len = row_shape.iter().product::<usize>();
    let mut data: Vec<f16> = Vec::new();
    let mut failures = Vec::new();
    let mut ok = vec![true; entries.len()];
    for c in 0..chunks {
        let range = c * CHUNK..((c + 1) * CHUNK).min(entries.len());
        let bin = dir.join(format!("chunk-{c:05}.bin"));
        let meta_path = dir.join(format!("chunk-{c:05}.json"));
        let rows: usize = entries[range.clone()].iter().map(|e| e.views).sum();
        if meta_path.exists() && bin.exists() {
            let meta: ChunkMeta = read_json(&meta_path)?;
            let bytes = std::fs::read(&bin).map_err(|e| Error::io(&bin, e))?;
            if bytes.len() != rows * row_len * 2 {
                return Err(Error::Resume {
                    path: bin,
                    what: format!("{} bytes, expected {}", bytes.len(), rows * row_len * 2),
                });
            }
            data.extend(
                bytes
                    .chunks_exact(2)
                    .map(|b| f16::from_le_bytes([b[0], b[1]])),
            );
            for (i, reason) in meta.failed {
                ok[range.start + i] = false;
                failures.push((entries[range.start + i].key.clone(), reason));
            }
            bar.inc(range.len() as u64);
            continue;
        }
        // decode and augment in parallel
        let inputs: Vec<std::result::Result<Vec<f32>, String>> = entries[range.clone()]
            .par_iter()
            .map(|e| {
                let image = load_rgb(&e.file, &limits).map_err(|err| err.to_string())?;
                let mut px = vec![0f32; e.views * 3 * size * size];
                for (v, out) in px.chunks_exact_mut(3 * size * size).enumerate() {
                    render_view(&image, &e.key, v, augment, seed, size, preprocess, out);
                }
                Ok(px)
            })
            .collect();
        let mut pixels = Vec::with_capacity(rows * 3 * size * size);
        let mut failed = Vec::new();
        for (i, (input, e)) in inputs.into_iter().zip(&entries[range.clone()]).enumerate() {
            match input {
                Ok(px) => pixels.extend(px),
                Err(reason) => {
                    bar.suspend(|| eprintln!("skipping {}: {reason}", e.file.display()));
                    pixels.extend(std::iter::repeat_n(0f32, e.views * 3 * size * size));
                    failed.push((i, reason));
                }
            }
        }
        let mut chunk_out: Vec<f16> = Vec::new();
        for batch in pixels.chunks(ORT_BATCH * 3 * size * size) {
            let n = batch.len() / (3 * size * size);
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
            chunk_out.extend(out.iter().map(|&v| f16::from_f32(v)));
        }
        let bytes: Vec<u8> = chunk_out.iter().flat_map(|v| v.to_le_bytes()).collect();
        unisight_core::atomic::atomic_write_bytes(&bin, &bytes)?;
        let meta = serde_json::to_vec(&ChunkMeta {
            failed: failed.clone(),
        })
        .expect("serialises");
        unisight_core::atomic::atomic_write_bytes(&meta_path, &meta)?;
        for (i, reason) in failed {
            ok[range.start + i] = false;
            failures.push((entries[range.start + i].key.clone(), reason));
        }
        data.extend(chunk_out);
        bar.inc(range.len() as u64);
    }
    bar.finish_and_clear();
    let mut first_row = Vec::with_capacity(entries.len());
    let mut r = 0;
    for e in entries {
        first_row.push(r);
        r += e.views;
    }
    Ok(TrunkCache {
        row_shape,
        row_len,
        first_row,
        views: entries.iter().map(|e| e.views).collect(),
        ok,
        data,
        failures,
    })
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Resume {
        path: path.into(),
        what: e.to_string(),
    })
}

/// Writes view `view` of `image` (0: the plain centre crop; others: a random resized crop,
/// flip and colour jitter drawn from (seed, key, view)), so a view is the same image whether it
/// is cached or rendered in the training loop.
#[allow(clippy::too_many_arguments)]
pub fn render_view(
    image: &image::RgbImage,
    key: &str,
    view: usize,
    augment: &AugmentConfig,
    seed: u64,
    size: usize,
    preprocess: unisight_core::Preprocess,
    out: &mut [f32],
) {
    if view == 0 {
        to_input(image, size, preprocess, out);
    } else {
        let mut rng = ChaCha8Rng::seed_from_u64(mix(
            seed,
            u64::from(crc32c::crc32c(key.as_bytes())),
            view as u64,
        ));
        let (crop, flip, colour) = random_view(image.dimensions(), augment, &mut rng);
        crop_to_input(image, crop, flip, colour, size, preprocess, out);
    }
}

/// Pixels rendered in the training loop, for training from the stem (full fine-tune).
#[derive(Debug)]
pub struct PixelSource {
    entries: Vec<CacheEntry>,
    ok: Vec<bool>,
    failures: Vec<(String, String)>,
    augment: AugmentConfig,
    seed: u64,
    size: usize,
    preprocess: unisight_core::Preprocess,
}

impl PixelSource {
    /// Checks every image once (decoding it) so unreadable ones are known before training.
    pub fn new(
        entries: &[CacheEntry],
        model: &UnifiedModel,
        augment: &AugmentConfig,
        seed: u64,
    ) -> PixelSource {
        let limits = DecodeLimits::default();
        let checked: Vec<Option<String>> = entries
            .par_iter()
            .map(|e| load_rgb(&e.file, &limits).err().map(|err| err.to_string()))
            .collect();
        let failures = entries
            .iter()
            .zip(&checked)
            .filter_map(|(e, c)| c.clone().map(|reason| (e.key.clone(), reason)))
            .collect();
        PixelSource {
            entries: entries.to_vec(),
            ok: checked.iter().map(Option::is_none).collect(),
            failures,
            augment: augment.clone(),
            seed,
            size: model.spec.input_size,
            preprocess: model.spec.preprocess,
        }
    }
}

/// Where the trainable part's inputs come from.
#[derive(Debug)]
pub enum TrainInputs {
    /// Cached trunk maps.
    Cached(TrunkCache),
    /// Pixels decoded and augmented per step.
    Pixels(PixelSource),
}

impl TrainInputs {
    /// Whether `entry` is usable.
    pub fn is_ok(&self, entry: usize) -> bool {
        match self {
            TrainInputs::Cached(c) => c.is_ok(entry),
            TrainInputs::Pixels(p) => p.ok[entry],
        }
    }

    /// Images that could not be read: (key, reason).
    pub fn failures(&self) -> &[(String, String)] {
        match self {
            TrainInputs::Cached(c) => &c.failures,
            TrainInputs::Pixels(p) => &p.failures,
        }
    }

    /// Values and shape of one row per `(entry, view)`.
    pub fn rows(&self, rows: &[(usize, usize)]) -> (Vec<f32>, Vec<usize>) {
        match self {
            TrainInputs::Cached(c) => {
                let mut values = Vec::with_capacity(rows.len() * c.row_len());
                for &(entry, view) in rows {
                    values.extend(c.row(entry, view).iter().map(|v| v.to_f32()));
                }
                (values, c.row_shape.clone())
            }
            TrainInputs::Pixels(p) => {
                let len = 3 * p.size * p.size;
                let limits = DecodeLimits::default();
                let per_row: Vec<Vec<f32>> = rows
                    .par_iter()
                    .map(|&(entry, view)| {
                        let e = &p.entries[entry];
                        let mut out = vec![0f32; len];
                        // checked readable at start; a file changed since gives a blank row
                        if let Ok(image) = load_rgb(&e.file, &limits) {
                            render_view(
                                &image,
                                &e.key,
                                view % e.views,
                                &p.augment,
                                p.seed,
                                p.size,
                                p.preprocess,
                                &mut out,
                            );
                        }
                        out
                    })
                    .collect();
                (per_row.concat(), vec![3, p.size, p.size])
            }
        }
    }
}

/// A random resized crop (area and aspect ratio drawn as in torchvision), a coin for the
/// horizontal flip, and colour factors.
pub fn random_view<R: Rng>(
    dims: (u32, u32),
    augment: &AugmentConfig,
    rng: &mut R,
) -> (Crop, bool, [f32; 3]) {
    let (w, h) = dims;
    let area = (w as f32) * (h as f32);
    let [smin, smax] = augment.crop_scale;
    let [rmin, rmax] = augment.crop_ratio;
    let mut crop = None;
    for _ in 0..10 {
        let target = area * rng.gen_range(smin..=smax);
        let ratio = rng.gen_range(rmin.ln()..=rmax.ln()).exp();
        let cw = (target * ratio).sqrt().round() as u32;
        let ch = (target / ratio).sqrt().round() as u32;
        if cw > 0 && ch > 0 && cw <= w && ch <= h {
            crop = Some(Crop {
                left: rng.gen_range(0..=w - cw),
                top: rng.gen_range(0..=h - ch),
                width: cw,
                height: ch,
            });
            break;
        }
    }
    let crop = crop.unwrap_or_else(|| {
        let side = w.min(h);
        Crop {
            left: (w - side) / 2,
            top: (h - side) / 2,
            width: side,
            height: side,
        }
    });
    let flip = augment.flip && rng.gen_bool(0.5);
    let j = augment.jitter;
    let colour = if j > 0.0 {
        [0; 3].map(|_| rng.gen_range(1.0 - j..=1.0 + j))
    } else {
        [1.0; 3]
    };
    (crop, flip, colour)
}
