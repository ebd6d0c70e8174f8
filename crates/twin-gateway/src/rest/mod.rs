//! The REST/JSON edge: every RPC as `POST /v1/<method-in-kebab-case>` with the request
//! in proto3's JSON mapping (or multipart/form-data with file uploads), the OpenAPI
//! document at `/openapi.json` and the web console at `/console/`.
//!
//! A REST call is *transcoded*, not reimplemented: its JSON becomes the protobuf
//! request, which goes through the very stack a gRPC call goes through (admission:
//! request id, auth and scopes, load shedding; message limits; the service), and the
//! gRPC answer becomes JSON, its status an HTTP status (`crate::status::http_status`).
//! So no rule of the API exists twice.

mod body;
mod console;
mod methods;
pub mod openapi;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{header, HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use tonic::body::Body;
use tonic::{Code, Status};

pub use methods::{rest_path, RestMethod, METHODS};

use crate::layers::REQUEST_ID;
use crate::status::{code_name, http_status};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Outermost layer of the gateway: gRPC calls pass through untouched; everything
/// else is the REST edge, the OpenAPI document or the console.
#[derive(Debug, Clone)]
pub struct RestLayer {
    max_body_bytes: usize,
}

impl RestLayer {
    /// `max_message_bytes` is the gRPC message limit; a REST body may be twice that
    /// (base64 makes bytes a third longer, JSON adds its names).
    pub fn new(max_message_bytes: usize) -> Self {
        Self {
            max_body_bytes: max_message_bytes.saturating_mul(2),
        }
    }
}

impl<S> tower::Layer<S> for RestLayer {
    type Service = Rest<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Rest {
            inner,
            max_body_bytes: self.max_body_bytes,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Rest<S> {
    inner: S,
    max_body_bytes: usize,
}

fn is_grpc(request: &http::Request<Body>) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

impl<S> tower::Service<http::Request<Body>> for Rest<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        // The clone that was polled ready is the one that must be called.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if is_grpc(&request) {
            return Box::pin(inner.call(request));
        }
        let max_body_bytes = self.max_body_bytes;
        Box::pin(async move {
            let path = request.uri().path().to_owned();
            let method = request.method().clone();
            if let Some(name) = path.strip_prefix("/v1/") {
                let Some(rest) = METHODS.iter().find(|m| m.rest_name() == name) else {
                    return Ok(error_response(
                        &Status::not_found(format!(
                            "no REST method {path}; the methods are listed in /openapi.json"
                        )),
                        None,
                    ));
                };
                if method != Method::POST {
                    return Ok(method_not_allowed("POST"));
                }
                return transcode(&mut inner, rest, request, max_body_bytes).await;
            }
            if method != Method::GET && method != Method::HEAD {
                return Ok(method_not_allowed("GET"));
            }
            Ok(match path.as_str() {
                "/" => redirect("/console/"),
                "/openapi.json" => json_response(StatusCode::OK, openapi::document().clone()),
                _ => match path.strip_prefix("/console/") {
                    Some(file) => console::asset(file).unwrap_or_else(not_found),
                    None if path == "/console" => redirect("/console/"),
                    None => not_found(),
                },
            })
        })
    }
}

/// JSON (or multipart) in, gRPC through `inner`, JSON out.
async fn transcode<S>(
    inner: &mut S,
    rest: &'static RestMethod,
    request: http::Request<Body>,
    max_body_bytes: usize,
) -> Result<http::Response<Body>, S::Error>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>>,
{
    let (parts, body) = request.into_parts();
    let value = match body::request_json(&parts.headers, body, max_body_bytes).await {
        Ok(value) => value,
        Err(message) => {
            return Ok(error_response(&Status::invalid_argument(message), None));
        }
    };
    let messages = match (rest.encode)(value) {
        Ok(messages) => messages,
        Err(message) => {
            return Ok(error_response(
                &Status::invalid_argument(format!(
                    "{}: the body is not a valid {}: {message}",
                    rest.rest_path(),
                    rest.request_name()
                )),
                None,
            ));
        }
    };
    let mut framed = Vec::new();
    for message in messages {
        framed.push(0u8); // not compressed
        framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
        framed.extend_from_slice(&message);
    }
    let mut grpc = http::Request::builder()
        .method(Method::POST)
        .uri(rest.grpc_path)
        .header(header::CONTENT_TYPE, "application/grpc")
        .header("te", "trailers");
    // The caller's credentials and request id travel as they would in gRPC metadata.
    for name in [header::AUTHORIZATION.as_str(), REQUEST_ID] {
        if let Some(value) = parts.headers.get(name) {
            grpc = grpc.header(name, value.clone());
        }
    }
    let grpc = match grpc.body(Body::new(Full::new(Bytes::from(framed)))) {
        Ok(grpc) => grpc,
        Err(e) => {
            return Ok(error_response(
                &Status::invalid_argument(format!("bad request headers: {e}")),
                None,
            ))
        }
    };
    let response = inner.call(grpc).await?;
    let request_id = response.headers().get(REQUEST_ID).cloned();
    let (head, body) = response.into_parts();
    let collected = match body.collect().await {
        Ok(collected) => collected,
        Err(e) => {
            return Ok(error_response(
                &Status::internal(format!("reading the answer: {e}")),
                request_id,
            ))
        }
    };
    let trailers = collected.trailers().cloned();
    let status = Status::from_header_map(&head.headers)
        .or_else(|| trailers.as_ref().and_then(Status::from_header_map))
        .unwrap_or_else(|| Status::internal("the answer carried no gRPC status"));
    if status.code() != Code::Ok {
        return Ok(error_response(&status, request_id));
    }
    let bytes = collected.to_bytes();
    let message = match bytes.get(5..) {
        Some(message) if bytes.first() == Some(&0) => message,
        _ => {
            return Ok(error_response(
                &Status::internal("the answer was not one uncompressed gRPC message"),
                request_id,
            ))
        }
    };
    match (rest.decode)(message) {
        Ok(json) => {
            let mut response = json_response(StatusCode::OK, json);
            if let Some(id) = request_id {
                response.headers_mut().insert(REQUEST_ID, id);
            }
            Ok(response)
        }
        Err(message) => Ok(error_response(
            &Status::internal(format!("encoding the answer as JSON: {message}")),
            request_id,
        )),
    }
}

fn json_response(status: StatusCode, json: impl Into<Bytes>) -> http::Response<Body> {
    let mut response = http::Response::new(Body::new(Full::new(json.into())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// `{"code": "INVALID_ARGUMENT", "message": "...", "requestId": "..."}` with the
/// code's HTTP status.
fn error_response(status: &Status, request_id: Option<HeaderValue>) -> http::Response<Body> {
    // Refused before admission (a body that does not parse): an id of its own all the same.
    let request_id =
        request_id.or_else(|| HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).ok());
    let id = request_id
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let body = serde_json::json!({
        "code": code_name(status.code()),
        "message": status.message(),
        "requestId": id,
    });
    let mut response = json_response(http_status(status.code()), body.to_string());
    if let Some(id) = request_id {
        response.headers_mut().insert(REQUEST_ID, id);
    }
    response
}

fn not_found() -> http::Response<Body> {
    error_response(
        &Status::not_found(
            "not found: the API is under /v1/ (see /openapi.json), the console at /console/",
        ),
        None,
    )
}

fn method_not_allowed(allowed: &'static str) -> http::Response<Body> {
    let mut response = error_response(
        &Status::invalid_argument(format!("method not allowed here; use {allowed}")),
        None,
    );
    *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allowed));
    response
}

fn redirect(to: &'static str) -> http::Response<Body> {
    let mut response = http::Response::new(Body::empty());
    *response.status_mut() = StatusCode::FOUND;
    response
        .headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(to));
    response
}
