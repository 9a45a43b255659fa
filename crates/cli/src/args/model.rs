//! Arguments of the model commands: `embed`, `init-model`, `export-onnx`, `bench-model`.

use std::path::PathBuf;

use clap::Args;

use crate::embedder::Backend;

/// Arguments of `unisight embed`.
#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// Model file; without it, the zero-shot EfficientNet-Lite0 (D = 1280, no projection).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Folder of images, or manifest with a `path` column / key.
    #[arg(long)]
    pub input: PathBuf,
    /// Folder manifest paths are resolved in (default: the manifest's folder).
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Embed only shard I of N (`0/4` .. `3/4`): the items whose id hashes to I, so N runs
    /// (on N machines) split a catalog without overlap; `index build --from` takes all their
    /// folders at once.
    #[arg(long, value_name = "I/N", value_parser = unisight_core::shard::Shard::parse)]
    pub shard: Option<unisight_core::shard::Shard>,
    /// Images per inference call.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Inference threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Inference backend.
    #[arg(long, value_enum, default_value_t = Backend::Auto)]
    pub backend: Backend,
}

/// Arguments of `unisight init-model`.
#[derive(Debug, Args)]
pub struct InitModelArgs {
    /// Trunk: lite0, lite1 or lite2.
    #[arg(long, default_value = "lite0")]
    pub arch: String,
    /// Embedding dimension D (1280 = no projection; else a random orthogonal projection).
    #[arg(long, default_value_t = 256)]
    pub dim: usize,
    /// Seed of the random projection.
    #[arg(long, default_value_t = unisight_model::DEFAULT_PROJECTION_SEED)]
    pub seed: u64,
    /// Output model file (.safetensors).
    #[arg(long)]
    pub out: PathBuf,
}

/// Arguments of `unisight export-onnx`.
#[derive(Debug, Args)]
pub struct ExportOnnxArgs {
    /// Model file (default: zero-shot Lite0).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Output .onnx file.
    #[arg(long)]
    pub out: PathBuf,
}

/// Arguments of `unisight bench-model`.
#[derive(Debug, Args)]
pub struct BenchModelArgs {
    /// Model file (default: zero-shot Lite0).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Images per call.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Timed calls (after one warm-up call).
    #[arg(long, default_value_t = 10)]
    pub iters: usize,
    /// Inference threads per session (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Sessions run side by side, each on its own thread (as `serve --workers` runs
    /// them); the rate printed is their total.
    #[arg(long, default_value_t = 1)]
    pub sessions: usize,
    /// Inference backend.
    #[arg(long, value_enum, default_value_t = Backend::Ort)]
    pub backend: Backend,
}
