//! `[train]`: batch, length, optimizer, loss and which model a run keeps.

use serde::{Deserialize, Serialize};

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
    /// What the validation score counts: R@1 alone, or R@1 and MAP@R (float and bits each).
    #[serde(skip_serializing_if = "ValidationMetric::is_recall")]
    pub validation_metric: ValidationMetric,
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
    /// The step whose validation score ([`ValidationMetric`]) was highest; test sets never
    /// choose.
    BestValidation,
    /// The last step.
    Last,
}

/// What a run's validation score counts, per validation set (the score is their mean).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ValidationMetric {
    /// (R@1 float + R@1 bits) / 2: the first neighbour only.
    Recall,
    /// (R@1 float + R@1 bits + MAP@R float + MAP@R bits) / 4: the first neighbour and the order
    /// of the whole class, for products whose users look past the first result (a step can
    /// gain MAP@R while its R@1 stands still).
    RecallAndMap,
}

impl ValidationMetric {
    /// The default, left out where a config is serialised (a run's resume fingerprint), so
    /// runs of builds before this setting existed still resume.
    pub fn is_recall(&self) -> bool {
        *self == ValidationMetric::Recall
    }
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
            validation_metric: ValidationMetric::Recall,
            patience: None,
            only_tasks: None,
        }
    }
}
