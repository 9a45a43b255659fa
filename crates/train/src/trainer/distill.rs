//! Teachers distilled into tasks (`[tasks.distill]`): each teacher model's trainable part, run
//! on the same cached trunk maps as the network in training, so it costs one forward pass over
//! its tasks' rows a step and no cache of its own.

use std::collections::BTreeMap;
use std::path::PathBuf;

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use unisight_model::{UnifiedModel, Weights, PROJECTION_KEY};

use crate::cache::TrainInputs;
use crate::config::TrainConfig;
use crate::network::{Network, TrainFrom};
use crate::{Error, Result};

/// The teacher of one task and how its term is weighed.
#[derive(Debug, Clone, Copy)]
pub(super) struct TaskTeacher {
    /// Index into [`Teachers::nets`].
    pub teacher: usize,
    /// Weight of the term.
    pub weight: f64,
    /// Temperature of the similarity softmax.
    pub temperature: f64,
}

/// The distinct teacher models of a run and which task uses which.
#[derive(Debug, Default)]
pub(super) struct Teachers {
    /// Each teacher's trainable part (no gradients), in order of first use.
    nets: Vec<Network>,
    /// Per task, in config order.
    pub by_task: Vec<Option<TaskTeacher>>,
    /// CRC32C of each teacher's file: a run resumes only with the same teachers.
    checksums: Vec<u32>,
}

impl Teachers {
    /// Loads every teacher the task file names, checking that each shares `base`'s frozen front.
    ///
    /// # Errors
    /// [`Error::Config`] naming the task's `distill.teacher` when the file cannot be read, is
    /// another architecture, or its front differs from the one this run caches.
    pub fn load(config: &TrainConfig, base: &UnifiedModel, device: &Device) -> Result<Teachers> {
        let mut teachers = Teachers::default();
        let mut loaded: BTreeMap<PathBuf, usize> = BTreeMap::new();
        let base_weights = base.to_weights();
        for (i, task) in config.tasks.iter().enumerate() {
            let Some(d) = &task.distill else {
                teachers.by_task.push(None);
                continue;
            };
            let key = PathBuf::from(format!("tasks[{i}].distill.teacher"));
            let teacher = match loaded.get(&d.teacher) {
                Some(&t) => t,
                None => {
                    let bad = |what: String| Error::Config {
                        path: key.clone(),
                        what: format!("{}: {what}", d.teacher.display()),
                    };
                    let bytes = std::fs::read(&d.teacher).map_err(|e| bad(e.to_string()))?;
                    let (spec, mut weights, _) =
                        unisight_model::model_file::parse(&d.teacher, &bytes)
                            .map_err(|e| bad(e.to_string()))?;
                    if spec.architecture != config.model.architecture {
                        return Err(bad(format!(
                            "a {} model; this run trains {}",
                            spec.architecture.short_name(),
                            config.model.architecture.short_name()
                        )));
                    }
                    let blocks =
                        unisight_model::efficientnet::block_strides(spec.architecture).len();
                    let first_block = config.model.train_from.first_block(blocks);
                    if let Some(name) = differing_front_tensor(
                        &weights,
                        &base_weights,
                        config.model.train_from,
                        first_block,
                    ) {
                        return Err(bad(format!(
                            "its frozen front differs from the one this run caches (`{name}`): \
                             a teacher must be trained from the same starting model with \
                             `model.train_from` at block {first_block} or later"
                        )));
                    }
                    if !weights.contains(PROJECTION_KEY) {
                        identity_projection(&mut weights, spec.dim);
                    }
                    let net = Network::from_weights(
                        &weights,
                        spec.architecture,
                        config.model.train_from,
                        spec.dim,
                        Vec::new(),
                        device,
                    )
                    .map_err(|e| bad(e.to_string()))?
                    .no_grad();
                    teachers.nets.push(net);
                    teachers.checksums.push(crc32c::crc32c(&bytes));
                    loaded.insert(d.teacher.clone(), teachers.nets.len() - 1);
                    teachers.nets.len() - 1
                }
            };
            teachers.by_task.push(Some(TaskTeacher {
                teacher,
                weight: d.weight,
                temperature: d.temperature.unwrap_or(config.train.temperature),
            }));
        }
        Ok(teachers)
    }

    /// Folds the teachers' checksums into a run fingerprint (unchanged without teachers).
    pub fn fingerprint(&self, fingerprint: u32) -> u32 {
        self.checksums.iter().fold(fingerprint, |f, c| {
            crc32c::crc32c_append(f, &c.to_le_bytes())
        })
    }

    /// The teacher's L2-normalised embeddings of cached rows `(image, view)`, without gradient.
    pub fn embed(
        &self,
        teacher: usize,
        inputs: &TrainInputs,
        rows: &[(usize, usize)],
        device: &Device,
    ) -> Tensor<2> {
        let input = super::step::batch_input(inputs, rows.iter().copied(), device);
        self.nets[teacher].forward(input).normalized.detach()
    }
}

/// The first tensor of the frozen front (stem and blocks before `first_block`; the head conv
/// too when training from pooled features) whose values differ between the two weight sets.
fn differing_front_tensor(
    teacher: &Weights,
    base: &Weights,
    train_from: TrainFrom,
    first_block: usize,
) -> Option<String> {
    let in_front = |name: &str| -> bool {
        if let Some(rest) = name.strip_prefix("_blocks.") {
            let block: Option<usize> = rest.split('.').next().and_then(|b| b.parse().ok());
            return block.is_some_and(|b| b < first_block);
        }
        if name.starts_with("_conv_stem.") || name.starts_with("_bn0.") {
            return train_from != TrainFrom::Stem;
        }
        if name.starts_with("_conv_head.") || name.starts_with("_bn1.") {
            return train_from == TrainFrom::Pooled;
        }
        false
    };
    base.tensors
        .iter()
        .filter(|(name, _)| in_front(name))
        .find(|(name, tensor)| {
            teacher.tensors.get(*name).is_none_or(|t| {
                t.shape != tensor.shape
                    || t.values
                        .iter()
                        .zip(&tensor.values)
                        .any(|(a, b)| (a - b).abs() > 1e-6)
            })
        })
        .map(|(name, _)| name.clone())
}

/// A model without a projection embeds the trunk features as they are: the identity.
fn identity_projection(weights: &mut Weights, dim: usize) {
    weights.insert(PROJECTION_KEY, vec![dim, dim], super::setup::identity(dim));
}
