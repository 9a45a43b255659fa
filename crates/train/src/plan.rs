//! What a run trains on: the training images of every dataset with their class index per task,
//! and the multi-task batch sampler of the paper.
//!
//! Batches: every mini-batch holds a fixed number of images from each dataset, in proportion to
//! the dataset shares (equal by default: the paper's uniform mix); an epoch is the number of
//! steps after which every dataset has been passed over once (so the largest dataset sets it);
//! each dataset is visited in a fresh seeded permutation per pass. An image adds loss only to
//! the tasks whose label it has. The batch of step `s` is a pure function of (seed, s), which
//! makes a resumed run draw exactly what the uninterrupted one would have.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use unisight_data::datasets::LabeledImage;

use crate::config::{SetRef, TrainConfig};
use crate::{Error, Result};

/// A task as training sees it.
#[derive(Debug, Clone)]
pub struct TaskInfo {
    /// Name.
    pub name: String,
    /// Label field.
    pub label: String,
    /// Class names, sorted; the proxy of class `i` is row `i`.
    pub classes: Vec<String>,
    /// Loss weight.
    pub weight: f64,
    /// Temperature of its proxy softmax (its own, else `train.temperature`).
    pub temperature: f64,
}

/// One training image.
#[derive(Debug, Clone)]
pub struct TrainImage {
    /// Index of its dataset in [`TrainingSet::datasets`].
    pub dataset: usize,
    /// `dataset/id`, unique in the run.
    pub key: String,
    /// File.
    pub file: PathBuf,
    /// Class index per task, where it has that task's label.
    pub labels: Vec<Option<usize>>,
    /// Weight of its loss terms (domain weights).
    pub weight: f32,
}

/// The training images of a run and its tasks.
#[derive(Debug, Clone)]
pub struct TrainingSet {
    /// Dataset names.
    pub datasets: Vec<String>,
    /// All training images.
    pub images: Vec<TrainImage>,
    /// Image indices per dataset.
    pub by_dataset: Vec<Vec<usize>>,
    /// Sampling share per dataset (sums to 1).
    pub shares: Vec<f64>,
    /// Tasks in config order.
    pub tasks: Vec<TaskInfo>,
    /// Per dataset, for class-balanced sampling: images per class group and the image indices
    /// of each class.
    pub balanced: Vec<Option<(usize, Vec<Vec<usize>>)>>,
}

/// An evaluation set: images with their label values.
#[derive(Debug, Clone)]
pub struct EvalSet {
    /// Which set.
    pub set: SetRef,
    /// Its images.
    pub images: Vec<LabeledImage>,
}

impl TrainingSet {
    /// Reads the training splits of every dataset a task uses.
    ///
    /// # Errors
    /// Dataset errors (file and line); [`Error::Data`] for a task without any labelled image.
    pub fn load(config: &TrainConfig) -> Result<TrainingSet> {
        let used: BTreeSet<&String> = config.tasks.iter().flat_map(|t| &t.sources).collect();
        let datasets: Vec<String> = used.into_iter().cloned().collect();
        let mut images = Vec::new();
        let mut by_dataset = vec![Vec::new(); datasets.len()];
        let mut raw: Vec<LabeledImage> = Vec::new();
        for (d, name) in datasets.iter().enumerate() {
            let dc = &config.datasets[name];
            let mut seen = BTreeSet::new();
            for split in &dc.train_splits {
                for img in dc.list(split)? {
                    if !seen.insert(img.id.clone()) {
                        continue;
                    }
                    let weight = img
                        .domain
                        .as_ref()
                        .and_then(|dom| dc.domain_weights.get(dom))
                        .copied()
                        .unwrap_or(1.0) as f32;
                    by_dataset[d].push(images.len());
                    images.push(TrainImage {
                        dataset: d,
                        key: format!("{name}/{}", img.id),
                        file: img.file.clone(),
                        labels: Vec::new(),
                        weight,
                    });
                    raw.push(img);
                }
            }
            if by_dataset[d].is_empty() {
                return Err(Error::Data(format!(
                    "dataset `{name}` has no training images in {:?}",
                    dc.train_splits
                )));
            }
        }
        let mut tasks = Vec::new();
        for task in &config.tasks {
            let sources: BTreeSet<usize> = task
                .sources
                .iter()
                .map(|s| {
                    datasets
                        .iter()
                        .position(|d| d == s)
                        .expect("sources are datasets")
                })
                .collect();
            let classes: Vec<String> = images
                .iter()
                .zip(&raw)
                .filter(|(im, _)| sources.contains(&im.dataset))
                .filter_map(|(_, r)| r.labels.get(&task.label).cloned())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            if classes.len() < 2 {
                return Err(Error::Data(format!(
                    "task `{}`: its sources have {} distinct `{}` labels; at least 2 are needed",
                    task.name,
                    classes.len(),
                    task.label
                )));
            }
            for (im, r) in images.iter_mut().zip(&raw) {
                let label = sources
                    .contains(&im.dataset)
                    .then(|| r.labels.get(&task.label))
                    .flatten()
                    .map(|l| classes.binary_search(l).expect("collected above"));
                im.labels.push(label);
            }
            tasks.push(TaskInfo {
                name: task.name.clone(),
                label: task.label.clone(),
                classes,
                weight: task.weight,
                temperature: task.temperature.unwrap_or(config.train.temperature),
            });
        }
        let shares = dataset_shares(config, &datasets);
        let mut balanced = Vec::with_capacity(datasets.len());
        for (d, name) in datasets.iter().enumerate() {
            let dc = &config.datasets[name];
            let Some(k) = dc.images_per_class else {
                balanced.push(None);
                continue;
            };
            let label = dc.balance_label.clone().unwrap_or_else(|| {
                config
                    .tasks
                    .iter()
                    .find(|t| t.sources.contains(name))
                    .map(|t| t.label.clone())
                    .expect("a task reads every used dataset")
            });
            let mut classes: BTreeMap<&String, Vec<usize>> = BTreeMap::new();
            for &i in &by_dataset[d] {
                if let Some(l) = raw[i].labels.get(&label) {
                    classes.entry(l).or_default().push(i);
                }
            }
            if classes.is_empty() {
                return Err(Error::Data(format!(
                    "dataset `{name}`: no image has label `{label}` to balance by"
                )));
            }
            balanced.push(Some((k, classes.into_values().collect())));
        }
        Ok(TrainingSet {
            datasets,
            images,
            by_dataset,
            shares,
            tasks,
            balanced,
        })
    }
}

/// Dataset shares: from the tasks' shares where given (split evenly over each task's sources),
/// else from the datasets' own, else equal; normalised to sum to 1.
fn dataset_shares(config: &TrainConfig, datasets: &[String]) -> Vec<f64> {
    let mut shares = vec![0.0; datasets.len()];
    if config.tasks.iter().any(|t| t.share.is_some()) {
        for t in &config.tasks {
            let s = t.share.unwrap_or(1.0) / t.sources.len() as f64;
            for src in &t.sources {
                let d = datasets
                    .iter()
                    .position(|d| d == src)
                    .expect("sources are datasets");
                shares[d] += s;
            }
        }
    } else {
        for (d, name) in datasets.iter().enumerate() {
            shares[d] = config.datasets[name].share.unwrap_or(1.0);
        }
    }
    let total: f64 = shares.iter().sum();
    shares.iter().map(|s| s / total).collect()
}

/// Loads an evaluation set.
///
/// # Errors
/// Dataset errors naming file and line.
pub fn load_eval_set(config: &TrainConfig, set: &SetRef) -> Result<EvalSet> {
    let dc = config
        .datasets
        .get(&set.dataset)
        .ok_or_else(|| Error::Data(format!("no dataset `{}`", set.dataset)))?;
    let images = dc.list(&set.split)?;
    Ok(EvalSet {
        set: set.clone(),
        images,
    })
}

/// One sampled training example.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Draw {
    /// Index into [`TrainingSet::images`].
    pub image: usize,
    /// Which cached view of it.
    pub view: usize,
}

/// The multi-task batch sampler (see the module doc).
#[derive(Debug, Clone)]
pub struct Sampler {
    seed: u64,
    per_batch: Vec<usize>,
    by_dataset: Vec<Vec<usize>>,
    balanced: Vec<Option<(usize, Vec<Vec<usize>>)>>,
    views: usize,
}

impl Sampler {
    /// A sampler over `set` with `batch_size` images per step and `views` views per image.
    pub fn new(set: &TrainingSet, batch_size: usize, views: usize, seed: u64) -> Sampler {
        Sampler {
            seed,
            per_batch: apportion(batch_size, &set.shares),
            by_dataset: set.by_dataset.clone(),
            balanced: set.balanced.clone(),
            views,
        }
    }

    /// Images per batch from each dataset.
    pub fn per_batch(&self) -> &[usize] {
        &self.per_batch
    }

    /// Steps to pass once over every dataset.
    pub fn steps_per_epoch(&self) -> usize {
        self.by_dataset
            .iter()
            .zip(&self.per_batch)
            .filter(|(_, &n)| n > 0)
            .map(|(images, &n)| images.len().div_ceil(n))
            .max()
            .unwrap_or(1)
    }

    /// The batch of step `step`.
    pub fn batch(&self, step: usize) -> Vec<Draw> {
        let mut out = Vec::new();
        let mut view_rng = ChaCha8Rng::seed_from_u64(mix(self.seed, 0x7669_6577, step as u64));
        for (d, (images, &n)) in self.by_dataset.iter().zip(&self.per_batch).enumerate() {
            let picked = match &self.balanced[d] {
                Some((k, classes)) => self.balanced_draws(d, step, n, *k, classes),
                None => self.shuffled_draws(d, step, n, images),
            };
            out.extend(picked.into_iter().map(|image| Draw {
                image,
                view: view_rng.gen_range(0..self.views),
            }));
        }
        out
    }
}

impl Sampler {
    /// `n` images of dataset `d` at `step`: the next ones of a seeded permutation per pass.
    fn shuffled_draws(&self, d: usize, step: usize, n: usize, images: &[usize]) -> Vec<usize> {
        let len = images.len();
        let mut cached: Option<(usize, Vec<usize>)> = None;
        (0..n)
            .map(|j| {
                let draw = step * n + j;
                let (pass, pos) = (draw / len, draw % len);
                if cached.as_ref().map(|c| c.0) != Some(pass) {
                    let mut order = images.to_vec();
                    let mut rng = ChaCha8Rng::seed_from_u64(mix(self.seed, d as u64, pass as u64));
                    order.shuffle(&mut rng);
                    cached = Some((pass, order));
                }
                cached.as_ref().expect("set above").1[pos]
            })
            .collect()
    }

    /// `n` images of dataset `d` at `step` in groups of `k` of one class: classes in a seeded
    /// permutation per pass, images drawn without replacement within a group (with, for
    /// classes smaller than `k`).
    fn balanced_draws(
        &self,
        d: usize,
        step: usize,
        n: usize,
        k: usize,
        classes: &[Vec<usize>],
    ) -> Vec<usize> {
        let groups = n.div_ceil(k);
        let mut out = Vec::with_capacity(n);
        for j in 0..groups {
            let draw = step * groups + j;
            let (pass, pos) = (draw / classes.len(), draw % classes.len());
            let mut order: Vec<usize> = (0..classes.len()).collect();
            order.shuffle(&mut ChaCha8Rng::seed_from_u64(mix(
                self.seed,
                0x6261_6c00 + d as u64,
                pass as u64,
            )));
            let members = &classes[order[pos]];
            let mut rng =
                ChaCha8Rng::seed_from_u64(mix(self.seed, 0x6d65_6d00 + d as u64, draw as u64));
            let take = k.min(n - out.len());
            if members.len() >= take {
                out.extend(
                    rand::seq::index::sample(&mut rng, members.len(), take)
                        .into_iter()
                        .map(|i| members[i]),
                );
            } else {
                out.extend((0..take).map(|_| members[rng.gen_range(0..members.len())]));
            }
        }
        out
    }
}

/// A seed for (seed, a, b), so that streams of different purposes never coincide.
pub fn mix(seed: u64, a: u64, b: u64) -> u64 {
    let mut x =
        seed ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^ (x >> 29)
}

/// Splits `total` into integer parts proportional to `shares` (largest remainder), at least
/// one per positive share when `total` allows.
pub fn apportion(total: usize, shares: &[f64]) -> Vec<usize> {
    let raw: Vec<f64> = shares.iter().map(|s| s * total as f64).collect();
    let mut parts: Vec<usize> = raw.iter().map(|r| r.floor() as usize).collect();
    let mut rest: Vec<(usize, f64)> = raw
        .iter()
        .enumerate()
        .map(|(i, r)| (i, r - r.floor()))
        .collect();
    rest.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut left = total - parts.iter().sum::<usize>();
    for (i, _) in rest {
        if left == 0 {
            break;
        }
        parts[i] += 1;
        left -= 1;
    }
    for i in 0..parts.len() {
        if parts[i] == 0 && shares[i] > 0.0 {
            if let Some(big) = (0..parts.len())
                .max_by_key(|&j| parts[j])
                .filter(|&j| parts[j] > 1)
            {
                parts[big] -= 1;
                parts[i] = 1;
            }
        }
    }
    parts
}

/// Counts of each class per task in the training set (for reports).
pub fn class_counts(set: &TrainingSet) -> Vec<BTreeMap<usize, usize>> {
    (0..set.tasks.len())
        .map(|t| {
            let mut m = BTreeMap::new();
            for im in &set.images {
                if let Some(c) = im.labels[t] {
                    *m.entry(c).or_default() += 1;
                }
            }
            m
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy(sizes: &[usize], shares: &[f64]) -> TrainingSet {
        let mut images = Vec::new();
        let mut by_dataset = vec![];
        for (d, &n) in sizes.iter().enumerate() {
            let mut ids = vec![];
            for i in 0..n {
                ids.push(images.len());
                images.push(TrainImage {
                    dataset: d,
                    key: format!("{d}/{i}"),
                    file: PathBuf::new(),
                    labels: vec![Some(i % 3)],
                    weight: 1.0,
                });
            }
            by_dataset.push(ids);
        }
        TrainingSet {
            datasets: sizes
                .iter()
                .enumerate()
                .map(|(d, _)| d.to_string())
                .collect(),
            images,
            by_dataset,
            shares: shares.to_vec(),
            tasks: vec![],
            balanced: vec![None; sizes.len()],
        }
    }

    #[test]
    fn balanced_batches_hold_groups_of_one_class() {
        let mut set = toy(&[90], &[1.0]);
        // classes by i % 3 within the dataset
        let classes: Vec<Vec<usize>> = (0..3)
            .map(|c| (0..90).filter(|i| i % 3 == c).collect())
            .collect();
        set.balanced = vec![Some((4, classes))];
        let s = Sampler::new(&set, 12, 1, 5);
        for step in 0..10 {
            let b = s.batch(step);
            assert_eq!(b.len(), 12);
            for group in b.chunks(4) {
                let c = group[0].image % 3;
                assert!(group.iter().all(|d| d.image % 3 == c), "{group:?}");
                let mut ids: Vec<usize> = group.iter().map(|d| d.image).collect();
                ids.dedup();
                assert_eq!(ids.len(), 4, "no repeats inside a group");
            }
        }
        assert_eq!(s.batch(3), Sampler::new(&set, 12, 1, 5).batch(3));
    }

    #[test]
    fn apportion_is_proportional_and_complete() {
        assert_eq!(apportion(64, &[0.5, 0.5]), vec![32, 32]);
        assert_eq!(apportion(64, &[1.0 / 3.0; 3]), vec![22, 21, 21]);
        assert_eq!(apportion(10, &[0.99, 0.01]), vec![9, 1]);
    }

    #[test]
    fn batches_mix_datasets_and_an_epoch_covers_the_largest() {
        let set = toy(&[100, 10], &[0.5, 0.5]);
        let s = Sampler::new(&set, 10, 3, 7);
        assert_eq!(s.per_batch(), &[5, 5]);
        assert_eq!(s.steps_per_epoch(), 20);
        let mut seen = BTreeSet::new();
        for step in 0..20 {
            let b = s.batch(step);
            assert_eq!(
                b.iter()
                    .filter(|d| set.images[d.image].dataset == 0)
                    .count(),
                5
            );
            assert!(b.iter().all(|d| d.view < 3));
            seen.extend(
                b.iter()
                    .filter(|d| set.images[d.image].dataset == 0)
                    .map(|d| d.image),
            );
        }
        assert_eq!(
            seen.len(),
            100,
            "one epoch visits every image of the largest dataset"
        );
    }

    #[test]
    fn a_per_dataset_batch_keeps_each_datasets_count_when_a_dataset_joins() {
        let train = crate::config::OptimConfig {
            batch_per_dataset: Some(32),
            ..Default::default()
        };
        let two = toy(&[100, 10], &[0.5, 0.5]);
        let three = toy(&[100, 10, 50], &[1.0 / 3.0; 3]);
        let s2 = Sampler::new(&two, train.batch_for(two.datasets.len()), 1, 1);
        let s3 = Sampler::new(&three, train.batch_for(three.datasets.len()), 1, 1);
        assert_eq!(s2.per_batch(), &[32, 32]);
        assert_eq!(s3.per_batch(), &[32, 32, 32]);
        assert_eq!(s2.steps_per_epoch(), s3.steps_per_epoch());
        // without it, the third dataset takes a third of the fixed batch from the others
        let fixed = crate::config::OptimConfig::default();
        let f3 = Sampler::new(&three, fixed.batch_for(three.datasets.len()), 1, 1);
        assert_eq!(f3.per_batch(), &[22, 21, 21]);
    }

    #[test]
    fn batches_are_a_function_of_seed_and_step() {
        let set = toy(&[50, 30], &[0.5, 0.5]);
        let a = Sampler::new(&set, 8, 2, 1);
        let b = Sampler::new(&set, 8, 2, 1);
        let c = Sampler::new(&set, 8, 2, 2);
        assert_eq!(a.batch(13), b.batch(13));
        assert_ne!(a.batch(13), c.batch(13));
        assert_ne!(a.batch(13), a.batch(14));
    }
}
