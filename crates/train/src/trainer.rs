//! The training run: cache the frozen front, train the rest with the multi-task loss, validate,
//! checkpoint, resume, evaluate, save the model.
//!
//! Checkpoints (`WORK/checkpoints/step-N/`: trainable tensors, optimizer state, run state) are
//! written into a temporary folder that is renamed into place, and `WORK/checkpoints/LATEST`
//! is swapped atomically afterwards: a kill at any moment leaves the previous checkpoint
//! intact. Batches, augmentation and negative sampling are functions of (seed, step), and the
//! optimizer state is restored by stable parameter ids, so a resumed run continues exactly
//! where the interrupted one was.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::{Device, Tensor, TensorData};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};
use unisight_core::{ModelSpec, Projection};
use unisight_eval::metrics::recall_at_k;
use unisight_eval::search::{top_k_float, top_k_hamming, SelfMatch};
use unisight_model::head::l2_normalize;
use unisight_model::{UnifiedModel, Weights, PROJECTION_KEY};

use crate::cache::{self, CacheEntry, PixelSource, TrainInputs};
use crate::config::{OptimizerKind, ProxyMode, Schedule, SetRef, TrainConfig};
use crate::loss::{proxy_subset, softmax_over_subset, ProxySet, TaskTargets};
use crate::network::{Network, NetworkInput, TrainFrom};
use crate::plan::{load_eval_set, mix, EvalSet, Sampler, TrainingSet};
use crate::sparse::{SparseBank, SparseOptim};
use crate::{Error, Result};

/// Where a run writes and how it reports.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// The model file to write at the end.
    pub out: PathBuf,
    /// Checkpoints, curves and the report.
    pub work_dir: PathBuf,
    /// Trunk-map caches (shared between runs with the same frozen front).
    pub cache_dir: PathBuf,
    /// Show progress bars.
    pub progress: bool,
    /// Stop after this step as if interrupted (the checkpoint of that step is written first).
    pub stop_after: Option<usize>,
}

/// Loss of every task at one step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepLog {
    /// Step (0-based).
    pub step: usize,
    /// Learning rate of the new parameters.
    pub lr: f64,
    /// Per task, in config order (`None`: no labelled image in the batch).
    pub losses: Vec<Option<f64>>,
}

/// Retrieval quality of one task on one query/gallery pair.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskEval {
    /// Task name.
    pub task: String,
    /// Step it was measured at.
    pub step: usize,
    /// Query set.
    pub queries: String,
    /// Gallery set (`self`: leave-one-out).
    pub gallery: String,
    /// The k of the recalls.
    pub k: Vec<usize>,
    /// Recall@k with float embeddings (cosine).
    pub recall_float: Vec<f64>,
    /// Recall@k with the binary codes (Hamming).
    pub recall_bits: Vec<f64>,
}

/// Curves of a run, written as `history.json` and plotted.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct History {
    /// Task names.
    pub tasks: Vec<String>,
    /// Per-step losses.
    pub steps: Vec<StepLog>,
    /// Validation measurements.
    pub validation: Vec<TaskEval>,
}

/// What a finished run reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainReport {
    /// Steps trained in all.
    pub steps: usize,
    /// Steps of this invocation (fewer after a resume).
    pub steps_this_run: usize,
    /// Training throughput of this invocation, images per second.
    pub images_per_second: f64,
    /// Seconds spent building the trunk cache.
    pub cache_seconds: f64,
    /// Images that could not be read and were skipped.
    pub skipped_images: Vec<(String, String)>,
    /// Final evaluation per task.
    pub eval: Vec<TaskEval>,
    /// Whether the run stopped early (`stop_after`).
    pub interrupted: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunState {
    fingerprint: u32,
    step: usize,
    history: History,
}

/// Name under which task proxies are stored.
pub fn proxies_key(task: usize) -> String {
    format!("proxies.{task}")
}

/// Trains per `config`. Resumes from the latest checkpoint in `options.work_dir` when it
/// belongs to the same config.
///
/// # Errors
/// Config, data, model, runtime and I/O errors; a checkpoint from a different config.
pub fn train(config: &TrainConfig, options: &TrainOptions) -> Result<TrainReport> {
    let device = Device::flex();
    let train_device = device.clone().autodiff();
    let set = TrainingSet::load(config)?;
    let base = base_model(config, &device)?;
    let arch = config.model.architecture;
    let blocks = unisight_model::efficientnet::block_strides(arch).len();
    if let TrainFrom::Block(k) = config.model.train_from {
        if k == 0 || k >= blocks {
            return Err(Error::Config {
                path: PathBuf::from("model.train_from"),
                what: format!("block{k}: the first trainable block must be 1..{}; use \"stem\" to train everything", blocks - 1),
            });
        }
    }

    // evaluation sets: validation during training, final at the end
    let mut eval_sets: Vec<(usize, SetRef, Option<SetRef>, bool)> = Vec::new();
    for (t, task) in config.tasks.iter().enumerate() {
        if let Some(e) = &task.eval {
            let gallery =
                (e.gallery != "self").then(|| SetRef::parse(&e.gallery).expect("checked"));
            eval_sets.push((
                t,
                SetRef::parse(&e.queries).expect("checked"),
                gallery.clone(),
                false,
            ));
            if let Some(v) = &e.validation {
                eval_sets.push((t, SetRef::parse(v).expect("checked"), gallery, true));
            }
        }
    }
    let mut loaded: Vec<EvalSet> = Vec::new();
    for (_, q, g, _) in &eval_sets {
        for r in std::iter::once(q).chain(g.as_ref()) {
            if !loaded.iter().any(|s| &s.set == r) {
                loaded.push(load_eval_set(config, r)?);
            }
        }
    }

    // cache entries: training images with all views, evaluation images with the plain one
    let views = config.train.views;
    let mut entries: Vec<CacheEntry> = set
        .images
        .iter()
        .map(|im| CacheEntry {
            key: im.key.clone(),
            file: im.file.clone(),
            views,
        })
        .collect();
    let mut index_of: std::collections::HashMap<String, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.key.clone(), i))
        .collect();
    let mut eval_entries: Vec<Vec<usize>> = Vec::new();
    for s in &loaded {
        let mut rows = Vec::new();
        for im in &s.images {
            let key = format!("{}/{}", s.set.dataset, im.id);
            let i = *index_of.entry(key.clone()).or_insert_with(|| {
                entries.push(CacheEntry {
                    key,
                    file: im.file.clone(),
                    views: 1,
                });
                entries.len() - 1
            });
            rows.push(i);
        }
        eval_entries.push(rows);
    }
    let evaluator = Evaluator {
        sets: eval_sets,
        loaded,
        entries: eval_entries,
    };
    let started = Instant::now();
    let trunk_cache = if config.model.train_from == TrainFrom::Stem {
        TrainInputs::Pixels(PixelSource::new(
            &entries,
            &base,
            &config.augment,
            config.seed,
        ))
    } else {
        TrainInputs::Cached(cache::build(
            &options.cache_dir,
            &base,
            config.model.train_from,
            &entries,
            &config.augment,
            config.seed,
            options.progress,
        )?)
    };
    let cache_seconds = started.elapsed().as_secs_f64();

    let sampler = Sampler::new(&set, config.train.batch_size, views, config.seed);
    let total_steps = match (config.train.steps, config.train.epochs) {
        (Some(s), _) => s,
        (None, Some(e)) => ((e * sampler.steps_per_epoch() as f64).round() as usize).max(1),
        (None, None) => unreachable!("checked in the config"),
    };
    let warmup = config.train.warmup_steps.unwrap_or(0).min(total_steps);
    let fingerprint = crc32c::crc32c(
        &serde_json::to_vec(&(config, set.images.len(), total_steps)).expect("config serialises"),
    );

    // network and optimizer, fresh or from the latest checkpoint
    let checkpoints = options.work_dir.join("checkpoints");
    let (mut net, mut banks, mut optim, mut state) = match latest_checkpoint(&checkpoints)? {
        Some(dir) => {
            let state: RunState = read_json(&dir.join("state.json"))?;
            if state.fingerprint != fingerprint {
                return Err(Error::Resume {
                    path: dir,
                    what: "checkpoint of a different task file or dataset; use another --work-dir or delete it".into(),
                });
            }
            let (_, weights) = unisight_model::model_file::read(&dir.join("network.safetensors"))?;
            let (net, banks) = network_from(&weights, config, &set, &train_device)?;
            let bytes = std::fs::read(dir.join("optimizer.bpk"))
                .map_err(|e| Error::io(dir.join("optimizer.bpk"), e))?;
            let optim = make_optimizer(config)
                .from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
                .map_err(|e| Error::Resume {
                    path: dir.join("optimizer.bpk"),
                    what: e.to_string(),
                })?;
            (net, banks, optim, state)
        }
        None => {
            let mut weights = base.to_weights();
            for (t, task) in set.tasks.iter().enumerate() {
                let mut rng = ChaCha8Rng::seed_from_u64(mix(config.seed, 0x7072_6f78, t as u64));
                let values: Vec<f32> = (0..task.classes.len() * config.model.dim)
                    .map(|_| StandardNormal.sample(&mut rng))
                    .collect();
                weights.insert(
                    proxies_key(t),
                    vec![task.classes.len(), config.model.dim],
                    values,
                );
            }
            let (net, banks) = network_from(&weights, config, &set, &train_device)?;
            let state = RunState {
                fingerprint,
                step: 0,
                history: History {
                    tasks: set.tasks.iter().map(|t| t.name.clone()).collect(),
                    ..History::default()
                },
            };
            (net, banks, make_optimizer(config), state)
        }
    };
    let sparse_optim = SparseOptim {
        kind: config.train.optimizer,
        weight_decay: config.train.weight_decay,
        momentum: config.train.momentum,
    };
    let trunk_ids = net.trunk_param_ids();
    let proxy_sets: Vec<ProxySet> = config
        .tasks
        .iter()
        .map(|t| match t.proxies {
            ProxyMode::All => ProxySet::All,
            ProxyMode::Sampled => ProxySet::Sampled {
                budget: t.proxy_budget,
            },
        })
        .collect();

    let bar = if options.progress {
        ProgressBar::new(total_steps as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("train {bar:30} {pos}/{len} steps  epoch {msg}  ETA {eta}")
            .expect("valid template"),
    );
    bar.set_position(state.step as u64);
    let first_step = state.step;
    let loop_started = Instant::now();
    let mut images_seen = 0usize;
    let mut interrupted = false;
    let validate_every = config.train.validate_every;
    if state.step == 0 && validate_every > 0 {
        // the starting point of the curves
        let evals = evaluator.run(&net, &trunk_cache, config, &set, 0, true);
        state.history.validation.extend(evals);
    }
    while state.step < total_steps {
        let step = state.step;
        let draws: Vec<_> = sampler
            .batch(step)
            .into_iter()
            .filter(|d| trunk_cache.is_ok(d.image))
            .collect();
        let input = batch_input(
            &trunk_cache,
            draws.iter().map(|d| (d.image, d.view)),
            &train_device,
        );
        let out = net.forward(input);
        let mut rng = ChaCha8Rng::seed_from_u64(mix(config.seed, 0x6e65_6773, step as u64));
        let mut total: Option<Tensor<1>> = None;
        // the binary-aware term: a normalised tanh of the projection stands in for the code
        let soft_codes = (config.train.binary_weight > 0.0)
            .then(|| l2_normalize((out.projected.clone() * config.train.binary_sharpness).tanh()));
        let mut losses = Vec::with_capacity(set.tasks.len());
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
                        bank.select(0, int_tensor(&subset, &train_device))
                    };
                    (subset, proxies)
                }
                Bank::Sparse(bank) => {
                    let subset =
                        proxy_subset(&targets.labels, bank.classes, proxy_sets[t], &mut rng);
                    let leaf = Tensor::<2>::from_data(
                        TensorData::new(bank.gather(&subset), [subset.len(), bank.dim]),
                        &train_device,
                    )
                    .require_grad();
                    leaves.push((t, subset.clone(), leaf.clone()));
                    (subset, leaf)
                }
            };
            let temperature = config.train.temperature;
            let loss = softmax_over_subset(
                &out.normalized,
                proxies.clone(),
                &subset,
                &targets,
                temperature,
                &train_device,
            );
            losses.push(Some(loss.clone().into_scalar::<f32>() as f64));
            let mut loss = loss;
            if let Some(soft) = &soft_codes {
                let binary = softmax_over_subset(
                    soft,
                    proxies,
                    &subset,
                    &targets,
                    temperature,
                    &train_device,
                );
                loss = loss + binary * config.train.binary_weight;
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
                    bank.update(&subset, &grad, lr, &sparse_optim);
                }
            }
            let trunk_grads = GradientsParams::from_params(&mut raw, &net, &trunk_ids);
            let new_grads = GradientsParams::from_grads(raw, &net);
            net = optim.step(lr, net, new_grads);
            if step >= warmup && !trunk_ids.is_empty() {
                net = optim.step(lr * config.train.trunk_lr_scale, net, trunk_grads);
            }
        }
        images_seen += draws.len();
        state.history.steps.push(StepLog { step, lr, losses });
        state.step += 1;
        bar.set_message(format!(
            "{:.2}  loss {}  {:.1} img/s",
            state.step as f64 / sampler.steps_per_epoch() as f64,
            loss_summary(&state.history, &set),
            images_seen as f64 / loop_started.elapsed().as_secs_f64().max(1e-9)
        ));
        bar.set_position(state.step as u64);
        if validate_every > 0 && state.step % validate_every == 0 && state.step < total_steps {
            let evals = evaluator.run(&net, &trunk_cache, config, &set, state.step, true);
            state.history.validation.extend(evals);
        }
        let stop_now =
            options.stop_after.is_some_and(|s| state.step >= s) && state.step < total_steps;
        if state.step % config.train.checkpoint_every == 0 || stop_now {
            save_checkpoint(&checkpoints, &net, &banks, &optim, &state, config)?;
        }
        if stop_now {
            interrupted = true;
            break;
        }
    }
    bar.finish_and_clear();
    let steps_this_run = state.step - first_step;
    let images_per_second = images_seen as f64 / loop_started.elapsed().as_secs_f64().max(1e-9);
    let mut eval = Vec::new();
    if !interrupted {
        if validate_every > 0 {
            let v = evaluator.run(&net, &trunk_cache, config, &set, state.step, true);
            state.history.validation.extend(v);
        }
        eval = evaluator.run(&net, &trunk_cache, config, &set, state.step, false);
        save_checkpoint(&checkpoints, &net, &banks, &optim, &state, config)?;
        save_model(&base, &net, &banks, &set, &options.out)?;
    }
    let report = TrainReport {
        steps: state.step,
        steps_this_run,
        images_per_second,
        cache_seconds,
        skipped_images: trunk_cache.failures().to_vec(),
        eval,
        interrupted,
    };
    std::fs::create_dir_all(&options.work_dir).map_err(|e| Error::io(&options.work_dir, e))?;
    write_json(&options.work_dir.join("history.json"), &state.history)?;
    if !interrupted {
        write_json(&options.work_dir.join("report.json"), &report)?;
        crate::plot::plot_history(&state.history, &options.work_dir)?;
    }
    Ok(report)
}

fn loss_summary(history: &History, set: &TrainingSet) -> String {
    let recent = &history.steps[history.steps.len().saturating_sub(20)..];
    set.tasks
        .iter()
        .enumerate()
        .map(|(t, task)| {
            let v: Vec<f64> = recent.iter().filter_map(|s| s.losses[t]).collect();
            let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
            format!("{}={mean:.3}", task.name)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The model training starts from: the `init` model file, or the ImageNet trunk with a
/// random-orthogonal projection.
fn base_model(config: &TrainConfig, device: &Device) -> Result<UnifiedModel> {
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
        let mut eye = vec![0f32; n * n];
        for i in 0..n {
            eye[i * n + i] = 1.0;
        }
        model.head = unisight_model::EmbeddingHead::new(Some((n, n, eye)), device);
    }
    Ok(model)
}

/// A task's proxies: a dense bank inside the network (index into `Network::proxies`), or a
/// sparse bank updated row by row.
#[derive(Debug)]
enum Bank {
    Dense(usize),
    Sparse(SparseBank),
}

/// The network and the proxy banks from weights (the initial ones, or a checkpoint's). A task
/// gets a sparse bank when it samples proxies and has more classes than its budget.
fn network_from(
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
fn bank_weights(net: &Network, banks: &[Bank], with_state: bool, out: &mut Weights) {
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

fn int_tensor(values: &[usize], device: &Device) -> Tensor<1, burn::tensor::Int> {
    let v: Vec<i64> = values.iter().map(|&x| x as i64).collect();
    Tensor::from_data(TensorData::new(v, [values.len()]), device)
}

fn make_optimizer(config: &TrainConfig) -> ModuleOptimizer {
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

/// Learning rate of the new parameters at `step`: constant through warm-up, then decayed.
pub fn learning_rate(config: &TrainConfig, step: usize, total: usize, warmup: usize) -> f64 {
    let base = config.train.lr;
    if step < warmup {
        return base;
    }
    let span = (total - warmup).max(1) as f64;
    let progress = (step - warmup) as f64 / span;
    match config.train.schedule {
        Schedule::Constant => base,
        Schedule::Cosine => base * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
        Schedule::Step => {
            if progress >= 8.0 / 9.0 {
                base * 0.01
            } else if progress >= 2.0 / 3.0 {
                base * 0.1
            } else {
                base
            }
        }
    }
}

fn batch_input(
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

/// Embeddings (normalised) and codes of cache entries (plain view), by the current network.
fn embed_entries(
    net: &Network,
    cache: &TrainInputs,
    entries: &[usize],
    dim: usize,
) -> (Vec<f32>, Vec<u8>) {
    let inference = net.valid();
    let device = Device::flex();
    let mut emb = Vec::with_capacity(entries.len() * dim);
    let mut codes = Vec::with_capacity(entries.len() * dim / 8);
    for chunk in entries.chunks(128) {
        let out = inference.forward(batch_input(cache, chunk.iter().map(|&e| (e, 0)), &device));
        let normalized = unisight_model::efficientnet::values_of(out.normalized).1;
        let projected = unisight_model::efficientnet::values_of(out.projected).1;
        emb.extend(normalized);
        for row in projected.chunks(dim) {
            codes.extend(unisight_core::code::pack_signs(row));
        }
    }
    (emb, codes)
}

/// The evaluation sets of a run and where their images sit among the input entries.
struct Evaluator {
    /// (task, queries, gallery (`None`: leave-one-out), is validation).
    sets: Vec<(usize, SetRef, Option<SetRef>, bool)>,
    /// Every set named, loaded once.
    loaded: Vec<EvalSet>,
    /// Per loaded set, the input entry of each image.
    entries: Vec<Vec<usize>>,
}

impl Evaluator {
    /// Recall@k float and bits of every validation (or final) set with the current network.
    fn run(
        &self,
        net: &Network,
        cache: &TrainInputs,
        config: &TrainConfig,
        set: &TrainingSet,
        step: usize,
        validation: bool,
    ) -> Vec<TaskEval> {
        evaluate(net, cache, self, config, set, step, validation)
    }
}

fn evaluate(
    net: &Network,
    cache: &TrainInputs,
    evaluator: &Evaluator,
    config: &TrainConfig,
    set: &TrainingSet,
    step: usize,
    validation: bool,
) -> Vec<TaskEval> {
    let (eval_sets, loaded, eval_entries) =
        (&evaluator.sets, &evaluator.loaded, &evaluator.entries);
    let dim = config.model.dim;
    let label_of = |t: usize| set.tasks[t].label.clone();
    let mut out = Vec::new();
    for (t, queries, gallery, is_val) in eval_sets {
        if *is_val != validation {
            continue;
        }
        let qi = loaded
            .iter()
            .position(|s| &s.set == queries)
            .expect("loaded");
        let label = config.tasks[*t]
            .eval
            .as_ref()
            .and_then(|e| e.label.clone())
            .unwrap_or_else(|| label_of(*t));
        // images without a readable file or a label are left out, and counted as such
        let q_rows: Vec<usize> = (0..loaded[qi].images.len())
            .filter(|&i| {
                cache.is_ok(eval_entries[qi][i]) && loaded[qi].images[i].labels.contains_key(&label)
            })
            .collect();
        let q_entries: Vec<usize> = q_rows.iter().map(|&i| eval_entries[qi][i]).collect();
        let q_labels: Vec<String> = q_rows
            .iter()
            .map(|&i| loaded[qi].images[i].labels[&label].clone())
            .collect();
        let (qe, qc) = embed_entries(net, cache, &q_entries, dim);
        let ks = config.tasks[*t]
            .eval
            .as_ref()
            .map(|e| e.k.clone())
            .unwrap_or_else(|| vec![1]);
        let kmax = *ks.iter().max().expect("non-empty");
        let (rf, rb) = match gallery {
            None => {
                let f = top_k_float(&qe, &qe, dim, kmax, SelfMatch::Exclude);
                let b = top_k_hamming(&qc, &qc, dim / 8, kmax, SelfMatch::Exclude);
                (
                    recall_at_k(&q_labels, &q_labels, &f, &ks),
                    recall_at_k(&q_labels, &q_labels, &b, &ks),
                )
            }
            Some(g) => {
                let gi = loaded.iter().position(|s| &s.set == g).expect("loaded");
                let g_rows: Vec<usize> = (0..loaded[gi].images.len())
                    .filter(|&i| {
                        cache.is_ok(eval_entries[gi][i])
                            && loaded[gi].images[i].labels.contains_key(&label)
                    })
                    .collect();
                let g_entries: Vec<usize> = g_rows.iter().map(|&i| eval_entries[gi][i]).collect();
                let g_labels: Vec<String> = g_rows
                    .iter()
                    .map(|&i| loaded[gi].images[i].labels[&label].clone())
                    .collect();
                let (ge, gc) = embed_entries(net, cache, &g_entries, dim);
                let f = top_k_float(&qe, &ge, dim, kmax, SelfMatch::Keep);
                let b = top_k_hamming(&qc, &gc, dim / 8, kmax, SelfMatch::Keep);
                (
                    recall_at_k(&q_labels, &g_labels, &f, &ks),
                    recall_at_k(&q_labels, &g_labels, &b, &ks),
                )
            }
        };
        out.push(TaskEval {
            task: set.tasks[*t].name.clone(),
            step,
            queries: format!("{}:{}", queries.dataset, queries.split),
            gallery: gallery
                .as_ref()
                .map(|g| format!("{}:{}", g.dataset, g.split))
                .unwrap_or_else(|| "self".into()),
            k: ks,
            recall_float: rf,
            recall_bits: rb,
        });
    }
    out
}

fn checkpoint_weights(net: &Network, banks: &[Bank]) -> Weights {
    let mut w = Weights::default();
    net.write_folded(&mut w);
    bank_weights(net, banks, true, &mut w);
    w
}

fn save_checkpoint(
    dir: &Path,
    net: &Network,
    banks: &[Bank],
    optim: &ModuleOptimizer,
    state: &RunState,
    config: &TrainConfig,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let name = format!("step-{:07}", state.step);
    let tmp = dir.join(format!("{name}.tmp"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let spec = ModelSpec {
        architecture: config.model.architecture,
        input_size: config.model.architecture.input_size(),
        preprocess: unisight_core::Preprocess::Tf127,
        trunk_dim: unisight_model::efficientnet::FEATURE_DIM,
        dim: config.model.dim,
        projection: Projection::Trained,
    };
    unisight_model::model_file::write(
        &tmp.join("network.safetensors"),
        &spec,
        &checkpoint_weights(net, banks),
    )?;
    let bytes = optim.into_bytes().map_err(|e| Error::Resume {
        path: tmp.join("optimizer.bpk"),
        what: e.to_string(),
    })?;
    unisight_core::atomic::atomic_write_bytes(&tmp.join("optimizer.bpk"), &bytes)?;
    write_json(&tmp.join("state.json"), state)?;
    let done = dir.join(&name);
    if done.exists() {
        std::fs::remove_dir_all(&done).map_err(|e| Error::io(&done, e))?;
    }
    std::fs::rename(&tmp, &done).map_err(|e| Error::io(&done, e))?;
    unisight_core::atomic::sync_dir(dir).map_err(|e| Error::io(dir, e))?;
    unisight_core::atomic::atomic_write_bytes(&dir.join("LATEST"), name.as_bytes())?;
    // older checkpoints are no longer needed once LATEST names the new one
    if let Ok(list) = std::fs::read_dir(dir) {
        for e in list.flatten() {
            let n = e.file_name().to_string_lossy().to_string();
            if n.starts_with("step-") && n != name {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    Ok(())
}

fn latest_checkpoint(dir: &Path) -> Result<Option<PathBuf>> {
    let latest = dir.join("LATEST");
    match std::fs::read_to_string(&latest) {
        Ok(name) => {
            let d = dir.join(name.trim());
            if !d.join("state.json").exists() {
                return Err(Error::Resume {
                    path: latest,
                    what: format!("names {}, which is incomplete", d.display()),
                });
            }
            Ok(Some(d))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(latest, e)),
    }
}

/// The task heads' description stored in the model file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskHead {
    /// Task name.
    pub name: String,
    /// Label field.
    pub label: String,
    /// Class names; row `i` of tensor `proxies.{index}` is class `i`.
    pub classes: Vec<String>,
}

fn save_model(
    base: &UnifiedModel,
    net: &Network,
    banks: &[Bank],
    set: &TrainingSet,
    out: &Path,
) -> Result<()> {
    let mut weights = base.to_weights();
    net.write_weights(&mut weights);
    bank_weights(net, banks, false, &mut weights);
    debug_assert!(weights.contains(PROJECTION_KEY));
    let spec = ModelSpec {
        projection: Projection::Trained,
        ..base.spec.clone()
    };
    let heads: Vec<TaskHead> = set
        .tasks
        .iter()
        .map(|t| TaskHead {
            name: t.name.clone(),
            label: t.label.clone(),
            classes: t.classes.clone(),
        })
        .collect();
    let tasks = serde_json::to_string(&heads).expect("serialises");
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    unisight_model::model_file::write_with_tasks(out, &spec, &weights, Some(&tasks))?;
    Ok(())
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).expect("serialises");
    unisight_core::atomic::atomic_write_bytes(path, &bytes)?;
    Ok(())
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Resume {
        path: path.into(),
        what: e.to_string(),
    })
}
