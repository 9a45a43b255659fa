//! `unisight bench-scatter`: a scatter-gather simulation on one machine, the measured backing of
//! the capacity plan (docs/capacity-plan.md). A catalog of random codes is split into S shards,
//! each an index folder served by its own process (`unisight shard-worker`, over pipes); a front
//! sends every query to all shards, gathers their top-k and merges them. For each S it measures
//! one query at a time (latency) and batches (throughput), and checks that every S gives the
//! answers one shard gives.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use unisight_index::{Index, IndexConfig, NewItem, Query, Rerank, ScanOptions};

use crate::args::{BenchScatterArgs, ShardWorkerArgs};
use crate::commands::load_test::percentile;

/// One shard process and its pipes.
struct Shard {
    child: Child,
    input: BufWriter<ChildStdin>,
    output: BufReader<ChildStdout>,
    /// Global id of the shard's first item (its ids are 0.. in insertion order).
    offset: u64,
}

impl Drop for Shard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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

/// Runs `unisight bench-scatter`: prints a Markdown table, writes the JSON when asked.
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
    let code_bytes = args.bits / 8;
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let mut codes = vec![0u8; args.items * code_bytes];
    rng.fill_bytes(&mut codes);
    let mut queries = vec![0u8; args.queries * code_bytes];
    rng.fill_bytes(&mut queries);
    let mut rows = Vec::new();
    let mut reference: Option<Vec<Vec<(u32, u64)>>> = None;
    for &count in &args.shards {
        let dir = args.work.join(format!("shards-{count}"));
        let started = Instant::now();
        let mut shards = start_shards(&dir, &codes, code_bytes, count, args)?;
        eprintln!(
            "{count} shards of {} items built and started in {:.1} s",
            args.items.div_ceil(count),
            started.elapsed().as_secs_f64()
        );
        // the workers open their indexes (and page their codes in) before the clock starts
        scatter(&mut shards, &queries[..code_bytes], 1, args.k)?;
        // one query at a time
        let mut latencies = Vec::with_capacity(args.queries);
        let mut answers = Vec::with_capacity(args.queries);
        let single = Instant::now();
        for query in queries.chunks(code_bytes) {
            let start = Instant::now();
            answers.extend(scatter(&mut shards, query, 1, args.k)?);
            latencies.push(start.elapsed().as_secs_f64() * 1e3);
        }
        let single_per_second = args.queries as f64 / single.elapsed().as_secs_f64();
        // batches: each shard answers a batch with one pass over its codes
        let batched = Instant::now();
        let mut batch_answers = Vec::with_capacity(args.queries);
        for batch in queries.chunks(code_bytes * args.batch.max(1)) {
            let n = batch.len() / code_bytes;
            batch_answers.extend(scatter(&mut shards, batch, n, args.k)?);
        }
        let batch_per_second = args.queries as f64 / batched.elapsed().as_secs_f64();
        ensure!(
            answers == batch_answers,
            "{count} shards: batched answers differ from single ones"
        );
        // every split gives the exact answer one index gives: the same distances in order
        let distances = |a: &[Vec<(u32, u64)>]| -> Vec<Vec<u32>> {
            a.iter().map(|r| r.iter().map(|h| h.0).collect()).collect()
        };
        match &reference {
            // an inverted file per shard is approximate: other splits find other candidates
            _ if args.ivf_lists > 0 => {}
            Some(r) if distances(r) != distances(&answers) => {
                bail!(
                    "{count} shards answer other distances than {} shards",
                    args.shards[0]
                )
            }
            Some(_) => {}
            None => reference = Some(answers),
        }
        latencies.sort_by(f64::total_cmp);
        rows.push(Row {
            shards: count,
            items_per_shard: args.items.div_ceil(count),
            p50_ms: percentile(&latencies, 50.0),
            p99_ms: percentile(&latencies, 99.0),
            single_per_second,
            batch_per_second,
        });
        drop(shards);
        std::fs::remove_dir_all(&dir).with_context(|| dir.display().to_string())?;
    }
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
    for r in &rows {
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
    if let Some(path) = &args.json {
        unisight_core::atomic::atomic_write_bytes(path, &serde_json::to_vec_pretty(&rows)?)
            .with_context(|| path.display().to_string())?;
    }
    Ok(())
}

/// Builds `count` index folders under `dir` from `codes` (contiguous slices) and starts a worker
/// process on each.
fn start_shards(
    dir: &Path,
    codes: &[u8],
    code_bytes: usize,
    count: usize,
    args: &BenchScatterArgs,
) -> Result<Vec<Shard>> {
    let items = codes.len() / code_bytes;
    let per_shard = items.div_ceil(count);
    let mut shards = Vec::with_capacity(count);
    for s in 0..count {
        let first = (s * per_shard).min(items);
        let last = ((s + 1) * per_shard).min(items);
        let folder = dir.join(format!("shard-{s}"));
        let _ = std::fs::remove_dir_all(&folder);
        let config = IndexConfig {
            bits: code_bytes * 8,
            floats: None,
            keys: false,
        };
        Index::build_new(&folder, config, |index| {
            let new: Vec<NewItem> = codes[first * code_bytes..last * code_bytes]
                .chunks(code_bytes)
                .map(|code| NewItem {
                    key: "",
                    path: "",
                    code,
                    floats: None,
                })
                .collect();
            let ids = index.add(&new)?;
            // the front maps a shard's id back by position
            if ids.iter().enumerate().any(|(i, &id)| id != i as u64) {
                return Err(unisight_index::Error::InvalidInput(
                    "a new index's ids are not its rows".into(),
                ));
            }
            Ok(())
        })?;
        let mut child = Command::new(std::env::current_exe()?)
            .arg("shard-worker")
            .arg("--index")
            .arg(&folder)
            .args(["--ivf-lists", &args.ivf_lists.to_string()])
            .args(["--ivf-probes", &args.ivf_probes.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting a shard worker")?;
        let input = BufWriter::new(child.stdin.take().context("worker stdin")?);
        let output = BufReader::new(child.stdout.take().context("worker stdout")?);
        shards.push(Shard {
            child,
            input,
            output,
            offset: first as u64,
        });
    }
    Ok(shards)
}

/// Sends `n` queries to every shard, gathers their top-k and merges them: per query the k best
/// (distance, global id).
fn scatter(shards: &mut [Shard], codes: &[u8], n: usize, k: usize) -> Result<Vec<Vec<(u32, u64)>>> {
    for shard in shards.iter_mut() {
        shard.input.write_all(&(n as u32).to_le_bytes())?;
        shard.input.write_all(&(k as u32).to_le_bytes())?;
        shard.input.write_all(codes)?;
        shard.input.flush()?;
    }
    let mut merged = vec![Vec::with_capacity(k * shards.len()); n];
    for shard in shards.iter_mut() {
        for hits in merged.iter_mut() {
            let count = read_u32(&mut shard.output)? as usize;
            for _ in 0..count {
                let id = read_u64(&mut shard.output)?;
                let distance = read_u32(&mut shard.output)?;
                hits.push((distance, shard.offset + id));
            }
        }
    }
    for hits in &mut merged {
        hits.sort_unstable();
        hits.truncate(k);
    }
    Ok(merged)
}

/// Runs `unisight shard-worker`: answers batches of queries from stdin on stdout until stdin
/// ends. A batch is `n: u32, k: u32, n codes`; an answer is, per query, `count: u32` then
/// `count x (id: u64, distance: u32)`, little-endian.
pub fn worker(args: &ShardWorkerArgs) -> Result<()> {
    let mut index = Index::open(&args.index).with_context(|| args.index.display().to_string())?;
    if args.ivf_lists > 0 {
        index.build_ivf(args.ivf_lists, args.ivf_probes, 1)?;
    }
    let code_bytes = index.layout().bits / 8;
    let mut input = BufReader::new(std::io::stdin().lock());
    let mut output = BufWriter::new(std::io::stdout().lock());
    let options = ScanOptions::default();
    let mut codes = Vec::new();
    loop {
        let n = match read_u32(&mut input) {
            Ok(n) => n as usize,
            Err(_) => return Ok(()),
        };
        let k = read_u32(&mut input)? as usize;
        ensure!(
            n <= 1 << 16 && k <= 1 << 16,
            "a batch of {n} queries, k = {k}: too large"
        );
        codes.resize(n * code_bytes, 0);
        input.read_exact(&mut codes)?;
        let queries: Vec<Query> = codes
            .chunks(code_bytes)
            .map(|code| Query {
                code,
                float: None,
                k,
                mode: Rerank::None,
            })
            .collect();
        for hits in index.search_reranked_batch(&queries, 1, &options)? {
            output.write_all(&(hits.len() as u32).to_le_bytes())?;
            for hit in hits {
                output.write_all(&hit.id.to_le_bytes())?;
                output.write_all(&hit.distance.to_le_bytes())?;
            }
        }
        output.flush()?;
    }
}

fn read_u32(r: &mut impl Read) -> Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn read_u64(r: &mut impl Read) -> Result<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}
