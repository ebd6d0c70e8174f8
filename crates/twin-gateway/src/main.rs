//! `twin-gateway`: the twin.v1 gRPC gateway. Configuration from `--config FILE` and
//! `TWIN_*` variables (see `twin config --show`).

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use twin_core::config::TwinConfig;
use twin_gateway::{AppState, BoundGateway, GatewayMetrics};

#[derive(Debug, Parser)]
#[command(name = "twin-gateway", version, about = "twin's gRPC gateway")]
struct Args {
    /// Configuration file (TOML); TWIN_<SECTION>__<KEY> variables override it.
    #[arg(long, env = "TWIN_CONFIG")]
    config: Option<PathBuf>,
    /// Log as JSON lines.
    #[arg(long, env = "TWIN_LOG_JSON")]
    log_json: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    twin_telemetry::init_tracing(args.log_json);
    twin_telemetry::install_tls_provider();
    let config = TwinConfig::from_env(args.config.as_deref()).context("invalid configuration")?;
    let metrics = GatewayMetrics::new().context("metrics registry")?;
    let readiness = twin_telemetry::Readiness::default();
    if !config.gateway.metrics_addr.is_empty() {
        twin_telemetry::serve_metrics(
            &config.gateway.metrics_addr,
            vec![metrics.registry.clone()],
            readiness.clone(),
        )
        .await?;
    }
    let (state, feed) = AppState::open(&config).await?;
    let bound = BoundGateway::bind(&config.gateway.addr).await?;
    // Tests and scripts read this line to learn the port when it was 0.
    println!("twin-gateway listening on {}", bound.addr);
    readiness.set(true);
    bound
        .serve(
            state.clone(),
            &config.gateway,
            metrics,
            twin_telemetry::shutdown_signal(),
        )
        .await?;
    readiness.set(false);
    feed.stop().await;
    state.queue.close().await;
    Ok(())
}
