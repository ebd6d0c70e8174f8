//! `twin serve`: the whole system in one process — the gateway, an in-process worker,
//! an in-process queue and the embedded Qdrant engine under a data directory. No
//! servers needed; stop it with Ctrl-C.

use std::path::PathBuf;

use anyhow::Context;
use twin_core::config::TwinConfig;
use twin_gateway::{AppState, BoundGateway, GatewayMetrics};
use twin_worker::{Worker, WorkerMetrics};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Configuration file (TOML); TWIN_<SECTION>__<KEY> variables override it.
    #[arg(long, env = "TWIN_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where the embedded store and the job statuses live.
    #[arg(long, default_value = ".twin")]
    pub data_dir: PathBuf,
    /// gRPC address to listen on (overrides gateway.addr).
    #[arg(long)]
    pub addr: Option<String>,
    /// Model directory to serve (overrides models.dirs); repeat for several.
    #[arg(long = "model")]
    pub models: Vec<PathBuf>,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let mut config =
        TwinConfig::from_env(args.config.as_deref()).context("invalid configuration")?;
    config.use_embedded(&args.data_dir);
    if let Some(addr) = args.addr {
        config.gateway.addr = addr;
    }
    if !args.models.is_empty() {
        config.models.dirs = args.models;
    }
    config.validate()?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(serve(config))
}

async fn serve(config: TwinConfig) -> anyhow::Result<()> {
    let gateway_metrics = GatewayMetrics::new().context("metrics registry")?;
    let worker_metrics = WorkerMetrics::new().context("metrics registry")?;
    let readiness = twin_telemetry::Readiness::default();
    if !config.gateway.metrics_addr.is_empty() {
        let registries = vec![
            gateway_metrics.registry.clone(),
            worker_metrics.registry.clone(),
        ];
        twin_telemetry::serve_metrics(&config.gateway.metrics_addr, registries, readiness.clone())
            .await?;
    }
    let (state, feed) = AppState::open(&config).await?;
    let bound = BoundGateway::bind(&config.gateway.addr).await?;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let worker = Worker::new(
        state.models.clone(),
        state.store.clone(),
        state.queue.clone(),
        config.worker.clone(),
        worker_metrics,
    );
    let worker_task = tokio::spawn(worker.run(stopped(stop_rx.clone())));
    tokio::spawn(async move {
        twin_telemetry::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });

    let model = state.models.default_model();
    println!(
        "twin serving on {} (model {} on {}, store {}, queue in-process)",
        bound.addr,
        model.manifest().name,
        model.provider().name,
        config.store.data_dir.display()
    );
    readiness.set(true);
    bound
        .serve(
            state.clone(),
            &config.gateway,
            gateway_metrics,
            stopped(stop_rx),
        )
        .await?;
    readiness.set(false);
    match worker_task.await {
        Ok(Ok(summary)) => tracing::info!(stored = summary.stored, "worker finished"),
        Ok(Err(error)) => tracing::error!(error = %error, "worker failed"),
        Err(error) => tracing::error!(error = %error, "worker task failed"),
    }
    feed.stop().await;
    state.queue.close().await;
    Ok(())
}
