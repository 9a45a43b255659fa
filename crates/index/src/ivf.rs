//! An inverted file over binary codes, for sub-linear search at large N.
//!
//! Centroids are binary codes found by k-majority (k-means where the mean is the bitwise
//! majority vote, the Hamming analogue of Lloyd's algorithm) on a sample; every code goes to the
//! list of its nearest centroid; a query scans only the `nprobe` lists nearest to it. Recall is
//! traded for speed through `nprobe`; `bench/index_vs_faiss.py` reports both against the exact
//! scan. The IVF is an in-memory structure built from an index's codes; [`crate::Index::build_ivf`]
//! attaches one to an open index and keeps it current through adds and removals.

use rand::seq::index::sample;
use rand::SeedableRng;

use crate::kernels::Kernel;
use crate::scan::{self, CodeBlock, ScanOptions};
use crate::topk::Hit;

/// Inverted lists of codes with their centroids.
#[derive(Debug, Clone)]
pub struct BinaryIvf {
    words: usize,
    centroids: Vec<u64>,
    lists: Vec<(Vec<u64>, Vec<u64>)>,
}

impl BinaryIvf {
    /// Builds `nlist` lists from `codes` (`words` u64 per row) with ids `ids`.
    ///
    /// Training uses up to `64 * nlist` sampled codes and `iterations` rounds, seeded by `seed`.
    pub fn build(
        codes: &[u64],
        ids: &[u64],
        words: usize,
        nlist: usize,
        iterations: usize,
        seed: u64,
    ) -> BinaryIvf {
        let n = ids.len();
        let nlist = nlist.clamp(1, n.max(1));
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let kernel = Kernel::detect();
        let train_rows: Vec<usize> = if n <= 64 * nlist {
            (0..n).collect()
        } else {
            let mut rows = sample(&mut rng, n, 64 * nlist).into_vec();
            rows.sort_unstable();
            rows
        };
        let train: Vec<u64> = train_rows
            .iter()
            .flat_map(|&r| codes[r * words..(r + 1) * words].iter().copied())
            .collect();
        let mut centroids: Vec<u64> = sample(
            &mut rng,
            train_rows.len().max(1),
            nlist.min(train_rows.len().max(1)),
        )
        .into_iter()
        .flat_map(|r| train[r * words..(r + 1) * words].iter().copied())
        .collect();
        let mut assign = vec![0usize; train_rows.len()];
        for _ in 0..iterations {
            nearest_all(&centroids, &train, words, kernel, &mut assign);
            let k = centroids.len() / words;
            let bits = words * 64;
            let mut counts = vec![0u32; k * bits];
            let mut sizes = vec![0u32; k];
            for (row, &c) in assign.iter().enumerate() {
                sizes[c] += 1;
                for (w, &word) in train[row * words..(row + 1) * words].iter().enumerate() {
                    let mut x = word;
                    while x != 0 {
                        let b = x.trailing_zeros() as usize;
                        counts[c * bits + w * 64 + b] += 1;
                        x &= x - 1;
                    }
                }
            }
            for c in 0..k {
                if sizes[c] == 0 {
                    continue; // keep an empty centroid where it was
                }
                for w in 0..words {
                    let mut word = 0u64;
                    for b in 0..64 {
                        if counts[c * bits + w * 64 + b] * 2 > sizes[c] {
                            word |= 1 << b;
                        }
                    }
                    centroids[c * words + w] = word;
                }
            }
        }
        let mut full_assign = vec![0usize; n];
        nearest_all(&centroids, codes, words, kernel, &mut full_assign);
        let mut lists = vec![(Vec::new(), Vec::new()); centroids.len() / words];
        for (row, &c) in full_assign.iter().enumerate() {
            lists[c]
                .0
                .extend_from_slice(&codes[row * words..(row + 1) * words]);
            lists[c].1.push(ids[row]);
        }
        BinaryIvf {
            words,
            centroids,
            lists,
        }
    }

    /// Number of lists.
    pub fn nlist(&self) -> usize {
        self.lists.len()
    }

    /// Codes held over all lists.
    pub fn len(&self) -> usize {
        self.lists.iter().map(|(_, ids)| ids.len()).sum()
    }

    /// Whether no list holds a code.
    pub fn is_empty(&self) -> bool {
        self.lists.iter().all(|(_, ids)| ids.is_empty())
    }

    /// The list a code belongs to: its nearest centroid, ties to the lower list (as in
    /// [`BinaryIvf::build`], so that a code is always found again where it was put).
    fn list_of(&self, code: &[u64], kernel: Kernel) -> usize {
        let mut dist = vec![0u32; self.lists.len()];
        kernel.distances(code, &self.centroids, &mut dist);
        (0..dist.len()).min_by_key(|&c| (dist[c], c)).unwrap_or(0)
    }

    /// Puts a new code into its nearest list (the centroids stay as trained).
    pub fn insert(&mut self, code: &[u64], id: u64, kernel: Kernel) {
        let list = self.list_of(code, kernel);
        self.lists[list].0.extend_from_slice(code);
        self.lists[list].1.push(id);
    }

    /// Takes the code of `id` out of its list; `code` must be the code it was inserted with.
    /// Returns whether it was there.
    pub fn remove(&mut self, code: &[u64], id: u64, kernel: Kernel) -> bool {
        let words = self.words;
        let list = self.list_of(code, kernel);
        let (codes, ids) = &mut self.lists[list];
        let Some(at) = ids.iter().position(|&i| i == id) else {
            return false;
        };
        let last = ids.len() - 1;
        ids.swap_remove(at);
        if at != last {
            codes.copy_within(last * words..(last + 1) * words, at * words);
        }
        codes.truncate(last * words);
        true
    }

    /// Top-k of one query scanning the `nprobe` nearest lists.
    pub fn search(&self, query: &[u64], k: usize, nprobe: usize, kernel: Kernel) -> Vec<Hit> {
        let mut dist = vec![0u32; self.lists.len()];
        kernel.distances(query, &self.centroids, &mut dist);
        let mut order: Vec<usize> = (0..self.lists.len()).collect();
        order.sort_by_key(|&c| (dist[c], c));
        let blocks: Vec<CodeBlock<'_>> = order
            .iter()
            .take(nprobe.max(1))
            .map(|&c| CodeBlock {
                codes: &self.lists[c].0,
                ids: &self.lists[c].1,
                deleted: None,
            })
            .collect();
        let options = ScanOptions {
            threads: 1,
            kernel,
            ..ScanOptions::default()
        };
        scan::search(&blocks, self.words, query, k, &options)
            .pop()
            .unwrap_or_default()
    }
}

fn nearest_all(centroids: &[u64], codes: &[u64], words: usize, kernel: Kernel, out: &mut [usize]) {
    let k = centroids.len() / words;
    let mut dist = vec![0u32; k];
    for (row, slot) in out.iter_mut().enumerate() {
        kernel.distances(&codes[row * words..(row + 1) * words], centroids, &mut dist);
        *slot = (0..k).min_by_key(|&c| (dist[c], c)).unwrap_or(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn inserted_codes_are_found_and_removed_ones_are_not() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let words = 4;
        let codes: Vec<u64> = (0..500 * words).map(|_| rng.gen()).collect();
        let ids: Vec<u64> = (0..500).collect();
        let kernel = Kernel::detect();
        let mut ivf = BinaryIvf::build(&codes, &ids, words, 16, 3, 2);
        let new: Vec<u64> = (0..words).map(|_| rng.gen()).collect();
        ivf.insert(&new, 900, kernel);
        assert_eq!(ivf.len(), 501);
        // every list probed: the new code is its own nearest neighbour
        assert_eq!(ivf.search(&new, 1, ivf.nlist(), kernel)[0].id, 900);
        // and one probe finds it too: it went to the list nearest to it
        assert_eq!(ivf.search(&new, 1, 1, kernel)[0].id, 900);
        let victim = &codes[17 * words..18 * words];
        assert!(ivf.remove(victim, 17, kernel));
        assert!(!ivf.remove(victim, 17, kernel), "removed twice");
        assert!(
            !ivf.remove(&new, 17, kernel),
            "wrong code: not in that list"
        );
        assert_eq!(ivf.len(), 500);
        let all = ivf.search(victim, 500, ivf.nlist(), kernel);
        assert!(all.iter().all(|h| h.id != 17));
        // the other codes of the victim's list are intact
        for row in [0usize, 18, 499] {
            let code = &codes[row * words..(row + 1) * words];
            assert_eq!(ivf.search(code, 1, 1, kernel)[0].distance, 0, "row {row}");
        }
    }

    #[test]
    fn all_lists_probed_is_exact_and_few_lists_find_clustered_neighbours() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let words = 4;
        // 20 clusters: a random centre with a few flipped bits per member
        let centres: Vec<u64> = (0..20 * words).map(|_| rng.gen()).collect();
        let mut codes = Vec::new();
        for i in 0..2000 {
            let c = i % 20;
            for w in 0..words {
                let flip = 1u64 << rng.gen_range(0..64);
                codes.push(centres[c * words + w] ^ if rng.gen_bool(0.3) { flip } else { 0 });
            }
        }
        let ids: Vec<u64> = (0..2000).collect();
        let ivf = BinaryIvf::build(&codes, &ids, words, 20, 5, 1);
        let kernel = Kernel::detect();
        let exact_opts = ScanOptions::default();
        let blocks = [CodeBlock {
            codes: &codes,
            ids: &ids,
            deleted: None,
        }];
        let mut agree = 0;
        for q in 0..50 {
            let query = &codes[q * 37 * words..(q * 37 + 1) * words];
            let exact = scan::search(&blocks, words, query, 10, &exact_opts)
                .pop()
                .unwrap();
            assert_eq!(ivf.search(query, 10, ivf.nlist(), kernel), exact);
            let approx = ivf.search(query, 10, 2, kernel);
            agree += approx.iter().filter(|h| exact.contains(h)).count();
        }
        assert!(
            agree as f64 / 500.0 > 0.9,
            "recall@10 with 2 probes: {}",
            agree as f64 / 500.0
        );
    }
}
