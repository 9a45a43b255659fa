//! `unisight bench-scatter`: a scatter-gather simulation on one machine, the measured backing of
//! the capacity plan (docs/capacity-plan.md). A catalog of random codes is split into S shards,
//! each an index folder served by its own process (`unisight shard-worker`, over pipes); a front
//! sends every query to all shards, gathers their top-k and merges them. For each S it measures
//! one query at a time (latency) and batches (throughput), and checks that every S gives the
//! answers one shard gives. With `--rates`, it also offers an open-loop load at each rate through
//! R replicas of every shard ([`open_loop`]); with `--milvus`, the same codes and queries on a
//! Milvus collection ([`milvus`]).

mod milvus;
mod open_loop;
mod shard;

use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::args::BenchScatterArgs;
use crate::commands::load_test::percentile;
pub use shard::worker;
use shard::{build_folders, scatter, Answers, Shard};

/// One configuration's measurements.
#[derive(Debug, Serialize)]
struct Row {
    shards: usize,
    items_per_shard: usize,
    /// One query at a time.
    p50_ms: f64,
    p99_ms: f64,
    single_per_second: f64,
    /// Batches of `batch` queries.
    batch_per_second: f64,
}

/// Everything one run measured (`--json`).
#[derive(Debug, Serialize)]
struct Report {
    /// One query at a time and batches, per shard count.
    closed_loop: Vec<Row>,
    /// Open-loop loads per shard count, replica count and rate.
    open_loop: Vec<open_loop::LoadRow>,
    /// The same codes and queries on Milvus.
    milvus: Option<milvus::MilvusRow>,
}

/// Runs `unisight bench-scatter`: prints Markdown tables, writes the JSON when asked.
pub fn run(args: &BenchScatterArgs) -> Result<()> {
    ensure!(
        args.bits.is_multiple_of(64) && args.bits > 0,
        "--bits must be a multiple of 64"
    );
    ensure!(
        args.items > 0 && args.queries > 0 && args.k > 0,
        "--items, --queries and -k must be above 0"
    );
    ensure!(
        args.shards.iter().all(|&s| (1..=64).contains(&s)),
        "--shards must be 1 to 64 each"
    );
    ensure!(
        args.replicas.iter().all(|&r| (1..=16).contains(&r)),
        "--replicas must be 1 to 16 each"
    );
    ensure!(
        args.rates.iter().all(|&r| r > 0.0 && r.is_finite()) && args.seconds > 0.0,
        "--rates and --seconds must be above 0"
    );
    ensure!(
        args.milvus.is_none() || args.ivf_lists == 0,
        "--milvus is checked against exact scans: leave out --ivf-lists"
    );
    let code_bytes = args.bits / 8;
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let mut codes = vec![0u8; args.items * code_bytes];
    rng.fill_bytes(&mut codes);
    let mut queries = vec![0u8; args.queries * code_bytes];
    rng.fill_bytes(&mut queries);
    let mut report = Report {
        closed_loop: Vec::new(),
        open_loop: Vec::new(),
        milvus: None,
    };
    let mut reference: Option<Vec<Vec<u32>>> = None;
    let probe = &queries[..code_bytes];
    for &count in &args.shards {
        let dir = args.work.join(format!("shards-{count}"));
        let started = Instant::now();
        let folders = build_folders(&dir, &codes, code_bytes, count)?;
        let start = |folder| Shard::start(folder, args.ivf_lists, args.ivf_probes, probe);
        let mut shards = folders.iter().map(start).collect::<Result<Vec<_>>>()?;
        eprintln!(
            "{count} shards of {} items built and started in {:.1} s",
            args.items.div_ceil(count),
            started.elapsed().as_secs_f64()
        );
        let (row, answers) = closed_loop(&mut shards, &queries, code_bytes, args)?;
        report.closed_loop.push(row);
        drop(shards);
        // every split gives the exact answer one index gives: the same distances in order
        let distances: Vec<Vec<u32>> = answers
            .iter()
            .map(|r| r.iter().map(|h| h.0).collect())
            .collect();
        match &reference {
            // an inverted file per shard is approximate: other splits find other candidates
            _ if args.ivf_lists > 0 => {}
            Some(r) if *r != distances => {
                bail!(
                    "{count} shards answer other distances than {} shards",
                    args.shards[0]
                )
            }
            Some(_) => {}
            None => reference = Some(distances),
        }
        for &replica_count in if args.rates.is_empty() {
            &[][..]
        } else {
            &args.replicas
        } {
            let mut replicas = folders
                .iter()
                .map(|folder| (0..replica_count).map(|_| start(folder)).collect())
                .collect::<Result<Vec<Vec<_>>>>()?;
            for &rate in &args.rates {
                let load = open_loop::Load {
                    queries: &queries,
                    code_bytes,
                    k: args.k,
                    rate,
                    seconds: args.seconds,
                    max_batch: args.batch.max(1),
                    reference: reference.as_deref().filter(|_| args.ivf_lists == 0),
                };
                let row = open_loop::run(&mut replicas, &load)?;
                eprintln!(
                    "{count} shards x {replica_count} replicas at {rate} q/s: p99 {:.2} ms",
                    row.p99_ms
                );
                report.open_loop.push(row);
            }
        }
        std::fs::remove_dir_all(&dir).with_context(|| dir.display().to_string())?;
    }
    if let (Some(url), Some(reference)) = (&args.milvus, &reference) {
        let work = milvus::Workload {
            codes: &codes,
            queries: &queries,
            code_bytes,
            k: args.k,
            batch: args.batch.max(1),
            reference,
        };
        report.milvus = Some(milvus::measure(url, args.milvus_index, &work)?);
    }
    print_tables(args, &report);
    if let Some(path) = &args.json {
        unisight_core::atomic::atomic_write_bytes(path, &serde_json::to_vec_pretty(&report)?)
            .with_context(|| path.display().to_string())?;
    }
    Ok(())
}

/// One query at a time, then the same queries in batches, through `shards`; returns the
/// measurements and the answers.
fn closed_loop(
    shards: &mut [Shard],
    queries: &[u8],
    code_bytes: usize,
    args: &BenchScatterArgs,
) -> Result<(Row, Answers)> {
    let mut latencies = Vec::with_capacity(args.queries);
    let mut answers = Vec::with_capacity(args.queries);
    let single = Instant::now();
    for query in queries.chunks(code_bytes) {
        let start = Instant::now();
        answers.extend(scatter(shards, query, 1, args.k)?);
        latencies.push(start.elapsed().as_secs_f64() * 1e3);
    }
    let single_per_second = args.queries as f64 / single.elapsed().as_secs_f64();
    // batches: each shard answers a batch with one pass over its codes
    let batched = Instant::now();
    let mut batch_answers = Vec::with_capacity(args.queries);
    for batch in queries.chunks(code_bytes * args.batch.max(1)) {
        let n = batch.len() / code_bytes;
        batch_answers.extend(scatter(shards, batch, n, args.k)?);
    }
    let batch_per_second = args.queries as f64 / batched.elapsed().as_secs_f64();
    ensure!(
        answers == batch_answers,
        "{} shards: batched answers differ from single ones",
        shards.len()
    );
    latencies.sort_by(f64::total_cmp);
    let row = Row {
        shards: shards.len(),
        items_per_shard: args.items.div_ceil(shards.len()),
        p50_ms: percentile(&latencies, 50.0),
        p99_ms: percentile(&latencies, 99.0),
        single_per_second,
        batch_per_second,
    };
    Ok((row, answers))
}

fn print_tables(args: &BenchScatterArgs, report: &Report) {
    println!(
        "{} items x {} bits, {} queries, k = {}, {}, {} cores; shards are processes, the front \
         merges their top-k",
        args.items,
        args.bits,
        args.queries,
        args.k,
        match args.ivf_lists {
            0 => "exact scans".to_string(),
            lists => format!("IVF {lists} lists / {} probes per shard", args.ivf_probes),
        },
        std::thread::available_parallelism().map_or(1, usize::from)
    );
    println!(
        "| shards | items per shard | p50 ms | p99 ms | q/s one at a time | q/s in batches of {} |",
        args.batch
    );
    println!("|---|---|---|---|---|---|");
    for r in &report.closed_loop {
        println!(
            "| {} | {} | {:.2} | {:.2} | {:.0} | {:.0} |",
            r.shards,
            r.items_per_shard,
            r.p50_ms,
            r.p99_ms,
            r.single_per_second,
            r.batch_per_second
        );
    }
    if args.ivf_lists == 0 {
        println!("every shard count gave the distances one shard gives");
    } else {
        println!("(approximate: answers of different shard counts are not compared)");
    }
    if !report.open_loop.is_empty() {
        println!();
        println!(
            "Open loop: queries arrive at a fixed rate for {} s each; a replica answers what \
             queued for it in one pass (at most {}); latency counts from when a query was due",
            args.seconds, args.batch
        );
        println!("| shards | replicas | offered q/s | answered q/s | p50 ms | p99 ms | max ms | mean batch |");
        println!("|---|---|---|---|---|---|---|---|");
        for r in &report.open_loop {
            println!(
                "| {} | {} | {:.0} | {:.0} | {:.2} | {:.2} | {:.1} | {:.1} |",
                r.shards,
                r.replicas,
                r.offered_per_second,
                r.answered_per_second,
                r.p50_ms,
                r.p99_ms,
                r.max_ms,
                r.mean_batch
            );
        }
        if args.ivf_lists == 0 {
            println!("every answer under load equalled one index's");
        }
    }
    if let Some(m) = &report.milvus {
        println!();
        println!(
            "Milvus ({}, {}): {} items added at {:.0}/s",
            m.url, m.server_index, m.items, m.add_per_second
        );
        println!("| backend | p50 ms | p99 ms | q/s one at a time | q/s in batches of {} | top-{} distances exact |", args.batch, args.k);
        println!("|---|---|---|---|---|---|");
        if let Some(one) = report.closed_loop.iter().find(|r| r.shards == 1) {
            println!(
                "| unisight, one shard | {:.2} | {:.2} | {:.0} | {:.0} | 1.000 |",
                one.p50_ms, one.p99_ms, one.single_per_second, one.batch_per_second
            );
        }
        println!(
            "| Milvus | {:.2} | {:.2} | {:.0} | {:.0} | {:.3} |",
            m.p50_ms, m.p99_ms, m.single_per_second, m.batch_per_second, m.exact_share
        );
    }
}
