//! Where the trainable part's inputs come from: the trunk-map cache of the cached-trunk mode,
//! or pixels rendered per step when training from the stem.
//!
//! The frozen front of the trunk (stem and the blocks before the first trainable one) is the
//! expensive part of a forward pass and never changes during training, so its output is
//! computed once, for several augmented views of every training image (view 0 is the plain
//! centre crop, the one evaluation uses), by ONNX Runtime on a graph exported from the burn
//! model (about 10x faster than burn here), and stored as float16 ([`store`]: one folder per
//! front, augmentation and seed, shared by every run and task file that uses them; [`build`]:
//! decoding, inference and writing overlapped). A killed build resumes at the first image it
//! had not committed. An unreadable image is skipped and counted, never fatal.

mod build;
mod front;
mod store;
mod views;

use std::path::PathBuf;

use half::f16;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use unisight_data::decode::{load_rgb, DecodeLimits};
use unisight_model::UnifiedModel;

use crate::config::AugmentConfig;

pub use build::build;
pub use front::CachedFront;
pub use views::{random_view, render_view};

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

/// Cached trunk outputs of a run's images, memory-mapped from the cache folder.
#[derive(Debug)]
pub struct TrunkCache {
    /// Shape of one row (`[C, h, w]` or `[trunk_dim]`).
    pub row_shape: Vec<usize>,
    zeros: Vec<f16>,
    store: store::Store,
    views: Vec<usize>,
    locations: Vec<Option<store::Location>>,
    /// Images that could not be read: (key, reason).
    pub failures: Vec<(String, String)>,
}

impl TrunkCache {
    /// Row of `entry`, `view` (zeros for an image that could not be read).
    pub fn row(&self, entry: usize, view: usize) -> &[f16] {
        match self.locations[entry] {
            Some(l) => self
                .store
                .row(l.chunk, l.first_row + view.min(self.views[entry] - 1)),
            None => &self.zeros,
        }
    }

    /// Whether `entry` was read (failed images have no rows worth using).
    pub fn is_ok(&self, entry: usize) -> bool {
        self.locations[entry].is_some()
    }

    /// Values per row.
    pub fn row_len(&self) -> usize {
        self.zeros.len()
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
