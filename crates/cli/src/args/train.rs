//! Arguments of the training commands: `train`, `sweep`, `summarize-runs`, and the data they
//! read (`import-fashion-mnist`, `simulate-engagement`).

use std::path::PathBuf;

use clap::Args;

/// Arguments of `unisight train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The task file (TOML: datasets, tasks, model, training).
    #[arg(long)]
    pub config: PathBuf,
    /// Where to write the trained model file.
    #[arg(long)]
    pub out: PathBuf,
    /// Folder that relative dataset roots are resolved in (default: the task file's folder).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Checkpoints, history.json, report.json and charts (default: OUT.run/). A run
    /// resumes from the latest checkpoint here.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Trunk-map caches, shared between runs (default: .cache/trunk).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Override the task file's seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Override a key of the task file, `KEY=VALUE` with a dotted key (`train.steps=300`,
    /// `datasets.clicks.logs=/abs/logs`); repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Stop after this step, checkpointed, as if interrupted (rerun to resume).
    #[arg(long)]
    pub stop_after: Option<usize>,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

/// Arguments of `unisight sweep`.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// The task file every point starts from.
    #[arg(long)]
    pub config: PathBuf,
    /// The grid (TOML: `seeds = [..]` and a `[grid]` table of dotted task-file keys to value
    /// lists, e.g. `"train.steps" = [750, 1500]`).
    #[arg(long)]
    pub grid: PathBuf,
    /// Folder that relative dataset roots are resolved in (default: the task file's folder).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Runs, models, sweep.md and sweep.json; re-running finishes what is not done.
    #[arg(long)]
    pub out: PathBuf,
    /// Trunk-map caches, shared between runs (default: .cache/trunk).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// No progress output.
    #[arg(long)]
    pub quiet: bool,
}

/// Arguments of `unisight summarize-runs`.
#[derive(Debug, Args)]
pub struct SummarizeRunsArgs {
    /// Work folders of finished runs (`OUT.run`).
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Instead, print each run's validation curve: its score at every validated step under each
    /// `train.validation_metric`, the step each would keep, the step the run kept, and each
    /// task's R@1 / MAP@R (a run still training: up to its latest checkpoint).
    #[arg(long)]
    pub validation: bool,
}

/// Arguments of `unisight import-fashion-mnist`.
#[derive(Debug, Args)]
pub struct ImportFashionMnistArgs {
    /// Folder with the gzipped IDX files.
    #[arg(long, default_value = unisight_data::fashion_mnist::DEBIAN_DIR)]
    pub from: PathBuf,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Training images per class.
    #[arg(long, default_value_t = 300)]
    pub train_per_class: usize,
    /// Test images per class.
    #[arg(long, default_value_t = 100)]
    pub test_per_class: usize,
}

/// Arguments of `unisight simulate-engagement`.
#[derive(Debug, Args)]
pub struct SimulateEngagementArgs {
    /// Task file naming the dataset.
    #[arg(long)]
    pub config: PathBuf,
    /// Folder relative dataset roots are resolved in (default: the task file's folder).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The labelled set, `dataset:split`.
    #[arg(long)]
    pub set: String,
    /// Label field that decides which results simulated users find relevant.
    #[arg(long)]
    pub label: String,
    /// Baseline model that ranks the results shown (default: zero-shot Lite0).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Searches to simulate.
    #[arg(long, default_value_t = 5000)]
    pub searches: usize,
    /// Results shown per search.
    #[arg(long, default_value_t = 20)]
    pub shown: usize,
    /// Seed of the simulated users.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The log to write (JSON Lines; every event has "simulated": true).
    #[arg(long)]
    pub out: PathBuf,
}
