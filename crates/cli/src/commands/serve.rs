//! `unisight serve`: one index (a folder or a Milvus collection), or an experiment file's arms,
//! behind the HTTP service. Both start their arms the same way ([`start_arm`]): open the
//! index's backend, start one embedding session per worker, check that the model's codes fit
//! the index.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use unisight_backend::IvfSettings;
use unisight_data::decode::DecodeLimits;
use unisight_engagement::{EventLog, LogOptions};
use unisight_experiment::study::read_queries;
use unisight_experiment::{ExperimentConfig, RaterTokens, RatingsFile};
use unisight_serve::pool::EmbedPool;
use unisight_serve::study::Study;
use unisight_serve::{AppState, Arm, HostCheck, ServiceConfig};

use crate::args::ServeArgs;
use crate::embedder::{load_model, make_embedder, Backend};
use crate::index_location::IndexLocation;

/// Embedding sessions of each arm.
#[derive(Clone)]
struct ArmWorkers {
    /// Sessions per arm.
    workers: usize,
    /// Threads per session (0: ONNX Runtime decides).
    threads: usize,
    /// Jobs that may wait per arm.
    queue: usize,
    /// The inverted file each arm's index folder is searched through (`None`: exact scans).
    ivf: Option<IvfSettings>,
}

/// Runs `unisight serve` until Ctrl-C.
pub fn run(args: ServeArgs) -> Result<()> {
    let token = std::env::var(&args.token_env)
        .ok()
        .filter(|t| !t.is_empty());
    let max_body_bytes = args.max_body_mib << 20;
    let limits = DecodeLimits {
        max_file_bytes: max_body_bytes as u64,
        max_pixels: args.max_megapixels * 1_000_000,
        max_decoded_bytes: args.max_decoded_mb * 1_000_000,
    };
    let config = ServiceConfig {
        max_body_bytes,
        timeout: Duration::from_secs(args.timeout_s),
        header_timeout: Duration::from_secs(args.header_timeout_s),
        request_deadline: Duration::from_secs(args.request_deadline_s),
        max_connections: args.max_connections,
        rate_limit: std::num::NonZeroU32::new(args.rate_limit),
        trust_forwarded_for: args.trust_forwarded_for,
        allowed_hosts: allowed_hosts(&args.allowed_hosts, args.addr),
        token: token.clone(),
        image_root: args.image_root,
        search_threads: args
            .search_threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from)),
        max_search_batch: args.search_batch,
        ..Default::default()
    };
    let workers = ArmWorkers {
        workers: args.workers,
        threads: args.threads,
        queue: args.queue,
        ivf: (args.ivf_lists > 0).then_some(IvfSettings {
            lists: args.ivf_lists,
            probes: args.ivf_probes,
        }),
    };
    let state = match (&args.experiment, &args.index) {
        (Some(experiment), _) => experiment_state(experiment, &workers, limits, config)
            .with_context(|| experiment.display().to_string())?,
        (None, _) if args.deployment.is_some() => {
            let file = args.deployment.clone().unwrap_or_default();
            let arm = deployed_arm(&file, &workers, limits, &config)?;
            let reload_config = config.clone();
            let reloader = move || {
                deployed_arm(&file, &workers, limits, &reload_config)
                    .map(|arm| vec![arm])
                    .map_err(|e| format!("{e:#}"))
            };
            AppState::with_arms(vec![arm], AppState::single_arm_assignment(), config)
                .with_reloader(Box::new(reloader))
        }
        (None, Some(index)) => {
            let arm = start_arm(
                "default",
                args.model.as_deref(),
                index,
                &workers,
                limits,
                &config,
            )?;
            AppState::with_arms(vec![arm], AppState::single_arm_assignment(), config)
        }
        (None, None) => return Err(anyhow!("--index or --experiment is needed")),
    };
    unisight_serve::serve_blocking(args.addr, state, |bound| {
        println!("listening on http://{bound}/");
        if token.is_none() {
            println!(
                "(adding and removing items is off: ${} is not set)",
                args.token_env
            );
        }
        let _ = std::io::stdout().flush();
    })?;
    Ok(())
}

/// A deployment file: the model and the index a service serves.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Deployment {
    /// Model file (default: the zero-shot model); relative to the file's folder.
    model: Option<std::path::PathBuf>,
    /// Index folder (relative to the file's folder) or `milvus://` address.
    index: String,
}

/// The one arm a deployment file names, started (model loaded, index opened and checked).
fn deployed_arm(
    file: &Path,
    workers: &ArmWorkers,
    limits: DecodeLimits,
    config: &ServiceConfig,
) -> Result<Arm> {
    let text = std::fs::read_to_string(file).with_context(|| file.display().to_string())?;
    let deployment: Deployment =
        toml::from_str(&text).with_context(|| file.display().to_string())?;
    let base = file.parent().unwrap_or(Path::new("."));
    let model = deployment.model.map(|m| base.join(m));
    let index = match deployment.index.parse::<IndexLocation>() {
        Ok(IndexLocation::Folder(dir)) => IndexLocation::Folder(base.join(dir)),
        Ok(milvus) => milvus,
        Err(e) => return Err(e).with_context(|| format!("{}: key `index`", file.display())),
    };
    eprintln!(
        "{}: starting {} on {index}",
        file.display(),
        model
            .as_deref()
            .map_or("the zero-shot model".into(), |m| m.display().to_string())
    );
    start_arm("default", model.as_deref(), &index, workers, limits, config)
        .with_context(|| file.display().to_string())
}

/// One arm: its index's backend (writable when mutations are on), one embedding session per
/// worker, and the check that the model's codes are the index's width.
fn start_arm(
    name: &str,
    model: Option<&Path>,
    index: &IndexLocation,
    workers: &ArmWorkers,
    limits: DecodeLimits,
    config: &ServiceConfig,
) -> Result<Arm> {
    let context = || format!("arm `{name}`");
    let backend = index
        .open(config.token.is_some(), workers.ivf)
        .with_context(context)?;
    let mut embedders = Vec::new();
    for _ in 0..workers.workers.max(1) {
        let (net, model_id) = load_model(model).with_context(context)?;
        embedders.push(make_embedder(
            net,
            &model_id,
            Backend::Auto,
            workers.threads,
        )?);
    }
    let bits = embedders[0].spec().code_bytes() * 8;
    if bits != backend.shape().bits {
        bail!(
            "arm `{name}`: the model makes {bits}-bit codes but the index {index} holds {}-bit \
             codes",
            backend.shape().bits
        );
    }
    // the zero-shot model is made in memory: no file, no size
    let model_bytes = match model {
        Some(path) => std::fs::metadata(path)
            .with_context(|| path.display().to_string())?
            .len(),
        None => 0,
    };
    let pool = EmbedPool::start(embedders, workers.queue, limits);
    Ok(Arm::new(name, backend, pool, model_bytes, config))
}

/// The service state of an experiment file: every arm's model and index, the log and the
/// study when the file has them.
fn experiment_state(
    path: &Path,
    workers: &ArmWorkers,
    limits: DecodeLimits,
    config: ServiceConfig,
) -> Result<AppState> {
    let experiment = ExperimentConfig::load(path)?;
    let mut arms = Vec::new();
    for arm in &experiment.arms {
        let index = match arm.index.to_str() {
            Some(address) if unisight_experiment::config::is_server_address(address) => address
                .parse::<IndexLocation>()
                .with_context(|| format!("{}: arm `{}`: `index`", path.display(), arm.name))?,
            _ => IndexLocation::Folder(arm.index.clone()),
        };
        arms.push(
            start_arm(
                &arm.name,
                Some(&arm.model),
                &index,
                workers,
                limits,
                &config,
            )
            .with_context(|| format!("{}: arm `{}`", path.display(), arm.name))?,
        );
    }
    let mut state = AppState::with_arms(arms, experiment.assignment(), config);
    if let Some(log) = &experiment.log {
        let (rotate_mib, keep_files) = log.impressions_retention();
        let actions = open_log(&log.dir, &log.stem, log.rotate_mib, log.keep_files)?;
        let impressions = open_log(
            &log.dir,
            &unisight_engagement::impressions_stem(&log.stem),
            rotate_mib,
            keep_files,
        )?;
        state = state.with_engagement_log(actions, impressions, log.remember_mib << 20);
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
        let raters = study.raters.as_deref().map(RaterTokens::read).transpose()?;
        match &raters {
            Some(r) => eprintln!("study: {} raters with tokens", r.len()),
            None => eprintln!(
                "note: the study takes ratings under any rater id; name a rater file \
                 ([study] raters, `unisight study add-rater`) to accept token holders only"
            ),
        }
        state = state.with_study(Study::new(
            experiment.salt(),
            study.arms.clone(),
            queries,
            study.k,
            ratings,
            raters,
        ));
    }
    Ok(state)
}

/// Opens one stream of the engagement log, repairing a torn last line.
fn open_log(dir: &Path, stem: &str, rotate_mib: u64, keep_files: usize) -> Result<EventLog> {
    let (log, opened) = EventLog::open(LogOptions {
        dir: dir.to_path_buf(),
        stem: stem.to_string(),
        rotate_bytes: rotate_mib << 20,
        keep_files,
        sync_interval: Duration::from_secs(1),
    })?;
    if opened.repaired_bytes > 0 {
        eprintln!(
            "{}: cut {} bytes of a torn last line (an earlier process was killed mid-write)",
            log.current_path().display(),
            opened.repaired_bytes
        );
    }
    Ok(log)
}

/// The `Host` check of `--allowed-host`: the names given (`*`: none), else the loopback names
/// on a loopback address, else none (a public service usually sits behind a proxy that checks).
fn allowed_hosts(names: &[String], addr: std::net::SocketAddr) -> Option<HostCheck> {
    if names.iter().any(|n| n == "*") {
        None
    } else if !names.is_empty() {
        Some(HostCheck::new(names.iter().cloned()))
    } else if addr.ip().is_loopback() {
        Some(HostCheck::loopback())
    } else {
        eprintln!(
            "note: listening on {addr} with any Host header accepted; name the service's host \
             names with --allowed-host to refuse requests addressed elsewhere"
        );
        None
    }
}
