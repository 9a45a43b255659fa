//! Retrieval metrics over ranked result lists.
//!
//! - Recall@k (deep metric learning): a query scores 1 at k when any of its first k results
//!   shares its label; the mean over queries.
//! - Precision@k: the fraction of the first k results sharing the query's label, averaged.
//! - MAP@R (Musgrave et al., "A Metric Learning Reality Check"): with R the number of gallery
//!   items sharing the query's label (the query itself excluded in leave-one-out), the mean
//!   over the first R results of precision at each correct position, divided by R.

/// Recall@k for each k in `ks`, in [0, 1]. `results[q]` are gallery indices, best first.
pub fn recall_at_k<L: PartialEq>(
    query_labels: &[L],
    gallery_labels: &[L],
    results: &[Vec<usize>],
    ks: &[usize],
) -> Vec<f64> {
    ks.iter()
        .map(|&k| {
            let hits = results
                .iter()
                .zip(query_labels)
                .filter(|(r, q)| r.iter().take(k).any(|&g| gallery_labels[g] == **q))
                .count();
            hits as f64 / results.len().max(1) as f64
        })
        .collect()
}

/// Precision@k for each k in `ks`, in [0, 1] (a list shorter than k counts its missing
/// positions as wrong).
pub fn precision_at_k<L: PartialEq>(
    query_labels: &[L],
    gallery_labels: &[L],
    results: &[Vec<usize>],
    ks: &[usize],
) -> Vec<f64> {
    ks.iter()
        .map(|&k| {
            let total: f64 = results
                .iter()
                .zip(query_labels)
                .map(|(r, q)| {
                    r.iter()
                        .take(k)
                        .filter(|&&g| gallery_labels[g] == *q)
                        .count() as f64
                        / k as f64
                })
                .sum();
            total / results.len().max(1) as f64
        })
        .collect()
}

/// MAP@R; `relevant[q]` is R for query q (queries with R = 0 are skipped). The result lists
/// must hold at least R items for the value to be exact.
pub fn map_at_r<L: PartialEq>(
    query_labels: &[L],
    gallery_labels: &[L],
    results: &[Vec<usize>],
    relevant: &[usize],
) -> f64 {
    let mut total = 0.0;
    let mut n = 0;
    for ((r, q), &big_r) in results.iter().zip(query_labels).zip(relevant) {
        if big_r == 0 {
            continue;
        }
        let mut correct = 0;
        let mut sum = 0.0;
        for (i, &g) in r.iter().take(big_r).enumerate() {
            if gallery_labels[g] == *q {
                correct += 1;
                sum += correct as f64 / (i + 1) as f64;
            }
        }
        total += sum / big_r as f64;
        n += 1;
    }
    total / n.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recall_matches_the_reference_implementation_cases() {
        // query labels [1,2], gallery [2,1,2], results [[0,1],[2,1]] -> R@1 50, R@2 100
        let r = recall_at_k(&[1, 2], &[2, 1, 2], &[vec![0, 1], vec![2, 1]], &[1, 2]);
        assert_eq!(r, vec![0.5, 1.0]);
        // self-retrieval labels [2,1,2], results [[0,1,2],[1,0,2],[2,1,0]] where the first
        // result is the query itself and is dropped -> R@1 0, R@2 66.67
        let results: Vec<Vec<usize>> = [[0, 1, 2], [1, 0, 2], [2, 1, 0]]
            .iter()
            .enumerate()
            .map(|(q, r)| r.iter().copied().filter(|&g| g != q).collect())
            .collect();
        let r = recall_at_k(&[2, 1, 2], &[2, 1, 2], &results, &[1, 2]);
        assert_eq!(r[0], 0.0);
        assert!((r[1] - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn precision_and_map_at_r_by_hand() {
        let q = [1];
        let g = [1, 0, 1, 1];
        let res = vec![vec![0, 1, 2, 3]];
        assert_eq!(
            precision_at_k(&q, &g, &res, &[1, 2, 4]),
            vec![1.0, 0.5, 0.75]
        );
        // R = 3; correct at 1 and 3 within the first 3: (1/1 + 2/3) / 3
        let m = map_at_r(&q, &g, &res, &[3]);
        assert!((m - (1.0 + 2.0 / 3.0) / 3.0).abs() < 1e-12);
    }
}
