//! The command line: every command's arguments, parsed by clap, grouped as the commands are
//! (model, train, eval, serve, index). What each command does is in [`crate::commands`].

use clap::{Parser, Subcommand};

mod eval;
mod index;
mod model;
mod serve;
mod train;

pub use eval::{CompareArgs, EvalArgs};
pub use index::{
    BenchScatterArgs, FloatStorage, IndexCommand, RerankMode, SearchArgs, ShardWorkerArgs,
};
pub use model::{BenchModelArgs, EmbedArgs, ExportOnnxArgs, InitModelArgs};
pub use serve::{ExperimentCommand, ServeArgs, SimulateUsersArgs, StudyCommand};
pub use train::{
    ImportFashionMnistArgs, SimulateEngagementArgs, SummarizeRunsArgs, SweepArgs, TrainArgs,
};

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
