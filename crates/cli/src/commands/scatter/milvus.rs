//! `bench-scatter --milvus URL`: the same random codes and queries on a Milvus collection, so
//! the capacity plan compares Milvus's scan with the embedded one at the same size. The
//! collection is the benchmark's own: made fresh (an existing one is refused, never dropped),
//! filled, measured, and dropped again.

use std::time::Instant;

use anyhow::{ensure, Context, Result};
use serde::Serialize;
use unisight_backend::{Backend, NewItem, Query, Rerank, Shape};
use unisight_core::progress::Progress;
use unisight_milvus::{Milvus, MilvusUrl, ServerIndex};

use crate::commands::load_test::percentile;

/// Rows per add request.
const ADD_BATCH: usize = 20_000;

/// What the Milvus collection gave.
#[derive(Debug, Serialize)]
pub struct MilvusRow {
    pub url: String,
    pub server_index: String,
    pub items: usize,
    /// Rows added per second, sealed included (each add checks its keys are new first).
    pub add_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub single_per_second: f64,
    pub batch_per_second: f64,
    /// Share of the queries whose top-k distances equal the exact scan's.
    pub exact_share: f64,
}

/// The codes and queries of a run, and the exact answers to check Milvus's against.
pub struct Workload<'a> {
    pub codes: &'a [u8],
    pub queries: &'a [u8],
    pub code_bytes: usize,
    pub k: usize,
    pub batch: usize,
    pub reference: &'a [Vec<u32>],
}

/// Makes the collection, fills it with `work`'s codes (key = global id), measures the queries
/// one at a time and in batches, and drops it again (also when a step fails).
pub fn measure(url: &MilvusUrl, index: ServerIndex, work: &Workload<'_>) -> Result<MilvusRow> {
    let shape = Shape {
        bits: work.code_bytes * 8,
        float_dim: None,
    };
    let backend = Milvus::create(url, shape, index).with_context(|| url.to_string())?;
    let measured = fill_and_search(&backend, url, index, work);
    drop(backend);
    let dropped = Milvus::drop_collection(url);
    let row = measured?;
    dropped.with_context(|| format!("{url}: dropping the benchmark's collection"))?;
    Ok(row)
}

fn fill_and_search(
    backend: &Milvus,
    url: &MilvusUrl,
    index: ServerIndex,
    work: &Workload<'_>,
) -> Result<MilvusRow> {
    let items = work.codes.len() / work.code_bytes;
    let keys: Vec<String> = (0..items).map(|i| i.to_string()).collect();
    let progress = Progress::new("milvus add", items as u64, "items", true);
    let added = Instant::now();
    for (chunk, codes) in keys
        .chunks(ADD_BATCH)
        .zip(work.codes.chunks(ADD_BATCH * work.code_bytes))
    {
        let rows: Vec<NewItem> = chunk
            .iter()
            .zip(codes.chunks(work.code_bytes))
            .map(|(key, code)| NewItem {
                key,
                path: "",
                code,
                floats: None,
            })
            .collect();
        backend.add(&rows).with_context(|| url.to_string())?;
        progress.inc(rows.len() as u64);
    }
    backend.flush().with_context(|| url.to_string())?;
    progress.finish();
    let add_per_second = items as f64 / added.elapsed().as_secs_f64();
    let count = backend.count()?;
    ensure!(count == items, "{url}: {count} items after adding {items}");
    let query = |code| Query {
        code,
        float: None,
        k: work.k,
        mode: Rerank::None,
    };
    let distances =
        |hits: &[unisight_backend::Hit]| hits.iter().map(|h| h.distance).collect::<Vec<u32>>();
    // the first search loads what the server has not yet loaded
    backend.search(&[query(&work.queries[..work.code_bytes])], 1, 1)?;
    let mut latencies = Vec::new();
    let mut exact = 0;
    let single = Instant::now();
    for (i, code) in work.queries.chunks(work.code_bytes).enumerate() {
        let start = Instant::now();
        let hits = backend.search(&[query(code)], 1, 1)?;
        latencies.push(start.elapsed().as_secs_f64() * 1e3);
        exact +=
            usize::from(hits.first().map(|h| distances(h)).as_ref() == Some(&work.reference[i]));
    }
    let queries = latencies.len();
    let single_per_second = queries as f64 / single.elapsed().as_secs_f64();
    let batched = Instant::now();
    for batch in work.queries.chunks(work.code_bytes * work.batch.max(1)) {
        let batch: Vec<Query> = batch.chunks(work.code_bytes).map(query).collect();
        backend.search(&batch, 1, 1)?;
    }
    let batch_per_second = queries as f64 / batched.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    Ok(MilvusRow {
        url: url.to_string(),
        server_index: match index {
            ServerIndex::Flat => "BIN_FLAT".to_string(),
            ServerIndex::Ivf { nlist } => format!(
                "BIN_IVF_FLAT {nlist} lists, {} probed",
                url.nprobe.unwrap_or(nlist)
            ),
        },
        items,
        add_per_second,
        p50_ms: percentile(&latencies, 50.0),
        p99_ms: percentile(&latencies, 99.0),
        single_per_second,
        batch_per_second,
        exact_share: exact as f64 / queries as f64,
    })
}
