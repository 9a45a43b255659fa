//! The task file a user writes: datasets, tasks (label field, share, loss weight, proxies,
//! evaluation), model and training settings. TOML; unknown keys are errors that name the key
//! and line.
//!
//! ```toml
//! seed = 1
//! [model]
//! architecture = "lite0"
//! dim = 256
//! train_from = "block14"
//!
//! [datasets.grocery]
//! kind = "grocery-store"
//! root = "../shared/data/grocery-store/dataset"
//! train_splits = ["train", "iconic"]
//!
//! [[tasks]]
//! name = "grocery-fine"
//! sources = ["grocery"]
//! label = "fine"
//! [tasks.eval]
//! queries = "grocery:test"
//! gallery = "grocery:iconic"
//! validation = "grocery:val"     # chooses the model kept; the test sets never do
//! ```

#![deny(missing_docs)]

mod check;
mod error;
mod overrides;
mod train_from;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use unisight_core::Architecture;
use unisight_data::datasets::DatasetKind;

pub use error::{Error, Result};
pub use train_from::TrainFrom;

/// The whole task file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Seed of everything random (sampling, augmentation, proxy init, negatives).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Model settings.
    #[serde(default)]
    pub model: ModelConfig,
    /// Optimisation settings.
    #[serde(default)]
    pub train: OptimConfig,
    /// Augmentation of the cached views.
    #[serde(default)]
    pub augment: AugmentConfig,
    /// Datasets by name.
    pub datasets: BTreeMap<String, DatasetConfig>,
    /// Tasks, each with its own proxy bank.
    pub tasks: Vec<TaskConfig>,
}

fn default_seed() -> u64 {
    1
}

/// Model settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// `lite0`, `lite1` or `lite2`.
    #[serde(with = "arch_name")]
    pub architecture: Architecture,
    /// Embedding dimension D (bits of the code).
    pub dim: usize,
    /// First trainable part: `stem`, `blockN`, `head` or `pooled`.
    pub train_from: TrainFrom,
    /// Model file to start from instead of the ImageNet trunk.
    pub init: Option<PathBuf>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            architecture: Architecture::EfficientnetLite0,
            dim: 256,
            train_from: TrainFrom::Block(14),
            init: None,
        }
    }
}

mod arch_name {
    use serde::{Deserialize, Deserializer, Serializer};
    use unisight_core::Architecture;

    pub fn serialize<S: Serializer>(a: &Architecture, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(a.short_name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Architecture, D::Error> {
        let name = String::deserialize(d)?;
        Architecture::from_short_name(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown architecture `{name}` (lite0, lite1, lite2)"
            ))
        })
    }
}

/// Optimizer kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// AdamW (epsilon 1e-8, as PyTorch).
    Adamw,
    /// SGD with momentum.
    Sgd,
}

/// Learning-rate decay after warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// Cosine to zero at the last step.
    Cosine,
    /// x0.1 at 2/3 of the steps (and again at 8/9).
    Step,
    /// Constant.
    Constant,
}

/// Optimisation settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimConfig {
    /// Images per mini-batch (unless `batch_per_dataset` is given).
    pub batch_size: usize,
    /// Images per mini-batch for each dataset the run trains on (split by the shares, so
    /// with equal shares each dataset gets this many): the batch grows with the number of
    /// datasets, and adding a dataset no longer thins every other task's share of each
    /// update. Replaces `batch_size` when given.
    pub batch_per_dataset: Option<usize>,
    /// Epochs; an epoch is the steps needed to pass once over the largest dataset.
    pub epochs: Option<f64>,
    /// Steps, instead of epochs.
    pub steps: Option<usize>,
    /// Optimizer.
    pub optimizer: OptimizerKind,
    /// Learning rate of the new parameters (projection, proxies).
    pub lr: f64,
    /// Learning rate of the trunk, as a fraction of `lr`.
    pub trunk_lr_scale: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// Steps at the start that train only the new parameters.
    pub warmup_steps: Option<usize>,
    /// Decay after warm-up.
    pub schedule: Schedule,
    /// Softmax temperature of the normalized-softmax loss.
    pub temperature: f64,
    /// Augmented views cached per training image (cached-trunk modes).
    pub views: usize,
    /// Weight of the binary-aware term: every task's loss is also computed on
    /// `tanh(sharpness * projected)` (a differentiable stand-in for the sign code), so that
    /// training optimises what the Hamming index will search. 0 = off.
    pub binary_weight: f64,
    /// Sharpness of the tanh in the binary-aware term.
    pub binary_sharpness: f64,
    /// Steps between checkpoints.
    pub checkpoint_every: usize,
    /// Steps between validation runs (0: none, and the last step's model is kept).
    pub validate_every: usize,
    /// Which model the run writes: the one with the best validation score, or the last.
    pub keep: KeepModel,
    /// Stop early after this many validation runs in a row without a better score (none: run
    /// every step).
    pub patience: Option<usize>,
    /// Train (and evaluate) only these tasks of the file, by name (none: every task), so one
    /// task file serves every subset of its tasks (`--set 'train.only_tasks=["a", "b"]'`, or a
    /// sweep grid over subsets); datasets no kept task reads are not loaded.
    pub only_tasks: Option<Vec<String>>,
}

impl OptimConfig {
    /// Images per step of a run over `datasets` datasets.
    pub fn batch_for(&self, datasets: usize) -> usize {
        self.batch_per_dataset
            .map_or(self.batch_size, |n| n * datasets.max(1))
    }
}

/// The model a run keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeepModel {
    /// The step whose validation score (mean over the tasks' validation sets of R@1 float and
    /// R@1 bits) was highest; test sets never choose.
    BestValidation,
    /// The last step.
    Last,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            batch_size: 64,
            batch_per_dataset: None,
            epochs: None,
            steps: None,
            optimizer: OptimizerKind::Adamw,
            lr: 1e-3,
            trunk_lr_scale: 0.1,
            weight_decay: 1e-4,
            momentum: 0.9,
            warmup_steps: None,
            schedule: Schedule::Cosine,
            temperature: 0.05,
            views: 4,
            binary_weight: 0.0,
            binary_sharpness: 3.0,
            checkpoint_every: 100,
            validate_every: 250,
            keep: KeepModel::BestValidation,
            patience: None,
            only_tasks: None,
        }
    }
}

/// Augmentation of training images.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AugmentConfig {
    /// Random resized crop: area fraction range.
    pub crop_scale: [f32; 2],
    /// Random resized crop: aspect ratio range.
    pub crop_ratio: [f32; 2],
    /// Horizontal flip with probability 1/2.
    pub flip: bool,
    /// Colour jitter strength (brightness, contrast, saturation, each in 1 +- this).
    pub jitter: f32,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        AugmentConfig {
            crop_scale: [0.25, 1.0],
            crop_ratio: [0.75, 4.0 / 3.0],
            flip: true,
            jitter: 0.3,
        }
    }
}

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

/// Proxy set of a task's softmax.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyMode {
    /// Every class.
    All,
    /// Batch positives + sampled negatives up to `proxy_budget`.
    Sampled,
}

/// A task: one label field over one or more datasets, its own proxy bank.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskConfig {
    /// Name, used in reports and the model file.
    pub name: String,
    /// Datasets it reads.
    pub sources: Vec<String>,
    /// Label field (`fine`, `coarse`, `class`, `label`, `engagement`).
    pub label: String,
    /// Loss weight.
    #[serde(default = "one")]
    pub weight: f64,
    /// Sampling share, split over its sources (overrides dataset shares where given).
    pub share: Option<f64>,
    /// Softmax over all proxies or a sample.
    #[serde(default = "default_proxy_mode")]
    pub proxies: ProxyMode,
    /// Proxies per softmax in `sampled` mode.
    #[serde(default = "default_budget")]
    pub proxy_budget: usize,
    /// Evaluation sets.
    pub eval: Option<EvalConfig>,
}

fn one() -> f64 {
    1.0
}

fn default_proxy_mode() -> ProxyMode {
    ProxyMode::All
}

fn default_budget() -> usize {
    8192
}

/// Query and gallery sets of a task (`dataset:split`; gallery `self` = leave-one-out among
/// the queries).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    /// Query set for the final evaluation.
    pub queries: String,
    /// Gallery set.
    pub gallery: String,
    /// Query set for validation during training (default: none).
    pub validation: Option<String>,
    /// k of Recall@k.
    #[serde(default = "default_ks")]
    pub k: Vec<usize>,
    /// Label field that decides relevance in evaluation (default: the task's label), e.g.
    /// human `fine` labels for a task trained on `engagement`.
    pub label: Option<String>,
    /// Field whose equal values mark near-duplicates (photos of one shoot, one source page):
    /// `unisight eval` never lets a query retrieve gallery items of its own group. `domain` or
    /// any label field of the dataset.
    pub group: Option<String>,
}

fn default_ks() -> Vec<usize> {
    vec![1, 5, 10]
}

/// A `dataset:split` reference.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SetRef {
    /// Dataset name.
    pub dataset: String,
    /// Split name.
    pub split: String,
}

impl SetRef {
    /// Parses `dataset:split`.
    pub fn parse(s: &str) -> Option<SetRef> {
        let (dataset, split) = s.split_once(':')?;
        (!dataset.is_empty() && !split.is_empty()).then(|| SetRef {
            dataset: dataset.into(),
            split: split.into(),
        })
    }
}

impl TrainConfig {
    /// Reads and checks a task file; dataset roots become relative to its folder.
    ///
    /// # Errors
    /// [`Error::Config`] naming the key (and line, for TOML syntax and unknown keys).
    pub fn load(path: &Path) -> Result<TrainConfig> {
        Self::load_with_data_dir(path, None)
    }

    /// As [`TrainConfig::load`], with relative dataset roots resolved in `data_dir` instead of
    /// the task file's folder.
    ///
    /// # Errors
    /// As [`TrainConfig::load`].
    pub fn load_with_data_dir(path: &Path, data_dir: Option<&Path>) -> Result<TrainConfig> {
        Self::load_with_overrides(path, data_dir, &[])
    }

    /// As [`TrainConfig::load_with_data_dir`], with `KEY=VALUE` overrides applied to the file
    /// first (`train.steps=300`, `datasets.clicks.logs=/abs/logs`): a dotted key names a
    /// table path; a value is read as TOML (number, boolean, quoted string, array), else taken
    /// as a plain string, so paths need no quotes. Overridden paths resolve like the file's own.
    ///
    /// # Errors
    /// As [`TrainConfig::load`]; [`Error::Config`] for an override without `=` or through a
    /// key that is not a table.
    pub fn load_with_overrides(
        path: &Path,
        data_dir: Option<&Path>,
        overrides: &[String],
    ) -> Result<TrainConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let config_error = |what: String| Error::Config {
            path: path.into(),
            what,
        };
        let parse_error = |e: toml::de::Error| config_error(e.to_string().trim_end().to_string());
        // without overrides the file is read as it is, so errors keep their line numbers
        let mut config: TrainConfig = if overrides.is_empty() {
            toml::from_str(&text).map_err(parse_error)?
        } else {
            let mut value: toml::Table = toml::from_str(&text).map_err(parse_error)?;
            for o in overrides {
                overrides::apply(&mut value, o)
                    .map_err(|what| config_error(format!("--set {o}: {what}")))?;
            }
            value.try_into().map_err(parse_error)?
        };
        let base = path.parent().unwrap_or(Path::new("."));
        for d in config.datasets.values_mut() {
            if d.root.is_relative() {
                d.root = data_dir.unwrap_or(base).join(&d.root);
            }
            if let Some(catalog) = &mut d.catalog {
                if catalog.is_relative() {
                    *catalog = base.join(&*catalog);
                }
            }
            if let Some(logs) = &mut d.logs {
                if logs.is_relative() {
                    *logs = base.join(&*logs);
                }
            }
        }
        if let Some(init) = &mut config.model.init {
            if init.is_relative() {
                *init = base.join(&*init);
            }
        }
        if let Some(only) = &config.train.only_tasks {
            if let Some(unknown) = only
                .iter()
                .find(|n| !config.tasks.iter().any(|t| &t.name == *n))
            {
                return Err(config_error(format!(
                    "`train.only_tasks` names `{unknown}`, which is not a task of this file ({})",
                    config
                        .tasks
                        .iter()
                        .map(|t| t.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            config.tasks.retain(|t| only.contains(&t.name));
            if config.tasks.is_empty() {
                return Err(config_error("`train.only_tasks` is empty".into()));
            }
        }
        config.check().map_err(|what| Error::Config {
            path: path.into(),
            what,
        })?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
seed = 3
[model]
architecture = "lite0"
dim = 256
train_from = "block14"
[train]
steps = 10
[datasets.grocery]
kind = "grocery-store"
root = "data/grocery"
train_splits = ["train", "iconic"]
[datasets.clothing]
kind = "image-folder"
root = "/abs/clothing"
[[tasks]]
name = "fine"
sources = ["grocery"]
label = "fine"
[tasks.eval]
queries = "grocery:test"
gallery = "grocery:iconic"
validation = "grocery:val"
[[tasks]]
name = "clothing"
sources = ["clothing"]
label = "class"
proxies = "sampled"
proxy_budget = 4
"#;

    fn load(text: &str) -> Result<TrainConfig> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tasks.toml");
        std::fs::write(&path, text).unwrap();
        TrainConfig::load(&path)
    }

    #[test]
    fn reads_a_task_file_and_resolves_roots() {
        let c = load(GOOD).unwrap();
        assert_eq!(c.seed, 3);
        assert_eq!(c.model.train_from, TrainFrom::Block(14));
        assert_eq!(c.tasks[1].proxies, ProxyMode::Sampled);
        assert!(
            c.datasets["grocery"].root.ends_with("data/grocery")
                && c.datasets["grocery"].root.is_absolute()
        );
        assert_eq!(c.datasets["clothing"].root, PathBuf::from("/abs/clothing"));
        assert_eq!(c.train.temperature, 0.05);
    }

    #[test]
    fn errors_name_the_key() {
        let err = |text: &str| load(text).unwrap_err().to_string();
        let e = err(&GOOD.replace("proxy_budget = 4", "proxy_budget = 4\nlearning_rate = 3"));
        assert!(e.contains("learning_rate") && e.contains("line"), "{e}");
        let e = err(&GOOD.replace("label = \"class\"", "label = \"fine\""));
        assert!(
            e.contains("tasks[1] (clothing)") && e.contains("`label`"),
            "{e}"
        );
        let e = err(&GOOD.replace("sources = [\"clothing\"]", "sources = [\"shoes\"]"));
        assert!(e.contains("`shoes`"), "{e}");
        let e = err(&GOOD.replace("gallery = \"grocery:iconic\"", "gallery = \"iconic\""));
        assert!(e.contains("eval.gallery"), "{e}");
        let e = err(&GOOD.replace("train_from = \"block14\"", "train_from = \"layer3\""));
        assert!(e.contains("layer3"), "{e}");
        let e = err(&GOOD.replace("steps = 10", ""));
        assert!(e.contains("epochs"), "{e}");
        let e = err(&GOOD.replace(
            "steps = 10",
            "steps = 10\nonly_tasks = [\"fine\", \"shoes\"]",
        ));
        assert!(e.contains("only_tasks") && e.contains("`shoes`"), "{e}");
    }

    #[test]
    fn only_tasks_keeps_a_subset_of_the_file() {
        let c =
            load(&GOOD.replace("steps = 10", "steps = 10\nonly_tasks = [\"clothing\"]")).unwrap();
        assert_eq!(c.tasks.len(), 1);
        assert_eq!(c.tasks[0].name, "clothing");
        // the resolved file a run writes reads back to the same subset
        let back: TrainConfig = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
        assert_eq!(back.tasks.len(), 1);
    }

    #[test]
    fn a_carved_validation_split_is_apart_from_training_and_the_same_every_time() {
        let dir = tempfile::tempdir().unwrap();
        for class in ["shirt", "shoe"] {
            let folder = dir.path().join("photos/train").join(class);
            std::fs::create_dir_all(&folder).unwrap();
            for i in 0..100 {
                std::fs::write(folder.join(format!("{i}.jpg")), b"x").unwrap();
            }
        }
        let text = r#"
[train]
steps = 10
[datasets.photos]
kind = "image-folder"
root = "photos"
validation_fraction = 0.2
[[tasks]]
name = "kind"
sources = ["photos"]
label = "class"
[tasks.eval]
queries = "photos:carved"
gallery = "photos:train"
validation = "photos:carved"
"#;
        let path = dir.path().join("tasks.toml");
        std::fs::write(&path, text).unwrap();
        let c = TrainConfig::load(&path).unwrap();
        let d = &c.datasets["photos"];
        let train: Vec<String> = d.list("train").unwrap().into_iter().map(|i| i.id).collect();
        let carved: Vec<String> = d
            .list(CARVED_SPLIT)
            .unwrap()
            .into_iter()
            .map(|i| i.id)
            .collect();
        assert_eq!(train.len() + carved.len(), 200);
        assert!((20..=60).contains(&carved.len()), "{} carved", carved.len());
        assert!(carved.iter().all(|id| !train.contains(id)));
        let again: Vec<String> = d
            .list(CARVED_SPLIT)
            .unwrap()
            .into_iter()
            .map(|i| i.id)
            .collect();
        assert_eq!(carved, again);
        // naming `carved` without a fraction is refused, naming the key
        std::fs::write(&path, text.replace("validation_fraction = 0.2\n", "")).unwrap();
        let e = TrainConfig::load(&path).unwrap_err().to_string();
        assert!(e.contains("datasets.photos.validation_fraction"), "{e}");
    }
}
