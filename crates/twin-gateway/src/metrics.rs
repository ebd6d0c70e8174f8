//! The gateway's Prometheus metrics: requests by method and gRPC code, latency, the
//! execution provider the embedding runtime is on, and the embedding runs of each model
//! (images per run, run time, express or batched).

use std::time::Duration;

use twin_embed::{BatchRun, Embedder};

use twin_telemetry::prometheus::{
    self, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
};

#[derive(Debug, Clone)]
pub struct GatewayMetrics {
    pub registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    provider: IntGaugeVec,
    batch_size: HistogramVec,
    run_seconds: HistogramVec,
    runs: IntCounterVec,
}

impl GatewayMetrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("twin_gateway".to_owned()), None)?;
        let requests = IntCounterVec::new(
            Opts::new("requests_total", "gRPC requests by method and status code"),
            &["method", "code"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "request_seconds",
                "gRPC request latency until response headers",
            )
            .buckets(vec![
                0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
            ]),
            &["method"],
        )?;
        let provider = IntGaugeVec::new(
            Opts::new(
                "execution_provider",
                "1 for the execution provider the embedding runtime uses",
            ),
            &["provider"],
        )?;
        let batch_size = HistogramVec::new(
            HistogramOpts::new("embed_batch_size", "images per ONNX run, by model")
                .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
            &["model"],
        )?;
        let run_seconds = HistogramVec::new(
            HistogramOpts::new("embed_run_seconds", "time of one ONNX run, by model").buckets(
                vec![
                    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0,
                ],
            ),
            &["model"],
        )?;
        let runs = IntCounterVec::new(
            Opts::new(
                "embed_runs_total",
                "ONNX runs by model, lane (batched: a session thread's micro-batch; express: \
                 a lone caller's job on the helper threads) and outcome",
            ),
            &["model", "lane", "outcome"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(provider.clone()))?;
        registry.register(Box::new(batch_size.clone()))?;
        registry.register(Box::new(run_seconds.clone()))?;
        registry.register(Box::new(runs.clone()))?;
        Ok(Self {
            registry,
            requests,
            latency,
            provider,
            batch_size,
            run_seconds,
            runs,
        })
    }

    /// Records every ONNX run of `model` from now on (its micro-batcher reports them).
    pub fn watch_model(&self, model: &Embedder) {
        let name = model.manifest().name.clone();
        let batch_size = self.batch_size.with_label_values(&[name.as_str()]);
        let run_seconds = self.run_seconds.with_label_values(&[name.as_str()]);
        let runs = self.runs.clone();
        let observed = model.observe_runs(std::sync::Arc::new(move |run: BatchRun| {
            batch_size.observe(run.images as f64);
            run_seconds.observe(run.seconds);
            let lane = if run.express { "express" } else { "batched" };
            let outcome = if run.ok { "ok" } else { "failed" };
            runs.with_label_values(&[name.as_str(), lane, outcome])
                .inc();
        }));
        if !observed {
            tracing::debug!(model = %model.manifest().name, "embedding runs already observed by another registry");
        }
    }

    pub fn set_provider(&self, name: &str) {
        self.provider.with_label_values(&[name]).set(1);
    }

    pub fn observe_refusal(&self, method: &str, code: tonic::Code) {
        self.requests
            .with_label_values(&[method, code_name(code)])
            .inc();
    }

    /// Records a response. The code is read from the headers: tonic sends errors as
    /// "trailers-only" responses (grpc-status in the headers); a response without it
    /// carries its status in the trailers, which for twin's unary calls means OK.
    pub fn observe_response<B>(&self, method: &str, response: &http::Response<B>, took: Duration) {
        let code = response
            .headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<i32>().ok())
            .map(tonic::Code::from_i32)
            .unwrap_or(tonic::Code::Ok);
        self.requests
            .with_label_values(&[method, code_name(code)])
            .inc();
        self.latency
            .with_label_values(&[method])
            .observe(took.as_secs_f64());
    }
}

fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}
