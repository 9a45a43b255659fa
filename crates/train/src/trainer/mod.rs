//! The training run: cache the frozen front, train the rest with the multi-task loss, validate,
//! checkpoint, resume, evaluate, save the model. The run is split by what each part does:
//! [`setup`] (base model, network, banks, optimizer), [`step`] (one step of the loss),
//! [`validate`] (Recall@k through the eval crate, as `unisight eval` measures it),
//! [`checkpoint`] (checkpoints and the model file) and [`record`] (history, report, the
//! validation score).
//!
//! Batches, augmentation and negative sampling are functions of (seed, step), and the
//! optimizer state is restored by stable parameter ids, so a resumed run continues exactly
//! where the interrupted one was.

mod checkpoint;
mod distill;
mod proxy_init;
mod record;
mod setup;
mod step;
mod validate;

use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::Device;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use unisight_core::progress::Progress;

use crate::cache::{self, PixelSource, TrainInputs};
use crate::config::{KeepModel, ProxyMode, Schedule, TrainConfig};
use crate::loss::ProxySet;
use crate::network::{Network, TrainFrom};
use crate::plan::{mix, Sampler, TrainingSet};
use crate::sparse::SparseOptim;
use crate::{Error, Result};
use checkpoint::{latest_checkpoint, save_best, save_checkpoint, save_model, BEST_NETWORK};
use record::{write_json, RunState};
use setup::{base_model, make_optimizer, network_from, Bank};
use validate::Evaluator;

pub use checkpoint::TaskHead;
pub use record::{
    read_json, validation_score, Chosen, History, StepLog, TaskEval, TrainReport,
    TRAIN_REPORT_VERSION,
};

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

/// The resolved task file a run writes into its work folder.
pub const RESOLVED_CONFIG: &str = "config.toml";

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
    // the task file as this run resolved it (defaults filled in, paths absolute), next to
    // the report it explains
    std::fs::create_dir_all(&options.work_dir).map_err(|e| Error::io(&options.work_dir, e))?;
    let resolved = toml::to_string(config).map_err(|e| Error::Config {
        path: options.work_dir.join(RESOLVED_CONFIG),
        what: e.to_string(),
    })?;
    unisight_core::atomic::atomic_write_bytes(
        &options.work_dir.join(RESOLVED_CONFIG),
        resolved.as_bytes(),
    )?;
    require_validation(config)?;
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

    // before the trunk cache, which takes minutes on new data: a bad teacher is refused at once
    let teachers = distill::Teachers::load(config, &base, &train_device)?;

    // cache entries: training images with all views, evaluation images with the plain one
    let (entries, evaluator) = Evaluator::plan(config, &set)?;
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
            cache::CachedFront {
                train_from: config.model.train_from,
                precision: config.model.front_precision,
            },
            &entries,
            &config.augment,
            config.seed,
            options.progress,
        )?)
    };
    let cache_seconds = started.elapsed().as_secs_f64();

    let views = config.train.views;
    let sampler = Sampler::new(
        &set,
        config.train.batch_for(set.datasets.len()),
        views,
        config.seed,
    );
    let total_steps = match (config.train.steps, config.train.epochs) {
        (Some(s), _) => s,
        (None, Some(e)) => ((e * sampler.steps_per_epoch() as f64).round() as usize).max(1),
        (None, None) => unreachable!("checked in the config"),
    };
    let warmup = config.train.warmup_steps.unwrap_or(0).min(total_steps);
    // settings added after a build must serialise to nothing at their defaults (the task
    // crate's test `settings_at_their_defaults_are_not_serialised`), so its runs still resume
    let fingerprint = teachers.fingerprint(crc32c::crc32c(
        &serde_json::to_vec(&(config, set.images.len(), total_steps)).expect("config serialises"),
    ));

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
            let (mut net, mut banks) = network_from(&weights, config, &set, &train_device)?;
            if config.tasks.iter().any(|t| t.proxy_init.is_some()) {
                let started = proxy_init::start_from_sets(
                    &net,
                    &trunk_cache,
                    &evaluator,
                    config,
                    &set,
                    &mut weights,
                )?;
                for (task, from_images, classes) in started.iter().filter(|_| options.progress) {
                    eprintln!(
                        "{task}: {from_images} of {classes} proxies start from the images of \
                         its proxy_init set"
                    );
                }
                (net, banks) = network_from(&weights, config, &set, &train_device)?;
            }
            let state = RunState {
                fingerprint,
                step: 0,
                history: History {
                    tasks: set.tasks.iter().map(|t| t.name.clone()).collect(),
                    ..History::default()
                },
                best: None,
                since_best: 0,
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
    let ctx = step::StepContext {
        config,
        set: &set,
        inputs: &trunk_cache,
        sampler: &sampler,
        proxy_sets: &proxy_sets,
        trunk_ids: &trunk_ids,
        sparse_optim: &sparse_optim,
        teachers: &teachers,
        total_steps,
        warmup,
        device: &train_device,
    };

    let bar = Progress::new("train", total_steps as u64, "steps", options.progress);
    bar.resume_at(state.step as u64);
    let first_step = state.step;
    let loop_started = Instant::now();
    let mut images_seen = 0usize;
    let mut interrupted = false;
    let validate_every = config.train.validate_every;
    let best_dir = options.work_dir.join("best");
    let keep_best = config.train.keep == KeepModel::BestValidation;
    let validated = |net: &Network, banks: &[Bank], state: &mut RunState| -> Result<()> {
        let evals = evaluator.run(net, &trunk_cache, config, &set, state.step, true)?;
        if let Some(score) = validation_score(&evals, config.train.validation_metric) {
            if state.best.is_none_or(|b| score > b.score) {
                state.best = Some(Chosen {
                    step: state.step,
                    score,
                });
                state.since_best = 0;
                if keep_best {
                    save_best(&best_dir, net, banks, config)?;
                }
            } else {
                state.since_best += 1;
            }
        }
        state.history.validation.extend(evals);
        Ok(())
    };
    if state.step == 0 && validate_every > 0 {
        // the starting point of the curves
        validated(&net, &banks, &mut state)?;
    }
    let mut stopped_early = false;
    while state.step < total_steps {
        let step = state.step;
        let (next, log, images) = step::train_step(&ctx, net, &mut banks, &mut optim, step);
        net = next;
        log.check_finite(&state.history.tasks)?;
        images_seen += images;
        state.history.steps.push(log);
        state.step += 1;
        bar.set_message(format!(
            "epoch {:.2}  loss {}  {:.1} img/s",
            state.step as f64 / sampler.steps_per_epoch() as f64,
            loss_summary(&state.history, &set),
            images_seen as f64 / loop_started.elapsed().as_secs_f64().max(1e-9)
        ));
        bar.inc(1);
        if validate_every > 0 && state.step % validate_every == 0 && state.step < total_steps {
            validated(&net, &banks, &mut state)?;
            if config.train.patience.is_some_and(|p| state.since_best >= p) {
                bar.println(&format!(
                    "stopping at step {}: no better validation score in {} runs (best {:.4} at step {})",
                    state.step,
                    state.since_best,
                    state.best.map_or(0.0, |b| b.score),
                    state.best.map_or(0, |b| b.step)
                ));
                stopped_early = true;
                save_checkpoint(&checkpoints, &net, &banks, &optim, &state, config)?;
                break;
            }
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
    bar.finish();
    let steps_this_run = state.step - first_step;
    let images_per_second = images_seen as f64 / loop_started.elapsed().as_secs_f64().max(1e-9);
    let mut eval = Vec::new();
    let mut chosen = None;
    if !interrupted {
        if validate_every > 0 && !stopped_early {
            validated(&net, &banks, &mut state)?;
        }
        save_checkpoint(&checkpoints, &net, &banks, &optim, &state, config)?;
        let best = state.best.filter(|_| keep_best);
        // the test sets measure the model validation chose, never the other way round
        let (net, banks) = match best {
            Some(b) if b.step != state.step => {
                let (_, weights) = unisight_model::model_file::read(&best_dir.join(BEST_NETWORK))?;
                network_from(&weights, config, &set, &train_device)?
            }
            _ => (net, banks),
        };
        eval = evaluator.run(
            &net,
            &trunk_cache,
            config,
            &set,
            best.map_or(state.step, |b| b.step),
            false,
        )?;
        save_model(&base, &net, &banks, &set, &options.out)?;
        chosen = best;
    }
    let report = TrainReport {
        format_version: TRAIN_REPORT_VERSION,
        steps: state.step,
        steps_this_run,
        images_per_second,
        cache_seconds,
        skipped_images: trunk_cache.failures().to_vec(),
        eval,
        interrupted,
        chosen,
        stopped_early,
    };
    std::fs::create_dir_all(&options.work_dir).map_err(|e| Error::io(&options.work_dir, e))?;
    write_json(&options.work_dir.join("history.json"), &state.history)?;
    if !interrupted {
        write_json(&options.work_dir.join("report.json"), &report)?;
        crate::plot::plot_history(&state.history, &options.work_dir)?;
    }
    Ok(report)
}

/// A run that keeps the model of the best validation score needs a validation set for every
/// task it evaluates: choosing by the test sets is what it must never do.
fn require_validation(config: &TrainConfig) -> Result<()> {
    if config.train.keep != KeepModel::BestValidation || config.train.validate_every == 0 {
        return Ok(());
    }
    for (i, task) in config.tasks.iter().enumerate() {
        if task.eval.as_ref().is_some_and(|e| e.validation.is_none()) {
            return Err(Error::Config {
                path: PathBuf::from(format!("tasks[{i}].eval.validation")),
                what: format!(
                    "task `{}` names test sets but no validation set, and the run keeps the model \
                     of the best validation score (`train.keep`): name one (`eval.validation` = \
                     `dataset:split`), carve one (`datasets.<name>.validation_fraction` = 0.1 and \
                     `eval.validation` = `<name>:carved`), or set `train.keep` = \"last\"",
                    task.name
                ),
            });
        }
    }
    Ok(())
}

fn loss_summary(history: &History, set: &TrainingSet) -> String {
    let recent = &history.steps[history.steps.len().saturating_sub(20)..];
    set.tasks
        .iter()
        .enumerate()
        .map(|(t, task)| {
            let mean = |v: Vec<f64>| v.iter().sum::<f64>() / v.len().max(1) as f64;
            let loss = mean(recent.iter().filter_map(|s| s.losses[t]).collect());
            let distill: Vec<f64> = recent
                .iter()
                .filter_map(|s| s.distill.get(t).copied().flatten())
                .collect();
            if distill.is_empty() {
                format!("{}={loss:.3}", task.name)
            } else {
                format!("{}={loss:.3}+distill {:.3}", task.name, mean(distill))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeping_the_best_validation_needs_a_validation_set() {
        let text = r#"
[train]
steps = 10
[datasets.shop]
kind = "manifest"
root = "shop"
[[tasks]]
name = "product"
sources = ["shop"]
label = "label"
[tasks.eval]
queries = "shop:test"
gallery = "shop:gallery"
"#;
        let mut config: TrainConfig = toml::from_str(text).unwrap();
        let e = require_validation(&config).unwrap_err().to_string();
        assert!(
            e.contains("tasks[0].eval.validation") && e.contains("`product`"),
            "{e}"
        );
        config.train.keep = KeepModel::Last;
        require_validation(&config).unwrap();
        config.train.keep = KeepModel::BestValidation;
        config.tasks[0].eval.as_mut().unwrap().validation = Some("shop:val".into());
        require_validation(&config).unwrap();
    }
}
