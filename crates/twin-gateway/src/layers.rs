//! Tower layers around every gRPC call, in one place: request ids, authentication and
//! load shedding. Each rejects with a proper gRPC status before the service runs.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::Semaphore;
use tonic::Status;

use crate::auth::{AuthError, KeyRing};
use crate::metrics::GatewayMetrics;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Metadata key carrying the request id (taken from the client if it sent one).
pub const REQUEST_ID: &str = "x-request-id";

/// Admission control: assigns a request id, checks the api key for the method's scope
/// (putting the [`crate::auth::Caller`] into the request's extensions), and sheds load past `max_concurrent` in-flight requests with RESOURCE_EXHAUSTED
/// instead of queueing without bound.
#[derive(Debug, Clone)]
pub struct AdmissionLayer {
    keys: Arc<KeyRing>,
    permits: Arc<Semaphore>,
    metrics: GatewayMetrics,
}

impl AdmissionLayer {
    pub fn new(keys: Arc<KeyRing>, max_concurrent: usize, metrics: GatewayMetrics) -> Self {
        Self {
            keys,
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            metrics,
        }
    }
}

impl<S> tower::Layer<S> for AdmissionLayer {
    type Service = Admission<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Admission {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Admission<S> {
    inner: S,
    layer: AdmissionLayer,
}

impl<S, B> tower::Service<http::Request<B>> for Admission<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The clone that was polled ready is the one that must be called.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let path = request.uri().path().to_owned();
            let request_id = request
                .headers()
                .get(REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty() && v.len() <= 128)
                .map(str::to_owned)
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            if let Ok(value) = http::HeaderValue::from_str(&request_id) {
                request.headers_mut().insert(REQUEST_ID, value);
            }
            let authorization = request
                .headers()
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            let caller = match layer.keys.current().authorize(&path, authorization) {
                Ok(caller) => caller,
                Err(error) => {
                    let status = match error {
                        AuthError::Scope { .. } => Status::permission_denied(error.to_string()),
                        _ => Status::unauthenticated(error.to_string()),
                    };
                    tracing::warn!(request_id, path, reason = %error, "request refused by auth");
                    layer.metrics.observe_refusal(&path, status.code());
                    return Ok(with_request_id(status.into_http(), &request_id));
                }
            };
            request.extensions_mut().insert(caller);
            let Ok(_permit) = layer.permits.clone().try_acquire_owned() else {
                let status = Status::resource_exhausted(
                    "server busy: too many requests in flight; retry with backoff",
                );
                tracing::warn!(request_id, path, "request shed: concurrency limit reached");
                layer.metrics.observe_refusal(&path, status.code());
                return Ok(with_request_id(status.into_http(), &request_id));
            };
            let span = tracing::info_span!("rpc", request_id = %request_id, method = %path);
            let started = std::time::Instant::now();
            let response = tracing::Instrument::instrument(inner.call(request), span).await?;
            let response = undecodable_is_invalid_argument(response);
            layer
                .metrics
                .observe_response(&path, &response, started.elapsed());
            Ok(with_request_id(response, &request_id))
        })
    }
}

/// What prost says of a message it cannot decode (`DecodeError`'s display), as the
/// `grpc-message` header carries it: spaces percent-encoded, or not.
const UNDECODABLE: [&str; 2] = [
    "failed%20to%20decode%20Protobuf%20message",
    "failed to decode Protobuf message",
];

/// tonic answers a request it cannot decode (a `string` field that is not UTF-8, a
/// truncated message) with INTERNAL, though the fault is the client's: rewrite that
/// answer to INVALID_ARGUMENT, keeping prost's message, which names the field.
/// Put before prost's message, percent-encoded as grpc-message is.
const UNDECODABLE_PREFIX: &str =
    "malformed%20request%20(every%20text%20field%20must%20be%20valid%20UTF-8):%20";

fn undecodable_is_invalid_argument<B>(mut response: http::Response<B>) -> http::Response<B> {
    let headers = response.headers();
    let internal = headers
        .get("grpc-status")
        .is_some_and(|v| v.as_bytes() == b"13");
    let undecodable = headers.get("grpc-message").is_some_and(|v| {
        UNDECODABLE
            .iter()
            .any(|u| v.as_bytes().starts_with(u.as_bytes()))
    });
    if internal && undecodable {
        let message = headers.get("grpc-message").map(|v| v.as_bytes().to_vec());
        let headers = response.headers_mut();
        headers.insert("grpc-status", http::HeaderValue::from_static("3"));
        // Say what usually causes it; prost's own words (which name the field) follow.
        let mut explained = UNDECODABLE_PREFIX.as_bytes().to_vec();
        explained.extend(message.unwrap_or_default());
        if let Ok(value) = http::HeaderValue::from_bytes(&explained) {
            headers.insert("grpc-message", value);
        }
    }
    response
}

fn with_request_id<B>(mut response: http::Response<B>, request_id: &str) -> http::Response<B> {
    if let Ok(value) = http::HeaderValue::from_str(request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}
