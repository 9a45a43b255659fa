//! `unisight search`: an index (a folder or a Milvus collection) by image or by the key of an
//! indexed item.

use std::io::Write;

use anyhow::{Context, Result};
use unisight_backend::{Query, RerankRequest};
use unisight_data::decode::{load_rgb, DecodeLimits};
use unisight_data::preprocess::embed_image;

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
    let backend = index.open(false, None)?;
    let (code, query_float) = match (&image, &id) {
        (Some(image), _) => embed_one(image, model.as_deref())?,
        (None, Some(key)) => {
            let item = backend
                .get(key)
                .with_context(|| index.to_string())?
                .with_context(|| format!("no item with key {key:?} in {index}"))?;
            (item.code, item.floats)
        }
        (None, None) => unreachable!("clap requires one"),
    };
    let request = match (rerank, rerank_mode) {
        (0, _) => RerankRequest::Off,
        (_, RerankMode::Float) => RerankRequest::Float,
        (_, RerankMode::Asymmetric) => RerankRequest::Asymmetric,
    };
    let mode = backend
        .shape()
        .rerank_for(request, query_float.is_some())
        .context("--rerank-mode float")?;
    let query = Query {
        code: &code,
        float: query_float.as_deref(),
        k,
        mode,
    };
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let hits = backend
        .search(&[query], rerank.max(1), threads)
        .with_context(|| index.to_string())?
        .pop()
        .unwrap_or_default();
    let mut stdout = std::io::stdout().lock();
    if json {
        writeln!(stdout, "{}", serde_json::to_string_pretty(&hits)?)?;
        return Ok(());
    }
    for hit in hits {
        let score = hit
            .score
            .map(|s| format!("{s:.4}"))
            .unwrap_or_else(|| "-".into());
        writeln!(
            stdout,
            "{:>5}  {:>8}  {}  {}",
            hit.distance, score, hit.key, hit.path
        )?;
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
