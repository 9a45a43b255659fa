//! Arguments of the service and its experiments: `serve`, `simulate-users`, `experiment`,
//! `study`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::index_location::IndexLocation;

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
