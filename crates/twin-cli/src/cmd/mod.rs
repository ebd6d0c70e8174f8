//! Command-line surface: one module per subcommand; this file only wires them.

use clap::{Parser, Subcommand};

mod api;
mod audit;
mod bench;
mod calibrate;
mod client;
mod config;
mod enqueue;
mod eval;
mod face_pairs;
mod health;
mod jobs;
mod keys;
mod labelled;
mod plot;
mod preprocess;
mod search;
mod sentence_pairs;
mod serve;
mod subject_level;
mod synth;
mod verify;

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
    /// Write a synthetic signature dataset: genuine samples and skilled forgeries per writer.
    Synth(synth::SynthArgs),
    /// Enrol a folder of images (DIR/<subject>/<image>) through the gateway; re-runs skip stored images.
    Enqueue(enqueue::EnqueueArgs),
    /// Verify two images against each other, or a probe against an enrolled subject.
    Verify(verify::VerifyArgs),
    /// Search the enrolled images nearest to a probe image.
    Search(search::SearchArgs),
    /// Show an enrolment job's status.
    Jobs(jobs::JobsArgs),
    /// The decisions on record (Verify, VerifySubject, Search): by subject, request id, time.
    Audit(audit::AuditArgs),
    /// Manage the gateway's api keys (with an admin key): list, create, revoke.
    Keys(keys::KeysArgs),
    /// Evaluate a model on a labelled folder: EER, ROC AUC, FAR/FRR at its operating points
    /// (skilled and random forgeries apart), ROC and DET plots.
    Eval(eval::EvalArgs),
    /// Choose thresholds at target FARs on a labelled folder and write them into a model's
    /// manifest as its operating points.
    Calibrate(calibrate::CalibrateArgs),
    /// gRPC health check of a server; exit status 0 when it is serving.
    Health(health::HealthArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Api(args) => api::run(args),
        Command::Preprocess(args) => preprocess::run(args),
        Command::Config(args) => config::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Synth(args) => synth::run(args),
        Command::Enqueue(args) => enqueue::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Search(args) => search::run(args),
        Command::Jobs(args) => jobs::run(args),
        Command::Audit(args) => audit::run(args),
        Command::Keys(args) => keys::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Calibrate(args) => calibrate::run(args),
        Command::Health(args) => health::run(args),
    }
}

/// Logs go to stderr; `RUST_LOG` filters (default: info).
pub fn init_tracing(json: bool) {
    twin_telemetry::init_tracing(json);
}
