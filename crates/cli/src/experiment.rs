//! `serve --experiment`, `experiment report` and `study report`: the CLI side of online
//! experiments (the work is in `unisight-experiment` and `unisight-serve`).

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use unisight_core::atomic::atomic_write_bytes;
use unisight_data::decode::DecodeLimits;
use unisight_experiment::study::{read_queries, read_ratings};
use unisight_experiment::{
    experiment_report, study_report, EventLog, ExperimentConfig, LogOptions, RatingsFile,
};
use unisight_index::Index;
use unisight_serve::study::Study;
use unisight_serve::{AppState, Arm, ServiceConfig};

use crate::embedder::{load_model, make_embedder, Backend};

/// Embedding workers and threads of each arm.
pub struct ArmWorkers {
    /// Sessions per arm.
    pub workers: usize,
    /// Threads per session (0: ONNX Runtime decides).
    pub threads: usize,
    /// Jobs that may wait per arm.
    pub queue: usize,
}

/// The service state of an experiment file: every arm's model and index, the log and the
/// study when the file has them.
pub fn experiment_state(
    path: &Path,
    workers: &ArmWorkers,
    limits: DecodeLimits,
    config: ServiceConfig,
) -> Result<AppState> {
    let experiment = ExperimentConfig::load(path)?;
    let mut arms = Vec::new();
    for arm in &experiment.arms {
        let index = if config.token.is_some() {
            Index::open_writable(&arm.index)
        } else {
            Index::open(&arm.index)
        }
        .with_context(|| format!("arm `{}`", arm.name))?;
        let mut embedders = Vec::new();
        for _ in 0..workers.workers.max(1) {
            let (net, model_id) =
                load_model(Some(&arm.model)).with_context(|| format!("arm `{}`", arm.name))?;
            embedders.push(make_embedder(
                net,
                &model_id,
                Backend::Auto,
                workers.threads,
            )?);
        }
        let bits = embedders[0].spec().code_bytes() * 8;
        if bits != index.layout().bits {
            bail!(
                "arm `{}`: the model makes {bits}-bit codes but the index holds {}-bit codes",
                arm.name,
                index.layout().bits
            );
        }
        let model_bytes = std::fs::metadata(&arm.model).map_or(0, |m| m.len());
        let pool = unisight_serve::pool::EmbedPool::start(embedders, workers.queue, limits);
        arms.push(Arm::new(&arm.name, index, pool, model_bytes, &config)?);
    }
    let mut state = AppState::with_arms(arms, experiment.assignment(), config);
    if let Some(log) = &experiment.log {
        let (log, opened) = EventLog::open(LogOptions {
            dir: log.dir.clone(),
            stem: log.stem.clone(),
            rotate_bytes: log.rotate_mib << 20,
            keep_files: log.keep_files,
            sync_interval: Duration::from_secs(1),
        })?;
        if opened.repaired_bytes > 0 {
            eprintln!(
                "{}: cut {} bytes of a torn last line (an earlier process was killed mid-write)",
                log.current_path().display(),
                opened.repaired_bytes
            );
        }
        state = state.with_engagement_log(log);
    }
    if let Some(study) = &experiment.study {
        let root = study
            .root
            .clone()
            .or_else(|| study.queries.parent().map(Path::to_path_buf))
            .unwrap_or_default();
        let queries = read_queries(&study.queries, &root)?;
        let (ratings, old) = RatingsFile::open(&study.ratings)?;
        eprintln!(
            "study: {} queries, {} ratings so far in {}",
            queries.len(),
            old.len(),
            study.ratings.display()
        );
        state = state.with_study(Study::new(
            experiment.salt(),
            study.arms.clone(),
            queries,
            study.k,
            ratings,
        ));
    }
    Ok(state)
}

/// `unisight experiment report`.
pub fn report_experiment(
    log_dir: &Path,
    stem: &str,
    control: Option<&str>,
    out: Option<&Path>,
) -> Result<()> {
    let files = unisight_data::engagement::log_files(log_dir, stem)?;
    if files.is_empty() {
        bail!(
            "{}: no {stem}.jsonl or {stem}-NNNNNN.jsonl files",
            log_dir.display()
        );
    }
    let (events, torn) = unisight_data::engagement::read_logs(&files)?;
    let report = experiment_report(&events, control);
    let mut text = report.markdown();
    if torn > 0 {
        text.push_str(&format!(
            "\n{torn} torn last line(s) skipped (a writer killed mid-line).\n"
        ));
    }
    publish(&text, &report, out, "report")
}

/// Prints a report's Markdown and, with `out`, writes `<stem>.md` and `<stem>.json` there
/// (each atomically).
fn publish<T: serde::Serialize>(
    text: &str,
    report: &T,
    out: Option<&Path>,
    stem: &str,
) -> Result<()> {
    print!("{text}");
    if let Some(out) = out {
        std::fs::create_dir_all(out)?;
        atomic_write_bytes(&out.join(format!("{stem}.md")), text.as_bytes())?;
        atomic_write_bytes(
            &out.join(format!("{stem}.json")),
            serde_json::to_string_pretty(report)?.as_bytes(),
        )?;
    }
    Ok(())
}

/// `unisight study report`.
pub fn report_study(ratings: &Path, arms: Option<[String; 2]>, out: Option<&Path>) -> Result<()> {
    let list = read_ratings(ratings)?;
    let Some(report) = study_report(&list, arms) else {
        bail!("{}: no ratings yet", ratings.display());
    };
    publish(&report.markdown(), &report, out, "study")
}
