//! Command-line arguments and what each command does.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, Subcommand};
use unisight_core::artifacts::EmbeddingSet;
use unisight_core::Architecture;
use unisight_data::decode::{load_rgb, DecodeLimits};
use unisight_data::preprocess::to_input;
use unisight_embed::EmbedOptions;
use unisight_index::{FloatKind, Index, IndexConfig, NewItem, Rerank, ScanOptions};

use unisight_eval::evaluate::Settings;

use crate::embedder::{load_model, make_embedder, Backend};
use crate::evaluation::{read_entry, run_eval, Source};

/// One image embedding for several visual-search products.
#[derive(Debug, Parser)]
#[command(name = "unisight", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Embed images (a folder, or a .csv/.jsonl manifest) into an embedding folder.
    Embed {
        /// Model file; without it, the zero-shot EfficientNet-Lite0 (D = 1280, no projection).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Folder of images, or manifest with a `path` column / key.
        #[arg(long)]
        input: PathBuf,
        /// Folder manifest paths are resolved in (default: the manifest's folder).
        #[arg(long)]
        root: Option<PathBuf>,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// Images per inference call.
        #[arg(long, default_value_t = 32)]
        batch: usize,
        /// Inference threads (0 = all cores).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Inference backend.
        #[arg(long, value_enum, default_value_t = Backend::Auto)]
        backend: Backend,
    },
    /// Create a zero-shot model file (ImageNet trunk, fixed projection).
    InitModel {
        /// Trunk: lite0, lite1 or lite2.
        #[arg(long, default_value = "lite0")]
        arch: String,
        /// Embedding dimension D (1280 = no projection; else a random orthogonal projection).
        #[arg(long, default_value_t = 256)]
        dim: usize,
        /// Seed of the random projection.
        #[arg(long, default_value_t = unisight_model::DEFAULT_PROJECTION_SEED)]
        seed: u64,
        /// Output model file (.safetensors).
        #[arg(long)]
        out: PathBuf,
    },
    /// Export a model as an ONNX graph.
    ExportOnnx {
        /// Model file (default: zero-shot Lite0).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Output .onnx file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Model-only throughput (images/s) on fixed pseudo-random pixels, for benchmarks.
    BenchModel {
        /// Model file (default: zero-shot Lite0).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Images per call.
        #[arg(long, default_value_t = 32)]
        batch: usize,
        /// Timed calls (after one warm-up call).
        #[arg(long, default_value_t = 10)]
        iters: usize,
        /// Inference threads per session (0 = all cores).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Sessions run side by side, each on its own thread (as `serve --workers` runs
        /// them); the rate printed is their total.
        #[arg(long, default_value_t = 1)]
        sessions: usize,
        /// Inference backend.
        #[arg(long, value_enum, default_value_t = Backend::Ort)]
        backend: Backend,
    },
    /// Build and change binary-code indexes.
    /// Train a unified (or, with one task, specialized) embedding from a task file.
    Train {
        /// The task file (TOML: datasets, tasks, model, training).
        #[arg(long)]
        config: PathBuf,
        /// Where to write the trained model file.
        #[arg(long)]
        out: PathBuf,
        /// Folder that relative dataset roots are resolved in (default: the task file's folder).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Checkpoints, history.json, report.json and charts (default: OUT.run/). A run
        /// resumes from the latest checkpoint here.
        #[arg(long)]
        work_dir: Option<PathBuf>,
        /// Trunk-map caches, shared between runs (default: .cache/trunk).
        #[arg(long)]
        cache_dir: Option<PathBuf>,
        /// Override the task file's seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Stop after this step, checkpointed, as if interrupted (rerun to resume).
        #[arg(long)]
        stop_after: Option<usize>,
        /// No progress bars.
        #[arg(long)]
        quiet: bool,
    },
    /// Evaluate a model on the `eval` sets of a task file (embedded through ONNX Runtime and
    /// cached), or embedding folders: per task Recall@k, Precision@k, MAP@R and NMI, float and
    /// bits, worst classes; writes report.json, report.md, Recall@k charts and examples.html.
    Eval {
        /// Model file (with --config).
        #[arg(long, requires = "config", conflicts_with = "embeddings")]
        model: Option<PathBuf>,
        /// Task file whose tasks' `eval` sections name query and gallery sets.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Folder that relative dataset roots of the task file are in.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Only these tasks (comma-separated).
        #[arg(long, value_delimiter = ',')]
        tasks: Vec<String>,
        /// Cache of embedded evaluation sets, per model.
        #[arg(long, default_value = ".cache/embeddings")]
        cache_dir: PathBuf,
        /// Query embeddings (an `unisight embed` folder whose items carry labels).
        #[arg(long, required_unless_present = "model")]
        embeddings: Option<PathBuf>,
        /// Gallery embeddings (default: leave-one-out within the queries).
        #[arg(long, requires = "embeddings")]
        gallery: Option<PathBuf>,
        /// Folder the embedding folders' item paths are relative to (for thumbnails).
        #[arg(long, requires = "embeddings")]
        image_root: Option<PathBuf>,
        /// Task name in the report (embedding folders).
        #[arg(long, default_value = "task", requires = "embeddings")]
        task: String,
        /// k of Recall@k and Precision@k (default: the task file's, else 1,5,10).
        #[arg(long, value_delimiter = ',')]
        k: Option<Vec<usize>>,
        /// MAP@R reads at most this many results per query.
        #[arg(long, default_value_t = 1000)]
        map_r_cap: usize,
        /// NMI clusters at most this many queries (0: no NMI).
        #[arg(long, default_value_t = 10_000)]
        nmi_max_items: usize,
        /// Example queries per task on the HTML page.
        #[arg(long, default_value_t = 12)]
        examples: usize,
        /// Seed of the NMI sample, k-means and the examples.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
    },
    /// Put several models' eval reports in one table per task, best marked, differences to the
    /// baseline with paired bootstrap intervals. Each MODEL is `NAME=REPORT[,REPORT...]` (one
    /// report per training seed) or a report path.
    Compare {
        /// Models to compare.
        #[arg(required = true)]
        models: Vec<String>,
        /// Name of the baseline model (default: the first).
        #[arg(long)]
        baseline: Option<String>,
        /// Only these tasks (comma-separated; default: every task of the reports).
        #[arg(long, value_delimiter = ',')]
        tasks: Vec<String>,
        /// Bootstrap resamples.
        #[arg(long, default_value_t = 1000)]
        resamples: usize,
        /// Confidence level of the intervals.
        #[arg(long, default_value_t = 0.95)]
        level: f64,
        /// Bootstrap seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output folder (compare.json, compare.md, charts).
        #[arg(long)]
        out: PathBuf,
    },
    /// Serve visual search over HTTP: JSON API, web page at /, OpenAPI at /openapi.json.
    /// Binds to loopback unless told otherwise; adding and removing items needs the bearer
    /// token named by --token-env (off when that variable is unset). With --experiment, serves
    /// the file's arms side by side, logs engagement and runs its rater study at /study.
    Serve {
        /// Model file (default: zero-shot Lite0, which must match the index).
        #[arg(long, conflicts_with = "experiment")]
        model: Option<PathBuf>,
        /// Index folder.
        #[arg(long, required_unless_present = "experiment")]
        index: Option<PathBuf>,
        /// Experiment file (arms, engagement log, study); replaces --model and --index.
        #[arg(long)]
        experiment: Option<PathBuf>,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: std::net::SocketAddr,
        /// Embedding workers (each an ONNX Runtime session).
        #[arg(long, default_value_t = 1)]
        workers: usize,
        /// Threads per embedding worker (0: ONNX Runtime decides).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Threads one search's scan is split over (default: every core).
        #[arg(long)]
        search_threads: Option<usize>,
        /// Most concurrent searches answered by one pass over the codes.
        #[arg(long, default_value_t = 32)]
        search_batch: usize,
        /// Search through an inverted file of this many lists instead of scanning every code:
        /// approximate, and its cost hardly grows with the index (0: the exact scan). About
        /// the square root of the item count is a usual start; `unisight index ivf-recall`
        /// measures what it finds.
        #[arg(long, default_value_t = 0)]
        ivf_lists: usize,
        /// Lists an inverted-file search scans per query (more: higher recall, slower).
        #[arg(long, default_value_t = 16)]
        ivf_probes: usize,
        /// Requests that may wait for a worker before the service answers 503.
        #[arg(long, default_value_t = 32)]
        queue: usize,
        /// Folder the items' paths are relative to, for result thumbnails.
        #[arg(long)]
        image_root: Option<PathBuf>,
        /// Largest upload, in MiB.
        #[arg(long, default_value_t = 16)]
        max_body_mib: usize,
        /// Largest image, in megapixels (checked from the header before decoding).
        #[arg(long, default_value_t = 40)]
        max_megapixels: u64,
        /// Seconds a request may take.
        #[arg(long, default_value_t = 10)]
        timeout_s: u64,
        /// Environment variable holding the bearer token for add and remove.
        #[arg(long, default_value = "UNISIGHT_TOKEN")]
        token_env: String,
    },
    /// Turn Debian's Fashion-MNIST package (`apt-get install dataset-fashion-mnist`) into an
    /// image folder (`OUT/{train,test}/<class>/*.png`) that task files can name.
    ImportFashionMnist {
        /// Folder with the gzipped IDX files.
        #[arg(long, default_value = unisight_data::fashion_mnist::DEBIAN_DIR)]
        from: PathBuf,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// Training images per class.
        #[arg(long, default_value_t = 300)]
        train_per_class: usize,
        /// Test images per class.
        #[arg(long, default_value_t = 100)]
        test_per_class: usize,
    },
    /// Print a Markdown table of finished training runs (their work folders): Recall@1 float
    /// and bits per task, mean and spread over seeds (runs named NAME-sSEED).
    SummarizeRuns {
        /// Work folders of finished runs (`OUT.run`).
        #[arg(required = true)]
        runs: Vec<PathBuf>,
    },
    /// Bounded load test of a running `unisight serve` on loopback: searches by id, by image,
    /// and uploads a tenth of them malformed, at each concurrency level; fails on any 5xx.
    LoadTest(crate::load_test::Settings),
    /// Write a SIMULATED engagement log (searches by a baseline embedding, position-biased
    /// clicks and saves) from a labelled set, to test training from engagement end to end.
    SimulateEngagement {
        /// Task file naming the dataset.
        #[arg(long)]
        config: PathBuf,
        /// Folder relative dataset roots are resolved in (default: the task file's folder).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The labelled set, `dataset:split`.
        #[arg(long)]
        set: String,
        /// Label field that decides which results simulated users find relevant.
        #[arg(long)]
        label: String,
        /// Baseline model that ranks the results shown (default: zero-shot Lite0).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Searches to simulate.
        #[arg(long, default_value_t = 5000)]
        searches: usize,
        /// Results shown per search.
        #[arg(long, default_value_t = 20)]
        shown: usize,
        /// Seed of the simulated users.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The log to write (JSON Lines; every event has "simulated": true).
        #[arg(long)]
        out: PathBuf,
    },
    Index {
        #[command(subcommand)]
        command: IndexCommand,
    },
    /// Online experiments: reports from the engagement log the service writes.
    Experiment {
        #[command(subcommand)]
        command: ExperimentCommand,
    },
    /// Side-by-side relevance studies: reports from the ratings the study page stores.
    Study {
        #[command(subcommand)]
        command: StudyCommand,
    },
    /// Search an index by image or by the key of an indexed item.
    Search {
        /// Index folder.
        #[arg(long)]
        index: PathBuf,
        /// Query image.
        #[arg(long, conflicts_with = "id", required_unless_present = "id")]
        image: Option<PathBuf>,
        /// Key of an indexed item ("more like this").
        #[arg(long)]
        id: Option<String>,
        /// Model file used to embed the query image (default: zero-shot Lite0).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Number of results.
        #[arg(short, long, default_value_t = 10)]
        k: usize,
        /// Re-rank the k * R nearest by Hamming with floats (0 = no re-ranking).
        #[arg(long, default_value_t = 0)]
        rerank: usize,
        /// Re-ranking: stored floats, or the float query against stored bits.
        #[arg(long, value_enum, default_value_t = RerankMode::Float)]
        rerank_mode: RerankMode,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum RerankMode {
    Float,
    Asymmetric,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum FloatStorage {
    None,
    F16,
    F32,
}

#[derive(Debug, Subcommand)]
enum ExperimentCommand {
    /// Per arm: searches, click-through rate, saves per search, MRR of the first click, with
    /// 95% intervals; each arm tested against the control (says when data are too few).
    Report {
        /// Log folder (the experiment's `[log] dir`).
        #[arg(long)]
        log: PathBuf,
        /// Log file stem.
        #[arg(long, default_value = "engagement")]
        stem: String,
        /// Control arm (default: the first arm in the log).
        #[arg(long)]
        control: Option<String>,
        /// Also write report.json and report.md here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum StudyCommand {
    /// Preference rate with a 95% interval, per task, rater agreement, relevance marks.
    Report {
        /// Ratings file (the experiment's `[study] ratings`).
        #[arg(long)]
        ratings: PathBuf,
        /// The two arms, baseline first (default: as named in the ratings, sorted).
        #[arg(long, num_args = 2)]
        arms: Option<Vec<String>>,
        /// Also write study.json and study.md here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum IndexCommand {
    /// Create an index from an embedding folder (`unisight embed` output).
    Build {
        /// Embedding folder.
        #[arg(long)]
        from: PathBuf,
        /// Index folder to create.
        #[arg(long)]
        out: PathBuf,
        /// Keep float vectors for re-ranking.
        #[arg(long, value_enum, default_value_t = FloatStorage::F16)]
        floats: FloatStorage,
        /// Keep no string keys or paths: an item costs its code and id (plus floats), and its
        /// key is its id, which for a new index is its row in the embedding folder.
        #[arg(long)]
        no_keys: bool,
    },
    /// Add the items of an embedding folder (keys must be new).
    Add {
        /// Index folder.
        #[arg(long)]
        index: PathBuf,
        /// Embedding folder.
        #[arg(long)]
        from: PathBuf,
    },
    /// Remove items by key.
    Remove {
        /// Index folder.
        #[arg(long)]
        index: PathBuf,
        /// Keys to remove.
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// Rewrite the index without deleted items.
    Compact {
        /// Index folder.
        #[arg(long)]
        index: PathBuf,
    },
    /// Print counts and sizes.
    Stats {
        /// Index folder.
        #[arg(long)]
        index: PathBuf,
    },
    /// How much of the exact top-k an inverted file finds, and how fast, for the lists and probes
    /// `serve --ivf-lists --ivf-probes` would use. Queries are sampled stored items (each left
    /// out of its own results); recall@k is the share of the exact top-k found.
    IvfRecall {
        /// Index folder.
        #[arg(long)]
        index: PathBuf,
        /// Lists of the inverted file.
        #[arg(long)]
        lists: usize,
        /// Probes to try, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1,4,16,64")]
        probes: Vec<usize>,
        /// Queries sampled from the index.
        #[arg(long, default_value_t = 1000)]
        queries: usize,
        /// Results compared per query.
        #[arg(short, long, default_value_t = 10)]
        k: usize,
        /// Seed of the query sample and of the inverted file.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Embed {
            model,
            input,
            root,
            out,
            batch,
            threads,
            backend,
        } => {
            let inputs = unisight_data::sources::list_inputs(&input, root.as_deref())?;
            if inputs.is_empty() {
                bail!("{}: no images found", input.display());
            }
            let (model, model_id) = load_model(model.as_deref())?;
            let mut embedder = make_embedder(model, &model_id, backend, threads)?;
            eprintln!(
                "embedding {} images with {} ({})",
                inputs.len(),
                model_id,
                embedder.backend()
            );
            let options = EmbedOptions {
                batch_size: batch,
                chunk_size: batch * 16,
                limits: DecodeLimits::default(),
                model_id,
                progress: true,
            };
            let summary = unisight_embed::run(&inputs, embedder.as_mut(), &out, &options)?;
            eprintln!(
                "embedded {} of {} images ({} skipped, {} chunks resumed) at {:.1} images/s into {}",
                summary.embedded,
                summary.inputs,
                summary.failed,
                summary.resumed_chunks,
                summary.images_per_second,
                out.display()
            );
            Ok(())
        }
        Command::InitModel {
            arch,
            dim,
            seed,
            out,
        } => {
            let arch = Architecture::from_short_name(&arch)
                .with_context(|| format!("unknown architecture {arch:?} (lite0, lite1, lite2)"))?;
            let model = unisight_model::UnifiedModel::zero_shot(
                arch,
                dim,
                seed,
                &burn::tensor::Device::flex(),
            )?;
            model.save(&out)?;
            eprintln!(
                "wrote {} ({:?}, D = {dim}, {:?})",
                out.display(),
                arch,
                model.spec.projection
            );
            Ok(())
        }
        Command::ExportOnnx { model, out } => {
            let (model, _) = load_model(model.as_deref())?;
            unisight_model::onnx::export_to_file(&model, &out)?;
            eprintln!("wrote {}", out.display());
            Ok(())
        }
        Command::BenchModel {
            model,
            batch,
            iters,
            threads,
            sessions,
            backend,
        } => {
            let mut embedders = Vec::new();
            for _ in 0..sessions.max(1) {
                let (net, model_id) = load_model(model.as_deref())?;
                embedders.push(make_embedder(net, &model_id, backend, threads)?);
            }
            let name = embedders[0].backend();
            let s = embedders[0].spec().input_size;
            // a fixed, deterministic input; throughput does not depend on the values
            let pixels: Vec<f32> = (0..batch * 3 * s * s)
                .map(|i| ((i * 7919) % 256) as f32 / 128.0 - 1.0)
                .collect();
            for embedder in &mut embedders {
                embedder.embed(&pixels, batch)?;
            }
            let start = std::time::Instant::now();
            std::thread::scope(|scope| -> Result<()> {
                let runs: Vec<_> = embedders
                    .iter_mut()
                    .map(|embedder| {
                        let pixels = &pixels;
                        scope.spawn(move || -> Result<()> {
                            for _ in 0..iters {
                                embedder.embed(pixels, batch)?;
                            }
                            Ok(())
                        })
                    })
                    .collect();
                for run in runs {
                    run.join()
                        .map_err(|_| anyhow!("a benchmark thread panicked"))??;
                }
                Ok(())
            })?;
            let rate = (sessions.max(1) * iters * batch) as f64 / start.elapsed().as_secs_f64();
            println!(
                "{{\"backend\":\"{name}\",\"batch\":{batch},\"sessions\":{},\"images_per_second\":{rate:.2}}}",
                sessions.max(1)
            );
            Ok(())
        }
        Command::Train {
            config,
            out,
            data_dir,
            work_dir,
            cache_dir,
            seed,
            stop_after,
            quiet,
        } => {
            let mut config = unisight_train::config::TrainConfig::load_with_data_dir(
                &config,
                data_dir.as_deref(),
            )?;
            if let Some(seed) = seed {
                config.seed = seed;
            }
            let work_dir = work_dir.unwrap_or_else(|| {
                let mut name = out.file_name().unwrap_or_default().to_os_string();
                name.push(".run");
                out.with_file_name(name)
            });
            let options = unisight_train::trainer::TrainOptions {
                out: out.clone(),
                work_dir: work_dir.clone(),
                cache_dir: cache_dir.unwrap_or_else(|| PathBuf::from(".cache/trunk")),
                progress: !quiet,
                stop_after,
            };
            let report = unisight_train::trainer::train(&config, &options)?;
            if report.interrupted {
                println!(
                    "stopped after step {} (checkpointed in {}); run the same command again to resume",
                    report.steps,
                    work_dir.display()
                );
                return Ok(());
            }
            println!(
                "trained {} steps ({} in this run, {:.1} img/s; trunk cache {:.0} s); model: {}",
                report.steps,
                report.steps_this_run,
                report.images_per_second,
                report.cache_seconds,
                out.display()
            );
            if !report.skipped_images.is_empty() {
                println!(
                    "skipped {} unreadable images (listed in {}/report.json)",
                    report.skipped_images.len(),
                    work_dir.display()
                );
            }
            for e in &report.eval {
                let ks: Vec<String> =
                    e.k.iter()
                        .zip(e.recall_float.iter().zip(&e.recall_bits))
                        .map(|(k, (f, b))| format!("R@{k} {f:.3} (bits {b:.3})"))
                        .collect();
                println!(
                    "{:<16} {} -> {}: {}",
                    e.task,
                    e.queries,
                    e.gallery,
                    ks.join("  ")
                );
            }
            println!(
                "curves: {0}/history.json, {0}/loss.png, {0}/validation.png",
                work_dir.display()
            );
            Ok(())
        }
        Command::Eval {
            model,
            config,
            data_dir,
            tasks,
            cache_dir,
            embeddings,
            gallery,
            image_root,
            task,
            k,
            map_r_cap,
            nmi_max_items,
            examples,
            seed,
            out,
        } => {
            let source = match (&model, &config, &embeddings) {
                (Some(model), Some(config), None) => Source::Model {
                    model,
                    config,
                    data_dir: data_dir.as_deref(),
                    tasks: &tasks,
                    cache_dir: &cache_dir,
                },
                (None, _, Some(queries)) => Source::Embeddings {
                    queries,
                    gallery: gallery.as_deref(),
                    image_root: image_root.as_deref(),
                    task: &task,
                },
                _ => bail!("give --model with --config, or --embeddings"),
            };
            let settings = Settings {
                ks: Vec::new(),
                map_r_cap,
                nmi_max_items,
                examples,
                seed,
                ..Settings::default()
            };
            run_eval(source, k, settings, &out)
        }
        Command::Compare {
            models,
            baseline,
            tasks,
            resamples,
            level,
            seed,
            out,
        } => {
            if !(0.0..1.0).contains(&level) || level <= 0.0 {
                bail!("--level must be between 0 and 1, e.g. 0.95");
            }
            let entries = models
                .iter()
                .map(|m| read_entry(m))
                .collect::<Result<Vec<_>>>()?;
            let comparison = unisight_eval::report::compare(
                &entries,
                &tasks,
                baseline.as_deref(),
                resamples,
                level,
                seed,
            )?;
            comparison.write(&out)?;
            print!("{}", comparison.to_markdown());
            eprintln!(
                "wrote {0}/compare.json, compare.md and compare-*.png",
                out.display()
            );
            Ok(())
        }
        Command::Serve {
            model,
            index,
            experiment,
            addr,
            workers,
            threads,
            search_threads,
            search_batch,
            ivf_lists,
            ivf_probes,
            queue,
            image_root,
            max_body_mib,
            max_megapixels,
            timeout_s,
            token_env,
        } => {
            let token = std::env::var(&token_env).ok().filter(|t| !t.is_empty());
            let max_body_bytes = max_body_mib << 20;
            let limits = DecodeLimits {
                max_file_bytes: max_body_bytes as u64,
                max_pixels: max_megapixels * 1_000_000,
            };
            let config = unisight_serve::ServiceConfig {
                max_body_bytes,
                timeout: std::time::Duration::from_secs(timeout_s),
                token: token.clone(),
                image_root,
                search_threads: search_threads
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from)),
                max_search_batch: search_batch,
                ivf: (ivf_lists > 0).then_some(unisight_index::IvfSettings {
                    lists: ivf_lists,
                    probes: ivf_probes,
                }),
                ..Default::default()
            };
            let state = if let Some(experiment) = experiment {
                let arm_workers = crate::experiment::ArmWorkers {
                    workers,
                    threads,
                    queue,
                };
                crate::experiment::experiment_state(&experiment, &arm_workers, limits, config)
                    .with_context(|| experiment.display().to_string())?
            } else {
                let index = index.ok_or_else(|| anyhow!("--index or --experiment is needed"))?;
                let index = if token.is_some() {
                    Index::open_writable(&index)?
                } else {
                    Index::open(&index)?
                };
                let mut embedders = Vec::new();
                for _ in 0..workers.max(1) {
                    let (net, model_id) = load_model(model.as_deref())?;
                    embedders.push(make_embedder(net, &model_id, Backend::Auto, threads)?);
                }
                if embedders[0].spec().code_bytes() * 8 != index.layout().bits {
                    bail!(
                        "the model makes {}-bit codes but the index holds {}-bit codes",
                        embedders[0].spec().code_bytes() * 8,
                        index.layout().bits
                    );
                }
                let pool = unisight_serve::pool::EmbedPool::start(embedders, queue, limits);
                // the zero-shot model is made in memory: no file, no size
                let model_bytes = match &model {
                    Some(path) => std::fs::metadata(path)
                        .with_context(|| path.display().to_string())?
                        .len(),
                    None => 0,
                };
                unisight_serve::AppState::new(index, pool, model_bytes, config)?
            };
            if ivf_lists > 0 {
                eprintln!(
                    "searching through an inverted file: {ivf_lists} lists, {ivf_probes} probed \
                     per query (approximate)"
                );
            }
            unisight_serve::serve_blocking(addr, state, |bound| {
                println!("listening on http://{bound}/");
                if token.is_none() {
                    println!("(adding and removing items is off: ${token_env} is not set)");
                }
                let _ = std::io::stdout().flush();
            })?;
            Ok(())
        }
        Command::Experiment {
            command:
                ExperimentCommand::Report {
                    log,
                    stem,
                    control,
                    out,
                },
        } => crate::experiment::report_experiment(&log, &stem, control.as_deref(), out.as_deref()),
        Command::Study {
            command: StudyCommand::Report { ratings, arms, out },
        } => {
            let arms = arms.map(|a| [a[0].clone(), a[1].clone()]);
            crate::experiment::report_study(&ratings, arms, out.as_deref())
        }
        Command::ImportFashionMnist {
            from,
            out,
            train_per_class,
            test_per_class,
        } => {
            let [train, test] = unisight_data::fashion_mnist::import(
                &from,
                &out,
                [train_per_class, test_per_class],
            )
            .with_context(|| {
                format!(
                    "importing Fashion-MNIST from {} (apt-get install dataset-fashion-mnist)",
                    from.display()
                )
            })?;
            eprintln!(
                "{train} training and {test} test images in {}",
                out.display()
            );
            Ok(())
        }
        Command::SummarizeRuns { runs } => {
            let dirs: Vec<&Path> = runs.iter().map(PathBuf::as_path).collect();
            print!("{}", unisight_train::summary::summarize(&dirs)?);
            Ok(())
        }
        Command::LoadTest(settings) => crate::load_test::run(&settings),
        Command::SimulateEngagement {
            config,
            data_dir,
            set,
            label,
            model,
            searches,
            shown,
            seed,
            out,
        } => {
            let config = unisight_train::config::TrainConfig::load_with_data_dir(
                &config,
                data_dir.as_deref(),
            )?;
            let set_ref = unisight_train::config::SetRef::parse(&set)
                .with_context(|| format!("--set {set}: expected dataset:split"))?;
            let dataset = config.datasets.get(&set_ref.dataset).with_context(|| {
                format!(
                    "--set {set}: no dataset `{}` in the task file",
                    set_ref.dataset
                )
            })?;
            let images = dataset.list(&set_ref.split)?;
            let inputs: Vec<unisight_data::sources::Input> = images
                .iter()
                .filter_map(|im| {
                    im.labels
                        .get(&label)
                        .map(|l| unisight_data::sources::Input {
                            id: im.id.clone(),
                            path: im.id.clone(),
                            file: im.file.clone(),
                            label: Some(l.clone()),
                            domain: im.domain.clone(),
                        })
                })
                .collect();
            if inputs.len() < 2 {
                bail!("--set {set}: fewer than 2 images with label `{label}`");
            }
            let (model, model_id) = load_model(model.as_deref())?;
            let mut embedder = make_embedder(model, &model_id, Backend::Auto, 0)?;
            let mut emb_dir = out.as_os_str().to_owned();
            emb_dir.push(".baseline");
            let emb_dir = PathBuf::from(emb_dir);
            eprintln!(
                "ranking with {model_id}: embedding {} images into {}",
                inputs.len(),
                emb_dir.display()
            );
            let options = EmbedOptions {
                batch_size: 32,
                chunk_size: 512,
                limits: DecodeLimits::default(),
                model_id,
                progress: true,
            };
            unisight_embed::run(&inputs, embedder.as_mut(), &emb_dir, &options)?;
            let embedded = EmbeddingSet::load(&emb_dir)?;
            let paths: Vec<String> = embedded.items.iter().map(|i| i.path.clone()).collect();
            let labels: Vec<String> = embedded
                .items
                .iter()
                .map(|i| i.label.clone().unwrap_or_default())
                .collect();
            let sim = unisight_train::simulate::SimulationConfig {
                searches,
                shown,
                seed,
                ..Default::default()
            };
            let log = unisight_train::simulate::simulate_engagement(
                &paths,
                &labels,
                &embedded.embeddings,
                embedded.dim,
                &sim,
            );
            let mut text = String::new();
            for e in &log {
                text.push_str(&serde_json::to_string(e)?);
                text.push('\n');
            }
            unisight_core::atomic::atomic_write_bytes(&out, text.as_bytes())?;
            let clicks: u32 = log.iter().map(|e| e.count).sum();
            eprintln!(
                "SIMULATED engagement: {searches} searches, {} (query, result, action) rows, {clicks} clicks/saves -> {}",
                log.len(),
                out.display()
            );
            Ok(())
        }
        Command::Index { command } => run_index(command),
        Command::Search {
            index,
            image,
            id,
            model,
            k,
            rerank,
            rerank_mode,
            json,
        } => {
            let mut index = Index::open(&index)?;
            let (code, query_float) = match (&image, &id) {
                (Some(image), _) => embed_one(image, model.as_deref())?,
                (None, Some(key)) => {
                    let item = index
                        .id_of_key(key)?
                        .with_context(|| format!("no item with key {key:?} in the index"))?;
                    let code = index.code(item)?.to_vec();
                    let floats = index.floats(item)?;
                    (code, floats)
                }
                (None, None) => unreachable!("clap requires one"),
            };
            let mode = match (rerank, rerank_mode) {
                (0, _) => Rerank::None,
                (_, RerankMode::Float) if index.layout().floats.is_some() => Rerank::Float,
                (_, RerankMode::Float) => {
                    bail!("this index keeps no floats: use --rerank-mode asymmetric")
                }
                (_, RerankMode::Asymmetric) => Rerank::Asymmetric,
            };
            let options = ScanOptions {
                threads: std::thread::available_parallelism().map_or(1, usize::from),
                ..ScanOptions::default()
            };
            let hits =
                index.search_reranked(&code, query_float.as_deref(), k, rerank, mode, &options)?;
            let mut stdout = std::io::stdout().lock();
            let mut rows = Vec::new();
            for hit in hits {
                let item = index.item(hit.id)?;
                rows.push(serde_json::json!({
                    "key": item.key, "path": item.path, "distance": hit.distance, "score": hit.score,
                }));
                if !json {
                    let score = hit
                        .score
                        .map(|s| format!("{s:.4}"))
                        .unwrap_or_else(|| "-".into());
                    writeln!(
                        stdout,
                        "{:>5}  {:>8}  {}  {}",
                        hit.distance, score, item.key, item.path
                    )?;
                }
            }
            if json {
                writeln!(stdout, "{}", serde_json::to_string_pretty(&rows)?)?;
            }
            Ok(())
        }
    }
}

fn embed_one(image: &Path, model: Option<&Path>) -> Result<(Vec<u8>, Option<Vec<f32>>)> {
    let (model, model_id) = load_model(model)?;
    let mut embedder = make_embedder(model, &model_id, Backend::Auto, 0)?;
    let spec = embedder.spec().clone();
    let rgb = load_rgb(image, &DecodeLimits::default())?;
    let mut pixels = vec![0f32; 3 * spec.input_size * spec.input_size];
    to_input(&rgb, spec.input_size, spec.preprocess, &mut pixels);
    let out = embedder.embed(&pixels, 1)?;
    Ok((
        unisight_core::code::pack_signs(&out.projected),
        Some(out.normalized),
    ))
}

fn run_index(command: IndexCommand) -> Result<()> {
    match command {
        IndexCommand::Build {
            from,
            out,
            floats,
            no_keys,
        } => {
            let set = EmbeddingSet::load(&from)?;
            let bits = set.code_bytes * 8;
            if !bits.is_multiple_of(64) {
                bail!(
                    "{}: D = {} gives {bits}-bit codes; the index needs a multiple of 64",
                    from.display(),
                    set.dim
                );
            }
            let floats = match floats {
                FloatStorage::None => None,
                FloatStorage::F16 => Some((set.dim, FloatKind::F16)),
                FloatStorage::F32 => Some((set.dim, FloatKind::F32)),
            };
            let config = IndexConfig {
                bits,
                floats,
                keys: !no_keys,
            };
            let mut index = Index::create(&out, config)?;
            add_set(&mut index, &set)?;
            print_stats(&index)
        }
        IndexCommand::Add { index, from } => {
            let mut index = Index::open_writable(&index)?;
            let set = EmbeddingSet::load(&from)?;
            add_set(&mut index, &set)?;
            print_stats(&index)
        }
        IndexCommand::Remove { index, keys } => {
            let mut index = Index::open_writable(&index)?;
            let mut ids = Vec::new();
            for key in &keys {
                ids.push(
                    index
                        .id_of_key(key)?
                        .with_context(|| format!("no item with key {key:?}; nothing removed"))?,
                );
            }
            let n = index.remove(&ids)?;
            eprintln!("removed {n} items");
            print_stats(&index)
        }
        IndexCommand::Compact { index } => {
            let mut index = Index::open_writable(&index)?;
            index.compact()?;
            print_stats(&index)
        }
        IndexCommand::Stats { index } => print_stats(&Index::open(&index)?),
        IndexCommand::IvfRecall {
            index,
            lists,
            probes,
            queries,
            k,
            seed,
        } => ivf_recall(&index, lists, &probes, queries, k, seed),
    }
}

/// `index ivf-recall`: prints the measurement as a Markdown table.
fn ivf_recall(
    dir: &Path,
    lists: usize,
    probes: &[usize],
    queries: usize,
    k: usize,
    seed: u64,
) -> Result<()> {
    let mut index = Index::open(dir)?;
    let report =
        unisight_index::recall::measure_ivf_recall(&mut index, lists, probes, queries, k, seed)
            .with_context(|| dir.display().to_string())?;
    println!(
        "{} items, {} queries, k = {k}; inverted file of {} lists built in {:.1} s",
        report.items, report.queries, report.lists, report.build_seconds
    );
    println!("| search | recall@{k} | us per query (1 thread) | speed-up |");
    println!("|---|---|---|---|");
    println!("| exact scan | 1.000 | {:.0} | 1.0x |", report.exact_micros);
    for row in &report.probes {
        println!(
            "| {} probes | {:.3} | {:.0} | {:.1}x |",
            row.probes,
            row.recall,
            row.micros,
            report.exact_micros / row.micros
        );
    }
    Ok(())
}

fn add_set(index: &mut Index, set: &EmbeddingSet) -> Result<()> {
    let keep_floats = index.layout().floats.is_some();
    let keyed = index.layout().keys;
    let items: Vec<NewItem> = (0..set.len())
        .map(|i| NewItem {
            key: if keyed { &set.items[i].id } else { "" },
            path: if keyed { &set.items[i].path } else { "" },
            code: set.code(i),
            floats: keep_floats.then(|| set.embedding(i)),
        })
        .collect();
    index.add(&items)?;
    Ok(())
}

fn print_stats(index: &Index) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(&index.stats())?);
    Ok(())
}
