//! `[datasets.NAME]`: a dataset on disk, its training splits, sampling and carved validation.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use unisight_data::datasets::DatasetKind;

use crate::{Error, Result};

/// A dataset on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetConfig {
    /// Its layout.
    pub kind: DatasetKind,
    /// Its root folder (relative paths are relative to the task file).
    pub root: PathBuf,
    /// Splits used for training.
    #[serde(default = "default_train_splits")]
    pub train_splits: Vec<String>,
    /// Sampling share in every mini-batch (default: equal shares).
    pub share: Option<f64>,
    /// Class-balanced sampling: this dataset's part of every batch is made of groups of this
    /// many images of one class (by `balance_label`), instead of a plain shuffle.
    pub images_per_class: Option<usize>,
    /// Label field that defines the classes of `images_per_class` (default: the label of the
    /// first task reading this dataset).
    pub balance_label: Option<String>,
    /// Loss weight of the images of a domain (e.g. `catalog = 2.0` to weigh up catalog
    /// images); 1 for the rest.
    #[serde(default)]
    pub domain_weights: BTreeMap<String, f64>,
    /// For `engagement` datasets: the folder holding `<split>.jsonl` logs (default: `root`),
    /// so logs can live apart from the images they name.
    pub logs: Option<PathBuf>,
    /// For `engagement` datasets: the index or embedding folder the service searched, through
    /// which the log's item keys are resolved to images (default: the logged paths, inside
    /// `root`).
    pub catalog: Option<PathBuf>,
    /// For `engagement` datasets: the rule that turns the log into classes
    /// (`save_weight`, `min_score`, `max_class_size`; see `unisight_engagement`).
    #[serde(default)]
    pub engagement_rule: unisight_engagement::LabelRule,
    /// Carve a validation split out of the training splits: this fraction of their images
    /// (chosen by a checksum of each image's id, so the same images for every seed and run) is
    /// left out of every split listed in `train_splits` and forms the split `carved`
    /// (`<dataset>:carved`), for data sets that ship no validation split.
    pub validation_fraction: Option<f64>,
}

/// The split a dataset's `validation_fraction` carves out of its training splits.
pub const CARVED_SPLIT: &str = "carved";

/// Whether the image `id` falls in a carved validation split of `fraction`.
pub fn is_carved(id: &str, fraction: f64) -> bool {
    f64::from(crc32c::crc32c(id.as_bytes())) / 4_294_967_296.0 < fraction
}

impl DatasetConfig {
    /// Lists one split, reading engagement logs from [`DatasetConfig::logs`].
    ///
    /// # Errors
    /// Dataset errors naming file and line.
    pub fn list(&self, split: &str) -> Result<Vec<unisight_data::datasets::LabeledImage>> {
        let Some(fraction) = self.validation_fraction else {
            return self.list_as_shipped(split);
        };
        if split == CARVED_SPLIT {
            let mut seen = std::collections::BTreeSet::new();
            let mut carved = Vec::new();
            for s in &self.train_splits {
                for image in self.list_as_shipped(s)? {
                    if is_carved(&image.id, fraction) && seen.insert(image.id.clone()) {
                        carved.push(image);
                    }
                }
            }
            return Ok(carved);
        }
        let mut images = self.list_as_shipped(split)?;
        if self.train_splits.iter().any(|s| s == split) {
            images.retain(|image| !is_carved(&image.id, fraction));
        }
        Ok(images)
    }

    fn list_as_shipped(&self, split: &str) -> Result<Vec<unisight_data::datasets::LabeledImage>> {
        match &self.kind {
            DatasetKind::Engagement => Ok(unisight_engagement::list_split(
                &self.root,
                self.logs.as_ref().unwrap_or(&self.root),
                split,
                &self.engagement_rule,
                self.catalog.as_deref(),
            )?),
            kind => unisight_data::datasets::list_split(kind, &self.root, split)
                .map_err(|e| Error::Data(e.to_string())),
        }
    }
}

fn default_train_splits() -> Vec<String> {
    vec!["train".into()]
}
