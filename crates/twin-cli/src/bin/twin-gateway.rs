//! `twin-gateway`: the twin.v1 gRPC gateway. Configuration from `--config FILE` and
//! `TWIN_*` variables (see `twin config --show`).

mod common;

use anyhow::Context;
use twin_gateway::{AppState, BoundGateway, GatewayMetrics};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = common::start("twin-gateway", "twin's gRPC gateway")?;
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
