//! The simulated user: one model of how a person reacts to a result list, used both by the
//! offline simulated log (`unisight simulate-engagement`) and by the simulated users that drive
//! a running service (`unisight simulate-users`). Everything it produces is marked simulated.
//!
//! A user examines rank `i` with probability `examine_first * examine_decay^i` (position
//! bias). An examined result is clicked with probability `p_relevant` when it is what the user
//! wants, and with `p_similar * similarity` when it is not (wrong-but-similar results draw
//! clicks); any shown result may also be clicked at random with probability `p_noise`. A
//! relevant click is saved with probability `p_save`; every click has a dwell time (log-normal,
//! longer on relevant results). At most `max_clicks` results are clicked (0: no cap).

use rand::Rng;
use rand_distr::{Distribution, LogNormal};

/// Parameters of the simulated user.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UserModel {
    /// Probability of examining the first result.
    pub examine_first: f64,
    /// Decay of the examination probability per rank.
    pub examine_decay: f64,
    /// Click probability of an examined relevant result.
    pub p_relevant: f64,
    /// Click probability of an examined wrong result that looks most alike (similarity 1).
    pub p_similar: f64,
    /// Probability of a random click on any shown result.
    pub p_noise: f64,
    /// Probability that a click on a relevant result is also a save.
    pub p_save: f64,
    /// Most clicks per result list (0: no cap).
    pub max_clicks: usize,
}

impl Default for UserModel {
    fn default() -> Self {
        UserModel {
            examine_first: 0.95,
            examine_decay: 0.88,
            p_relevant: 0.6,
            p_similar: 0.15,
            p_noise: 0.01,
            p_save: 0.3,
            max_clicks: 0,
        }
    }
}

/// One shown result, as the user sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shown {
    /// Whether it is what the user looks for.
    pub relevant: bool,
    /// How alike a wrong result looks, in [0, 1].
    pub similarity: f64,
}

/// What the user did with one result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reaction {
    /// 0-based rank of the result.
    pub position: usize,
    /// Whether it was relevant.
    pub relevant: bool,
    /// Saved as well as clicked.
    pub save: bool,
    /// Time spent on it, milliseconds.
    pub dwell_ms: u64,
}

impl UserModel {
    /// The clicks (with saves and dwell times) of one user on one result list, in rank order.
    pub fn react(&self, shown: &[Shown], rng: &mut impl Rng) -> Vec<Reaction> {
        let mut out = Vec::new();
        for (position, s) in shown.iter().enumerate() {
            if self.max_clicks > 0 && out.len() >= self.max_clicks {
                break;
            }
            let examined = rng.gen_bool(
                (self.examine_first * self.examine_decay.powi(position as i32)).clamp(0.0, 1.0),
            );
            let p_click = match (examined, s.relevant) {
                (false, _) => 0.0,
                (true, true) => self.p_relevant,
                (true, false) => self.p_similar * s.similarity.clamp(0.0, 1.0),
            };
            let clicked =
                rng.gen_bool(p_click.clamp(0.0, 1.0)) || rng.gen_bool(self.p_noise.clamp(0.0, 1.0));
            if !clicked {
                continue;
            }
            let save = s.relevant && rng.gen_bool(self.p_save.clamp(0.0, 1.0));
            let mu = if s.relevant { 9.9 } else { 8.0 };
            let dwell = LogNormal::new(mu, 0.5).expect("finite parameters");
            out.push(Reaction {
                position,
                relevant: s.relevant,
                save,
                dwell_ms: dwell.sample(rng) as u64,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    #[test]
    fn clicks_follow_relevance_and_position_and_respect_the_cap() {
        let model = UserModel::default();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let list: Vec<Shown> = (0..10)
            .map(|i| Shown {
                relevant: i % 2 == 0,
                similarity: 0.5,
            })
            .collect();
        let mut relevant = 0;
        let mut wrong = 0;
        let mut first_ranks = 0;
        for _ in 0..2000 {
            for r in model.react(&list, &mut rng) {
                if r.relevant {
                    relevant += 1;
                } else {
                    wrong += 1;
                    assert!(!r.save, "only relevant clicks are saved");
                }
                first_ranks += usize::from(r.position < 5);
                assert!(r.dwell_ms > 0);
            }
        }
        assert!(relevant > 5 * wrong, "{relevant} relevant, {wrong} wrong");
        assert!(first_ranks * 2 > relevant + wrong, "position bias");
        let capped = UserModel {
            max_clicks: 2,
            p_relevant: 1.0,
            examine_first: 1.0,
            examine_decay: 1.0,
            ..model
        };
        assert_eq!(capped.react(&list, &mut rng).len(), 2);
        // same seed, same reactions
        let a = model.react(&list, &mut ChaCha8Rng::seed_from_u64(7));
        assert_eq!(a, model.react(&list, &mut ChaCha8Rng::seed_from_u64(7)));
    }
}
