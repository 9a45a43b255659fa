//! The normalized-softmax loss of "Classification is a Strong Baseline for Deep Metric Learning":
//! cross-entropy over cosine(embedding, proxy) / temperature, one L2-normalised proxy per class,
//! with optional proxy subsampling for tasks with very many classes.

use std::collections::BTreeSet;

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::seq::index::sample;
use rand::Rng;
use unisight_model::head::l2_normalize;

/// Which proxies the softmax runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxySet {
    /// Every class of the task.
    All,
    /// The classes present in the batch plus uniformly sampled negatives, `budget` in all
    /// (or every class, when the task has no more than that).
    Sampled {
        /// Number of proxies in the softmax.
        budget: usize,
    },
}

/// The rows of a batch that carry a label of one task, and those labels.
#[derive(Debug, Clone, Default)]
pub struct TaskTargets {
    /// Row indices into the batch.
    pub rows: Vec<usize>,
    /// Class index per row.
    pub labels: Vec<usize>,
    /// Weight per row (empty: all 1); the loss is the weighted mean.
    pub weights: Vec<f32>,
}

/// The classes the softmax runs over: the labels present first, then sampled negatives;
/// sorted, so the result does not depend on batch order.
pub fn proxy_subset<R: Rng>(
    labels: &[usize],
    classes: usize,
    set: ProxySet,
    rng: &mut R,
) -> Vec<usize> {
    match set {
        ProxySet::All => (0..classes).collect(),
        ProxySet::Sampled { budget } if budget >= classes => (0..classes).collect(),
        ProxySet::Sampled { budget } => {
            let mut chosen: BTreeSet<usize> = labels.iter().copied().collect();
            let want = budget.max(chosen.len());
            // rejection is cheap: the budget is far below the class count here
            let missing = want - chosen.len();
            let mut extra = sample(rng, classes, (missing * 2 + 8).min(classes)).into_iter();
            while chosen.len() < want {
                match extra.next() {
                    Some(c) => {
                        chosen.insert(c);
                    }
                    None => {
                        chosen.insert(rng.gen_range(0..classes));
                    }
                }
            }
            chosen.into_iter().collect()
        }
    }
}

/// Normalized-softmax loss of one task (mean over its rows).
///
/// # Shapes
/// `embeddings`: `[B, D]`, L2-normalised; `proxies`: `[classes, D]` (normalised here).
pub fn normalized_softmax<R: Rng>(
    embeddings: &Tensor<2>,
    proxies: Tensor<2>,
    targets: &TaskTargets,
    temperature: f64,
    set: ProxySet,
    rng: &mut R,
    device: &Device,
) -> Tensor<1> {
    let [classes, _] = proxies.dims();
    let subset = proxy_subset(&targets.labels, classes, set, rng);
    let proxies = if subset.len() == classes {
        proxies
    } else {
        proxies.select(0, int_tensor(&subset, device))
    };
    softmax_over_subset(embeddings, proxies, &subset, targets, temperature, device)
}

/// The loss over an already gathered set of proxies: `proxies` holds the rows `subset`
/// (sorted class indices that include every target label) of a task's bank.
///
/// # Shapes
/// `embeddings`: `[B, D]`; `proxies`: `[subset.len(), D]`.
pub fn softmax_over_subset(
    embeddings: &Tensor<2>,
    proxies: Tensor<2>,
    subset: &[usize],
    targets: &TaskTargets,
    temperature: f64,
    device: &Device,
) -> Tensor<1> {
    let proxies = l2_normalize(proxies);
    let rows = embeddings
        .clone()
        .select(0, int_tensor(&targets.rows, device));
    let logits = rows.matmul(proxies.transpose()) / temperature;
    let local: Vec<usize> = targets
        .labels
        .iter()
        .map(|l| subset.binary_search(l).expect("labels are in the subset"))
        .collect();
    let n = local.len();
    let picked = log_softmax(logits, 1).gather(1, int_tensor(&local, device).reshape([n, 1]));
    weighted_mean(picked, &targets.weights, device).neg()
}

/// The mean of per-row values `[n, 1]` weighted by `weights` (plain when empty or all 1).
fn weighted_mean(per_row: Tensor<2>, weights: &[f32], device: &Device) -> Tensor<1> {
    if weights.is_empty() || weights.iter().all(|&w| w == 1.0) {
        return per_row.mean();
    }
    let total: f32 = weights.iter().sum();
    let w = Tensor::<2>::from_data(
        TensorData::new(weights.to_vec(), [weights.len(), 1]),
        device,
    );
    (per_row * w).sum() / total.max(1e-12) as f64
}

/// Relational distillation: each row's softmax over its cosine similarities to the other rows
/// (divided by `temperature`), the student's pulled towards the teacher's; KL(teacher ||
/// student), the mean over rows weighted by `weights` (each image's domain weight, as in the
/// task's own loss; empty for equal weights). Embeddings of different sizes compare, since only
/// similarities within each side are used. `teacher` carries no gradient.
///
/// # Shapes
/// `student`: `[n, D]`, `teacher`: `[n, D']`, both L2-normalised, n >= 2.
pub fn relational_distillation(
    student: &Tensor<2>,
    teacher: &Tensor<2>,
    temperature: f64,
    weights: &[f32],
    device: &Device,
) -> Tensor<1> {
    let [n, _] = student.dims();
    // a row's similarity to itself is no neighbour: pushed far below every other one
    let mut diagonal = vec![0f32; n * n];
    for i in 0..n {
        diagonal[i * n + i] = -1e4;
    }
    let mask = Tensor::<2>::from_data(TensorData::new(diagonal, [n, n]), device);
    let logits =
        |x: &Tensor<2>| x.clone().matmul(x.clone().transpose()) / temperature + mask.clone();
    let log_teacher = log_softmax(logits(teacher), 1).detach();
    let log_student = log_softmax(logits(student), 1);
    let kl = log_teacher.clone().exp() * (log_teacher - log_student);
    weighted_mean(kl.sum_dim(1), weights, device)
}

fn int_tensor(values: &[usize], device: &Device) -> Tensor<1, Int> {
    let v: Vec<i64> = values.iter().map(|&x| x as i64).collect();
    Tensor::from_data(TensorData::new(v, [values.len()]), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn subset_holds_the_batch_labels_and_the_budget() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let s = proxy_subset(
            &[5, 999_999, 5],
            1_000_000,
            ProxySet::Sampled { budget: 100 },
            &mut rng,
        );
        assert_eq!(s.len(), 100);
        assert!(s.contains(&5) && s.contains(&999_999));
        assert!(s.windows(2).all(|w| w[0] < w[1]));
        let all = proxy_subset(&[1], 10, ProxySet::Sampled { budget: 100 }, &mut rng);
        // a budget just below the class count, and labels that already fill it
        let near = proxy_subset(&[0, 1], 3, ProxySet::Sampled { budget: 2 }, &mut rng);
        assert_eq!(near, vec![0, 1]);
        let near = proxy_subset(&[4], 5, ProxySet::Sampled { budget: 4 }, &mut rng);
        assert_eq!(near.len(), 4);
        assert!(near.contains(&4));
        assert_eq!(all, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn distillation_is_zero_for_the_teachers_own_neighbourhoods_and_matches_a_hand_computation() {
        let device = Device::flex();
        let rows = |v: Vec<f32>, d: usize| {
            let n = v.len() / d;
            l2_normalize(Tensor::<2>::from_data(TensorData::new(v, [n, d]), &device))
        };
        let value = |t: Tensor<1>| t.into_data().try_to_vec::<f32>().unwrap()[0] as f64;
        // a teacher in 3 dimensions, a student in 2 with the same cosines: nothing to learn
        let teacher = rows(vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0], 3);
        let same = rows(vec![1.0, 0.0, 0.0, 1.0, -1.0, 0.0], 2);
        let teacher_2d = rows(vec![1.0, 0.0, 0.0, 1.0, -1.0, 0.0], 2);
        assert!(
            value(relational_distillation(
                &same,
                &teacher_2d,
                0.5,
                &[],
                &device
            ))
            .abs()
                < 1e-6
        );
        // by hand: teacher cosines off the diagonal are all 0 (uniform over the two others);
        // the student's row 0 sees cosines (0, -1), row 1 (0, 0), row 2 (-1, 0)
        let got = value(relational_distillation(&same, &teacher, 0.5, &[], &device));
        let kl_row = |a: f64, b: f64| {
            let (ea, eb) = ((a / 0.5).exp(), (b / 0.5).exp());
            let (pa, pb) = (ea / (ea + eb), eb / (ea + eb));
            0.5 * (0.5f64 / pa).ln() + 0.5 * (0.5f64 / pb).ln()
        };
        let want = (kl_row(0.0, -1.0) + kl_row(0.0, 0.0) + kl_row(-1.0, 0.0)) / 3.0;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        assert!(got > 0.0);
        // weights 2:1:1 count row 0 twice
        let weighted = value(relational_distillation(
            &same,
            &teacher,
            0.5,
            &[2.0, 1.0, 1.0],
            &device,
        ));
        let want = (2.0 * kl_row(0.0, -1.0) + kl_row(0.0, 0.0) + kl_row(-1.0, 0.0)) / 4.0;
        assert!((weighted - want).abs() < 1e-5, "{weighted} vs {want}");
    }

    #[test]
    fn loss_matches_a_hand_computation() {
        let device = Device::flex();
        // two embeddings, three proxies (unnormalised: the loss normalises them)
        let e = Tensor::<2>::from_data(
            TensorData::new(vec![1.0f32, 0.0, 0.0, 1.0], [2, 2]),
            &device,
        );
        let p = Tensor::<2>::from_data(
            TensorData::new(vec![2.0f32, 0.0, 0.0, 3.0, -1.0, 0.0], [3, 2]),
            &device,
        );
        let targets = TaskTargets {
            rows: vec![0, 1],
            labels: vec![0, 2],
            weights: vec![],
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let loss = normalized_softmax(&e, p, &targets, 0.5, ProxySet::All, &mut rng, &device);
        let got = loss.into_data().try_to_vec::<f32>().unwrap()[0];
        // row 0: cosines (1, 0, -1) / 0.5 = (2, 0, -2), label 0
        let l0 = -(2f64 - (2f64.exp() + 1.0 + (-2f64).exp()).ln());
        // row 1: cosines (0, 1, 0) / 0.5 = (0, 2, 0), label 2
        let l1 = -(0f64 - (1.0 + 2f64.exp() + 1.0).ln());
        let want = (l0 + l1) / 2.0;
        assert!((got as f64 - want).abs() < 1e-5, "{got} vs {want}");
        // weights 3:1 move the mean towards row 0
        let p = Tensor::<2>::from_data(
            TensorData::new(vec![2.0f32, 0.0, 0.0, 3.0, -1.0, 0.0], [3, 2]),
            &device,
        );
        let weighted = TaskTargets {
            weights: vec![3.0, 1.0],
            ..targets
        };
        let loss = normalized_softmax(&e, p, &weighted, 0.5, ProxySet::All, &mut rng, &device);
        let got = loss.into_data().try_to_vec::<f32>().unwrap()[0];
        let want = (3.0 * l0 + l1) / 4.0;
        assert!((got as f64 - want).abs() < 1e-5, "{got} vs {want}");
    }
}
