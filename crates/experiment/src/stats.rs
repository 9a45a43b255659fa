//! The few statistics an A/B test and a rater study need, written out so that each can be
//! checked against textbook values.

use serde::Serialize;

/// z of a two-sided 95% interval.
pub const Z95: f64 = 1.959_963_984_540_054;

/// An estimate with its 95% interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    /// Point estimate.
    pub value: f64,
    /// Lower bound.
    pub low: f64,
    /// Upper bound.
    pub high: f64,
}

/// Wilson score interval of `successes` out of `n` (well behaved near 0 and 1, unlike the
/// normal approximation). `None` for `n == 0`.
pub fn wilson(successes: u64, n: u64) -> Option<Interval> {
    if n == 0 {
        return None;
    }
    let n = n as f64;
    let p = successes as f64 / n;
    let z2 = Z95 * Z95;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / (1.0 + z2 / n);
    Some(Interval {
        value: p,
        low: (centre - half).max(0.0),
        high: (centre + half).min(1.0),
    })
}

/// Standard normal cumulative distribution (Abramowitz-Stegun 7.1.26 through erf, error
/// below 1.5e-7).
pub fn normal_cdf(x: f64) -> f64 {
    let z = x.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-z * z).exp();
    if x >= 0.0 {
        0.5 * (1.0 + erf)
    } else {
        0.5 * (1.0 - erf)
    }
}

/// A difference between two groups with its interval and two-sided p-value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Difference {
    /// Treatment minus control, with its 95% interval (unpooled standard error).
    pub delta: Interval,
    /// Test statistic.
    pub z: f64,
    /// Two-sided p-value.
    pub p_value: f64,
}

/// Two-proportion z-test (pooled variance for the test, unpooled for the interval).
/// `None` when a group is empty or the pooled proportion is 0 or 1.
pub fn two_proportions(x1: u64, n1: u64, x2: u64, n2: u64) -> Option<Difference> {
    if n1 == 0 || n2 == 0 {
        return None;
    }
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    let (p1, p2) = (x1 as f64 / n1f, x2 as f64 / n2f);
    let pooled = (x1 + x2) as f64 / (n1f + n2f);
    let se_pooled = (pooled * (1.0 - pooled) * (1.0 / n1f + 1.0 / n2f)).sqrt();
    if se_pooled == 0.0 {
        return None;
    }
    let se = (p1 * (1.0 - p1) / n1f + p2 * (1.0 - p2) / n2f).sqrt();
    Some(difference(p2 - p1, se, (p2 - p1) / se_pooled))
}

/// A difference `d` with standard error `se` (for its interval) and test statistic `z`.
fn difference(d: f64, se: f64, z: f64) -> Difference {
    Difference {
        delta: Interval {
            value: d,
            low: d - Z95 * se,
            high: d + Z95 * se,
        },
        z,
        p_value: 2.0 * (1.0 - normal_cdf(z.abs())),
    }
}

/// Mean with a normal 95% interval (fine for the hundreds of searches a report needs).
pub fn mean_interval(values: &[f64]) -> Option<Interval> {
    let (mean, var) = mean_var(values)?;
    let se = (var / values.len() as f64).sqrt();
    Some(Interval {
        value: mean,
        low: mean - Z95 * se,
        high: mean + Z95 * se,
    })
}

fn mean_var(values: &[f64]) -> Option<(f64, f64)> {
    if values.len() < 2 {
        return None;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    Some((mean, var))
}

/// Welch's z-test of two means (large samples): treatment `b` minus control `a`.
pub fn two_means(a: &[f64], b: &[f64]) -> Option<Difference> {
    let (ma, va) = mean_var(a)?;
    let (mb, vb) = mean_var(b)?;
    let se = (va / a.len() as f64 + vb / b.len() as f64).sqrt();
    if se == 0.0 {
        return None;
    }
    let d = mb - ma;
    Some(difference(d, se, d / se))
}

/// Fleiss' kappa of items rated by possibly different numbers of raters (each row: how many
/// raters put the item in each category; rows with fewer than 2 ratings are skipped).
/// `None` when no item has 2 ratings or agreement by chance is total.
pub fn fleiss_kappa(rows: &[Vec<u64>]) -> Option<f64> {
    let rows: Vec<&Vec<u64>> = rows.iter().filter(|r| r.iter().sum::<u64>() >= 2).collect();
    if rows.is_empty() {
        return None;
    }
    let categories = rows[0].len();
    let mut p_items = 0.0;
    let mut totals = vec![0.0; categories];
    let mut all = 0.0;
    for r in &rows {
        let n: u64 = r.iter().sum();
        let n = n as f64;
        let agree: f64 = r.iter().map(|&c| (c * c.saturating_sub(1)) as f64).sum();
        p_items += agree / (n * (n - 1.0));
        for (t, &c) in totals.iter_mut().zip(r.iter()) {
            *t += c as f64;
        }
        all += n;
    }
    let p_bar = p_items / rows.len() as f64;
    let p_e: f64 = totals.iter().map(|t| (t / all).powi(2)).sum();
    if (1.0 - p_e).abs() < 1e-12 {
        return None;
    }
    Some((p_bar - p_e) / (1.0 - p_e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_cdf_matches_tables() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.959_964) - 0.975).abs() < 1e-6);
        assert!((normal_cdf(-1.0) - 0.158_655_25).abs() < 1e-6);
        assert!((normal_cdf(3.0) - 0.998_650_1).abs() < 1e-6);
    }

    #[test]
    fn wilson_matches_a_worked_example() {
        // 81 of 263: Wilson 95% interval 0.2553 .. 0.3662 (Newcombe 1998, table I style check)
        let w = wilson(81, 263).unwrap();
        assert!((w.value - 0.30798).abs() < 1e-4);
        assert!(
            (w.low - 0.2553).abs() < 5e-4 && (w.high - 0.3662).abs() < 5e-4,
            "{w:?}"
        );
        // all successes: the interval stays inside [0, 1] and below 1 at the low end
        let w = wilson(10, 10).unwrap();
        assert!(w.high <= 1.0 && w.low > 0.69 && w.low < 0.73, "{w:?}");
        assert!(wilson(0, 0).is_none());
    }

    #[test]
    fn two_proportion_test_matches_a_hand_computation() {
        // 100/1000 vs 130/1000: pooled 0.115, se = sqrt(.115*.885*.002) = 0.014267, z = 2.1027
        let d = two_proportions(100, 1000, 130, 1000).unwrap();
        assert!((d.z - 2.1027).abs() < 1e-3, "{d:?}");
        assert!((d.p_value - 0.0355).abs() < 1e-3, "{d:?}");
        assert!((d.delta.value - 0.03).abs() < 1e-12);
        assert!(d.delta.low > 0.0);
        // the same rate: nothing
        let same = two_proportions(50, 500, 50, 500).unwrap();
        assert!(same.z.abs() < 1e-12 && (same.p_value - 1.0).abs() < 1e-6);
        assert!(two_proportions(0, 10, 0, 10).is_none());
    }

    #[test]
    fn welch_difference_of_means() {
        let a: Vec<f64> = (0..100).map(|i| f64::from(i % 2)).collect();
        let b: Vec<f64> = (0..100)
            .map(|i| if i % 4 == 0 { 0.0 } else { 1.0 })
            .collect();
        let d = two_means(&a, &b).unwrap();
        assert!((d.delta.value - 0.25).abs() < 1e-12);
        assert!(d.z > 3.0 && d.p_value < 0.01, "{d:?}");
        let m = mean_interval(&a).unwrap();
        assert!((m.value - 0.5).abs() < 1e-12 && m.low < 0.5 && m.high > 0.5);
    }

    #[test]
    fn fleiss_kappa_of_textbook_cases() {
        // perfect agreement on varied items
        let perfect = vec![vec![3, 0], vec![0, 3], vec![3, 0], vec![0, 3]];
        assert!((fleiss_kappa(&perfect).unwrap() - 1.0).abs() < 1e-12);
        // Fleiss (1971)-style worked example, Wikipedia's 10 items x 14 raters: kappa 0.210
        let wiki = vec![
            vec![0, 0, 0, 0, 14],
            vec![0, 2, 6, 4, 2],
            vec![0, 0, 3, 5, 6],
            vec![0, 3, 9, 2, 0],
            vec![2, 2, 8, 1, 1],
            vec![7, 7, 0, 0, 0],
            vec![3, 2, 6, 3, 0],
            vec![2, 5, 3, 2, 2],
            vec![6, 5, 2, 1, 0],
            vec![0, 2, 2, 3, 7],
        ];
        assert!((fleiss_kappa(&wiki).unwrap() - 0.210).abs() < 1e-3);
        assert!(fleiss_kappa(&[vec![1, 0]]).is_none());
    }
}
