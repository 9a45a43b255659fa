//! `[[tasks]]`: one label field over datasets, its proxies and its evaluation sets.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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
    /// Temperature of this task's proxy softmax (default: `train.temperature`). A task whose
    /// users look past the first result (MAP@R) may want softer targets than one judged at R@1:
    /// a softer softmax keeps pulling images towards their proxy after they are classified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
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
    /// Start the proxies from the images of a `dataset:split` of one of the task's sources
    /// instead of at random: each class's proxy is the mean embedding (plain view, the model
    /// training starts from) of its images there, e.g. the catalog images of a store-photo ->
    /// catalog task, so training pulls the photos towards where the catalog already sits.
    /// Classes without an image there start at random.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_init: Option<String>,
    /// Distil a teacher model into this task: the unified model's neighbourhoods among the
    /// task's images in each batch are pulled towards the teacher's (a specialized model, or the
    /// unified model before a task was added), so what the teacher knew is kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distill: Option<DistillConfig>,
}

/// `[tasks.distill]`: relational distillation from a teacher model.
///
/// Each batch row of the task gets a softmax over its cosine similarities to the task's other
/// rows, under the teacher and under the model in training; the term is KL(teacher || model),
/// the mean over rows. It compares similarities, not embeddings, so the teacher may have any D.
/// The teacher must share the run's frozen front (same architecture, trained from the same
/// block or later), so it runs on the cached trunk maps.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistillConfig {
    /// The teacher's model file (relative paths: from the task file's folder).
    pub teacher: PathBuf,
    /// Weight of the term beside the task's own loss.
    #[serde(default = "one")]
    pub weight: f64,
    /// Temperature of the similarity softmax (default: `train.temperature`).
    pub temperature: Option<f64>,
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
