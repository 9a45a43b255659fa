//! One task's evaluation: queries against a gallery (or leave-one-out within the queries),
//! float and binary, every metric from one streaming pass per mode.
//!
//! Handling of awkward inputs, explicit rather than silent:
//! - a query whose label has no gallery item (after exclusions) can never be answered; it is
//!   left out of every metric and counted in [`TaskMetrics::queries_without_match`];
//! - a `k` larger than the gallery a query can see is an error, as is an empty query set;
//! - MAP@R looks at most `map_r_cap` results (exact when no class has more gallery items).

use std::collections::{BTreeMap, HashMap};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::cluster::{kmeans, nmi};
use crate::search::{stream_float, stream_hamming, Exclusion, Neighbor, SelfMatch};
use crate::{Error, Result};

/// One side of an evaluation: rows of embeddings and codes with an interned label each.
#[derive(Debug, Clone, Copy)]
pub struct Side<'a> {
    /// `[n, dim]` L2-normalised embeddings.
    pub embeddings: &'a [f32],
    /// `[n, code_bytes]` packed sign codes.
    pub codes: &'a [u8],
    /// Label id of each row.
    pub labels: &'a [u32],
    /// Group id of each row (items of the query's group are not retrieved), if any.
    pub groups: Option<&'a [u32]>,
}

/// What to compute.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    /// Recall@k and Precision@k at these k.
    pub ks: Vec<usize>,
    /// Recall@k is also kept for every k up to this depth (the curves).
    pub curve_depth: usize,
    /// MAP@R reads at most this many results per query.
    pub map_r_cap: usize,
    /// NMI clusters at most this many queries (a seeded sample beyond that); 0 turns NMI off.
    pub nmi_max_items: usize,
    /// Example queries kept with their top results (for the HTML page).
    pub examples: usize,
    /// Results kept per example.
    pub example_depth: usize,
    /// Seeds the NMI sample, k-means and the choice of examples.
    pub seed: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            ks: vec![1, 5, 10],
            curve_depth: 32,
            map_r_cap: 1000,
            nmi_max_items: 10_000,
            examples: 12,
            example_depth: 8,
            seed: 0,
        }
    }
}

/// Metrics of one ranking mode (float cosine or Hamming on the codes).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModeMetrics {
    /// Recall@k at [`TaskMetrics::ks`], in [0, 1].
    pub recall: Vec<f64>,
    /// Precision@k at [`TaskMetrics::ks`].
    pub precision: Vec<f64>,
    /// MAP@R.
    pub map_at_r: f64,
    /// NMI of k-means clusters of the queries (k = their number of labels), if computed.
    pub nmi: Option<f64>,
    /// Recall@k for k = 1..=curve depth.
    pub curve: Vec<f64>,
    /// Per query (in query order): rank (1-based) of the first correct result within the
    /// search depth, 0 when none; the unit that paired bootstrap comparisons resample.
    pub first_hit: Vec<u32>,
    /// Per query (in query order): its average precision at R, the term MAP@R averages (0 for
    /// a query without a match), so that comparisons can pair MAP@R too. Empty in reports of
    /// builds before it was kept.
    #[serde(default)]
    pub average_precision: Vec<f32>,
}

/// Recall@1 of one label's queries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// Label id (names are attached by the report).
    pub label: u32,
    /// Queries with this label.
    pub queries: usize,
    /// Recall@1, float.
    pub recall_at_1_float: f64,
    /// Recall@1, bits.
    pub recall_at_1_bits: f64,
}

/// An example query with its top results in both modes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Example {
    /// Query row.
    pub query: usize,
    /// Top results by cosine: (gallery row, cosine).
    pub float: Vec<(usize, f32)>,
    /// Top results by Hamming distance: (gallery row, distance).
    pub bits: Vec<(usize, f32)>,
}

/// Everything measured for one task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskMetrics {
    /// The k of `recall` and `precision`.
    pub ks: Vec<usize>,
    /// Queries given.
    pub queries: usize,
    /// Gallery items (the queries themselves in leave-one-out).
    pub gallery: usize,
    /// Query rows left out because no gallery item shares their label.
    pub queries_without_match: Vec<usize>,
    /// The cap on R of MAP@R.
    pub map_r_cap: usize,
    /// Float metrics.
    pub float: ModeMetrics,
    /// Binary-code metrics.
    pub bits: ModeMetrics,
    /// Per label, worst Recall@1 (float) first.
    pub per_class: Vec<ClassMetrics>,
    /// Example queries.
    pub examples: Vec<Example>,
}

/// Per-query result of one search pass.
struct Outcome {
    first_hit: u32,
    /// Correct results within the first k, per k of the settings.
    correct_at: Vec<u32>,
    average_precision: f64,
    example: Option<Vec<(usize, f32)>>,
}

/// Evaluates `queries` against `gallery` (`None`: leave-one-out within the queries).
///
/// # Errors
/// [`Error::Input`] for an empty query set, widths that disagree, or a k larger than the
/// gallery.
pub fn evaluate(
    queries: &Side<'_>,
    gallery: Option<&Side<'_>>,
    dim: usize,
    settings: &Settings,
) -> Result<TaskMetrics> {
    let leave_one_out = gallery.is_none();
    let gallery = gallery.unwrap_or(queries);
    let nq = queries.labels.len();
    let ng = gallery.labels.len();
    if nq == 0 {
        return Err(Error::Input("the query set is empty".into()));
    }
    let code_bytes = dim.div_ceil(8);
    for (side, name) in [(queries, "queries"), (gallery, "gallery")] {
        let n = side.labels.len();
        if side.embeddings.len() != n * dim || side.codes.len() != n * code_bytes {
            return Err(Error::Input(format!(
                "{name}: {n} labels but {} floats and {} code bytes (D = {dim})",
                side.embeddings.len(),
                side.codes.len()
            )));
        }
        if side.groups.is_some_and(|g| g.len() != n) {
            return Err(Error::Input(format!(
                "{name}: groups and labels differ in length"
            )));
        }
    }
    let visible = ng - usize::from(leave_one_out);
    let max_k = settings.ks.iter().copied().max().unwrap_or(1);
    if settings.ks.is_empty() || settings.ks.contains(&0) {
        return Err(Error::Input("k values must be 1 or more".into()));
    }
    if max_k > visible {
        return Err(Error::Input(format!(
            "k = {max_k} is larger than the gallery ({visible} items a query can retrieve)"
        )));
    }
    let exclusion = Exclusion {
        self_match: if leave_one_out {
            SelfMatch::Exclude
        } else {
            SelfMatch::Keep
        },
        groups: match (queries.groups, gallery.groups) {
            (Some(q), Some(g)) => Some((q, g)),
            _ => None,
        },
    };

    // R of every query: gallery items with its label, less those it may not retrieve
    let mut per_label: HashMap<u32, usize> = HashMap::new();
    let mut per_group_label: HashMap<(u32, u32), usize> = HashMap::new();
    for (i, &l) in gallery.labels.iter().enumerate() {
        *per_label.entry(l).or_default() += 1;
        if let Some(g) = gallery.groups {
            *per_group_label.entry((g[i], l)).or_default() += 1;
        }
    }
    let relevant: Vec<usize> = (0..nq)
        .map(|q| {
            let l = queries.labels[q];
            let all = per_label.get(&l).copied().unwrap_or(0);
            let hidden = match exclusion.groups {
                Some((qg, _)) => per_group_label.get(&(qg[q], l)).copied().unwrap_or(0),
                None => usize::from(leave_one_out),
            };
            all - hidden.min(all)
        })
        .collect();
    let max_r = relevant.iter().copied().max().unwrap_or(0);
    let depth = max_k
        .max(settings.curve_depth)
        .max(settings.example_depth)
        .max(max_r.min(settings.map_r_cap))
        .min(visible);

    let mut order: Vec<usize> = (0..nq).filter(|&q| relevant[q] > 0).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(settings.seed));
    let example_rows: Vec<usize> = order.into_iter().take(settings.examples).collect();

    let reduce = |q: usize, list: &[Neighbor]| -> Outcome {
        let label = queries.labels[q];
        let correct: Vec<bool> = list
            .iter()
            .map(|n| gallery.labels[n.index] == label)
            .collect();
        let first_hit = correct.iter().position(|&c| c).map_or(0, |p| p as u32 + 1);
        let correct_at = settings
            .ks
            .iter()
            .map(|&k| correct.iter().take(k).filter(|&&c| c).count() as u32)
            .collect();
        let r = relevant[q].min(settings.map_r_cap);
        let mut hits = 0;
        let mut sum = 0.0;
        for (i, &c) in correct.iter().take(r).enumerate() {
            if c {
                hits += 1;
                sum += hits as f64 / (i + 1) as f64;
            }
        }
        Outcome {
            first_hit,
            correct_at,
            average_precision: if r > 0 { sum / r as f64 } else { 0.0 },
            example: example_rows.contains(&q).then(|| {
                list.iter()
                    .take(settings.example_depth)
                    .map(|n| (n.index, n.score))
                    .collect()
            }),
        }
    };
    let float = stream_float(
        queries.embeddings,
        gallery.embeddings,
        dim,
        depth,
        &exclusion,
        reduce,
    );
    let bits = stream_hamming(
        queries.codes,
        gallery.codes,
        code_bytes,
        depth,
        &exclusion,
        reduce,
    );

    let used: Vec<usize> = (0..nq).filter(|&q| relevant[q] > 0).collect();
    let nmi_rows = sample(&used, settings.nmi_max_items, settings.seed);
    let summarize = |outcomes: &[Outcome], as_floats: &dyn Fn(usize) -> Vec<f32>| -> ModeMetrics {
        let n = used.len().max(1) as f64;
        let recall = settings
            .ks
            .iter()
            .map(|&k| hits_within(outcomes, &used, k) / n)
            .collect();
        let precision = settings
            .ks
            .iter()
            .enumerate()
            .map(|(j, &k)| {
                used.iter()
                    .map(|&q| outcomes[q].correct_at[j] as f64 / k as f64)
                    .sum::<f64>()
                    / n
            })
            .collect();
        let map_at_r = used
            .iter()
            .map(|&q| outcomes[q].average_precision)
            .sum::<f64>()
            / n;
        let curve = (1..=depth.min(settings.curve_depth))
            .map(|k| hits_within(outcomes, &used, k) / n)
            .collect();
        let nmi = if settings.nmi_max_items == 0 || nmi_rows.is_empty() {
            None
        } else {
            let mut data = Vec::with_capacity(nmi_rows.len() * dim);
            for &q in &nmi_rows {
                data.extend(as_floats(q));
            }
            let labels: Vec<u32> = nmi_rows.iter().map(|&q| queries.labels[q]).collect();
            let classes = labels
                .iter()
                .collect::<std::collections::HashSet<_>>()
                .len();
            let clusters = kmeans(&data, dim, classes, 30, settings.seed);
            Some(nmi(&labels, &clusters))
        };
        ModeMetrics {
            recall,
            precision,
            map_at_r,
            nmi,
            curve,
            first_hit: outcomes.iter().map(|o| o.first_hit).collect(),
            average_precision: outcomes
                .iter()
                .map(|o| o.average_precision as f32)
                .collect(),
        }
    };
    let float_row = |q: usize| queries.embeddings[q * dim..(q + 1) * dim].to_vec();
    let sign_row = |q: usize| {
        let scale = 1.0 / (dim as f32).sqrt();
        unisight_core::code::unpack_signs(&queries.codes[q * code_bytes..(q + 1) * code_bytes], dim)
            .into_iter()
            .map(|s| s * scale)
            .collect()
    };
    let float_metrics = summarize(&float, &float_row);
    let bits_metrics = summarize(&bits, &sign_row);

    let mut classes: BTreeMap<u32, (usize, usize, usize)> = BTreeMap::new();
    for &q in &used {
        let e = classes.entry(queries.labels[q]).or_default();
        e.0 += 1;
        e.1 += usize::from(float[q].first_hit == 1);
        e.2 += usize::from(bits[q].first_hit == 1);
    }
    let mut per_class: Vec<ClassMetrics> = classes
        .into_iter()
        .map(|(label, (n, f, b))| ClassMetrics {
            label,
            queries: n,
            recall_at_1_float: f as f64 / n as f64,
            recall_at_1_bits: b as f64 / n as f64,
        })
        .collect();
    per_class.sort_by(|a, b| {
        a.recall_at_1_float
            .total_cmp(&b.recall_at_1_float)
            .then(a.label.cmp(&b.label))
    });

    let examples = example_rows
        .iter()
        .map(|&q| Example {
            query: q,
            float: float[q].example.clone().unwrap_or_default(),
            bits: bits[q].example.clone().unwrap_or_default(),
        })
        .collect();
    Ok(TaskMetrics {
        ks: settings.ks.clone(),
        queries: nq,
        gallery: ng,
        queries_without_match: (0..nq).filter(|&q| relevant[q] == 0).collect(),
        map_r_cap: settings.map_r_cap,
        float: float_metrics,
        bits: bits_metrics,
        per_class,
        examples,
    })
}

fn hits_within(outcomes: &[Outcome], used: &[usize], k: usize) -> f64 {
    used.iter()
        .filter(|&&q| outcomes[q].first_hit != 0 && outcomes[q].first_hit as usize <= k)
        .count() as f64
}

/// All of `rows` when there are at most `max`, else a seeded sample of `max`, in row order.
fn sample(rows: &[usize], max: usize, seed: u64) -> Vec<usize> {
    if rows.len() <= max {
        return rows.to_vec();
    }
    let mut picked = rows.to_vec();
    picked.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ 0x5eed));
    picked.truncate(max);
    picked.sort_unstable();
    picked
}

#[cfg(test)]
mod tests {
    use super::*;
    use unisight_core::code::pack_signs;

    fn side_data(vectors: &[[f32; 2]]) -> (Vec<f32>, Vec<u8>) {
        let mut e = Vec::new();
        let mut c = Vec::new();
        for v in vectors {
            let n = (v[0] * v[0] + v[1] * v[1]).sqrt();
            e.extend([v[0] / n, v[1] / n]);
            c.extend(pack_signs(&[v[0], v[1]]));
        }
        (e, c)
    }

    #[test]
    fn hand_worked_query_gallery_case() {
        // gallery: two of label 0 along +x, one of label 1 along +y
        let (ge, gc) = side_data(&[[1.0, 0.1], [1.0, -0.2], [-0.1, 1.0]]);
        let glabels = [0, 0, 1];
        // q0 (label 0) near +x: results 0, 1, 2 -> hit at 1; q1 (label 1) near +x: hit at 3
        let (qe, qc) = side_data(&[[1.0, 0.0], [1.0, 0.05]]);
        let qlabels = [0, 1];
        let settings = Settings {
            ks: vec![1, 2],
            ..Settings::default()
        };
        let q = Side {
            embeddings: &qe,
            codes: &qc,
            labels: &qlabels,
            groups: None,
        };
        let g = Side {
            embeddings: &ge,
            codes: &gc,
            labels: &glabels,
            groups: None,
        };
        let m = evaluate(&q, Some(&g), 2, &settings).unwrap();
        assert_eq!(m.float.recall, vec![0.5, 0.5]);
        assert_eq!(m.float.first_hit, vec![1, 3]);
        // precision@2: q0 2/2, q1 0/2
        assert_eq!(m.float.precision, vec![0.5, 0.5]);
        // MAP@R: q0 R=2, both correct -> 1; q1 R=1, first result wrong -> 0
        assert!((m.float.map_at_r - 0.5).abs() < 1e-12);
        assert_eq!(m.float.average_precision, vec![1.0, 0.0]);
        assert_eq!(m.float.curve, vec![0.5, 0.5, 1.0]);
        assert_eq!(m.per_class[0].label, 1);
        assert_eq!(m.per_class[0].recall_at_1_float, 0.0);
        // k beyond the gallery is refused
        let too_far = Settings {
            ks: vec![4],
            ..Settings::default()
        };
        assert!(evaluate(&q, Some(&g), 2, &too_far).is_err());
    }

    #[test]
    fn leave_one_out_groups_and_unmatched_queries() {
        // 0 and 1: label 0, one group (a burst); 2: label 1, alone; 3: label 0, own group
        let (e, c) = side_data(&[[1.0, 0.0], [1.0, 0.01], [0.9, 0.3], [0.3, 0.9]]);
        let labels = [0, 0, 1, 0];
        let groups = [7, 7, 8, 9];
        let settings = Settings {
            ks: vec![1],
            ..Settings::default()
        };
        let plain = Side {
            embeddings: &e,
            codes: &c,
            labels: &labels,
            groups: None,
        };
        let m = evaluate(&plain, None, 2, &settings).unwrap();
        // query 2 has no other item of its label: left out and reported
        assert_eq!(m.queries_without_match, vec![2]);
        // 0 and 1 find each other, 3 finds 2 (wrong)
        assert!((m.float.recall[0] - 2.0 / 3.0).abs() < 1e-12);
        let grouped = Side {
            groups: Some(&groups),
            ..plain
        };
        let m = evaluate(&grouped, None, 2, &settings).unwrap();
        // with the burst excluded, 0 and 1 find 2 first: every query misses
        assert_eq!(m.float.recall, vec![0.0]);
        // bits: 3 ties 1 and 2 at distance 0 and takes the smaller index, 1 (a hit)
        assert!((m.bits.recall[0] - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(m.queries_without_match, vec![2]);
        let empty = Side {
            embeddings: &[],
            codes: &[],
            labels: &[],
            groups: None,
        };
        assert!(evaluate(&empty, Some(&plain), 2, &settings).is_err());
    }

    #[test]
    fn streaming_metrics_agree_with_the_reference_functions() {
        use crate::metrics::{map_at_r, precision_at_k, recall_at_k};
        use crate::search::top_k_float;
        use rand::Rng;
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let dim = 8;
        let mut random_side = |n: usize| {
            let mut e = Vec::new();
            let mut c = Vec::new();
            let mut labels = Vec::new();
            for _ in 0..n {
                let label = rng.gen_range(0..10u32);
                let v: Vec<f32> = (0..dim)
                    .map(|d| {
                        rng.gen_range(-1.0..1.0) + if d as u32 == label % 8 { 1.0 } else { 0.0 }
                    })
                    .collect();
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                e.extend(v.iter().map(|x| x / norm));
                c.extend(pack_signs(&v));
                labels.push(label);
            }
            (e, c, labels)
        };
        let (qe, qc, ql) = random_side(200);
        let (ge, gc, gl) = random_side(300);
        let settings = Settings {
            ks: vec![1, 4, 16],
            map_r_cap: 300,
            ..Settings::default()
        };
        let q = Side {
            embeddings: &qe,
            codes: &qc,
            labels: &ql,
            groups: None,
        };
        let g = Side {
            embeddings: &ge,
            codes: &gc,
            labels: &gl,
            groups: None,
        };
        let m = evaluate(&q, Some(&g), dim, &settings).unwrap();
        let used: Vec<usize> = (0..200)
            .filter(|i| !m.queries_without_match.contains(i))
            .collect();
        let results = top_k_float(&qe, &ge, dim, 300, SelfMatch::Keep);
        let results: Vec<Vec<usize>> = used.iter().map(|&i| results[i].clone()).collect();
        let labels: Vec<u32> = used.iter().map(|&i| ql[i]).collect();
        let relevant: Vec<usize> = labels
            .iter()
            .map(|l| gl.iter().filter(|g| *g == l).count())
            .collect();
        let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12);
        assert!(close(
            &m.float.recall,
            &recall_at_k(&labels, &gl, &results, &settings.ks)
        ));
        assert!(close(
            &m.float.precision,
            &precision_at_k(&labels, &gl, &results, &settings.ks)
        ));
        assert!((m.float.map_at_r - map_at_r(&labels, &gl, &results, &relevant)).abs() < 1e-12);
        let nmi = m.float.nmi.unwrap();
        assert!(nmi > 0.0 && nmi <= 1.0);
    }
}
