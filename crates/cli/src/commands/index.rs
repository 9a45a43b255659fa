//! `unisight index ...`: build, add to, remove from, compact and describe an index, and
//! measure its inverted file.

use std::path::Path;

use anyhow::{bail, Context, Result};
use unisight_core::artifacts::EmbeddingSet;
use unisight_index::{FloatKind, Index, IndexConfig, NewItem};

use crate::args::{FloatStorage, IndexCommand};

/// Runs `unisight index ...`.
pub fn run(command: IndexCommand) -> Result<()> {
    match command {
        IndexCommand::Build {
            from,
            out,
            floats,
            no_keys,
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
            let config = IndexConfig {
                bits,
                floats,
                keys: !no_keys,
            };
            Index::build_new(&out, config, |index| {
                parts.iter().try_for_each(|part| add_set(index, part))
            })?;
            print_stats(&Index::open(&out)?)
        }
        IndexCommand::Add { index, from } => {
            let mut index = Index::open_writable(&index)?;
            let set = EmbeddingSet::load_for_index(&from)?;
            add_set(&mut index, &set)?;
            print_stats(&index)
        }
        IndexCommand::Remove { index, keys } => {
            let mut index = Index::open_writable(&index)?;
            let mut ids = Vec::new();
            for key in &keys {
                ids.push(
                    index
                        .id_of_key(key)?
                        .with_context(|| format!("no item with key {key:?}; nothing removed"))?,
                );
            }
            let n = index.remove(&ids)?;
            eprintln!("removed {n} items");
            print_stats(&index)
        }
        IndexCommand::Compact { index } => {
            let mut index = Index::open_writable(&index)?;
            index.compact()?;
            print_stats(&index)
        }
        IndexCommand::Stats { index } => print_stats(&Index::open(&index)?),
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

fn print_stats(index: &Index) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(&index.stats())?);
    Ok(())
}
