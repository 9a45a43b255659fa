//! `unisight index ...`: build, add to, remove from, compact and describe an index (a folder,
//! or for build, add, remove and stats a Milvus collection), and measure its inverted file.

use std::path::Path;
use unisight_core::progress::Progress;

use anyhow::{bail, Context, Result};
use unisight_backend::{Backend, Shape};
use unisight_core::artifacts::EmbeddingSet;
use unisight_index::{FloatKind, Index, IndexConfig, NewItem};
use unisight_milvus::{Milvus, MilvusUrl, ServerIndex};

use crate::args::{FloatStorage, IndexCommand};
use crate::index_location::IndexLocation;

/// Items sent to a Milvus server per insert (a few MB per request at 256 bits + 256 floats).
const MILVUS_BATCH: usize = 2_000;

/// Runs `unisight index ...`.
pub fn run(command: IndexCommand) -> Result<()> {
    match command {
        IndexCommand::Build {
            from,
            out,
            floats,
            no_keys,
            server_index,
        } => {
            let parts = unisight_core::shard::load_parts(&from)?;
            let Some(set) = parts.first() else {
                bail!("no embedding folder given");
            };
            let bits = set.code_bytes * 8;
            if !bits.is_multiple_of(64) {
                bail!(
                    "{}: D = {} gives {bits}-bit codes; the index needs a multiple of 64",
                    from[0].display(),
                    set.dim
                );
            }
            let floats = match floats {
                FloatStorage::None => None,
                FloatStorage::F16 => Some((set.dim, FloatKind::F16)),
                FloatStorage::F32 => Some((set.dim, FloatKind::F32)),
            };
            match &out {
                IndexLocation::Folder(out) => {
                    let config = IndexConfig {
                        bits,
                        floats,
                        keys: !no_keys,
                    };
                    Index::build_new(out, config, |index| {
                        parts.iter().try_for_each(|part| add_set(index, part))
                    })?;
                }
                IndexLocation::Milvus(url) => {
                    if no_keys {
                        bail!("{url}: a Milvus collection keeps every item's key (no --no-keys)");
                    }
                    let shape = Shape {
                        bits,
                        float_dim: floats.map(|(dim, _)| dim),
                    };
                    build_milvus(url, shape, server_index, &parts)?;
                }
            }
            print_stats(&out)
        }
        IndexCommand::Add { index, from } => {
            let set = EmbeddingSet::load_for_index(&from)?;
            match &index {
                IndexLocation::Folder(dir) => add_set(&mut Index::open_writable(dir)?, &set)?,
                IndexLocation::Milvus(_) => {
                    let backend = index.open(true, None)?;
                    let progress = Progress::new("index add", set.len() as u64, "items", true);
                    add_in_batches(backend.as_ref(), &set, &progress)
                        .with_context(|| index.to_string())?;
                    progress.finish();
                }
            }
            print_stats(&index)
        }
        IndexCommand::Remove { index, keys } => {
            let backend = index.open(true, None)?;
            for key in &keys {
                if backend.get(key)?.is_none() {
                    bail!("{index}: no item with key {key:?}; nothing removed");
                }
            }
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            let n = backend.remove(&keys)?;
            eprintln!("removed {n} items");
            drop(backend);
            print_stats(&index)
        }
        IndexCommand::Compact { index } => {
            let mut index = Index::open_writable(&index)?;
            index.compact()?;
            println!("{}", serde_json::to_string_pretty(&index.stats())?);
            Ok(())
        }
        IndexCommand::Stats { index } => print_stats(&index),
        IndexCommand::Check {
            index,
            from,
            sample,
            seed,
        } => check(&index, &from, sample, seed),
        IndexCommand::Drop { index } => match &index {
            IndexLocation::Milvus(url) => {
                if Milvus::drop_collection(url).with_context(|| url.to_string())? {
                    eprintln!("{url}: dropped");
                    Ok(())
                } else {
                    bail!("{url}: no such collection")
                }
            }
            IndexLocation::Folder(dir) => bail!(
                "{}: an index folder is removed as a folder (rm -r); drop is for Milvus \
                 collections",
                dir.display()
            ),
        },
        IndexCommand::IvfRecall {
            index,
            lists,
            probes,
            queries,
            k,
            seed,
        } => ivf_recall(&index, lists, &probes, queries, k, seed),
    }
}

/// `index check`: prints what was checked as JSON; an error names the first check that
/// failed.
fn check(
    index: &IndexLocation,
    from: &[std::path::PathBuf],
    sample: usize,
    seed: u64,
) -> Result<()> {
    use rand::seq::index::sample as sample_rows;
    use rand::SeedableRng;
    let parts = unisight_core::shard::load_parts(from)?;
    let backend = index.open(false, None)?;
    let expected: usize = parts.iter().map(EmbeddingSet::len).sum();
    let items = backend.count().with_context(|| index.to_string())?;
    if items != expected {
        bail!("{index}: {items} items, but the embedding folders hold {expected}");
    }
    let rows: Vec<(usize, usize)> = parts
        .iter()
        .enumerate()
        .flat_map(|(p, part)| (0..part.len()).map(move |i| (p, i)))
        .collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let picked = sample_rows(&mut rng, rows.len(), sample.min(rows.len()));
    for pick in picked.iter() {
        let (p, i) = rows[pick];
        let key = &parts[p].items[i].id;
        let code = parts[p].code(i);
        let stored = backend
            .get(key)
            .with_context(|| index.to_string())?
            .with_context(|| format!("{index}: item {key:?} is missing"))?;
        if stored.code != code {
            bail!("{index}: item {key:?} has another code than its embedding folder's");
        }
        let query = unisight_backend::Query {
            code,
            float: None,
            k: 1,
            mode: unisight_backend::Rerank::None,
        };
        let hits = backend.search(&[query], 1, 1)?;
        if hits[0].first().map(|h| h.distance) != Some(0) {
            bail!("{index}: a search with item {key:?}'s code does not find it at distance 0");
        }
    }
    println!(
        "{}",
        serde_json::json!({"index": index.to_string(), "items": items, "sampled": picked.len(), "ok": true})
    );
    Ok(())
}

/// `index build --out milvus://...`: a new collection holding every part's items, or none (a
/// build that fails drops the collection it made).
fn build_milvus(
    url: &MilvusUrl,
    shape: Shape,
    server_index: ServerIndex,
    parts: &[EmbeddingSet],
) -> Result<()> {
    let backend = Milvus::create(url, shape, server_index).with_context(|| url.to_string())?;
    let total: usize = parts.iter().map(EmbeddingSet::len).sum();
    let progress = Progress::new("index build", total as u64, "items", true);
    let added = parts
        .iter()
        .try_for_each(|part| add_in_batches(&backend, part, &progress))
        .and_then(|()| Ok(backend.flush()?));
    progress.finish();
    if let Err(e) = added {
        drop(backend);
        let dropped = Milvus::drop_collection(url).map_or_else(
            |d| format!("dropping it failed too ({d}): drop it by hand"),
            |_| "the collection was dropped again".to_string(),
        );
        return Err(e.context(format!("{url}: the build failed; {dropped}")));
    }
    Ok(())
}

/// Adds `set`'s items to a backend in batches (a remote backend's requests stay small); floats
/// go with them when the backend keeps floats.
fn add_in_batches(backend: &dyn Backend, set: &EmbeddingSet, progress: &Progress) -> Result<()> {
    let keep_floats = backend.shape().float_dim.is_some();
    let rows: Vec<usize> = (0..set.len()).collect();
    for chunk in rows.chunks(MILVUS_BATCH) {
        let items: Vec<NewItem> = chunk
            .iter()
            .map(|&i| NewItem {
                key: &set.items[i].id,
                path: &set.items[i].path,
                code: set.code(i),
                floats: keep_floats.then(|| set.embedding(i)),
            })
            .collect();
        backend.add(&items)?;
        progress.inc(items.len() as u64);
    }
    Ok(())
}

/// `index ivf-recall`: prints the measurement as a Markdown table.
fn ivf_recall(
    dir: &Path,
    lists: usize,
    probes: &[usize],
    queries: usize,
    k: usize,
    seed: u64,
) -> Result<()> {
    let mut index = Index::open(dir)?;
    let report =
        unisight_index::recall::measure_ivf_recall(&mut index, lists, probes, queries, k, seed)
            .with_context(|| dir.display().to_string())?;
    println!(
        "{} items, {} queries, k = {k}; inverted file of {} lists built in {:.1} s",
        report.items, report.queries, report.lists, report.build_seconds
    );
    println!("| search | recall@{k} | us per query (1 thread) | speed-up |");
    println!("|---|---|---|---|");
    println!("| exact scan | 1.000 | {:.0} | 1.0x |", report.exact_micros);
    for row in &report.probes {
        println!(
            "| {} probes | {:.3} | {:.0} | {:.1}x |",
            row.probes,
            row.recall,
            row.micros,
            report.exact_micros / row.micros
        );
    }
    Ok(())
}

fn add_set(index: &mut Index, set: &EmbeddingSet) -> Result<()> {
    let keep_floats = index.layout().floats.is_some();
    let keyed = index.layout().keys;
    let items: Vec<NewItem> = (0..set.len())
        .map(|i| NewItem {
            key: if keyed { &set.items[i].id } else { "" },
            path: if keyed { &set.items[i].path } else { "" },
            code: set.code(i),
            floats: keep_floats.then(|| set.embedding(i)),
        })
        .collect();
    index.add(&items)?;
    Ok(())
}

/// The index's counts and sizes as JSON: a folder's own statistics, a Milvus collection's
/// description.
fn print_stats(location: &IndexLocation) -> Result<()> {
    let json = match location {
        IndexLocation::Folder(dir) => serde_json::to_string_pretty(&Index::open(dir)?.stats())?,
        IndexLocation::Milvus(_) => {
            serde_json::to_string_pretty(&location.open(false, None)?.describe()?)?
        }
    };
    println!("{json}");
    Ok(())
}
