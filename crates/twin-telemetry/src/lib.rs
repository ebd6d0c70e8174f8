//! What every twin binary needs to be observable: structured logs, a Prometheus
//! registry, and a tiny HTTP endpoint serving `/metrics` and `/healthz`.
//!
//! The endpoint is deliberately minimal (one GET per connection, no keep-alive): it is
//! scraped every few seconds, and a full HTTP stack would be a heavy dependency for it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use prometheus::{Encoder, Registry, TextEncoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub use prometheus;

/// What is logged when `RUST_LOG` is unset: twin's own info, but only warnings from
/// ONNX Runtime, whose info level lists every graph node at each session start, and only
/// errors from the two qdrant-edge modules that warn on every healthy start: they expect
/// Qdrant's own `main` to have initialised feature flags and a multi-mmap check, which the
/// library offers no public way to do ("Feature flags not initialized!",
/// "MULTI_MMAP_SUPPORT_CHECK_RESULT should be initialized"); both fall back to the defaults.
pub const DEFAULT_LOG_FILTER: &str =
    "info,ort=warn,qdrant_edge::common::flags=error,qdrant_edge::common::mmap::ops=error";

/// Logs go to stderr; `RUST_LOG` filters (default [`DEFAULT_LOG_FILTER`]). Safe to call
/// twice (the second call is ignored), which tests that start several components need.
pub fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::new(log_filter(std::env::var("RUST_LOG").ok()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _already_set = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// The filter for `RUST_LOG` (`None`: unset): [`DEFAULT_LOG_FILTER`] when unset or empty;
/// otherwise the user's directives, with the two qdrant-edge start-up warnings kept quiet
/// unless the user's filter names qdrant_edge itself.
fn log_filter(rust_log: Option<String>) -> String {
    match rust_log.filter(|f| !f.trim().is_empty()) {
        None => DEFAULT_LOG_FILTER.to_owned(),
        Some(user) if user.contains("qdrant_edge") => user,
        Some(user) => {
            format!("{user},qdrant_edge::common::flags=error,qdrant_edge::common::mmap::ops=error")
        }
    }
}

/// Whether the process is ready to serve; `/healthz` answers 200 when it is, 503 when not.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot listen for metrics on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// Serves `/metrics` (Prometheus text format, every registry given) and `/healthz` on
/// `addr` until the task is dropped. Returns the bound address (useful with port 0).
pub async fn serve_metrics(
    addr: &str,
    registries: Vec<Registry>,
    readiness: Readiness,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), TelemetryError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| TelemetryError::Bind {
            addr: addr.to_owned(),
            source,
        })?;
    let bound = listener
        .local_addr()
        .map_err(|source| TelemetryError::Bind {
            addr: addr.to_owned(),
            source,
        })?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let registries = registries.clone();
            let readiness = readiness.clone();
            tokio::spawn(async move {
                let mut buffer = [0u8; 1024];
                let Ok(read) = stream.read(&mut buffer).await else {
                    return;
                };
                let request = String::from_utf8_lossy(&buffer[..read]);
                let path = request.split_whitespace().nth(1).unwrap_or("/");
                let (status, content_type, body) = respond(path, &registries, &readiness);
                let head = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(&body).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    tracing::info!(addr = %bound, "metrics and health endpoint listening");
    Ok((bound, task))
}

fn respond(
    path: &str,
    registries: &[Registry],
    readiness: &Readiness,
) -> (&'static str, &'static str, Vec<u8>) {
    match path {
        "/metrics" => {
            let encoder = TextEncoder::new();
            let mut body = Vec::new();
            match encoder.encode(
                &registries
                    .iter()
                    .flat_map(Registry::gather)
                    .collect::<Vec<_>>(),
                &mut body,
            ) {
                Ok(()) => ("200 OK", "text/plain; version=0.0.4", body),
                Err(e) => (
                    "500 Internal Server Error",
                    "text/plain",
                    e.to_string().into_bytes(),
                ),
            }
        }
        "/healthz" if readiness.is_ready() => ("200 OK", "text/plain", b"ok\n".to_vec()),
        "/healthz" => (
            "503 Service Unavailable",
            "text/plain",
            b"not ready\n".to_vec(),
        ),
        _ => (
            "404 Not Found",
            "text/plain",
            b"try /metrics or /healthz\n".to_vec(),
        ),
    }
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT): the signal to shut down gracefully.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("ctrl-c received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}

/// Chooses rustls's crypto provider (ring) for the whole process. Two providers are linked in
/// (ring through tonic, aws-lc-rs through a dependency), and rustls then refuses to pick one
/// itself: without this the first TLS listener or connection panics. Every binary calls it at
/// start; a second call changes nothing.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::log_filter;

    #[test]
    fn qdrant_edge_start_up_warnings_stay_quiet_under_a_user_filter() {
        assert_eq!(log_filter(None), super::DEFAULT_LOG_FILTER);
        assert_eq!(log_filter(Some(" ".into())), super::DEFAULT_LOG_FILTER);
        let user = log_filter(Some("debug".into()));
        assert!(user.starts_with("debug,"), "{user}");
        assert!(user.contains("qdrant_edge::common::flags=error"), "{user}");
        assert_eq!(
            log_filter(Some("qdrant_edge=debug".into())),
            "qdrant_edge=debug"
        );
    }
}
