//! Exact top-k retrieval, float and binary, streaming: queries are taken in blocks, each block is
//! scored against the gallery block by block (a small matrix product for floats, the index
//! library's popcount scan for codes), and each query's ranked list is handed to a function
//! that reduces it to a small per-query value. Memory is the embeddings plus one block of
//! scores per thread and the reduced values; an N x N matrix is never built.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use rayon::prelude::*;
use unisight_index::scan::{search as hamming_search, CodeBlock};
use unisight_index::ScanOptions;

/// Queries scored together against one gallery block.
const QUERY_BLOCK: usize = 256;
/// Gallery rows per block of the float scan.
const GALLERY_BLOCK: usize = 2048;
/// Queries per pass of the Hamming scan.
const HAMMING_QUERY_BLOCK: usize = 1024;

/// Whether a query's own index is excluded from its results (query set = gallery set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelfMatch {
    /// Queries and gallery are different sets.
    Keep,
    /// Leave-one-out: query `i` is gallery item `i` and is skipped.
    Exclude,
}

/// Which gallery items a query must not retrieve: itself (leave-one-out) and, optionally, items
/// of its own group (e.g. photos from the same shoot, which are near-duplicates).
#[derive(Debug, Clone, Copy)]
pub struct Exclusion<'a> {
    /// Leave-one-out.
    pub self_match: SelfMatch,
    /// Group of each query and of each gallery item; equal groups are excluded.
    pub groups: Option<(&'a [u32], &'a [u32])>,
}

impl Exclusion<'_> {
    /// Whether gallery item `g` is excluded for query `q`.
    #[inline]
    pub fn excludes(&self, q: usize, g: usize) -> bool {
        (self.self_match == SelfMatch::Exclude && q == g)
            || self.groups.is_some_and(|(qg, gg)| qg[q] == gg[g])
    }

    /// The most gallery items any query can have excluded (the Hamming scan asks for that many
    /// extra results, then filters).
    fn max_excluded(&self) -> usize {
        let own = usize::from(self.self_match == SelfMatch::Exclude);
        match self.groups {
            None => own,
            Some((_, gallery)) => {
                let mut sizes: HashMap<u32, usize> = HashMap::new();
                for &g in gallery {
                    *sizes.entry(g).or_default() += 1;
                }
                sizes.values().copied().max().unwrap_or(0) + own
            }
        }
    }
}

/// One retrieved gallery item.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbor {
    /// Gallery row.
    pub index: usize,
    /// Cosine similarity (float search) or Hamming distance (binary search).
    pub score: f32,
}

/// Candidate in a bounded heap whose top is the worst kept so far.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    score: f32,
    index: usize,
}

impl Candidate {
    /// Higher score first, then the smaller index.
    fn better(&self, other: &Candidate) -> bool {
        self.score > other.score || (self.score == other.score && self.index < other.index)
    }
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Candidate {
    /// The worse candidate is the greater, so a max-heap's top is the one to evict.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .score
            .total_cmp(&self.score)
            .then(self.index.cmp(&other.index))
    }
}

/// Ranks the gallery for every query by dot product (cosine for L2-normalised rows), keeps the
/// best `k` (ties to the smaller index) and maps each list with `reduce(query, list)`.
pub fn stream_float<T: Send>(
    queries: &[f32],
    gallery: &[f32],
    dim: usize,
    k: usize,
    exclusion: &Exclusion<'_>,
    reduce: impl Fn(usize, &[Neighbor]) -> T + Sync,
) -> Vec<T> {
    let n_gallery = gallery.len() / dim.max(1);
    let blocks: Vec<Vec<T>> = queries
        .par_chunks(QUERY_BLOCK * dim.max(1))
        .enumerate()
        .map(|(b, block)| {
            let first = b * QUERY_BLOCK;
            let rows = block.len() / dim.max(1);
            let mut heaps: Vec<BinaryHeap<Candidate>> = (0..rows)
                .map(|_| BinaryHeap::with_capacity(k + 1))
                .collect();
            let mut scores = vec![0.0f32; rows * GALLERY_BLOCK];
            for start in (0..n_gallery).step_by(GALLERY_BLOCK) {
                let cols = (n_gallery - start).min(GALLERY_BLOCK);
                let g = &gallery[start * dim..(start + cols) * dim];
                // scores[rows x cols] = block[rows x dim] * g^T
                // SAFETY: the slices hold rows*dim, cols*dim and rows*cols (<= len) elements
                // and the strides describe exactly those row-major layouts.
                unsafe {
                    matrixmultiply::sgemm(
                        rows,
                        dim,
                        cols,
                        1.0,
                        block.as_ptr(),
                        dim as isize,
                        1,
                        g.as_ptr(),
                        1,
                        dim as isize,
                        0.0,
                        scores.as_mut_ptr(),
                        cols as isize,
                        1,
                    );
                }
                for (r, heap) in heaps.iter_mut().enumerate() {
                    for (c, &score) in scores[r * cols..(r + 1) * cols].iter().enumerate() {
                        let cand = Candidate {
                            score,
                            index: start + c,
                        };
                        if heap.len() == k && !heap.peek().is_some_and(|w| cand.better(w)) {
                            continue;
                        }
                        if exclusion.excludes(first + r, cand.index) {
                            continue;
                        }
                        heap.push(cand);
                        if heap.len() > k {
                            heap.pop();
                        }
                    }
                }
            }
            heaps
                .into_iter()
                .enumerate()
                .map(|(r, heap)| {
                    let list: Vec<Neighbor> = heap
                        .into_sorted_vec()
                        .into_iter()
                        .map(|c| Neighbor {
                            index: c.index,
                            score: c.score,
                        })
                        .collect();
                    reduce(first + r, &list)
                })
                .collect()
        })
        .collect();
    blocks.into_iter().flatten().collect()
}

/// Ranks the gallery for every query by Hamming distance of packed codes (`code_bytes` each),
/// keeps the best `k` (ties to the smaller index) and maps each list with `reduce`.
pub fn stream_hamming<T: Send>(
    queries: &[u8],
    gallery: &[u8],
    code_bytes: usize,
    k: usize,
    exclusion: &Exclusion<'_>,
    reduce: impl Fn(usize, &[Neighbor]) -> T + Sync,
) -> Vec<T> {
    let words = code_bytes.div_ceil(8).max(1);
    let g = to_words(gallery, code_bytes);
    let ids: Vec<u64> = (0..(g.len() / words) as u64).collect();
    let extra = exclusion.max_excluded();
    let options = ScanOptions {
        threads: rayon::current_num_threads(),
        ..ScanOptions::default()
    };
    let block = CodeBlock {
        codes: &g,
        ids: &ids,
        deleted: None,
    };
    let mut out = Vec::with_capacity(queries.len() / code_bytes.max(1));
    for (b, chunk) in queries
        .chunks(HAMMING_QUERY_BLOCK * code_bytes.max(1))
        .enumerate()
    {
        let first = b * HAMMING_QUERY_BLOCK;
        let q = to_words(chunk, code_bytes);
        let hits = hamming_search(std::slice::from_ref(&block), words, &q, k + extra, &options);
        out.par_extend(hits.into_par_iter().enumerate().map(|(i, hits)| {
            let list: Vec<Neighbor> = hits
                .into_iter()
                .map(|h| h.id as usize)
                .filter(|&g| !exclusion.excludes(first + i, g))
                .take(k)
                .map(|g| Neighbor {
                    index: g,
                    score: hamming(&chunk[i * code_bytes..(i + 1) * code_bytes], gallery, g),
                })
                .collect();
            reduce(first + i, &list)
        }));
    }
    out
}

fn hamming(query: &[u8], gallery: &[u8], g: usize) -> f32 {
    let n = query.len();
    query
        .iter()
        .zip(&gallery[g * n..(g + 1) * n])
        .map(|(a, b)| (a ^ b).count_ones())
        .sum::<u32>() as f32
}

/// Packed byte codes to little-endian u64 words, zero-padded to whole words.
fn to_words(codes: &[u8], code_bytes: usize) -> Vec<u64> {
    let words = code_bytes.div_ceil(8).max(1);
    let mut out = Vec::with_capacity(codes.len() / code_bytes.max(1) * words);
    for c in codes.chunks(code_bytes.max(1)) {
        let mut padded = vec![0u8; words * 8];
        padded[..c.len()].copy_from_slice(c);
        out.extend(
            padded
                .chunks_exact(8)
                .map(|w| u64::from_le_bytes(w.try_into().expect("8 bytes"))),
        );
    }
    out
}

/// Top-`k` gallery indices per query by cosine, ties to the smaller index.
pub fn top_k_float(
    queries: &[f32],
    gallery: &[f32],
    dim: usize,
    k: usize,
    self_match: SelfMatch,
) -> Vec<Vec<usize>> {
    let exclusion = Exclusion {
        self_match,
        groups: None,
    };
    stream_float(queries, gallery, dim, k, &exclusion, |_, list| {
        indices(list)
    })
}

/// Top-`k` gallery indices per query by Hamming distance, ties to the smaller index.
pub fn top_k_hamming(
    queries: &[u8],
    gallery: &[u8],
    code_bytes: usize,
    k: usize,
    self_match: SelfMatch,
) -> Vec<Vec<usize>> {
    let exclusion = Exclusion {
        self_match,
        groups: None,
    };
    stream_hamming(queries, gallery, code_bytes, k, &exclusion, |_, list| {
        indices(list)
    })
}

fn indices(list: &[Neighbor]) -> Vec<usize> {
    list.iter().map(|n| n.index).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

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
    fn blocked_float_search_matches_brute_force_across_blocks() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let dim = 7;
        let (nq, ng) = (QUERY_BLOCK + 5, GALLERY_BLOCK * 2 + 17);
        let q: Vec<f32> = (0..nq * dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let g: Vec<f32> = (0..ng * dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let groups_q: Vec<u32> = (0..nq as u32).map(|i| i % 13).collect();
        let groups_g: Vec<u32> = (0..ng as u32).map(|i| i % 13).collect();
        let exclusion = Exclusion {
            self_match: SelfMatch::Keep,
            groups: Some((&groups_q, &groups_g)),
        };
        let got = stream_float(&q, &g, dim, 9, &exclusion, |_, l| l.to_vec());
        for (qi, res) in got.iter().enumerate() {
            let mut all: Vec<f32> = (0..ng)
                .filter(|&gi| groups_g[gi] != groups_q[qi])
                .map(|gi| (0..dim).map(|d| q[qi * dim + d] * g[gi * dim + d]).sum())
                .collect();
            all.sort_by(|a, b| b.total_cmp(a));
            assert_eq!(res.len(), 9);
            for (n, want) in res.iter().zip(&all) {
                // summation order differs from the matrix product's: compare scores, not ids
                assert!((n.score - want).abs() < 1e-5, "query {qi}");
                assert_ne!(groups_g[n.index], groups_q[qi]);
            }
        }
    }

    #[test]
    fn hamming_search_matches_brute_force_with_groups_excluded() {
        let codes: Vec<u8> = (0..40u32)
            .flat_map(|i| i.wrapping_mul(2654435761u32).to_le_bytes())
            .collect();
        let groups: Vec<u32> = (0..40).map(|i| i / 3).collect();
        for grouped in [false, true] {
            let exclusion = Exclusion {
                self_match: SelfMatch::Exclude,
                groups: grouped.then_some((&groups[..], &groups[..])),
            };
            let r = stream_hamming(&codes, &codes, 4, 5, &exclusion, |_, l| l.to_vec());
            for (qi, res) in r.iter().enumerate() {
                let q = &codes[qi * 4..qi * 4 + 4];
                let mut all: Vec<(u32, usize)> = (0..40)
                    .filter(|&g| !exclusion.excludes(qi, g))
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
                let want: Vec<(usize, f32)> = all[..5].iter().map(|x| (x.1, x.0 as f32)).collect();
                let got: Vec<(usize, f32)> = res.iter().map(|n| (n.index, n.score)).collect();
                assert_eq!(got, want);
            }
        }
    }
}
