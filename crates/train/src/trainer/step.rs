//! One training step: draw the batch, run the network, the multi-task loss (plus the
//! binary-aware term), back-propagate, and update the network, the trunk after warm-up, and the
//! sparse proxy banks.

use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use unisight_model::head::l2_normalize;

use super::distill::Teachers;
use super::setup::{int_tensor, Bank};
use super::{learning_rate, StepLog};
use crate::cache::TrainInputs;
use crate::config::TrainConfig;
use crate::loss::{
    proxy_subset, relational_distillation, softmax_over_subset, ProxySet, TaskTargets,
};
use crate::network::{Network, NetworkInput};
use crate::plan::{mix, Sampler, TrainingSet};
use crate::sparse::SparseOptim;

/// What stays the same from step to step of a run.
pub(super) struct StepContext<'a> {
    pub(super) config: &'a TrainConfig,
    pub(super) set: &'a TrainingSet,
    pub(super) inputs: &'a TrainInputs,
    pub(super) sampler: &'a Sampler,
    pub(super) proxy_sets: &'a [ProxySet],
    pub(super) trunk_ids: &'a [burn::module::ParamId],
    pub(super) sparse_optim: &'a SparseOptim,
    pub(super) teachers: &'a Teachers,
    pub(super) total_steps: usize,
    pub(super) warmup: usize,
    pub(super) device: &'a Device,
}

/// Trains step `step`; returns the updated network, the step's log and the images it used.
pub(super) fn train_step(
    ctx: &StepContext<'_>,
    mut net: Network,
    banks: &mut [Bank],
    optim: &mut ModuleOptimizer,
    step: usize,
) -> (Network, StepLog, usize) {
    let StepContext {
        config,
        set,
        inputs: trunk_cache,
        sampler,
        proxy_sets,
        trunk_ids,
        sparse_optim,
        teachers,
        total_steps,
        warmup,
        device,
    } = *ctx;
    let train_device = device;
    let draws: Vec<_> = sampler
        .batch(step)
        .into_iter()
        .filter(|d| trunk_cache.is_ok(d.image))
        .collect();
    let input = batch_input(
        trunk_cache,
        draws.iter().map(|d| (d.image, d.view)),
        train_device,
    );
    let out = net.forward(input);
    let mut rng = ChaCha8Rng::seed_from_u64(mix(config.seed, 0x6e65_6773, step as u64));
    let mut total: Option<Tensor<1>> = None;
    // the binary-aware term: a normalised tanh of the projection stands in for the code
    let soft_codes = (config.train.binary_weight > 0.0)
        .then(|| l2_normalize((out.projected.clone() * config.train.binary_sharpness).tanh()));
    let mut losses = Vec::with_capacity(set.tasks.len());
    let mut distill_losses = Vec::new();
    // teacher embeddings of this step by (teacher, rows): tasks on the same images share them
    let mut taught: Vec<(usize, Vec<usize>, Tensor<2>)> = Vec::new();
    let mut leaves: Vec<(usize, Vec<usize>, Tensor<2>)> = Vec::new();
    for (t, task) in set.tasks.iter().enumerate() {
        let mut targets = TaskTargets::default();
        for (row, d) in draws.iter().enumerate() {
            if let Some(c) = set.images[d.image].labels[t] {
                targets.rows.push(row);
                targets.labels.push(c);
                targets.weights.push(set.images[d.image].weight);
            }
        }
        if targets.rows.is_empty() || task.weight == 0.0 {
            losses.push(None);
            continue;
        }
        // the proxies of this step: gathered from a sparse bank as a leaf of the graph, or
        // (a subset of) a dense bank of the network
        let (subset, proxies) = match &banks[t] {
            &Bank::Dense(i) => {
                let bank = net.proxies[i].val();
                let classes = bank.dims()[0];
                let subset = proxy_subset(&targets.labels, classes, proxy_sets[t], &mut rng);
                let proxies = if subset.len() == classes {
                    bank
                } else {
                    bank.select(0, int_tensor(&subset, train_device))
                };
                (subset, proxies)
            }
            Bank::Sparse(bank) => {
                let subset = proxy_subset(&targets.labels, bank.classes, proxy_sets[t], &mut rng);
                let leaf = Tensor::<2>::from_data(
                    TensorData::new(bank.gather(&subset), [subset.len(), bank.dim]),
                    train_device,
                )
                .require_grad();
                leaves.push((t, subset.clone(), leaf.clone()));
                (subset, leaf)
            }
        };
        let temperature = task.temperature;
        let loss = softmax_over_subset(
            &out.normalized,
            proxies.clone(),
            &subset,
            &targets,
            temperature,
            train_device,
        );
        losses.push(Some(loss.clone().into_scalar::<f32>() as f64));
        let mut loss = loss;
        if let Some(soft) = &soft_codes {
            let binary =
                softmax_over_subset(soft, proxies, &subset, &targets, temperature, train_device);
            loss = loss + binary * config.train.binary_weight;
        }
        if let Some(tt) = teachers.by_task[t].filter(|_| targets.rows.len() >= 2) {
            let known = taught
                .iter()
                .position(|(i, rows, _)| *i == tt.teacher && *rows == targets.rows);
            let position = known.unwrap_or_else(|| {
                let rows: Vec<(usize, usize)> = targets
                    .rows
                    .iter()
                    .map(|&r| (draws[r].image, draws[r].view))
                    .collect();
                let embedded = teachers.embed(tt.teacher, trunk_cache, &rows, train_device);
                taught.push((tt.teacher, targets.rows.clone(), embedded));
                taught.len() - 1
            });
            let teacher = &taught[position].2;
            let rows = int_tensor(&targets.rows, train_device);
            let student = out.normalized.clone().select(0, rows.clone());
            let weights = &targets.weights;
            let mut term =
                relational_distillation(&student, teacher, tt.temperature, weights, train_device);
            if distill_losses.len() < t {
                distill_losses.resize(t, None);
            }
            distill_losses.push(Some(term.clone().into_scalar::<f32>() as f64));
            if let Some(soft) = &soft_codes {
                let soft = soft.clone().select(0, rows);
                term = term
                    + relational_distillation(
                        &soft,
                        teacher,
                        tt.temperature,
                        weights,
                        train_device,
                    ) * config.train.binary_weight;
            }
            loss = loss + term * tt.weight;
        }
        let weighted = loss * task.weight;
        total = Some(match total {
            Some(acc) => acc + weighted,
            None => weighted,
        });
    }
    let lr = learning_rate(config, step, total_steps, warmup);
    if let Some(total) = total {
        let mut raw = total.backward();
        for (t, subset, leaf) in leaves {
            if let (Bank::Sparse(bank), Some(grad)) = (&mut banks[t], leaf.grad(&raw)) {
                let grad = unisight_model::efficientnet::values_of(grad).1;
                bank.update(&subset, &grad, lr, sparse_optim);
            }
        }
        let trunk_grads = GradientsParams::from_params(&mut raw, &net, trunk_ids);
        let new_grads = GradientsParams::from_grads(raw, &net);
        net = optim.step(lr, net, new_grads);
        if step >= warmup && !trunk_ids.is_empty() {
            net = optim.step(lr * config.train.trunk_lr_scale, net, trunk_grads);
        }
    }
    let images = draws.len();
    if !distill_losses.is_empty() {
        distill_losses.resize(set.tasks.len(), None);
    }
    (
        net,
        StepLog {
            step,
            lr,
            losses,
            distill: distill_losses,
        },
        images,
    )
}

pub(super) fn batch_input(
    inputs: &TrainInputs,
    rows: impl Iterator<Item = (usize, usize)>,
    device: &Device,
) -> NetworkInput {
    let rows: Vec<(usize, usize)> = rows.collect();
    let n = rows.len();
    let (values, shape) = inputs.rows(&rows);
    match shape[..] {
        [c, h, w] => NetworkInput::Map(Tensor::from_data(
            TensorData::new(values, [n, c, h, w]),
            device,
        )),
        [d] => NetworkInput::Pooled(Tensor::from_data(TensorData::new(values, [n, d]), device)),
        _ => unreachable!("rows are maps or vectors"),
    }
}
