//! Picks the model and the inference backend for commands that embed images.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::tensor::Device;
use unisight_core::{Architecture, Embedder};
use unisight_model::{assets, BurnEmbedder, UnifiedModel, DEFAULT_PROJECTION_SEED};

/// Which backend runs inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// ONNX Runtime if its library is present, else burn (said on stderr).
    Auto,
    /// ONNX Runtime only.
    Ort,
    /// burn flex (about 10x slower on CPU).
    Burn,
}

/// Loads `model` (a model file) or the zero-shot Lite0 with no projection.
pub fn load_model(model: Option<&Path>) -> Result<(UnifiedModel, String)> {
    let device = Device::flex();
    match model {
        Some(path) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading model {}", path.display()))?;
            let id = format!("{}#{:08x}", path.display(), crc32c::crc32c(&bytes));
            let model = UnifiedModel::load(path, &device)?;
            Ok((model, id))
        }
        None => {
            let arch = Architecture::EfficientnetLite0;
            let model = UnifiedModel::zero_shot(arch, 1280, DEFAULT_PROJECTION_SEED, &device)?;
            Ok((model, "zero-shot-lite0-d1280".into()))
        }
    }
}

/// An embedder for `model`: ONNX Runtime on an exported graph cached under the assets folder,
/// or burn.
pub fn make_embedder(
    model: UnifiedModel,
    model_id: &str,
    backend: Backend,
    threads: usize,
) -> Result<Box<dyn Embedder>> {
    if backend == Backend::Burn {
        return Ok(Box::new(BurnEmbedder::new(model)));
    }
    let dir = assets::assets_dir();
    let library = match assets::onnxruntime_path(&dir) {
        Ok(lib) => lib,
        Err(e) if backend == Backend::Auto => {
            eprintln!("note: {e}; falling back to burn (about 10x slower)");
            return Ok(Box::new(BurnEmbedder::new(model)));
        }
        Err(e) => return Err(e.into()),
    };
    unisight_embed::init_onnxruntime(&library)?;
    let onnx = onnx_cache_path(&dir, model_id);
    if !onnx.exists() {
        std::fs::create_dir_all(onnx.parent().expect("has parent"))
            .with_context(|| format!("creating {}", onnx.display()))?;
        unisight_model::onnx::export_to_file(&model, &onnx)?;
    }
    Ok(Box::new(unisight_embed::OrtEmbedder::new(
        &onnx,
        model.spec.clone(),
        threads,
    )?))
}

fn onnx_cache_path(dir: &Path, model_id: &str) -> PathBuf {
    dir.join("onnx").join(format!(
        "{:08x}-v{}.onnx",
        crc32c::crc32c(model_id.as_bytes()),
        env!("CARGO_PKG_VERSION")
    ))
}
