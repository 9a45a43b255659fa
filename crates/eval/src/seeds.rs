//! One metric over training seeds, the way every table of unisight shows it: mean, standard
//! deviation and range. `unisight compare` and `unisight summarize-runs` both print this cell,
//! so their tables of the same runs agree to the last digit.

use serde::{Deserialize, Serialize};

/// A metric's values over seeds, summarised.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OverSeeds {
    /// Seeds (values) summarised.
    pub seeds: usize,
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (n - 1 in the denominator; 0 for one seed).
    pub sd: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
}

impl OverSeeds {
    /// Summarises `values` (one per seed). An empty slice gives zeros with `seeds` 0.
    pub fn of(values: &[f64]) -> OverSeeds {
        let n = values.len();
        if n == 0 {
            return OverSeeds {
                seeds: 0,
                mean: 0.0,
                sd: 0.0,
                min: 0.0,
                max: 0.0,
            };
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let var = if n > 1 {
            values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        OverSeeds {
            seeds: n,
            mean,
            sd: var.sqrt(),
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    }

    /// The table cell: `0.774 ± 0.010 (0.765-0.784)` over several seeds, `0.774` for one.
    pub fn cell(&self) -> String {
        if self.seeds > 1 {
            format!(
                "{:.3} ± {:.3} ({:.3}-{:.3})",
                self.mean, self.sd, self.min, self.max
            )
        } else {
            format!("{:.3}", self.mean)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::OverSeeds;

    #[test]
    fn mean_sd_and_range() {
        let s = OverSeeds::of(&[0.8, 0.7, 0.75]);
        assert_eq!(s.seeds, 3);
        assert!((s.mean - 0.75).abs() < 1e-12);
        assert!((s.sd - 0.05).abs() < 1e-12);
        assert_eq!((s.min, s.max), (0.7, 0.8));
        assert_eq!(s.cell(), "0.750 ± 0.050 (0.700-0.800)");
        assert_eq!(OverSeeds::of(&[0.7774]).cell(), "0.777");
        assert_eq!(OverSeeds::of(&[]).seeds, 0);
    }
}
