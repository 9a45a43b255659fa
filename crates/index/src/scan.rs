//! Exact top-k Hamming search: a blocked multi-query scan over shards of the codes.
//!
//! The codes are cut into chunks small enough to stay in L1 (`chunk_rows` codes); every query of
//! the batch is scored against a chunk before the next chunk is loaded, so the database is read
//! from memory once per batch instead of once per query (FAISS blocks queries the same way).
//! Shards of the rows go to separate threads, each with its own top-k per query; the shards'
//! results are merged with the same deterministic order, so the answer does not depend on the
//! number of threads.

use crate::kernels::Kernel;
use crate::topk::{Hit, TopK};

/// A run of codes with their ids, e.g. one segment of an index.
#[derive(Debug, Clone, Copy)]
pub struct CodeBlock<'a> {
    /// Codes, `words` u64 per row.
    pub codes: &'a [u64],
    /// One id per row.
    pub ids: &'a [u64],
    /// Bitset of deleted rows (bit `r % 64` of word `r / 64`), if any.
    pub deleted: Option<&'a [u64]>,
}

impl CodeBlock<'_> {
    fn rows(&self) -> usize {
        self.ids.len()
    }

    #[inline]
    fn is_deleted(&self, row: usize) -> bool {
        self.deleted.is_some_and(|bits| {
            bits.get(row / 64)
                .is_some_and(|w| (w >> (row % 64)) & 1 == 1)
        })
    }
}

/// Tuning of the scan; the defaults were measured on a 2-core AMD EPYC (Zen 3).
#[derive(Debug, Clone, Copy)]
pub struct ScanOptions {
    /// Worker threads (1 = the calling thread only).
    pub threads: usize,
    /// Distance kernel.
    pub kernel: Kernel,
    /// Codes per chunk scored against every query before moving on.
    pub chunk_rows: usize,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            threads: 1,
            kernel: Kernel::detect(),
            chunk_rows: 256,
        }
    }
}

/// Exact top-k search of `queries` (`words` u64 each, concatenated) over `blocks`.
///
/// Returns, per query, up to `k` hits ordered by (distance, id).
pub fn search(
    blocks: &[CodeBlock<'_>],
    words: usize,
    queries: &[u64],
    k: usize,
    options: &ScanOptions,
) -> Vec<Vec<Hit>> {
    let n_queries = queries.len() / words.max(1);
    let total: usize = blocks.iter().map(CodeBlock::rows).sum();
    let k = k.min(total);
    let threads = options.threads.max(1).min(total.max(1));
    let shards = split_rows(blocks, threads);
    let mut partials: Vec<Vec<TopK>> = if shards.len() <= 1 {
        vec![scan_shard(
            shards.first().map(Vec::as_slice).unwrap_or(&[]),
            words,
            queries,
            k,
            options,
        )]
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = shards
                .iter()
                .map(|shard| scope.spawn(move || scan_shard(shard, words, queries, k, options)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("scan worker does not panic"))
                .collect()
        })
    };
    let mut merged = partials
        .pop()
        .unwrap_or_else(|| vec![TopK::new(k); n_queries]);
    for part in partials {
        for (m, p) in merged.iter_mut().zip(part) {
            m.merge(p);
        }
    }
    merged.into_iter().map(TopK::into_sorted).collect()
}

/// Cuts the rows of all blocks into `parts` contiguous shards of about equal size.
fn split_rows<'a>(blocks: &[CodeBlock<'a>], parts: usize) -> Vec<Vec<(CodeBlock<'a>, usize)>> {
    let total: usize = blocks.iter().map(CodeBlock::rows).sum();
    let per = total.div_ceil(parts.max(1)).max(1);
    let mut shards = Vec::new();
    let mut current: Vec<(CodeBlock<'a>, usize)> = Vec::new();
    let mut room = per;
    for block in blocks {
        let words = if block.rows() == 0 {
            0
        } else {
            block.codes.len() / block.rows()
        };
        let mut start = 0;
        while start < block.rows() {
            let take = room.min(block.rows() - start);
            let sub = CodeBlock {
                codes: &block.codes[start * words..(start + take) * words],
                ids: &block.ids[start..start + take],
                deleted: block.deleted,
            };
            current.push((sub, start));
            start += take;
            room -= take;
            if room == 0 {
                shards.push(std::mem::take(&mut current));
                room = per;
            }
        }
    }
    if !current.is_empty() {
        shards.push(current);
    }
    shards
}

/// Scans one shard: `(sub-block, row offset of the sub-block in its block)` pairs.
fn scan_shard(
    shard: &[(CodeBlock<'_>, usize)],
    words: usize,
    queries: &[u64],
    k: usize,
    options: &ScanOptions,
) -> Vec<TopK> {
    let n_queries = queries.len() / words.max(1);
    let mut tops = vec![TopK::new(k); n_queries];
    let chunk_rows = options.chunk_rows.max(1);
    let mut rows_buf = vec![0u32; chunk_rows];
    let mut dist_buf = vec![0u32; chunk_rows];
    let mut found4: [Vec<(u32, u32)>; 4] = std::array::from_fn(|_| Vec::with_capacity(chunk_rows));
    for (block, row_offset) in shard {
        let chunk_words = chunk_rows * words;
        for (chunk_index, codes) in block.codes.chunks(chunk_words).enumerate() {
            // for a batch, the next chunk streams in (non-temporal) while this one is scored by
            // every query; a lone query reads each chunk once, where the hardware prefetcher
            // alone is faster: the hint cost a single query 5.4x at 1M x 512 bits on a Xeon
            // (62 against 338 q/s, `bench/index_vs_faiss.py`)
            let next = (chunk_index + 1) * chunk_words;
            if n_queries >= 4 {
                if let Some(ahead) = block
                    .codes
                    .get(next..(next + chunk_words).min(block.codes.len()))
                {
                    crate::kernels::prefetch_stream(ahead);
                }
            }
            let rows = codes.len() / words;
            let first = chunk_index * chunk_rows;
            let ids = &block.ids[first..first + rows];
            let offer = |top: &mut TopK, r: u32, d: u32| {
                let r = r as usize;
                let hit = Hit {
                    distance: d,
                    id: ids[r],
                };
                if hit < top.bound() && !block.is_deleted(row_offset + first + r) {
                    top.push(hit);
                }
            };
            let mut q = 0;
            // four queries per pass over the chunk where the width has a 4-query kernel
            while q + 4 <= n_queries {
                let bounds: [u32; 4] = std::array::from_fn(|j| tops[q + j].bound().distance);
                for list in found4.iter_mut() {
                    list.clear();
                }
                if !options.kernel.candidates4(
                    &queries[q * words..(q + 4) * words],
                    codes,
                    bounds,
                    &mut found4,
                ) {
                    break;
                }
                for (j, list) in found4.iter().enumerate() {
                    for &(r, d) in list {
                        offer(&mut tops[q + j], r, d);
                    }
                }
                q += 4;
            }
            for (query, top) in queries.chunks_exact(words).zip(tops.iter_mut()).skip(q) {
                let bound = top.bound();
                let found = options.kernel.candidates(
                    query,
                    codes,
                    bound.distance,
                    &mut rows_buf,
                    &mut dist_buf,
                );
                for (&r, &d) in rows_buf[..found].iter().zip(&dist_buf[..found]) {
                    offer(top, r, d);
                }
            }
        }
    }
    tops
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::hamming;
    use proptest::prelude::*;

    fn brute(
        codes: &[u64],
        ids: &[u64],
        deleted: &[bool],
        words: usize,
        q: &[u64],
        k: usize,
    ) -> Vec<Hit> {
        let mut all: Vec<Hit> = codes
            .chunks_exact(words)
            .zip(ids)
            .zip(deleted)
            .filter(|(_, &del)| !del)
            .map(|((c, &id), _)| Hit {
                distance: hamming(q, c),
                id,
            })
            .collect();
        all.sort();
        all.truncate(k);
        all
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn matches_brute_force(
            words in prop::sample::select(vec![1usize, 4, 8, 16, 32]),
            n in 0usize..700,
            nq in 1usize..6,
            k in 0usize..30,
            threads in 1usize..4,
            chunk_rows in prop::sample::select(vec![1usize, 7, 256]),
            seed in any::<u64>(),
            low_entropy in any::<bool>(),
        ) {
            use rand::{Rng, SeedableRng};
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            // low-entropy codes make many ties, which exercises the id tie-break
            let gen = |rng: &mut rand_chacha::ChaCha8Rng| if low_entropy { rng.gen::<u64>() & 0x7 } else { rng.gen() };
            let codes: Vec<u64> = (0..n * words).map(|_| gen(&mut rng)).collect();
            let mut ids: Vec<u64> = (0..n as u64).map(|i| i * 3 + 1).collect();
            // ids need not follow row order
            ids.reverse();
            let deleted: Vec<bool> = (0..n).map(|_| rng.gen_bool(0.1)).collect();
            let queries: Vec<u64> = (0..nq * words).map(|_| gen(&mut rng)).collect();
            // split into two blocks to exercise multi-segment scans
            let cut = n / 3;
            let mut bits_b = vec![0u64; (n - cut).div_ceil(64)];
            for (r, &d) in deleted[cut..].iter().enumerate() {
                if d { bits_b[r / 64] |= 1 << (r % 64); }
            }
            let bits_a: Vec<u64> = {
                let mut b = vec![0u64; cut.div_ceil(64)];
                for (r, &d) in deleted[..cut].iter().enumerate() { if d { b[r / 64] |= 1 << (r % 64); } }
                b
            };
            let blocks = [
                CodeBlock { codes: &codes[..cut * words], ids: &ids[..cut], deleted: Some(&bits_a) },
                CodeBlock { codes: &codes[cut * words..], ids: &ids[cut..], deleted: Some(&bits_b) },
            ];
            for kernel in Kernel::available() {
                let opts = ScanOptions { threads, kernel, chunk_rows };
                let got = search(&blocks, words, &queries, k, &opts);
                prop_assert_eq!(got.len(), nq);
                for (qi, hits) in got.iter().enumerate() {
                    let q = &queries[qi * words..(qi + 1) * words];
                    prop_assert_eq!(hits, &brute(&codes, &ids, &deleted, words, q, k));
                }
            }
        }
    }
}
