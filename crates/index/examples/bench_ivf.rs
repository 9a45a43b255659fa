//! IVF vs exact scan on clustered synthetic codes (random centres, members with 10% of bits
//! flipped), 1 thread, single queries: recall@k of the IVF against the exact answer, and speed.
//!
//! usage: bench_ivf N BITS NLIST

use std::time::Instant;

use rand::{Rng, SeedableRng};
use unisight_index::ivf::BinaryIvf;
use unisight_index::scan::{search, CodeBlock, ScanOptions};
use unisight_index::Kernel;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers"))
        .collect();
    let (n, bits, nlist) = (
        args.first().copied().unwrap_or(1_000_000),
        args.get(1).copied().unwrap_or(256),
        args.get(2).copied().unwrap_or(1024),
    );
    let words = bits / 64;
    let k = 10;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let centres: Vec<u64> = (0..(n / 100).max(1) * words).map(|_| rng.gen()).collect();
    let n_centres = centres.len() / words;
    let noisy = |rng: &mut rand_chacha::ChaCha8Rng, c: usize| -> Vec<u64> {
        (0..words)
            .map(|w| {
                let mut mask = 0u64;
                for b in 0..64 {
                    if rng.gen_bool(0.1) {
                        mask |= 1 << b;
                    }
                }
                centres[c * words + w] ^ mask
            })
            .collect()
    };
    let codes: Vec<u64> = (0..n)
        .flat_map(|_| {
            let c = rng.gen_range(0..n_centres);
            noisy(&mut rng, c)
        })
        .collect();
    let ids: Vec<u64> = (0..n as u64).collect();
    let queries: Vec<u64> = (0..200)
        .flat_map(|_| {
            let c = rng.gen_range(0..n_centres);
            noisy(&mut rng, c)
        })
        .collect();
    let blocks = [CodeBlock {
        codes: &codes,
        ids: &ids,
        deleted: None,
    }];
    let kernel = Kernel::detect();
    let start = Instant::now();
    let exact: Vec<_> = queries
        .chunks_exact(words)
        .map(|q| {
            search(&blocks, words, q, k, &ScanOptions::default())
                .pop()
                .unwrap()
        })
        .collect();
    let exact_qps = 200.0 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    let ivf = BinaryIvf::build(&codes, &ids, words, nlist, 5, 1);
    let build = start.elapsed().as_secs_f64();
    println!("N = {n}, {bits} bits, nlist = {nlist} (built in {build:.1} s), k = {k}, 1 thread, single queries");
    println!("| search | recall@{k} | queries/s | speed-up |");
    println!("|---|---|---|---|");
    println!("| exact scan | 1.000 | {exact_qps:.1} | 1.0x |");
    for nprobe in [1, 4, 16, 64] {
        let start = Instant::now();
        let got: Vec<_> = queries
            .chunks_exact(words)
            .map(|q| ivf.search(q, k, nprobe, kernel))
            .collect();
        let qps = 200.0 / start.elapsed().as_secs_f64();
        // recall by distance: a hit counts if its distance is within the exact k-th distance
        let found: usize = got
            .iter()
            .zip(&exact)
            .map(|(g, e)| g.iter().filter(|h| e.contains(h)).count())
            .sum();
        println!(
            "| IVF nprobe = {nprobe} | {:.3} | {qps:.1} | {:.1}x |",
            found as f64 / (200 * k) as f64,
            qps / exact_qps
        );
    }
}
