//! The worker's Prometheus metrics.

use twin_telemetry::prometheus::{
    self, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

#[derive(Debug, Clone)]
pub struct WorkerMetrics {
    pub registry: Registry,
    pub consumed: IntCounter,
    pub embedded: IntCounter,
    pub failed: IntCounterVec,
    pub retried: IntCounterVec,
    pub batch_size: Histogram,
    pub embed_seconds: Histogram,
    pub store_seconds: Histogram,
    /// Seconds from enqueue to stored, per job.
    pub lag_seconds: Histogram,
    /// Jobs waiting in the queue (sampled).
    pub queue_ready: IntGauge,
}

fn latency_buckets() -> Vec<f64> {
    vec![
        0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0,
    ]
}

impl WorkerMetrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("twin_worker".to_owned()), None)?;
        let consumed = IntCounter::new("jobs_consumed_total", "deliveries received")?;
        let embedded = IntCounter::new("jobs_embedded_total", "jobs embedded and stored")?;
        let failed = IntCounterVec::new(
            Opts::new("jobs_failed_total", "jobs dead-lettered, by reason"),
            &["reason"],
        )?;
        let retried = IntCounterVec::new(
            Opts::new("jobs_retried_total", "transient failures retried, by cause"),
            &["cause"],
        )?;
        let batch_size = Histogram::with_opts(
            HistogramOpts::new("batch_size", "jobs per micro-batch")
                .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
        )?;
        let embed_seconds = Histogram::with_opts(
            HistogramOpts::new("embed_seconds", "preprocess + embed time per batch")
                .buckets(latency_buckets()),
        )?;
        let store_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "store_seconds",
                "upsert (wait until applied) time per batch",
            )
            .buckets(latency_buckets()),
        )?;
        let lag_seconds = Histogram::with_opts(
            HistogramOpts::new("job_lag_seconds", "enqueue to stored, per job")
                .buckets(latency_buckets()),
        )?;
        let queue_ready = IntGauge::new("queue_ready_jobs", "jobs waiting in the queue")?;
        registry.register(Box::new(consumed.clone()))?;
        registry.register(Box::new(embedded.clone()))?;
        registry.register(Box::new(failed.clone()))?;
        registry.register(Box::new(retried.clone()))?;
        registry.register(Box::new(batch_size.clone()))?;
        registry.register(Box::new(embed_seconds.clone()))?;
        registry.register(Box::new(store_seconds.clone()))?;
        registry.register(Box::new(lag_seconds.clone()))?;
        registry.register(Box::new(queue_ready.clone()))?;
        Ok(Self {
            registry,
            consumed,
            embedded,
            failed,
            retried,
            batch_size,
            embed_seconds,
            store_seconds,
            lag_seconds,
            queue_ready,
        })
    }
}
