//! A SIMULATED engagement log, made from a labelled dataset, for testing "train from
//! engagement, evaluate on human labels" end to end. There is no public engagement log; every
//! event written here carries `"simulated": true`.
//!
//! The simulated product: a user searches with a random image of the set; the results shown are
//! the top `shown` images by a baseline embedding (cosine, the query excluded). The user reacts
//! as the one simulated user of unisight does ([`UserModel`]): a result is relevant when it has
//! the query's label, and a wrong result looks as alike as its cosine, rescaled over the shown
//! list.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use unisight_engagement::{Action, EngagementEvent, Shown, UserModel};
use unisight_eval::search::{top_k_float, SelfMatch};

/// What to simulate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimulationConfig {
    /// Searches to simulate.
    pub searches: usize,
    /// Results shown per search.
    pub shown: usize,
    /// How the users react.
    pub user: UserModel,
    /// Seed.
    pub seed: u64,
}

impl Default for SimulationConfig {
    fn default() -> Self {
        SimulationConfig {
            searches: 5000,
            shown: 20,
            user: UserModel::default(),
            seed: 1,
        }
    }
}

/// Simulates searches over images `paths` with human `labels` and baseline `embeddings`
/// (L2-normalised, `dim` each); returns aggregated events sorted by (query, result, action).
pub fn simulate_engagement(
    paths: &[String],
    labels: &[String],
    embeddings: &[f32],
    dim: usize,
    config: &SimulationConfig,
) -> Vec<EngagementEvent> {
    let n = paths.len();
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let queries: Vec<usize> = (0..config.searches).map(|_| rng.gen_range(0..n)).collect();
    // results of each distinct query, by the baseline
    let mut distinct = queries.clone();
    distinct.sort_unstable();
    distinct.dedup();
    let q_emb: Vec<f32> = distinct
        .iter()
        .flat_map(|&q| embeddings[q * dim..(q + 1) * dim].iter().copied())
        .collect();
    let shown = config.shown.min(n.saturating_sub(1));
    let lists = top_k_float(&q_emb, embeddings, dim, shown + 1, SelfMatch::Keep);
    let results: BTreeMap<usize, Vec<usize>> = distinct
        .iter()
        .zip(lists)
        .map(|(&q, list)| {
            (
                q,
                list.into_iter().filter(|&g| g != q).take(shown).collect(),
            )
        })
        .collect();
    let cosine = |a: usize, b: usize| -> f64 {
        embeddings[a * dim..(a + 1) * dim]
            .iter()
            .zip(&embeddings[b * dim..(b + 1) * dim])
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum()
    };
    let mut counts: BTreeMap<(usize, usize, u8), (u32, u32)> = BTreeMap::new(); // -> (count, first position)
    for &q in &queries {
        let list = &results[&q];
        let sims: Vec<f64> = list.iter().map(|&g| cosine(q, g)).collect();
        let (lo, hi) = sims
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), &s| (lo.min(s), hi.max(s)));
        let shown_list: Vec<Shown> = list
            .iter()
            .zip(&sims)
            .map(|(&g, &sim)| Shown {
                relevant: labels[g] == labels[q],
                similarity: if hi > lo { (sim - lo) / (hi - lo) } else { 1.0 },
            })
            .collect();
        for r in config.user.react(&shown_list, &mut rng) {
            let action = if r.save { 2 } else { 1 };
            let entry = counts
                .entry((q, list[r.position], action))
                .or_insert((0, r.position as u32));
            entry.0 += 1;
        }
    }
    counts
        .into_iter()
        .map(|((q, g, action), (count, position))| EngagementEvent {
            query: paths[q].clone(),
            result: paths[g].clone(),
            action: if action == 2 {
                Action::Save
            } else {
                Action::Click
            },
            count,
            position: Some(position),
            simulated: true,
            ..EngagementEvent::default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use unisight_engagement::{engagement_classes, LabelRule};

    /// Two labels whose embeddings overlap a little: the log's classes should mostly agree with
    /// the labels, with some noise.
    #[test]
    fn simulated_clicks_mostly_follow_labels_and_are_marked() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let n = 60;
        let dim = 8;
        let labels: Vec<String> = (0..n).map(|i| format!("l{}", i % 3)).collect();
        let mut emb = Vec::new();
        for i in 0..n {
            let mut v: Vec<f32> = (0..dim)
                .map(|d| if d == i % 3 { 1.0 } else { 0.0 } + rng.gen_range(-0.6..0.6))
                .collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter_mut().for_each(|x| *x /= norm);
            emb.extend(v);
        }
        let paths: Vec<String> = (0..n).map(|i| format!("img{i}.jpg")).collect();
        let config = SimulationConfig {
            searches: 400,
            ..SimulationConfig::default()
        };
        let log = simulate_engagement(&paths, &labels, &emb, dim, &config);
        assert!(log.iter().all(|e| e.simulated && e.query != e.result));
        let clicks_on_relevant: u32 = log
            .iter()
            .filter(|e| {
                let (q, r) = (
                    paths.iter().position(|p| *p == e.query).unwrap(),
                    paths.iter().position(|p| *p == e.result).unwrap(),
                );
                labels[q] == labels[r]
            })
            .map(|e| e.count)
            .sum();
        let total: u32 = log.iter().map(|e| e.count).sum();
        let share = f64::from(clicks_on_relevant) / f64::from(total);
        assert!(share > 0.7 && share < 1.0, "relevant share {share}");
        assert!(log.iter().any(|e| e.action == Action::Save));
        // same seed, same log
        assert_eq!(
            log,
            simulate_engagement(&paths, &labels, &emb, dim, &config)
        );
        let classes = engagement_classes(&log, &LabelRule::default());
        assert!(
            classes.len() > n / 2,
            "most images end up in an engagement class"
        );
    }
}
