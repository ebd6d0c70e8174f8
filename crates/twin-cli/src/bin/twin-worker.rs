//! `twin-worker`: consumes embedding jobs from RabbitMQ and stores the vectors.
//! Configuration from `--config FILE` and `TWIN_*` variables (see `twin config --show`).

mod common;

use std::sync::Arc;

use anyhow::Context;
use twin_embed::ModelRegistry;
use twin_worker::{Worker, WorkerMetrics};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = common::start("twin-worker", "twin's embedding worker")?;
    if config.queue.backend != "rabbitmq" {
        anyhow::bail!(
            "twin-worker consumes from RabbitMQ (queue.backend = \"rabbitmq\", TWIN_QUEUE__BACKEND); \
             for a single process without a broker run `twin serve`"
        );
    }
    let metrics = WorkerMetrics::new().context("metrics registry")?;
    let readiness = twin_telemetry::Readiness::default();
    if !config.worker.metrics_addr.is_empty() {
        twin_telemetry::serve_metrics(
            &config.worker.metrics_addr,
            vec![metrics.registry.clone()],
            readiness.clone(),
        )
        .await?;
    }
    let (dirs, default, embed) = (
        config.models.dirs.clone(),
        config.models.default.clone(),
        config.embed.clone(),
    );
    let models = tokio::task::spawn_blocking(move || ModelRegistry::load(&dirs, &default, &embed))
        .await
        .context("model loading task")??;
    let store = twin_store::open_store(&config.store).await?;
    let queue = twin_queue::JobQueue::connect(&config.queue).await?;
    let worker = Worker::new(
        models,
        Arc::clone(&store),
        queue.clone(),
        config.worker.clone(),
        metrics,
    );
    readiness.set(true);
    let summary = worker.run(twin_telemetry::shutdown_signal()).await?;
    queue.close().await;
    println!(
        "twin-worker stopped: {} stored, {} dead-lettered",
        summary.stored, summary.dead_lettered
    );
    Ok(())
}
