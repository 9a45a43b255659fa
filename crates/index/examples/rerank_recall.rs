//! Recall@k against exact float search, on a real embedding folder (`unisight embed` output):
//! Hamming alone, Hamming shortlist re-ranked by stored floats, and re-ranked asymmetrically
//! (float query against the stored bits). Leave-one-out: each of the first Q rows is a query
//! against all other rows.
//!
//! usage: rerank_recall EMBEDDING_DIR [K] [QUERIES]

use std::path::PathBuf;

use unisight_core::artifacts::EmbeddingSet;
use unisight_index::rerank::{AsymmetricQuery, FloatRows};
use unisight_index::scan::{search, CodeBlock, ScanOptions};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .expect("usage: rerank_recall EMBEDDING_DIR [K] [QUERIES]"),
    );
    let k: usize = args
        .next()
        .map_or(10, |v| v.parse().expect("K is a number"));
    let n_queries: usize = args
        .next()
        .map_or(500, |v| v.parse().expect("QUERIES is a number"));
    let set = EmbeddingSet::load(&dir).unwrap_or_else(|e| panic!("{e}"));
    let (n, dim) = (set.len(), set.dim);
    assert!(
        set.code_bytes.is_multiple_of(8),
        "D must be a multiple of 64"
    );
    let words = set.code_bytes / 8;
    let codes: Vec<u64> = set
        .codes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let ids: Vec<u64> = (0..n as u64).collect();
    let blocks = [CodeBlock {
        codes: &codes,
        ids: &ids,
        deleted: None,
    }];
    let floats = FloatRows::F32(&set.embeddings);
    let n_queries = n_queries.min(n);
    let exact = |q: usize| -> Vec<u64> {
        let mut all: Vec<(f32, u64)> = (0..n)
            .filter(|&r| r != q)
            .map(|r| (floats.cosine(set.embedding(q), r), r as u64))
            .collect();
        all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        all.iter().take(k).map(|x| x.1).collect()
    };
    println!("{n} items, D = {dim}, k = {k}, {n_queries} leave-one-out queries");
    println!("| method | recall@{k} vs exact float |");
    println!("|---|---|");
    for factor in [1usize, 4, 10] {
        let (mut hamming, mut float, mut asym) = (0usize, 0usize, 0usize);
        for q in 0..n_queries {
            let truth = exact(q);
            let shortlist: Vec<u64> = search(
                &blocks,
                words,
                &codes[q * words..(q + 1) * words],
                k * factor + 1,
                &ScanOptions::default(),
            )[0]
            .iter()
            .map(|h| h.id)
            .filter(|&id| id != q as u64)
            .collect();
            if factor == 1 {
                hamming += shortlist
                    .iter()
                    .take(k)
                    .filter(|id| truth.contains(id))
                    .count();
            }
            let mut by_float: Vec<(f32, u64)> = shortlist
                .iter()
                .map(|&id| (floats.cosine(set.embedding(q), id as usize), id))
                .collect();
            by_float.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            float += by_float
                .iter()
                .take(k)
                .filter(|x| truth.contains(&x.1))
                .count();
            let aq = AsymmetricQuery::new(set.embedding(q));
            let mut by_asym: Vec<(f32, u64)> = shortlist
                .iter()
                .map(|&id| (aq.score(set.code(id as usize)), id))
                .collect();
            by_asym.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            asym += by_asym
                .iter()
                .take(k)
                .filter(|x| truth.contains(&x.1))
                .count();
        }
        let total = (n_queries * k) as f64;
        if factor == 1 {
            println!("| Hamming only | {:.3} |", hamming as f64 / total);
        }
        println!(
            "| Hamming top-{} re-ranked by stored floats | {:.3} |",
            k * factor,
            float as f64 / total
        );
        println!(
            "| Hamming top-{} re-ranked asymmetrically (no floats stored) | {:.3} |",
            k * factor,
            asym as f64 / total
        );
    }
}
