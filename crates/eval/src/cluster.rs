//! Clustering quality: k-means (k-means++ seeding, Lloyd iterations, seeded) and the normalized
//! mutual information between clusters and labels, the NMI of the deep-metric-learning
//! literature (k = number of classes, arithmetic-mean normalisation as in scikit-learn).

use std::collections::HashMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Rows assigned per block in one matrix product.
const ROWS: usize = 256;

/// Cluster ids of the `n x dim` rows of `data`, `k` clusters, at most `iterations` Lloyd steps.
/// Deterministic for a seed.
pub fn kmeans(data: &[f32], dim: usize, k: usize, iterations: usize, seed: u64) -> Vec<u32> {
    let n = data.len() / dim.max(1);
    if n == 0 || k == 0 {
        return vec![0; n];
    }
    let k = k.min(n);
    let row = |i: usize| &data[i * dim..(i + 1) * dim];
    let sq =
        |a: &[f32], b: &[f32]| -> f32 { a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum() };

    // k-means++: each next centre drawn with probability proportional to D(x)^2
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut centres: Vec<f32> = row(rng.gen_range(0..n)).to_vec();
    let mut nearest: Vec<f32> = (0..n).map(|i| sq(row(i), &centres[..dim])).collect();
    while centres.len() / dim < k {
        let total: f64 = nearest.iter().map(|&d| d as f64).sum();
        let pick = if total <= 0.0 {
            rng.gen_range(0..n)
        } else {
            let mut target = rng.gen::<f64>() * total;
            let mut chosen = n - 1;
            for (i, &d) in nearest.iter().enumerate() {
                target -= d as f64;
                if target <= 0.0 {
                    chosen = i;
                    break;
                }
            }
            chosen
        };
        let start = centres.len();
        centres.extend_from_slice(row(pick));
        let c = centres[start..].to_vec();
        nearest
            .par_iter_mut()
            .enumerate()
            .for_each(|(i, d)| *d = d.min(sq(row(i), &c)));
    }

    let mut assignment = vec![u32::MAX; n];
    for _ in 0..iterations.max(1) {
        let next = assign(data, dim, &centres, k);
        let changed = next != assignment;
        assignment = next;
        if !changed {
            break;
        }
        let mut sums = vec![0.0f64; k * dim];
        let mut counts = vec![0usize; k];
        for (i, &a) in assignment.iter().enumerate() {
            counts[a as usize] += 1;
            for (s, &x) in sums[a as usize * dim..(a as usize + 1) * dim]
                .iter_mut()
                .zip(row(i))
            {
                *s += x as f64;
            }
        }
        for c in 0..k {
            // an emptied cluster keeps its old centre
            if counts[c] > 0 {
                for d in 0..dim {
                    centres[c * dim + d] = (sums[c * dim + d] / counts[c] as f64) as f32;
                }
            }
        }
    }
    assignment
}

/// Nearest centre of every row (squared Euclidean, ties to the smaller centre).
fn assign(data: &[f32], dim: usize, centres: &[f32], k: usize) -> Vec<u32> {
    let norms: Vec<f32> = centres
        .chunks(dim)
        .map(|c| c.iter().map(|x| x * x).sum())
        .collect();
    data.par_chunks(ROWS * dim)
        .flat_map_iter(|block| {
            let rows = block.len() / dim;
            let mut dots = vec![0.0f32; rows * k];
            // SAFETY: block is rows x dim, centres k x dim, dots rows x k, all row-major.
            unsafe {
                matrixmultiply::sgemm(
                    rows,
                    dim,
                    k,
                    1.0,
                    block.as_ptr(),
                    dim as isize,
                    1,
                    centres.as_ptr(),
                    1,
                    dim as isize,
                    0.0,
                    dots.as_mut_ptr(),
                    k as isize,
                    1,
                );
            }
            (0..rows)
                .map(|r| {
                    let mut best = (f32::INFINITY, 0u32);
                    for c in 0..k {
                        let d = norms[c] - 2.0 * dots[r * k + c];
                        if d < best.0 {
                            best = (d, c as u32);
                        }
                    }
                    best.1
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Normalized mutual information of two labelings, `I(A;B) / ((H(A) + H(B)) / 2)`; 1 when both
/// put everything in one group.
pub fn nmi(a: &[u32], b: &[u32]) -> f64 {
    assert_eq!(a.len(), b.len(), "labelings of one set");
    let n = a.len() as f64;
    if a.is_empty() {
        return 1.0;
    }
    let mut ca: HashMap<u32, f64> = HashMap::new();
    let mut cb: HashMap<u32, f64> = HashMap::new();
    let mut joint: HashMap<(u32, u32), f64> = HashMap::new();
    for (&x, &y) in a.iter().zip(b) {
        *ca.entry(x).or_default() += 1.0;
        *cb.entry(y).or_default() += 1.0;
        *joint.entry((x, y)).or_default() += 1.0;
    }
    if ca.len() == 1 && cb.len() == 1 {
        return 1.0;
    }
    let entropy =
        |c: &HashMap<u32, f64>| -> f64 { c.values().map(|&m| -(m / n) * (m / n).ln()).sum() };
    let mi: f64 = joint
        .iter()
        .map(|(&(x, y), &m)| (m / n) * ((m * n) / (ca[&x] * cb[&y])).ln())
        .sum();
    let denom = (entropy(&ca) + entropy(&cb)) / 2.0;
    if denom <= 0.0 {
        0.0
    } else {
        (mi / denom).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nmi_by_hand() {
        // identical partitions up to renaming
        assert!((nmi(&[0, 0, 1, 1], &[1, 1, 0, 0]) - 1.0).abs() < 1e-12);
        // clusters refine the labels: I = H(A) = ln 2, H(B) = 1.5 ln 2 -> 2 / 2.5 = 0.8
        assert!((nmi(&[0, 0, 1, 1], &[0, 0, 1, 2]) - 0.8).abs() < 1e-12);
        // independent
        assert!(nmi(&[0, 0, 1, 1], &[0, 1, 0, 1]).abs() < 1e-12);
    }

    #[test]
    fn kmeans_recovers_separated_blobs_deterministically() {
        let mut data = Vec::new();
        for c in 0..4 {
            for i in 0..50 {
                let jitter = (i as f32 * 0.37).sin() * 0.05;
                data.extend_from_slice(&[c as f32 * 10.0 + jitter, (c % 2) as f32 * 5.0 - jitter]);
            }
        }
        let labels: Vec<u32> = (0..200).map(|i| i / 50).collect();
        let a = kmeans(&data, 2, 4, 20, 7);
        assert!((nmi(&labels, &a) - 1.0).abs() < 1e-9);
        assert_eq!(a, kmeans(&data, 2, 4, 20, 7));
    }
}
