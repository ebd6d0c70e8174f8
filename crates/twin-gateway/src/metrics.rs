//! The gateway's Prometheus metrics: requests by method and gRPC code, latency, and
//! the execution provider the embedding runtime is on.

use std::time::Duration;

use twin_telemetry::prometheus::{
    self, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
};

#[derive(Debug, Clone)]
pub struct GatewayMetrics {
    pub registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    provider: IntGaugeVec,
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
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(provider.clone()))?;
        Ok(Self {
            registry,
            requests,
            latency,
            provider,
        })
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
