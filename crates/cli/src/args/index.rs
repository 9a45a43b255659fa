//! Arguments of the index commands: `index`, `search`, and the scatter-gather bench
//! (`bench-scatter`, `shard-worker`).

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::index_location::{parse_server_index, IndexLocation};
use unisight_milvus::{MilvusUrl, ServerIndex};

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
