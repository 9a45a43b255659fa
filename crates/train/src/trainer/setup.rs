//! What a run starts from: the base model, the network and proxy banks built from weights
//! (initial or a checkpoint's), and the optimizer.

use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamWConfig, ModuleOptimizer, SgdConfig};
use burn::tensor::{Device, Tensor, TensorData};
use unisight_model::{UnifiedModel, Weights};

use super::proxies_key;
use crate::config::{OptimizerKind, ProxyMode, TrainConfig};
use crate::network::Network;
use crate::plan::TrainingSet;
use crate::sparse::SparseBank;
use crate::{Error, Result};

/// The model training starts from: the `init` model file, or the ImageNet trunk with a
/// random-orthogonal projection.
pub(super) fn base_model(config: &TrainConfig, device: &Device) -> Result<UnifiedModel> {
    let m = &config.model;
    let mut model = match &m.init {
        Some(path) => UnifiedModel::load(path, device)?,
        None => UnifiedModel::zero_shot(m.architecture, m.dim, config.seed, device)?,
    };
    if model.spec.dim != m.dim || model.spec.architecture != m.architecture {
        return Err(Error::Config {
            path: m.init.clone().unwrap_or_default(),
            what: format!(
                "`model.init` is a {} model with D={}, the task file asks for {} with D={}",
                model.spec.architecture.short_name(),
                model.spec.dim,
                m.architecture.short_name(),
                m.dim
            ),
        });
    }
    if model.head.projection.is_none() {
        // identity at D = trunk width: make it an explicit, trainable matrix
        let n = model.spec.trunk_dim;
        model.head = unisight_model::EmbeddingHead::new(Some((n, n, identity(n))), device);
    }
    Ok(model)
}

/// The `n x n` identity, row-major.
pub(super) fn identity(n: usize) -> Vec<f32> {
    let mut eye = vec![0f32; n * n];
    for i in 0..n {
        eye[i * n + i] = 1.0;
    }
    eye
}

/// A task's proxies: a dense bank inside the network (index into `Network::proxies`), or a
/// sparse bank updated row by row.
#[derive(Debug)]
pub(super) enum Bank {
    Dense(usize),
    Sparse(SparseBank),
}

/// The network and the proxy banks from weights (the initial ones, or a checkpoint's). A task
/// gets a sparse bank when it samples proxies and has more classes than its budget.
pub(super) fn network_from(
    weights: &Weights,
    config: &TrainConfig,
    set: &TrainingSet,
    device: &Device,
) -> Result<(Network, Vec<Bank>)> {
    let dim = config.model.dim;
    let mut dense = Vec::new();
    let mut banks = Vec::new();
    for (t, task) in set.tasks.iter().enumerate() {
        let classes = task.classes.len();
        let p = weights.get(&proxies_key(t), &[Some(classes), Some(dim)])?;
        let cfg = &config.tasks[t];
        if cfg.proxies == ProxyMode::Sampled && classes > cfg.proxy_budget {
            let mut bank = SparseBank::new(classes, dim, p.values.clone());
            let key = proxies_key(t);
            if weights.contains(&format!("{key}.moment1")) {
                bank.moment1 = weights
                    .get(&format!("{key}.moment1"), &[Some(classes), Some(dim)])?
                    .values
                    .clone();
                bank.moment2 = weights
                    .get(&format!("{key}.moment2"), &[Some(classes), Some(dim)])?
                    .values
                    .clone();
                bank.steps = weights
                    .get(&format!("{key}.steps"), &[Some(classes)])?
                    .values
                    .iter()
                    .map(|&x| x as u32)
                    .collect();
            }
            banks.push(Bank::Sparse(bank));
        } else {
            banks.push(Bank::Dense(dense.len()));
            dense.push((t, classes, p.values.clone()));
        }
    }
    let net = Network::from_weights(
        weights,
        config.model.architecture,
        config.model.train_from,
        dim,
        dense,
        device,
    )?;
    Ok((net, banks))
}

/// Every bank's proxies (and a sparse bank's optimizer state when `with_state`) by task.
pub(super) fn bank_weights(net: &Network, banks: &[Bank], with_state: bool, out: &mut Weights) {
    for (t, bank) in banks.iter().enumerate() {
        let key = proxies_key(t);
        match bank {
            Bank::Dense(i) => {
                let (shape, values) =
                    unisight_model::efficientnet::values_of(net.proxies[*i].val());
                out.insert(key, shape, values);
            }
            Bank::Sparse(b) => {
                out.insert(key.clone(), vec![b.classes, b.dim], b.values.clone());
                if with_state {
                    out.insert(
                        format!("{key}.moment1"),
                        vec![b.classes, b.dim],
                        b.moment1.clone(),
                    );
                    out.insert(
                        format!("{key}.moment2"),
                        vec![b.classes, b.dim],
                        b.moment2.clone(),
                    );
                    out.insert(
                        format!("{key}.steps"),
                        vec![b.classes],
                        b.steps.iter().map(|&x| x as f32).collect(),
                    );
                }
            }
        }
    }
}

pub(super) fn int_tensor(values: &[usize], device: &Device) -> Tensor<1, burn::tensor::Int> {
    let v: Vec<i64> = values.iter().map(|&x| x as i64).collect();
    Tensor::from_data(TensorData::new(v, [values.len()]), device)
}

pub(super) fn make_optimizer(config: &TrainConfig) -> ModuleOptimizer {
    let t = &config.train;
    match t.optimizer {
        OptimizerKind::Adamw => AdamWConfig::new()
            .with_epsilon(1e-8)
            .with_weight_decay(t.weight_decay as f32)
            .init(),
        OptimizerKind::Sgd => SgdConfig::new()
            .with_momentum(Some(
                MomentumConfig::new()
                    .with_momentum(t.momentum)
                    .with_dampening(0.0),
            ))
            .with_weight_decay(
                (t.weight_decay > 0.0).then(|| WeightDecayConfig::new(t.weight_decay as f32)),
            )
            .init(),
    }
}
