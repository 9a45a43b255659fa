//! `unisight simulate-engagement`: a SIMULATED engagement log from a labelled set, ranked by a
//! baseline model, to test training from engagement end to end.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use unisight_core::artifacts::EmbeddingSet;
use unisight_data::decode::DecodeLimits;
use unisight_embed::EmbedOptions;

use crate::args::SimulateEngagementArgs;
use crate::embedder::{load_model, make_embedder, Backend};

/// Runs `unisight simulate-engagement`.
pub fn run(args: SimulateEngagementArgs) -> Result<()> {
    let SimulateEngagementArgs {
        config,
        data_dir,
        set,
        label,
        model,
        searches,
        shown,
        seed,
        out,
    } = args;
    let config =
        unisight_train::config::TrainConfig::load_with_data_dir(&config, data_dir.as_deref())?;
    let set_ref = unisight_train::config::SetRef::parse(&set)
        .with_context(|| format!("--set {set}: expected dataset:split"))?;
    let dataset = config.datasets.get(&set_ref.dataset).with_context(|| {
        format!(
            "--set {set}: no dataset `{}` in the task file",
            set_ref.dataset
        )
    })?;
    let images = dataset.list(&set_ref.split)?;
    let inputs: Vec<unisight_data::sources::Input> = images
        .iter()
        .filter_map(|im| {
            im.labels
                .get(&label)
                .map(|l| unisight_data::sources::Input {
                    id: im.id.clone(),
                    path: im.id.clone(),
                    file: im.file.clone(),
                    label: Some(l.clone()),
                    domain: im.domain.clone(),
                })
        })
        .collect();
    if inputs.len() < 2 {
        bail!("--set {set}: fewer than 2 images with label `{label}`");
    }
    let (model, model_id) = load_model(model.as_deref())?;
    let mut embedder = make_embedder(model, &model_id, Backend::Auto, 0)?;
    let mut emb_dir = out.as_os_str().to_owned();
    emb_dir.push(".baseline");
    let emb_dir = PathBuf::from(emb_dir);
    eprintln!(
        "ranking with {model_id}: embedding {} images into {}",
        inputs.len(),
        emb_dir.display()
    );
    let options = EmbedOptions {
        batch_size: 32,
        chunk_size: 512,
        limits: DecodeLimits::default(),
        model_id,
        progress: true,
        shard: None,
    };
    unisight_embed::run(&inputs, embedder.as_mut(), &emb_dir, &options)?;
    let embedded = EmbeddingSet::load(&emb_dir)?;
    let paths: Vec<String> = embedded.items.iter().map(|i| i.path.clone()).collect();
    let labels: Vec<String> = embedded
        .items
        .iter()
        .map(|i| i.label.clone().unwrap_or_default())
        .collect();
    let sim = unisight_train::simulate::SimulationConfig {
        searches,
        shown,
        seed,
        ..Default::default()
    };
    let log = unisight_train::simulate::simulate_engagement(
        &paths,
        &labels,
        &embedded.embeddings,
        embedded.dim,
        &sim,
    );
    let mut text = String::new();
    for e in &log {
        text.push_str(&serde_json::to_string(e)?);
        text.push('\n');
    }
    unisight_core::atomic::atomic_write_bytes(&out, text.as_bytes())?;
    let clicks: u32 = log.iter().map(|e| e.count).sum();
    eprintln!(
        "SIMULATED engagement: {searches} searches, {} (query, result, action) rows, {clicks} clicks/saves -> {}",
        log.len(),
        out.display()
    );
    Ok(())
}
