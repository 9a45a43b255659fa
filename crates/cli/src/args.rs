//! The command line: every command's arguments, parsed by clap. What each command does is in
//! [`crate::commands`], one module per command.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::embedder::Backend;
use crate::index_location::{parse_server_index, IndexLocation};
use unisight_milvus::{MilvusUrl, ServerIndex};

/// One image embedding for several visual-search products.
#[derive(Debug, Parser)]
#[command(name = "unisight", version, about)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Embed images (a folder, or a .csv/.jsonl manifest) into an embedding folder.
    Embed(EmbedArgs),
    /// Create a zero-shot model file (ImageNet trunk, fixed projection).
    InitModel(InitModelArgs),
    /// Export a model as an ONNX graph.
    ExportOnnx(ExportOnnxArgs),
    /// Model-only throughput (images/s) on fixed pseudo-random pixels, for benchmarks.
    BenchModel(BenchModelArgs),
    /// Train a unified (or, with one task, specialized) embedding from a task file.
    Train(TrainArgs),
    /// Evaluate a model on the `eval` sets of a task file (embedded through ONNX Runtime and
    /// cached), or embedding folders: per task Recall@k, Precision@k, MAP@R and NMI, float and
    /// bits, worst classes; writes report.json, report.md, Recall@k charts and examples.html.
    Eval(EvalArgs),
    /// Put several models' eval reports in one table per task, best marked, differences to the
    /// baseline with paired bootstrap intervals. Each MODEL is `NAME=REPORT[,REPORT...]` (one
    /// report per training seed) or a report path.
    Compare(CompareArgs),
    /// Serve visual search over HTTP: JSON API, web page at /, OpenAPI at /openapi.json.
    /// Binds to loopback unless told otherwise; adding and removing items needs the bearer
    /// token named by --token-env (off when that variable is unset). With --experiment, serves
    /// the file's arms side by side, logs engagement and runs its rater study at /study.
    Serve(ServeArgs),
    /// Turn Debian's Fashion-MNIST package (`apt-get install dataset-fashion-mnist`) into an
    /// image folder (`OUT/{train,test}/<class>/*.png`) that task files can name.
    ImportFashionMnist(ImportFashionMnistArgs),
    /// Print a Markdown table of finished training runs (their work folders): Recall@1 and
    /// MAP@R, float and bits, per task, mean and spread over seeds (runs named NAME-sSEED); with
    /// --validation, each run's validation curve under both validation scores.
    SummarizeRuns(SummarizeRunsArgs),
    /// Train a task file at every point of a grid of recipe settings (over seeds), resumably,
    /// and rank the points by validation score in OUT/sweep.md (test scores beside, of the
    /// models validation chose).
    Sweep(SweepArgs),
    /// Bounded load test of a running `unisight serve` on loopback: searches by id, by image,
    /// and uploads a tenth of them malformed, at each concurrency level; fails on any 5xx.
    LoadTest(crate::commands::load_test::Settings),
    /// Write a SIMULATED engagement log (searches by a baseline embedding, position-biased
    /// clicks and saves) from a labelled set, to test training from engagement end to end.
    SimulateEngagement(SimulateEngagementArgs),
    /// SIMULATED users driving a running service on loopback: they search by uploading
    /// labelled photos and click, save and dwell as unisight's simulated user does; bounded.
    SimulateUsers(SimulateUsersArgs),
    /// Build and change binary-code indexes.
    Index {
        #[command(subcommand)]
        command: IndexCommand,
    },
    /// Online experiments: reports from the engagement log the service writes.
    Experiment {
        #[command(subcommand)]
        command: ExperimentCommand,
    },
    /// Side-by-side relevance studies: reports from the ratings the study page stores, and
    /// rater tokens.
    Study {
        #[command(subcommand)]
        command: StudyCommand,
    },
    /// Search an index by image or by the key of an indexed item.
    Search(SearchArgs),
    /// Scatter-gather simulation: random codes split over shard processes behind a merging
    /// front; latency and throughput per number of shards (the capacity plan's measurements).
    BenchScatter(BenchScatterArgs),
    /// One shard of `bench-scatter`: answers batches of queries on stdin (internal).
    #[command(hide = true)]
    ShardWorker(ShardWorkerArgs),
}

/// Arguments of `unisight embed`.
#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// Model file; without it, the zero-shot EfficientNet-Lite0 (D = 1280, no projection).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Folder of images, or manifest with a `path` column / key.
    #[arg(long)]
    pub input: PathBuf,
    /// Folder manifest paths are resolved in (default: the manifest's folder).
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Embed only shard I of N (`0/4` .. `3/4`): the items whose id hashes to I, so N runs
    /// (on N machines) split a catalog without overlap; `index build --from` takes all their
    /// folders at once.
    #[arg(long, value_name = "I/N", value_parser = unisight_core::shard::Shard::parse)]
    pub shard: Option<unisight_core::shard::Shard>,
    /// Images per inference call.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Inference threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Inference backend.
    #[arg(long, value_enum, default_value_t = Backend::Auto)]
    pub backend: Backend,
}

/// Arguments of `unisight init-model`.
#[derive(Debug, Args)]
pub struct InitModelArgs {
    /// Trunk: lite0, lite1 or lite2.
    #[arg(long, default_value = "lite0")]
    pub arch: String,
    /// Embedding dimension D (1280 = no projection; else a random orthogonal projection).
    #[arg(long, default_value_t = 256)]
    pub dim: usize,
    /// Seed of the random projection.
    #[arg(long, default_value_t = unisight_model::DEFAULT_PROJECTION_SEED)]
    pub seed: u64,
    /// Output model file (.safetensors).
    #[arg(long)]
    pub out: PathBuf,
}

/// Arguments of `unisight export-onnx`.
#[derive(Debug, Args)]
pub struct ExportOnnxArgs {
    /// Model file (default: zero-shot Lite0).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Output .onnx file.
    #[arg(long)]
    pub out: PathBuf,
}

/// Arguments of `unisight bench-model`.
#[derive(Debug, Args)]
pub struct BenchModelArgs {
    /// Model file (default: zero-shot Lite0).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Images per call.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Timed calls (after one warm-up call).
    #[arg(long, default_value_t = 10)]
    pub iters: usize,
    /// Inference threads per session (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Sessions run side by side, each on its own thread (as `serve --workers` runs
    /// them); the rate printed is their total.
    #[arg(long, default_value_t = 1)]
    pub sessions: usize,
    /// Inference backend.
    #[arg(long, value_enum, default_value_t = Backend::Ort)]
    pub backend: Backend,
}

/// Arguments of `unisight train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The task file (TOML: datasets, tasks, model, training).
    #[arg(long)]
    pub config: PathBuf,
    /// Where to write the trained model file.
    #[arg(long)]
    pub out: PathBuf,
    /// Folder that relative dataset roots are resolved in (default: the task file's folder).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Checkpoints, history.json, report.json and charts (default: OUT.run/). A run
    /// resumes from the latest checkpoint here.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Trunk-map caches, shared between runs (default: .cache/trunk).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Override the task file's seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Override a key of the task file, `KEY=VALUE` with a dotted key (`train.steps=300`,
    /// `datasets.clicks.logs=/abs/logs`); repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Stop after this step, checkpointed, as if interrupted (rerun to resume).
    #[arg(long)]
    pub stop_after: Option<usize>,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

/// Arguments of `unisight eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Model file (with --config).
    #[arg(long, requires = "config", conflicts_with = "embeddings")]
    pub model: Option<PathBuf>,
    /// Task file whose tasks' `eval` sections name query and gallery sets.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Folder that relative dataset roots of the task file are in.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Only these tasks (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub tasks: Vec<String>,
    /// Cache of embedded evaluation sets, per model.
    #[arg(long, default_value = ".cache/embeddings")]
    pub cache_dir: PathBuf,
    /// Test-time flip averaging: embed every image and its mirror image and average the two
    /// (twice the inference; with --model).
    #[arg(long, requires = "model")]
    pub flip: bool,
    /// Query embeddings (an `unisight embed` folder whose items carry labels).
    #[arg(long, required_unless_present = "model")]
    pub embeddings: Option<PathBuf>,
    /// Gallery embeddings (default: leave-one-out within the queries).
    #[arg(long, requires = "embeddings")]
    pub gallery: Option<PathBuf>,
    /// Folder the embedding folders' item paths are relative to (for thumbnails).
    #[arg(long, requires = "embeddings")]
    pub image_root: Option<PathBuf>,
    /// Task name in the report (embedding folders).
    #[arg(long, default_value = "task", requires = "embeddings")]
    pub task: String,
    /// k of Recall@k and Precision@k (default: the task file's, else 1,5,10).
    #[arg(long, value_delimiter = ',')]
    pub k: Option<Vec<usize>>,
    /// MAP@R reads at most this many results per query.
    #[arg(long, default_value_t = 1000)]
    pub map_r_cap: usize,
    /// NMI clusters at most this many queries (0: no NMI).
    #[arg(long, default_value_t = 10_000)]
    pub nmi_max_items: usize,
    /// Example queries per task on the HTML page.
    #[arg(long, default_value_t = 12)]
    pub examples: usize,
    /// Seed of the NMI sample, k-means and the examples.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
}

/// Arguments of `unisight compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Models to compare.
    #[arg(required = true)]
    pub models: Vec<String>,
    /// Name of the baseline model (default: the first).
    #[arg(long)]
    pub baseline: Option<String>,
    /// Only these tasks (comma-separated; default: every task of the reports).
    #[arg(long, value_delimiter = ',')]
    pub tasks: Vec<String>,
    /// Bootstrap resamples.
    #[arg(long, default_value_t = 1000)]
    pub resamples: usize,
    /// Confidence level of the intervals.
    #[arg(long, default_value_t = 0.95)]
    pub level: f64,
    /// Bootstrap seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output folder (compare.json, compare.md, charts).
    #[arg(long)]
    pub out: PathBuf,
}

/// Arguments of `unisight serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Model file (default: zero-shot Lite0, which must match the index).
    #[arg(long, conflicts_with = "experiment")]
    pub model: Option<PathBuf>,
    /// Index folder, or a Milvus collection: milvus://HOST:PORT/COLLECTION[?nprobe=N].
    #[arg(long, required_unless_present_any = ["experiment", "deployment"])]
    pub index: Option<IndexLocation>,
    /// Experiment file (arms, engagement log, study); replaces --model and --index.
    #[arg(long, conflicts_with = "deployment")]
    pub experiment: Option<PathBuf>,
    /// Deployment file naming the model and index to serve (`model = "..."`, `index =
    /// "..."`), read at start and again at each `POST /v1/admin/reload`, which switches the
    /// service to what it names without a failed request (a back-fill's last step); replaces
    /// --model and --index.
    #[arg(long, conflicts_with_all = ["model", "index"])]
    pub deployment: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: std::net::SocketAddr,
    /// Embedding workers (each an ONNX Runtime session).
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Threads per embedding worker (0: ONNX Runtime decides).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Threads one search's scan is split over (default: every core).
    #[arg(long)]
    pub search_threads: Option<usize>,
    /// Most concurrent searches answered by one pass over the codes.
    #[arg(long, default_value_t = 32)]
    pub search_batch: usize,
    /// Search through an inverted file of this many lists instead of scanning every code:
    /// approximate, and its cost hardly grows with the index (0: the exact scan). About
    /// the square root of the item count is a usual start; `unisight index ivf-recall`
    /// measures what it finds.
    #[arg(long, default_value_t = 0)]
    pub ivf_lists: usize,
    /// Lists an inverted-file search scans per query (more: higher recall, slower).
    #[arg(long, default_value_t = 16)]
    pub ivf_probes: usize,
    /// Requests that may wait for a worker before the service answers 503.
    #[arg(long, default_value_t = 32)]
    pub queue: usize,
    /// Folder the items' paths are relative to, for result thumbnails.
    #[arg(long)]
    pub image_root: Option<PathBuf>,
    /// Largest upload, in MiB.
    #[arg(long, default_value_t = 16)]
    pub max_body_mib: usize,
    /// Largest image, in megapixels (checked from the header before decoding).
    #[arg(long, default_value_t = 40)]
    pub max_megapixels: u64,
    /// Largest decoded image, in MB (width x height x channels x bytes per channel, checked
    /// from the header: a 16-bit or alpha image costs more than its pixel count says).
    #[arg(long, default_value_t = unisight_data::decode::DEFAULT_MAX_DECODED_BYTES / 1_000_000)]
    pub max_decoded_mb: u64,
    /// Seconds a request may take once its body is in.
    #[arg(long, default_value_t = unisight_serve::DEFAULT_TIMEOUT_S)]
    pub timeout_s: u64,
    /// Seconds a connection may take to send a request's headers, or sit idle between
    /// requests, before it is closed.
    #[arg(long, default_value_t = unisight_serve::DEFAULT_HEADER_TIMEOUT_S)]
    pub header_timeout_s: u64,
    /// Seconds a whole request, body included, may take before it is answered 408.
    #[arg(long, default_value_t = unisight_serve::DEFAULT_REQUEST_DEADLINE_S)]
    pub request_deadline_s: u64,
    /// Requests a second each client may make (bursts of twice that; 429 beyond); 0: no
    /// limit. Health, readiness and metrics are never limited.
    #[arg(long, default_value_t = 0)]
    pub rate_limit: u32,
    /// Key the rate limit by the first X-Forwarded-For address (set this only behind a proxy
    /// that writes that header).
    #[arg(long)]
    pub trust_forwarded_for: bool,
    /// A host name requests may be addressed to (the `Host` header, port aside); repeat for
    /// several, `*` for any. Others are answered 421, so a web page whose DNS name was rebound
    /// to this address cannot reach the service. Default: the loopback names (`localhost`,
    /// `127.0.0.1`, `[::1]`) when listening on loopback, any host otherwise.
    #[arg(long = "allowed-host", value_name = "NAME")]
    pub allowed_hosts: Vec<String>,
    /// Most connections open at once (more wait unaccepted).
    #[arg(long, default_value_t = unisight_serve::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Environment variable holding the bearer token for add and remove.
    #[arg(long, default_value = "UNISIGHT_TOKEN")]
    pub token_env: String,
}

/// Arguments of `unisight import-fashion-mnist`.
#[derive(Debug, Args)]
pub struct ImportFashionMnistArgs {
    /// Folder with the gzipped IDX files.
    #[arg(long, default_value = unisight_data::fashion_mnist::DEBIAN_DIR)]
    pub from: PathBuf,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Training images per class.
    #[arg(long, default_value_t = 300)]
    pub train_per_class: usize,
    /// Test images per class.
    #[arg(long, default_value_t = 100)]
    pub test_per_class: usize,
}

/// Arguments of `unisight summarize-runs`.
#[derive(Debug, Args)]
pub struct SummarizeRunsArgs {
    /// Work folders of finished runs (`OUT.run`).
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Instead, print each run's validation curve: its score at every validated step under each
    /// `train.validation_metric`, the step each would keep, the step the run kept, and each
    /// task's R@1 / MAP@R (a run still training: up to its latest checkpoint).
    #[arg(long)]
    pub validation: bool,
}

/// Arguments of `unisight sweep`.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// The task file every point starts from.
    #[arg(long)]
    pub config: PathBuf,
    /// The grid (TOML: `seeds = [..]` and a `[grid]` table of dotted task-file keys to value
    /// lists, e.g. `"train.steps" = [750, 1500]`).
    #[arg(long)]
    pub grid: PathBuf,
    /// Folder that relative dataset roots are resolved in (default: the task file's folder).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Runs, models, sweep.md and sweep.json; re-running finishes what is not done.
    #[arg(long)]
    pub out: PathBuf,
    /// Trunk-map caches, shared between runs (default: .cache/trunk).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// No progress output.
    #[arg(long)]
    pub quiet: bool,
}

/// Arguments of `unisight simulate-engagement`.
#[derive(Debug, Args)]
pub struct SimulateEngagementArgs {
    /// Task file naming the dataset.
    #[arg(long)]
    pub config: PathBuf,
    /// Folder relative dataset roots are resolved in (default: the task file's folder).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The labelled set, `dataset:split`.
    #[arg(long)]
    pub set: String,
    /// Label field that decides which results simulated users find relevant.
    #[arg(long)]
    pub label: String,
    /// Baseline model that ranks the results shown (default: zero-shot Lite0).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Searches to simulate.
    #[arg(long, default_value_t = 5000)]
    pub searches: usize,
    /// Results shown per search.
    #[arg(long, default_value_t = 20)]
    pub shown: usize,
    /// Seed of the simulated users.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The log to write (JSON Lines; every event has "simulated": true).
    #[arg(long)]
    pub out: PathBuf,
}

/// Arguments of `unisight simulate-users`.
#[derive(Debug, Args)]
pub struct SimulateUsersArgs {
    /// The service, http://127.0.0.1:PORT or http://localhost:PORT (nothing else).
    #[arg(long)]
    pub url: String,
    /// Folder the query photos' paths are relative to.
    #[arg(long)]
    pub root: PathBuf,
    /// Labelled query photos: `path, fine[, coarse]` per line (e.g. the Grocery Store's test.txt).
    #[arg(long)]
    pub queries: PathBuf,
    /// Labels of the indexed items, by path, in the same format.
    #[arg(long)]
    pub catalog: PathBuf,
    /// Searches in all.
    #[arg(long, default_value_t = 1000)]
    pub searches: usize,
    /// Distinct simulated users (each keeps its arm).
    #[arg(long, default_value_t = 200)]
    pub users: usize,
    /// Results per search.
    #[arg(short, default_value_t = 10)]
    pub k: usize,
    /// Searches in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Seed of the users and their behaviour.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Also write the counts here (JSON).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Arguments of `unisight bench-scatter`.
#[derive(Debug, Args)]
pub struct BenchScatterArgs {
    /// Items (random codes) in the whole catalog.
    #[arg(long, default_value_t = 1_000_000)]
    pub items: usize,
    /// Code width.
    #[arg(long, default_value_t = 256)]
    pub bits: usize,
    /// Shard counts to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    pub shards: Vec<usize>,
    /// Queries (random codes), each sent to every shard.
    #[arg(long, default_value_t = 500)]
    pub queries: usize,
    /// Queries per batch in the throughput run.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Results per query.
    #[arg(short, default_value_t = 10)]
    pub k: usize,
    /// Lists of each shard's inverted file (0: exact scans).
    #[arg(long, default_value_t = 0)]
    pub ivf_lists: usize,
    /// Lists probed per query in each shard.
    #[arg(long, default_value_t = 16)]
    pub ivf_probes: usize,
    /// Seed of the codes and queries.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Replicas of every shard in the open-loop runs, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub replicas: Vec<usize>,
    /// Open-loop runs: queries per second offered, comma-separated (none: no open-loop runs).
    #[arg(long, value_delimiter = ',')]
    pub rates: Vec<f64>,
    /// Seconds of each open-loop run.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Also measure the same codes and queries on a fresh collection of this Milvus server
    /// (made, measured and dropped; an existing collection of that name is refused).
    #[arg(long)]
    pub milvus: Option<MilvusUrl>,
    /// How that collection indexes the codes: `flat` or `ivf:N`.
    #[arg(long, value_parser = parse_server_index, default_value = "flat")]
    pub milvus_index: ServerIndex,
    /// Folder for the shards' index folders (removed after each shard count).
    #[arg(long, default_value = "out/bench-scatter")]
    pub work: PathBuf,
    /// Also write the measurements here (JSON).
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Arguments of `unisight shard-worker`.
#[derive(Debug, Args)]
pub struct ShardWorkerArgs {
    /// The shard's index folder.
    #[arg(long)]
    pub index: PathBuf,
    /// Lists of its inverted file (0: exact scans).
    #[arg(long, default_value_t = 0)]
    pub ivf_lists: usize,
    /// Lists probed per query.
    #[arg(long, default_value_t = 16)]
    pub ivf_probes: usize,
}

/// Arguments of `unisight search`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Index folder, or a Milvus collection: milvus://HOST:PORT/COLLECTION[?nprobe=N].
    #[arg(long)]
    pub index: IndexLocation,
    /// Query image.
    #[arg(long, conflicts_with = "id", required_unless_present = "id")]
    pub image: Option<PathBuf>,
    /// Key of an indexed item ("more like this").
    #[arg(long)]
    pub id: Option<String>,
    /// Model file used to embed the query image (default: zero-shot Lite0).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Number of results.
    #[arg(short, long, default_value_t = 10)]
    pub k: usize,
    /// Re-rank the k * R nearest by Hamming with floats (0 = no re-ranking).
    #[arg(long, default_value_t = 0)]
    pub rerank: usize,
    /// Re-ranking: stored floats, or the float query against stored bits.
    #[arg(long, value_enum, default_value_t = RerankMode::Float)]
    pub rerank_mode: RerankMode,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum RerankMode {
    Float,
    Asymmetric,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum FloatStorage {
    None,
    F16,
    F32,
}

#[derive(Debug, Subcommand)]
pub enum ExperimentCommand {
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
pub enum StudyCommand {
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
    /// Add a rater to a study's rater file (the experiment's `[study] raters`; created if
    /// missing) and print their token once: the file keeps only its SHA-256. With a rater
    /// file, the study page takes ratings only from token holders, under their names.
    AddRater {
        /// Rater file.
        #[arg(long)]
        raters: PathBuf,
        /// The rater's name (no spaces).
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum IndexCommand {
    /// Create an index from an embedding folder (`unisight embed` output).
    Build {
        /// Embedding folder; repeat to merge several (the shards of `embed --shard`, or
        /// parts of one catalog embedded by the same model): every item exactly once.
        #[arg(long, required = true)]
        from: Vec<PathBuf>,
        /// Index folder to create, or a Milvus collection to create:
        /// milvus://HOST:PORT/COLLECTION (all or nothing: a failed build drops it again).
        #[arg(long)]
        out: IndexLocation,
        /// Keep float vectors for re-ranking (a Milvus collection keeps them as f32).
        #[arg(long, value_enum, default_value_t = FloatStorage::F16)]
        floats: FloatStorage,
        /// Keep no string keys or paths: an item costs its code and id (plus floats), and its
        /// key is its id, which for a new index is its row in the embedding folder. Index
        /// folders only.
        #[arg(long)]
        no_keys: bool,
        /// How a Milvus server indexes the codes: `flat` (every code compared, exact) or
        /// `ivf:N` (BIN_IVF_FLAT with N lists, probed by the address's ?nprobe=, all by
        /// default).
        #[arg(long, default_value = "flat", value_parser = parse_server_index)]
        server_index: ServerIndex,
    },
    /// Add the items of an embedding folder (keys must be new).
    Add {
        /// Index folder or milvus://HOST:PORT/COLLECTION.
        #[arg(long)]
        index: IndexLocation,
        /// Embedding folder.
        #[arg(long)]
        from: PathBuf,
    },
    /// Remove items by key (all of them, or none when one is unknown).
    Remove {
        /// Index folder or milvus://HOST:PORT/COLLECTION.
        #[arg(long)]
        index: IndexLocation,
        /// Keys to remove.
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// Check an index against the embedding folders it was built from (a back-fill's check
    /// before the switch): the same number of items, and for a sample of them the same code
    /// under the same key, found at distance 0 by a search with it. Fails otherwise.
    Check {
        /// Index folder or milvus://HOST:PORT/COLLECTION.
        #[arg(long)]
        index: IndexLocation,
        /// Embedding folder; repeat for every shard or part the index was built from.
        #[arg(long, required = true)]
        from: Vec<PathBuf>,
        /// Items sampled for the per-item checks.
        #[arg(long, default_value_t = 100)]
        sample: usize,
        /// Seed of the sample.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Drop a Milvus collection (after a back-fill's switch is confirmed; index folders are
    /// removed as folders).
    Drop {
        /// milvus://HOST:PORT/COLLECTION.
        #[arg(long)]
        index: IndexLocation,
    },
    /// Rewrite the index without deleted items.
    Compact {
        /// Index folder.
        #[arg(long)]
        index: PathBuf,
    },
    /// Print counts and sizes.
    Stats {
        /// Index folder or milvus://HOST:PORT/COLLECTION.
        #[arg(long)]
        index: IndexLocation,
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
