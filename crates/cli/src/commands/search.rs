//! `unisight search`: an index by image or by the key of an indexed item.

use std::io::Write;

use anyhow::{Context, Result};
use unisight_data::decode::{load_rgb, DecodeLimits};
use unisight_data::preprocess::embed_image;
use unisight_index::{Index, RerankRequest, ScanOptions};

use crate::args::{RerankMode, SearchArgs};
use crate::embedder::{load_model, make_embedder, Backend};

/// Runs `unisight search`.
pub fn run(args: SearchArgs) -> Result<()> {
    let SearchArgs {
        index,
        image,
        id,
        model,
        k,
        rerank,
        rerank_mode,
        json,
    } = args;
    let index = Index::open(&index)?;
    let (code, query_float) = match (&image, &id) {
        (Some(image), _) => embed_one(image, model.as_deref())?,
        (None, Some(key)) => {
            let item = index
                .id_of_key(key)?
                .with_context(|| format!("no item with key {key:?} in the index"))?;
            let code = index.code(item)?.to_vec();
            let floats = index.floats(item)?;
            (code, floats)
        }
        (None, None) => unreachable!("clap requires one"),
    };
    let request = match (rerank, rerank_mode) {
        (0, _) => RerankRequest::Off,
        (_, RerankMode::Float) => RerankRequest::Float,
        (_, RerankMode::Asymmetric) => RerankRequest::Asymmetric,
    };
    let mode = index
        .rerank_for(request, query_float.is_some())
        .context("--rerank-mode float")?;
    let options = ScanOptions {
        threads: std::thread::available_parallelism().map_or(1, usize::from),
        ..ScanOptions::default()
    };
    let hits = index.search_reranked(&code, query_float.as_deref(), k, rerank, mode, &options)?;
    let mut stdout = std::io::stdout().lock();
    let mut rows = Vec::new();
    for hit in hits {
        let item = index.item(hit.id)?;
        rows.push(serde_json::json!({
            "key": item.key, "path": item.path, "distance": hit.distance, "score": hit.score,
        }));
        if !json {
            let score = hit
                .score
                .map(|s| format!("{s:.4}"))
                .unwrap_or_else(|| "-".into());
            writeln!(
                stdout,
                "{:>5}  {:>8}  {}  {}",
                hit.distance, score, item.key, item.path
            )?;
        }
    }
    if json {
        writeln!(stdout, "{}", serde_json::to_string_pretty(&rows)?)?;
    }
    Ok(())
}

/// The code and float embedding of the image at `path`.
fn embed_one(
    path: &std::path::Path,
    model: Option<&std::path::Path>,
) -> Result<(Vec<u8>, Option<Vec<f32>>)> {
    let (model, model_id) = load_model(model)?;
    let mut embedder = make_embedder(model, &model_id, Backend::Auto, 0)?;
    let image = load_rgb(path, &DecodeLimits::default())?;
    let embedded = embed_image(embedder.as_mut(), &image, &mut Vec::new())?;
    Ok((embedded.code, Some(embedded.embedding)))
}
