//! The `unisight` command: a thin layer over the libraries. [`args`] defines the command line,
//! [`commands`] holds one module per command; `main` only dispatches.

mod args;
mod commands;
mod embedder;
mod index_location;

use anyhow::Result;
use clap::Parser;

use args::{Cli, Command};
use commands::*;

/// mimalloc instead of the C library's allocator: a request to the service allocates and frees
/// many small buffers across threads, where it costs less.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn run(command: Command) -> Result<()> {
    match command {
        Command::Embed(args) => embed::run(args),
        Command::InitModel(args) => model::init(args),
        Command::ExportOnnx(args) => model::export(args),
        Command::BenchModel(args) => model::bench(args),
        Command::Train(args) => train::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Compare(args) => eval::compare(args),
        Command::Serve(args) => serve::run(args),
        Command::ImportFashionMnist(args) => fashion_mnist::run(args),
        Command::SummarizeRuns(args) => train::summarize(args),
        Command::Sweep(args) => train::sweep(args),
        Command::LoadTest(settings) => load_test::run(&settings),
        Command::SimulateEngagement(args) => engagement::run(args),
        Command::SimulateUsers(args) => simulate_users::run(args),
        Command::Index { command } => index::run(command),
        Command::Experiment { command } => experiment::run_experiment(command),
        Command::Study { command } => experiment::run_study(command),
        Command::Search(args) => search::run(args),
        Command::BenchScatter(args) => scatter::run(&args),
        Command::ShardWorker(args) => scatter::worker(&args),
    }
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("UNISIGHT_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if let Err(err) = run(cli.command) {
        // a closed pipe (`unisight search ... | head`) is not a failure
        if err.chain().any(|c| {
            c.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
        }) {
            return;
        }
        eprintln!("error: {}", describe(&err));
        std::process::exit(2);
    }
}

/// The error and its causes joined by ": ", leaving out a cause that the text before it already
/// says (library errors name their cause in their own message, so `{:#}` would print it twice).
fn describe(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn an_error_names_its_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let err = anyhow::Error::new(unisight_core::Error::io("/x/meta.json", io))
            .context("reading embeddings from /x");
        let text = describe(&err);
        assert_eq!(
            text.matches("No such file or directory").count(),
            1,
            "{text}"
        );
        assert!(
            text.starts_with("reading embeddings from /x: /x/meta.json"),
            "{text}"
        );
    }
}
