//! Arguments of the evaluation commands: `eval`, `compare`.

use std::path::PathBuf;

use clap::Args;

/// Arguments of `unisight eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Model file (with --config).
    #[arg(long, requires = "config", conflicts_with = "embeddings")]
    pub model: Option<PathBuf>,
    /// Task file whose tasks' `eval` sections name query and gallery sets.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Folder that relative dataset roots of the task file are in.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Only these tasks (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub tasks: Vec<String>,
    /// Cache of embedded evaluation sets, per model.
    #[arg(long, default_value = ".cache/embeddings")]
    pub cache_dir: PathBuf,
    /// Test-time flip averaging: embed every image and its mirror image and average the two
    /// (twice the inference; with --model).
    #[arg(long, requires = "model")]
    pub flip: bool,
    /// Query embeddings (an `unisight embed` folder whose items carry labels).
    #[arg(long, required_unless_present = "model")]
    pub embeddings: Option<PathBuf>,
    /// Gallery embeddings (default: leave-one-out within the queries).
    #[arg(long, requires = "embeddings")]
    pub gallery: Option<PathBuf>,
    /// Folder the embedding folders' item paths are relative to (for thumbnails).
    #[arg(long, requires = "embeddings")]
    pub image_root: Option<PathBuf>,
    /// Task name in the report (embedding folders).
    #[arg(long, default_value = "task", requires = "embeddings")]
    pub task: String,
    /// k of Recall@k and Precision@k (default: the task file's, else 1,5,10).
    #[arg(long, value_delimiter = ',')]
    pub k: Option<Vec<usize>>,
    /// MAP@R reads at most this many results per query.
    #[arg(long, default_value_t = 1000)]
    pub map_r_cap: usize,
    /// NMI clusters at most this many queries (0: no NMI).
    #[arg(long, default_value_t = 10_000)]
    pub nmi_max_items: usize,
    /// Example queries per task on the HTML page.
    #[arg(long, default_value_t = 12)]
    pub examples: usize,
    /// Seed of the NMI sample, k-means and the examples.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
}

/// Arguments of `unisight compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Models to compare.
    #[arg(required = true)]
    pub models: Vec<String>,
    /// Name of the baseline model (default: the first).
    #[arg(long)]
    pub baseline: Option<String>,
    /// Only these tasks (comma-separated; default: every task of the reports).
    #[arg(long, value_delimiter = ',')]
    pub tasks: Vec<String>,
    /// Bootstrap resamples.
    #[arg(long, default_value_t = 1000)]
    pub resamples: usize,
    /// Confidence level of the intervals.
    #[arg(long, default_value_t = 0.95)]
    pub level: f64,
    /// Bootstrap seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output folder (compare.json, compare.md, charts).
    #[arg(long)]
    pub out: PathBuf,
}
