//! The `unisight` command: a thin layer over the libraries.

mod commands;
mod embedder;
mod evaluation;
mod experiment;
mod load_test;

use clap::Parser;

/// mimalloc instead of the C library's allocator: a request to the service allocates and frees
/// many small buffers across threads, where it costs less.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("UNISIGHT_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = commands::Cli::parse();
    match commands::run(cli) {
        Ok(()) => {}
        Err(err) => {
            // a closed pipe (`unisight search ... | head`) is not a failure
            if err.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return;
            }
            eprintln!("error: {err:#}");
            std::process::exit(2);
        }
    }
}
