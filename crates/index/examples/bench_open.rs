//! Size on disk, open time and resident memory of a large index opened by mmap.
//! Builds an index of N random 256-bit items (keys are the decimal row number, no paths, no
//! floats; with `--no-keys` no keys at all, an item's key being its id) in DIR (which must not
//! hold an index), then reopens it and searches it once.
//!
//! usage: bench_open DIR N [--no-keys]

use std::path::PathBuf;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use unisight_index::{Index, IndexConfig, NewItem, ScanOptions};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().expect("usage: bench_open DIR N"));
    let n: usize = args
        .next()
        .map_or(10_000_000, |v| v.parse().expect("N is a number"));
    let keyed = args.next().as_deref() != Some("--no-keys");
    {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let codes: Vec<[u8; 32]> = (0..n).map(|_| rng.gen()).collect();
        let keys: Vec<String> = (0..n)
            .map(|i| if keyed { i.to_string() } else { String::new() })
            .collect();
        let items: Vec<NewItem> = (0..n)
            .map(|i| NewItem {
                key: &keys[i],
                path: "",
                code: &codes[i],
                floats: None,
            })
            .collect();
        let start = Instant::now();
        let mut index = Index::create(
            &dir,
            IndexConfig {
                bits: 256,
                floats: None,
                keys: keyed,
            },
        )
        .expect("create index");
        index.add(&items).expect("add items");
        println!("built {n} items in {:.1} s", start.elapsed().as_secs_f64());
    }
    let before = rss_kib();
    let start = Instant::now();
    let index = Index::open(&dir).expect("open index");
    let open_s = start.elapsed().as_secs_f64();
    let after_open = rss_kib();
    let stats = index.stats();
    let start = Instant::now();
    let hits = index
        .search(&[0u8; 32], 10, &ScanOptions::default())
        .expect("search");
    let search_s = start.elapsed().as_secs_f64();
    let after_search = rss_kib();
    println!("| N | file bytes per item | code + id bytes | open (verifies CRC32C) | RSS after open | RSS after one search | one query |");
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {n} | {:.1} | 40 | {open_s:.2} s | +{} MiB | +{} MiB | {:.0} ms |",
        stats.file_bytes as f64 / n as f64,
        after_open.saturating_sub(before) / 1024,
        after_search.saturating_sub(before) / 1024,
        search_s * 1000.0
    );
    assert_eq!(hits[0].len(), 10);
}
