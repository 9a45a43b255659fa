//! Exact-search throughput on random codes, printed as one JSON line per configuration.
//! Run by `bench/index_vs_faiss.py`, which runs FAISS on the same workload in the same run.
//!
//! usage: bench_scan N BITS K THREADS BATCH [KERNEL]

use std::time::Instant;

use rand::{Rng, SeedableRng};
use unisight_index::scan::{search, CodeBlock, ScanOptions};
use unisight_index::Kernel;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |i: usize, name: &str| -> usize {
        args.get(i)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("argument {} ({name}) missing or not a number; usage: bench_scan N BITS K THREADS BATCH [KERNEL]", i + 1))
    };
    let (n, bits, k, threads, batch) = (
        get(0, "N"),
        get(1, "BITS"),
        get(2, "K"),
        get(3, "THREADS"),
        get(4, "BATCH"),
    );
    let kernel = args.get(5).map_or_else(Kernel::detect, |name| {
        Kernel::from_name(name).expect("kernel available on this CPU")
    });
    let words = bits / 64;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
    let codes: Vec<u64> = (0..n * words).map(|_| rng.gen()).collect();
    let ids: Vec<u64> = (0..n as u64).collect();
    let n_queries = if batch > 1 { batch } else { 200 };
    let queries: Vec<u64> = (0..n_queries * words).map(|_| rng.gen()).collect();
    let blocks = [CodeBlock {
        codes: &codes,
        ids: &ids,
        deleted: None,
    }];
    let options = ScanOptions {
        threads,
        kernel,
        ..ScanOptions::default()
    };
    // warm-up pass over the data
    let _ = search(&blocks, words, &queries[..words], k, &options);
    let start = Instant::now();
    let mut checksum = 0u64;
    if batch > 1 {
        for hits in search(&blocks, words, &queries, k, &options) {
            checksum += hits.iter().map(|h| h.id).sum::<u64>();
        }
    } else {
        for q in queries.chunks_exact(words) {
            checksum += search(&blocks, words, q, k, &options)[0]
                .iter()
                .map(|h| h.id)
                .sum::<u64>();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{{\"engine\":\"unisight\",\"n\":{n},\"bits\":{bits},\"k\":{k},\"threads\":{threads},\"batch\":{batch},\"kernel\":\"{kernel:?}\",\"queries\":{n_queries},\"qps\":{:.2},\"checksum\":{checksum}}}",
        n_queries as f64 / secs
    );
}
