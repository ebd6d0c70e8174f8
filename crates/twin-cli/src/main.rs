//! `twin`: the one command for people — serve the embedded all-in-one system, enrol,
//! verify, search, evaluate, calibrate, synthesize data and run benchmarks.

mod cmd;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cmd::Cli::parse();
    cmd::init_tracing(cli.log_json);
    twin_telemetry::install_tls_provider();
    match cmd::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("twin: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
