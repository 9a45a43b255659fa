//! Model files: `unisight init-model` (zero-shot), `export-onnx` and `bench-model` (model-only
//! throughput, the anchor of every serving and embedding ratio).

use anyhow::{anyhow, Context, Result};
use unisight_core::Architecture;

use std::path::Path;

use crate::args::{BenchModelArgs, ExportOnnxArgs, InitModelArgs};
use crate::embedder::{load_model, make_embedder, Backend};

/// Runs `unisight init-model`.
pub fn init(args: InitModelArgs) -> Result<()> {
    let arch = Architecture::from_short_name(&args.arch)
        .with_context(|| format!("unknown architecture {:?} (lite0, lite1, lite2)", args.arch))?;
    let model = unisight_model::UnifiedModel::zero_shot(
        arch,
        args.dim,
        args.seed,
        &burn::tensor::Device::flex(),
    )?;
    model.save(&args.out)?;
    eprintln!(
        "wrote {} ({:?}, D = {}, {:?})",
        args.out.display(),
        arch,
        args.dim,
        model.spec.projection
    );
    Ok(())
}

/// Runs `unisight export-onnx`.
pub fn export(args: ExportOnnxArgs) -> Result<()> {
    let (model, _) = load_model(args.model.as_deref())?;
    unisight_model::onnx::export_to_file(&model, &args.out)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

/// Runs `unisight bench-model`: prints one JSON line with the images per second.
pub fn bench(args: BenchModelArgs) -> Result<()> {
    let BenchModelArgs {
        model,
        batch,
        iters,
        threads,
        sessions,
        backend,
    } = args;
    let sessions = sessions.max(1);
    let (rate, name) = model_only_rate(model.as_deref(), batch, iters, threads, sessions, backend)?;
    println!(
        "{{\"backend\":\"{name}\",\"batch\":{batch},\"sessions\":{sessions},\"images_per_second\":{rate:.2}}}"
    );
    Ok(())
}

/// Model-only throughput (images per second, all sessions together) of `sessions` embedders
/// side by side, each embedding `iters` batches of fixed pseudo-random pixels after one
/// warm-up batch: the anchor every serving and embedding ratio is taken against. Also returns
/// the backend that ran.
///
/// # Errors
/// Loading the model or running inference fails.
pub fn model_only_rate(
    model: Option<&Path>,
    batch: usize,
    iters: usize,
    threads: usize,
    sessions: usize,
    backend: Backend,
) -> Result<(f64, &'static str)> {
    let sessions = sessions.max(1);
    let mut embedders = Vec::new();
    for _ in 0..sessions {
        let (net, model_id) = load_model(model)?;
        embedders.push(make_embedder(net, &model_id, backend, threads)?);
    }
    let name = embedders[0].backend();
    let s = embedders[0].spec().input_size;
    // a fixed, deterministic input; throughput does not depend on the values
    let pixels: Vec<f32> = (0..batch * 3 * s * s)
        .map(|i| ((i * 7919) % 256) as f32 / 128.0 - 1.0)
        .collect();
    for embedder in &mut embedders {
        embedder.embed(&pixels, batch)?;
    }
    let start = std::time::Instant::now();
    std::thread::scope(|scope| -> Result<()> {
        let runs: Vec<_> = embedders
            .iter_mut()
            .map(|embedder| {
                let pixels = &pixels;
                scope.spawn(move || -> Result<()> {
                    for _ in 0..iters {
                        embedder.embed(pixels, batch)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for run in runs {
            run.join()
                .map_err(|_| anyhow!("a benchmark thread panicked"))??;
        }
        Ok(())
    })?;
    Ok((
        (sessions * iters * batch) as f64 / start.elapsed().as_secs_f64(),
        name,
    ))
}
