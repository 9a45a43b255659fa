//! Proxies that start from a set's images (a task's `proxy_init`, e.g. the catalog images of a
//! store-photo -> catalog task): each class's proxy starts at the mean embedding of its images
//! there under the network training starts from, instead of at random.

use unisight_model::Weights;

use super::proxies_key;
use super::validate::{embed_entries, Evaluator};
use crate::cache::TrainInputs;
use crate::config::{SetRef, TrainConfig};
use crate::network::Network;
use crate::plan::TrainingSet;
use crate::{Error, Result};

/// Replaces the initial proxies of every task with a `proxy_init` set in `weights`; returns,
/// per such task, its name, the classes started from images and the classes in all.
///
/// Each proxy is scaled to the length a random one has (sqrt(D)): the loss normalises proxies,
/// so their length only sets how fast they move, and this keeps that as it is without the set.
///
/// # Errors
/// [`Error::Data`] when the set has no readable image of any of the task's classes.
pub(super) fn start_from_sets(
    net: &Network,
    cache: &TrainInputs,
    evaluator: &Evaluator,
    config: &TrainConfig,
    set: &TrainingSet,
    weights: &mut Weights,
) -> Result<Vec<(String, usize, usize)>> {
    let dim = config.model.dim;
    let mut started = Vec::new();
    for (t, task) in config.tasks.iter().enumerate() {
        let Some(v) = &task.proxy_init else { continue };
        let which = SetRef::parse(v).expect("checked");
        let info = &set.tasks[t];
        let (loaded, entries) = evaluator.set(&which);
        // (cache entry, class) of every readable image with one of the task's classes
        let labelled: Vec<(usize, usize)> = loaded
            .images
            .iter()
            .zip(entries)
            .filter(|(_, &e)| cache.is_ok(e))
            .filter_map(|(image, &e)| {
                let value = image.labels.get(&info.label)?;
                info.classes.binary_search(value).ok().map(|c| (e, c))
            })
            .collect();
        if labelled.is_empty() {
            return Err(Error::Data(format!(
                "tasks.{}.proxy_init = `{v}`: no readable image there has a `{}` label of the \
                 task's classes",
                task.name, info.label
            )));
        }
        let rows: Vec<usize> = labelled.iter().map(|&(e, _)| e).collect();
        let (embeddings, _) = embed_entries(net, cache, &rows, dim);
        let classes = info.classes.len();
        let mut sums = vec![0f64; classes * dim];
        let mut counts = vec![0usize; classes];
        for (&(_, c), row) in labelled.iter().zip(embeddings.chunks(dim)) {
            counts[c] += 1;
            for (s, &x) in sums[c * dim..(c + 1) * dim].iter_mut().zip(row) {
                *s += f64::from(x);
            }
        }
        let key = proxies_key(t);
        let mut values = weights
            .get(&key, &[Some(classes), Some(dim)])?
            .values
            .clone();
        let length = (dim as f64).sqrt();
        for c in (0..classes).filter(|&c| counts[c] > 0) {
            let sum = &sums[c * dim..(c + 1) * dim];
            let norm = sum.iter().map(|x| x * x).sum::<f64>().sqrt();
            if norm > 0.0 {
                for (p, s) in values[c * dim..(c + 1) * dim].iter_mut().zip(sum) {
                    *p = (s / norm * length) as f32;
                }
            }
        }
        weights.insert(key, vec![classes, dim], values);
        let from_images = counts.iter().filter(|&&n| n > 0).count();
        started.push((task.name.clone(), from_images, classes));
    }
    Ok(started)
}
