//! An open-loop load through a replicated scatter-gather front: queries arrive at a fixed rate
//! whether or not earlier ones are answered (as users' searches do), each goes to one replica of
//! every shard (whichever is free first), a replica answers what has queued for it as one batch,
//! and the front merges the shards' top-k. A query's latency runs from the moment it was due, so
//! time spent queued behind a saturated replica counts (no coordinated omission).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Result};
use serde::Serialize;

use super::shard::{merge, Shard};
use crate::commands::load_test::percentile;

/// What one offered rate gave.
#[derive(Debug, Serialize)]
pub struct LoadRow {
    pub shards: usize,
    pub replicas: usize,
    /// Queries per second sent.
    pub offered_per_second: f64,
    /// Queries per second answered, over the time from the first query to the last answer.
    pub answered_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Mean queries a replica answered in one pass (the batching the queue gave it).
    pub mean_batch: f64,
}

/// A query on its way: the shards still to answer and the hits gathered so far.
struct Pending {
    remaining: usize,
    hits: Vec<(u32, u64)>,
    done: Option<Duration>,
}

/// The load of one run.
pub struct Load<'a> {
    /// Query codes, used in turn.
    pub queries: &'a [u8],
    pub code_bytes: usize,
    pub k: usize,
    pub rate: f64,
    pub seconds: f64,
    /// Most queries a replica takes in one pass.
    pub max_batch: usize,
    /// Each query's exact distances, to check every answer against (exact scans only).
    pub reference: Option<&'a [Vec<u32>]>,
}

/// Runs `load` through `replicas[shard][replica]` and measures it.
pub fn run(replicas: &mut [Vec<Shard>], load: &Load<'_>) -> Result<LoadRow> {
    let shard_count = replicas.len();
    let replica_count = replicas.first().map_or(0, Vec::len);
    ensure!(
        shard_count > 0 && replica_count > 0 && load.rate > 0.0,
        "a load needs shards, replicas and a rate"
    );
    let per_query = load.code_bytes;
    let distinct = load.queries.len() / per_query;
    let total = ((load.rate * load.seconds).round() as usize).max(1);
    let pending: Vec<Mutex<Pending>> = (0..total)
        .map(|_| {
            Mutex::new(Pending {
                remaining: shard_count,
                hits: Vec::with_capacity(load.k * shard_count),
                done: None,
            })
        })
        .collect();
    let code_of = |i: usize| &load.queries[(i % distinct) * per_query..][..per_query];
    let started = Instant::now();
    let (passes, answered) = std::thread::scope(|scope| -> Result<(usize, usize)> {
        let mut senders = Vec::with_capacity(shard_count);
        let mut workers = Vec::new();
        for shard_replicas in replicas.iter_mut() {
            let (tx, rx) = crossbeam_channel::unbounded::<usize>();
            senders.push(tx);
            for replica in shard_replicas.iter_mut() {
                let (rx, pending) = (rx.clone(), &pending);
                workers.push(scope.spawn(move || -> Result<(usize, usize)> {
                    let (mut passes, mut answered) = (0, 0);
                    let mut codes = Vec::with_capacity(per_query * load.max_batch);
                    while let Ok(first) = rx.recv() {
                        let mut batch = vec![first];
                        while batch.len() < load.max_batch {
                            match rx.try_recv() {
                                Ok(i) => batch.push(i),
                                Err(_) => break,
                            }
                        }
                        codes.clear();
                        for &i in &batch {
                            codes.extend_from_slice(code_of(i));
                        }
                        replica.send(&codes, batch.len(), load.k)?;
                        let answers = replica.receive(batch.len())?;
                        let now = started.elapsed();
                        for (&i, hits) in batch.iter().zip(answers) {
                            let mut p =
                                pending[i].lock().map_err(|_| anyhow!("a lock poisoned"))?;
                            p.hits.extend(hits);
                            p.remaining -= 1;
                            if p.remaining == 0 {
                                merge(std::slice::from_mut(&mut p.hits), load.k);
                                p.done = Some(now);
                            }
                        }
                        passes += 1;
                        answered += batch.len();
                    }
                    Ok((passes, answered))
                }));
            }
        }
        for i in 0..total {
            let due = Duration::from_secs_f64(i as f64 / load.rate);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
            for tx in &senders {
                tx.send(i)
                    .map_err(|_| anyhow!("every replica of a shard stopped"))?;
            }
        }
        drop(senders);
        let (mut passes, mut answered) = (0, 0);
        for worker in workers {
            let (p, a) = worker
                .join()
                .map_err(|_| anyhow!("a replica's thread panicked"))??;
            passes += p;
            answered += a;
        }
        Ok((passes, answered))
    })?;
    let mut latencies = Vec::with_capacity(total);
    let mut last = Duration::ZERO;
    for (i, p) in pending.into_iter().enumerate() {
        let p = p.into_inner().map_err(|_| anyhow!("a lock poisoned"))?;
        let done = p
            .done
            .ok_or_else(|| anyhow!("query {i} was never answered"))?;
        if let Some(reference) = load.reference {
            let got: Vec<u32> = p.hits.iter().map(|h| h.0).collect();
            ensure!(
                got == reference[i % distinct],
                "query {i}: the front's merged answer differs from one index's"
            );
        }
        let due = Duration::from_secs_f64(i as f64 / load.rate);
        latencies.push(done.saturating_sub(due).as_secs_f64() * 1e3);
        last = last.max(done);
    }
    latencies.sort_by(f64::total_cmp);
    Ok(LoadRow {
        shards: shard_count,
        replicas: replica_count,
        offered_per_second: load.rate,
        answered_per_second: total as f64 / last.as_secs_f64(),
        p50_ms: percentile(&latencies, 50.0),
        p99_ms: percentile(&latencies, 99.0),
        max_ms: latencies.last().copied().unwrap_or(f64::NAN),
        mean_batch: answered as f64 / passes.max(1) as f64,
    })
}
