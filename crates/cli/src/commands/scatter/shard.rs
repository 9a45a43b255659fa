//! One shard of `bench-scatter`: its index folder, the worker process that serves it
//! (`unisight shard-worker`) and the pipe protocol between the front and that worker.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use anyhow::{ensure, Context, Result};
use unisight_index::{Index, IndexConfig, NewItem, Query, Rerank, ScanOptions};

use crate::args::ShardWorkerArgs;

/// Per query, its best hits as (Hamming distance, global id), nearest first.
pub type Answers = Vec<Vec<(u32, u64)>>;

/// A shard's index folder and where its items sit in the whole catalog.
pub struct ShardFolder {
    pub folder: PathBuf,
    /// Global id of the shard's first item (its ids are 0.. in insertion order).
    pub offset: u64,
}

/// One worker process serving a shard, and its pipes.
pub struct Shard {
    child: Child,
    input: BufWriter<ChildStdin>,
    output: BufReader<ChildStdout>,
    offset: u64,
}

impl Drop for Shard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Builds `count` index folders under `dir` from `codes`, in contiguous slices.
pub fn build_folders(
    dir: &Path,
    codes: &[u8],
    code_bytes: usize,
    count: usize,
) -> Result<Vec<ShardFolder>> {
    let items = codes.len() / code_bytes;
    let per_shard = items.div_ceil(count);
    let mut folders = Vec::with_capacity(count);
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
        folders.push(ShardFolder {
            folder,
            offset: first as u64,
        });
    }
    Ok(folders)
}

impl Shard {
    /// Starts a worker on `shard`'s folder (replicas of a shard share the folder: a worker only
    /// reads it) and waits until it has paged its codes in, so no clock counts the start.
    pub fn start(
        shard: &ShardFolder,
        ivf_lists: usize,
        ivf_probes: usize,
        probe: &[u8],
    ) -> Result<Self> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("shard-worker")
            .arg("--index")
            .arg(&shard.folder)
            .args(["--ivf-lists", &ivf_lists.to_string()])
            .args(["--ivf-probes", &ivf_probes.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting a shard worker")?;
        let input = BufWriter::new(child.stdin.take().context("worker stdin")?);
        let output = BufReader::new(child.stdout.take().context("worker stdout")?);
        let mut worker = Shard {
            child,
            input,
            output,
            offset: shard.offset,
        };
        worker.send(probe, 1, 1)?;
        worker.receive(1)?;
        Ok(worker)
    }

    /// Sends a batch of `n` queries (`codes`, packed back to back) for their `k` nearest.
    pub fn send(&mut self, codes: &[u8], n: usize, k: usize) -> Result<()> {
        self.input.write_all(&(n as u32).to_le_bytes())?;
        self.input.write_all(&(k as u32).to_le_bytes())?;
        self.input.write_all(codes)?;
        self.input.flush()?;
        Ok(())
    }

    /// Reads the answers to the `n` queries sent last, with global ids.
    pub fn receive(&mut self, n: usize) -> Result<Answers> {
        let mut answers = Vec::with_capacity(n);
        for _ in 0..n {
            let count = read_u32(&mut self.output)? as usize;
            let mut hits = Vec::with_capacity(count);
            for _ in 0..count {
                let id = read_u64(&mut self.output)?;
                let distance = read_u32(&mut self.output)?;
                hits.push((distance, self.offset + id));
            }
            answers.push(hits);
        }
        Ok(answers)
    }
}

/// Merges per-shard hit lists into the k best of each query.
pub fn merge(merged: &mut [Vec<(u32, u64)>], k: usize) {
    for hits in merged {
        hits.sort_unstable();
        hits.truncate(k);
    }
}

/// Sends `n` queries to every shard, gathers their top-k and merges them: per query the k best
/// (distance, global id).
pub fn scatter(shards: &mut [Shard], codes: &[u8], n: usize, k: usize) -> Result<Answers> {
    for shard in shards.iter_mut() {
        shard.send(codes, n, k)?;
    }
    let mut merged = vec![Vec::with_capacity(k * shards.len()); n];
    for shard in shards.iter_mut() {
        for (hits, more) in merged.iter_mut().zip(shard.receive(n)?) {
            hits.extend(more);
        }
    }
    merge(&mut merged, k);
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
