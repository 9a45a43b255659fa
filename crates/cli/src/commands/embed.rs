//! `unisight embed`: a folder or manifest of images into an embedding folder, resumable.

use anyhow::{bail, Result};
use unisight_data::decode::DecodeLimits;
use unisight_embed::EmbedOptions;

use crate::args::EmbedArgs;
use crate::embedder::{load_model, make_embedder};

/// Runs `unisight embed`.
pub fn run(args: EmbedArgs) -> Result<()> {
    let mut inputs = unisight_data::sources::list_inputs(&args.input, args.root.as_deref())?;
    if inputs.is_empty() {
        bail!("{}: no images found", args.input.display());
    }
    if let Some(shard) = args.shard {
        let all = inputs.len();
        inputs.retain(|input| shard.contains(&input.id));
        eprintln!("shard {shard}: {} of {all} images", inputs.len());
    }
    let (model, model_id) = load_model(args.model.as_deref())?;
    let mut embedder = make_embedder(model, &model_id, args.backend, args.threads)?;
    eprintln!(
        "embedding {} images with {} ({})",
        inputs.len(),
        model_id,
        embedder.backend()
    );
    let options = EmbedOptions {
        batch_size: args.batch,
        chunk_size: args.batch * 16,
        limits: DecodeLimits::default(),
        model_id,
        progress: true,
        shard: args.shard,
    };
    let summary = unisight_embed::run(&inputs, embedder.as_mut(), &args.out, &options)?;
    eprintln!(
        "embedded {} of {} images ({} skipped, {} chunks resumed) at {:.1} images/s into {}",
        summary.embedded,
        summary.inputs,
        summary.failed,
        summary.resumed_chunks,
        summary.images_per_second,
        args.out.display()
    );
    Ok(())
}
