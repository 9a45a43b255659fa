//! Paired bootstrap over queries: how sure is a difference between two models measured on the
//! same queries? Queries are resampled with replacement; the interval is the percentile range
//! of the resampled mean differences.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// A mean difference with its bootstrap confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Mean of `a - b` over the queries.
    pub mean: f64,
    /// Lower end.
    pub low: f64,
    /// Upper end.
    pub high: f64,
}

impl Interval {
    /// Whether the interval excludes zero (the difference is not noise at this level).
    pub fn significant(&self) -> bool {
        self.low > 0.0 || self.high < 0.0
    }
}

/// The `level` (e.g. 0.95) percentile interval of mean(a - b) over `resamples` paired
/// resamples of the queries. `a` and `b` hold one value per query, in the same order.
pub fn paired_difference(
    a: &[f64],
    b: &[f64],
    resamples: usize,
    level: f64,
    seed: u64,
) -> Interval {
    assert_eq!(a.len(), b.len(), "paired values");
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let n = d.len();
    if n == 0 {
        return Interval {
            mean: 0.0,
            low: 0.0,
            high: 0.0,
        };
    }
    let mean = d.iter().sum::<f64>() / n as f64;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut means: Vec<f64> = (0..resamples.max(1))
        .map(|_| (0..n).map(|_| d[rng.gen_range(0..n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    let tail = (1.0 - level) / 2.0;
    let at = |p: f64| means[((p * (means.len() - 1) as f64).round() as usize).min(means.len() - 1)];
    Interval {
        mean,
        low: at(tail),
        high: at(1.0 - tail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_models_differ_by_nothing_and_a_clear_win_is_significant() {
        let a: Vec<f64> = (0..200).map(|i| f64::from(i % 2)).collect();
        let same = paired_difference(&a, &a, 500, 0.95, 1);
        assert_eq!((same.mean, same.low, same.high), (0.0, 0.0, 0.0));
        assert!(!same.significant());
        // b = a except 40 more hits: +0.2, the interval must exclude 0 and contain 0.2
        let mut b = a.clone();
        let mut flipped = 0;
        for x in b.iter_mut() {
            if *x == 0.0 && flipped < 40 {
                *x = 1.0;
                flipped += 1;
            }
        }
        let win = paired_difference(&b, &a, 1000, 0.95, 1);
        assert!((win.mean - 0.2).abs() < 1e-12);
        assert!(win.significant() && win.low < 0.2 && win.high > 0.2);
        // a small, noisy difference is not
        let mut c = a.clone();
        c[0] = 1.0;
        c[1] = 0.0;
        c[3] = 0.0;
        let noise = paired_difference(&c, &a, 1000, 0.95, 1);
        assert!(!noise.significant(), "{noise:?}");
        // same seed, same interval
        assert_eq!(noise, paired_difference(&c, &a, 1000, 0.95, 1));
    }
}
