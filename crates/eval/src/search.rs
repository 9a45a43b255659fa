//! Exact top-k retrieval, float and binary, streaming over the gallery in blocks: memory is the
//! embeddings plus `queries x k` results.

use rayon::prelude::*;
use unisight_index::scan::{search as hamming_search, CodeBlock};
use unisight_index::ScanOptions;

/// Rows of the gallery scored per block.
const BLOCK: usize = 1024;

/// Whether a query's own index is excluded from its results (query set = gallery set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelfMatch {
    /// Queries and gallery are different sets.
    Keep,
    /// Leave-one-out: query `i` is gallery item `i` and is skipped.
    Exclude,
}

/// Top-`k` gallery indices per query by dot product (cosine for L2-normalised rows), ties to the
/// smaller index.
pub fn top_k_float(
    queries: &[f32],
    gallery: &[f32],
    dim: usize,
    k: usize,
    self_match: SelfMatch,
) -> Vec<Vec<usize>> {
    let n_gallery = gallery.len() / dim;
    queries
        .par_chunks(dim)
        .enumerate()
        .map(|(qi, q)| {
            let mut best: Vec<(f32, usize)> = Vec::with_capacity(k + 1);
            for start in (0..n_gallery).step_by(BLOCK) {
                let end = (start + BLOCK).min(n_gallery);
                for g in start..end {
                    if self_match == SelfMatch::Exclude && g == qi {
                        continue;
                    }
                    let row = &gallery[g * dim..(g + 1) * dim];
                    let s: f32 = q.iter().zip(row).map(|(a, b)| a * b).sum();
                    if best.len() == k && !better((s, g), best[k - 1]) {
                        continue;
                    }
                    let at = best.partition_point(|&b| better(b, (s, g)));
                    best.insert(at, (s, g));
                    best.truncate(k);
                }
            }
            best.into_iter().map(|(_, g)| g).collect()
        })
        .collect()
}

fn better(a: (f32, usize), b: (f32, usize)) -> bool {
    a.0 > b.0 || (a.0 == b.0 && a.1 < b.1)
}

/// Top-`k` gallery indices per query by Hamming distance of packed codes (`code_bytes` each),
/// ties to the smaller index.
pub fn top_k_hamming(
    queries: &[u8],
    gallery: &[u8],
    code_bytes: usize,
    k: usize,
    self_match: SelfMatch,
) -> Vec<Vec<usize>> {
    let words = code_bytes.div_ceil(8);
    let to_words = |codes: &[u8]| -> Vec<u64> {
        codes
            .chunks(code_bytes)
            .flat_map(|c| {
                let mut padded = vec![0u8; words * 8];
                padded[..c.len()].copy_from_slice(c);
                padded
                    .chunks_exact(8)
                    .map(|w| u64::from_le_bytes(w.try_into().expect("8 bytes")))
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let g = to_words(gallery);
    let q = to_words(queries);
    let ids: Vec<u64> = (0..(g.len() / words.max(1)) as u64).collect();
    let extra = usize::from(self_match == SelfMatch::Exclude);
    let options = ScanOptions {
        threads: rayon::current_num_threads(),
        ..ScanOptions::default()
    };
    let block = CodeBlock {
        codes: &g,
        ids: &ids,
        deleted: None,
    };
    hamming_search(&[block], words, &q, k + extra, &options)
        .into_iter()
        .enumerate()
        .map(|(qi, hits)| {
            hits.into_iter()
                .map(|h| h.id as usize)
                .filter(|&id| self_match == SelfMatch::Keep || id != qi)
                .take(k)
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_search_orders_by_score_then_index_and_leaves_one_out() {
        let gallery = [1.0f32, 0.0, 0.0, 1.0, 1.0, 0.0, 0.6, 0.8];
        let r = top_k_float(&[1.0, 0.0], &gallery, 2, 3, SelfMatch::Keep);
        assert_eq!(r, vec![vec![0, 2, 3]]);
        let r = top_k_float(&gallery, &gallery, 2, 2, SelfMatch::Exclude);
        assert_eq!(r[0], vec![2, 3]);
        assert_eq!(r[2], vec![0, 3]);
    }

    #[test]
    fn hamming_search_matches_brute_force() {
        let codes: Vec<u8> = (0..40u32)
            .flat_map(|i| i.wrapping_mul(2654435761u32).to_le_bytes())
            .collect();
        let r = top_k_hamming(&codes, &codes, 4, 5, SelfMatch::Exclude);
        for (qi, res) in r.iter().enumerate() {
            let q = &codes[qi * 4..qi * 4 + 4];
            let mut all: Vec<(u32, usize)> = (0..40)
                .filter(|&g| g != qi)
                .map(|g| {
                    let d = q
                        .iter()
                        .zip(&codes[g * 4..g * 4 + 4])
                        .map(|(a, b)| (a ^ b).count_ones())
                        .sum();
                    (d, g)
                })
                .collect();
            all.sort();
            assert_eq!(res, &all[..5].iter().map(|x| x.1).collect::<Vec<_>>());
        }
    }
}
