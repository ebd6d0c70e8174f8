//! Command-line surface: one module per subcommand; this file only wires them.

use clap::{Parser, Subcommand};

mod api;
mod bench;
mod config;
mod preprocess;
mod serve;

/// twin — siamese-network verification and similarity search.
#[derive(Debug, Parser)]
#[command(name = "twin", version, about, long_about = None)]
pub struct Cli {
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, global = true, env = "TWIN_LOG_JSON")]
    pub log_json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run twin on this machine: gateway, worker, in-process queue and embedded store.
    Serve(serve::ServeArgs),
    /// Print the public gRPC API: services and their methods.
    Api(api::ApiArgs),
    /// Preprocess a list of images into an .npy tensor cache (for training).
    Preprocess(preprocess::PreprocessArgs),
    /// Check or print the effective configuration (file + TWIN_* variables).
    Config(config::ConfigArgs),
    /// Run a benchmark: a readable table, then one JSON line of figures.
    Bench(bench::BenchArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Api(args) => api::run(args),
        Command::Preprocess(args) => preprocess::run(args),
        Command::Config(args) => config::run(args),
        Command::Bench(args) => bench::run(args),
    }
}

/// Logs go to stderr; `RUST_LOG` filters (default: info).
pub fn init_tracing(json: bool) {
    twin_telemetry::init_tracing(json);
}
