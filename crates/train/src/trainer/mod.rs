//! The training run: cache the frozen front, train the rest with the multi-task loss, validate,
//! checkpoint, resume, evaluate, save the model. The run is split by what each part does:
//! [`setup`] (base model, network, banks, optimizer), [`step`] (one step of the loss),
//! [`validate`] (Recall@k through the eval crate, as `unisight eval` measures it) and
//! [`checkpoint`] (checkpoints and the model file).
//!
//! Batches, augmentation and negative sampling are functions of (seed, step), and the
//! optimizer state is restored by stable parameter ids, so a resumed run continues exactly
//! where the interrupted one was.

mod checkpoint;
mod distill;
mod proxy_init;
mod setup;
mod step;
mod validate;

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::Device;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};
use unisight_core::progress::Progress;

use crate::cache::{self, PixelSource, TrainInputs};
use crate::config::{KeepModel, ProxyMode, Schedule, TrainConfig, ValidationMetric};
use crate::loss::ProxySet;
use crate::network::{Network, TrainFrom};
use crate::plan::{mix, Sampler, TrainingSet};
use crate::sparse::SparseOptim;
use crate::{Error, Result};
use checkpoint::{latest_checkpoint, save_best, save_checkpoint, save_model, BEST_NETWORK};
use setup::{base_model, make_optimizer, network_from, Bank};
use validate::Evaluator;

pub use checkpoint::TaskHead;

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
    /// Per task, the distillation term (`[tasks.distill]`; empty when no task has a teacher).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub distill: Vec<Option<f64>>,
}

impl StepLog {
    /// An error naming the step and task when a loss is NaN or infinite: the weights are then
    /// ruined, and the run stops before a checkpoint or model keeps them.
    ///
    /// # Errors
    /// [`Error::Diverged`].
    pub fn check_finite(&self, tasks: &[String]) -> Result<()> {
        let terms = [("loss", &self.losses), ("distillation term", &self.distill)];
        for (term, values) in terms {
            for (t, value) in values.iter().enumerate() {
                if let Some(l) = value.filter(|l| !l.is_finite()) {
                    return Err(Error::Diverged {
                        step: self.step,
                        what: format!(
                            "the {term} of task `{}` is {l}",
                            tasks.get(t).map_or("?", String::as_str)
                        ),
                    });
                }
            }
        }
        Ok(())
    }
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
    /// MAP@R with float embeddings (`None` in reports and histories written by builds that did
    /// not measure it there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map_at_r_float: Option<f64>,
    /// MAP@R with the binary codes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map_at_r_bits: Option<f64>,
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

impl History {
    /// The validation score of the measurements taken at `step` ([`validation_score`]).
    pub fn validation_score_at(&self, step: usize, metric: ValidationMetric) -> Option<f64> {
        let at: Vec<TaskEval> = self
            .validation
            .iter()
            .filter(|e| e.step == step)
            .cloned()
            .collect();
        validation_score(&at, metric)
    }

    /// The curves of a run folder: its `history.json` once the run has finished, else those of
    /// its latest checkpoint (a run still training, up to its last checkpoint).
    ///
    /// # Errors
    /// A folder with neither, or a file that does not read, naming the file.
    pub fn of_run(work_dir: &Path) -> Result<History> {
        let finished = work_dir.join("history.json");
        if finished.is_file() {
            return read_json(&finished);
        }
        match latest_checkpoint(&work_dir.join("checkpoints"))? {
            Some(dir) => Ok(read_json::<RunState>(&dir.join("state.json"))?.history),
            None => Err(Error::io(
                finished,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no history and no checkpoint: not a training run's --work-dir",
                ),
            )),
        }
    }
}

/// Version of a run's `report.json` this build writes.
pub const TRAIN_REPORT_VERSION: u32 = 2;

/// What a finished run reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainReport {
    /// [`TRAIN_REPORT_VERSION`] (0: written before the field existed).
    #[serde(default)]
    pub format_version: u32,
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
    /// The step whose model was written and evaluated, and its validation score (`None`: the
    /// last step, kept because `train.keep = "last"` or nothing was validated).
    #[serde(default)]
    pub chosen: Option<Chosen>,
    /// Whether training stopped before its last step because validation stopped improving
    /// (`train.patience`).
    #[serde(default)]
    pub stopped_early: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunState {
    fingerprint: u32,
    step: usize,
    history: History,
    /// The best validation so far (its network is in `WORK/best/`).
    #[serde(default)]
    best: Option<Chosen>,
    /// Validation runs since the best one.
    #[serde(default)]
    since_best: usize,
}

/// A step and its validation score ([`validation_score`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Chosen {
    /// Step.
    pub step: usize,
    /// Validation score.
    pub score: f64,
}

/// The validation score of a run's validation measurements at one step: the mean over the
/// validation sets of what `metric` counts (`None`: no task has a validation set). A set
/// measured without MAP@R (a history from an older build) counts its recall alone.
pub fn validation_score(evals: &[TaskEval], metric: ValidationMetric) -> Option<f64> {
    let scores: Vec<f64> = evals
        .iter()
        .filter_map(|e| {
            let recall = (e.recall_float.first()? + e.recall_bits.first()?) / 2.0;
            match (metric, e.map_at_r_float, e.map_at_r_bits) {
                (ValidationMetric::RecallAndMap, Some(f), Some(b)) => {
                    Some((recall + (f + b) / 2.0) / 2.0)
                }
                _ => Some(recall),
            }
        })
        .collect();
    (!scores.is_empty()).then(|| scores.iter().sum::<f64>() / scores.len() as f64)
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

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).expect("serialises");
    unisight_core::atomic::atomic_write_bytes(path, &bytes)?;
    Ok(())
}

/// Reads a JSON file a run wrote; an unreadable one is a [`Error::Resume`] naming it.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Resume {
        path: path.into(),
        what: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_finite_loss_stops_the_run_naming_step_and_task() {
        let tasks = vec!["fine".to_string(), "clothing".to_string()];
        let log = |losses| StepLog {
            step: 7,
            lr: 1e-3,
            losses,
            distill: Vec::new(),
        };
        log(vec![Some(2.5), None]).check_finite(&tasks).unwrap();
        let e = log(vec![Some(2.5), Some(f64::NAN)])
            .check_finite(&tasks)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("step 7") && e.contains("`clothing`") && e.contains("NaN"),
            "{e}"
        );
        assert!(log(vec![Some(f64::INFINITY), None])
            .check_finite(&tasks)
            .is_err());
        let distilled = StepLog {
            distill: vec![None, Some(f64::NAN)],
            ..log(vec![Some(2.5), Some(1.0)])
        };
        let e = distilled.check_finite(&tasks).unwrap_err().to_string();
        assert!(e.contains("distillation term of task `clothing`"), "{e}");
    }

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

    #[test]
    fn the_validation_score_counts_map_at_r_only_when_asked_and_measured() {
        let set = |r1: [f64; 2], map: Option<[f64; 2]>| TaskEval {
            task: "t".into(),
            step: 0,
            queries: "q".into(),
            gallery: "g".into(),
            k: vec![1, 5],
            recall_float: vec![r1[0], 1.0],
            recall_bits: vec![r1[1], 1.0],
            map_at_r_float: map.map(|m| m[0]),
            map_at_r_bits: map.map(|m| m[1]),
        };
        let evals = [
            set([0.8, 0.6], Some([0.4, 0.2])),
            set([0.9, 0.7], Some([0.5, 0.3])),
        ];
        let recall = validation_score(&evals, ValidationMetric::Recall).unwrap();
        assert!((recall - (0.7 + 0.8) / 2.0).abs() < 1e-12, "{recall}");
        let both = validation_score(&evals, ValidationMetric::RecallAndMap).unwrap();
        assert!((both - (0.5 + 0.6) / 2.0).abs() < 1e-12, "{both}");
        // a set without MAP@R (an older history) counts its recall alone
        let old = [set([0.8, 0.6], None)];
        let score = validation_score(&old, ValidationMetric::RecallAndMap).unwrap();
        assert!((score - 0.7).abs() < 1e-12, "{score}");
        assert_eq!(validation_score(&[], ValidationMetric::Recall), None);
    }
}
