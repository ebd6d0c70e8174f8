//! The arguments both service binaries take, and their start-up: tracing and TLS
//! provider, then the configuration.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use twin_core::config::TwinConfig;

#[derive(Debug, Parser)]
#[command(version)]
pub struct ServiceArgs {
    /// Configuration file (TOML); TWIN_<SECTION>__<KEY> variables override it.
    #[arg(long, env = "TWIN_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log as JSON lines.
    #[arg(long, env = "TWIN_LOG_JSON")]
    pub log_json: bool,
}

/// Parses the arguments as `name` (described by `about`), starts tracing and the TLS
/// provider, and reads the configuration.
pub fn start(name: &'static str, about: &'static str) -> anyhow::Result<TwinConfig> {
    use clap::{CommandFactory, FromArgMatches};
    let matches = ServiceArgs::command().name(name).about(about).get_matches();
    let args = ServiceArgs::from_arg_matches(&matches)?;
    twin_telemetry::init_tracing(args.log_json);
    twin_telemetry::install_tls_provider();
    TwinConfig::from_env(args.config.as_deref()).context("invalid configuration")
}
