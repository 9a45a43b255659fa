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

mod augment;
mod check;
mod dataset;
mod error;
mod model;
mod optim;
mod overrides;
mod task;
mod train_from;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use augment::AugmentConfig;
pub use dataset::{is_carved, DatasetConfig, CARVED_SPLIT};
pub use error::{Error, Result};
pub use model::{FrontPrecision, ModelConfig};
pub use optim::{KeepModel, OptimConfig, OptimizerKind, Schedule, ValidationMetric};
pub use task::{DistillConfig, EvalConfig, ProxyMode, SetRef, TaskConfig};
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
        for distill in config.tasks.iter_mut().filter_map(|t| t.distill.as_mut()) {
            if distill.teacher.is_relative() {
                distill.teacher = base.join(&distill.teacher);
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
    use std::path::PathBuf;

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

    /// A run's resume fingerprint hashes its serialised config: a setting added later must be
    /// left out at its default, or every checkpoint of an earlier build refuses to resume.
    #[test]
    fn settings_at_their_defaults_are_not_serialised() {
        let c = load(GOOD).unwrap();
        let json = serde_json::to_string(&c).unwrap();
        for later in [
            "front_precision",
            "validation_metric",
            "\"temperature\":null",
            "proxy_init",
            "distill",
        ] {
            assert!(!json.contains(later), "`{later}` serialised: {json}");
        }
        let c = load(&GOOD.replace(
            "steps = 10",
            "steps = 10\nvalidation_metric = \"recall-and-map\"",
        ))
        .unwrap();
        let json = serde_json::to_string(&c).unwrap();
        assert!(
            json.contains("\"validation_metric\":\"recall-and-map\""),
            "{json}"
        );
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
    fn an_int8_front_needs_blocks_to_quantize() {
        let int8 = GOOD.replace("dim = 256", "dim = 256\nfront_precision = \"int8\"");
        assert_eq!(
            load(&int8).unwrap().model.front_precision,
            FrontPrecision::Int8
        );
        assert_eq!(
            load(GOOD).unwrap().model.front_precision,
            FrontPrecision::Float32
        );
        let e = load(&int8.replace("block14", "pooled"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("model.front_precision") && e.contains("pooled"),
            "{e}"
        );
        let e = load(&GOOD.replace("dim = 256", "dim = 256\nfront_precision = \"int4\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("int4") && e.contains("line"), "{e}");
        // the default is not written, so task files and runs from before it keep their identity
        let written = toml::to_string(&load(GOOD).unwrap().model).unwrap();
        assert!(!written.contains("front_precision"), "{written}");
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
