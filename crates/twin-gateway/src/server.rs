//! Builds the gRPC server: the twin services, standard health and reflection, message
//! limits, deadlines, admission control (auth, load shedding), optional TLS and a
//! graceful shutdown with a deadline.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;
use twin_core::config::GatewayConfig;
use twin_proto::v1::api_keys_server::ApiKeysServer;
use twin_proto::v1::audit_trail_server::AuditTrailServer;
use twin_proto::v1::enrollment_server::EnrollmentServer;
use twin_proto::v1::models_server::ModelsServer;
use twin_proto::v1::similarity_server::SimilarityServer;
use twin_proto::v1::verification_server::VerificationServer;

use crate::auth::AuthError;
use crate::layers::AdmissionLayer;
use crate::metrics::GatewayMetrics;
use crate::rest::RestLayer;
use crate::service::audit::AuditTrailService;
use crate::service::enrollment::EnrollmentService;
use crate::service::keys::ApiKeysService;
use crate::service::models::ModelsService;
use crate::service::similarity::SimilarityService;
use crate::service::verification::VerificationService;
use crate::state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("tls: {0}")]
    Tls(String),
    #[error("reflection service: {0}")]
    Reflection(String),
    #[error("grpc server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// A bound, not yet serving, gateway: the address is known (useful with port 0).
pub struct BoundGateway {
    listener: TcpListener,
    pub addr: SocketAddr,
}

impl BoundGateway {
    pub async fn bind(addr: &str) -> Result<Self, ServeError> {
        let bind_error = |source| ServeError::Bind {
            addr: addr.to_owned(),
            source,
        };
        let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        Ok(Self { listener, addr })
    }

    /// Serves until `shutdown` resolves, then lets in-flight calls finish for at most
    /// `config.shutdown_deadline_s`.
    pub async fn serve(
        self,
        state: AppState,
        config: &GatewayConfig,
        metrics: GatewayMetrics,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let keys = state.keys.clone();
        keys.watch();
        for model in state.models.all() {
            metrics.set_provider(model.provider().name);
            metrics.watch_model(model);
        }

        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        // Both reflection versions: grpcurl and older tools still ask v1alpha.
        let reflection_builder = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(twin_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let reflection = reflection_builder()
            .build_v1()
            .map_err(|e| ServeError::Reflection(e.to_string()))?;
        let reflection_alpha = reflection_builder()
            .build_v1alpha()
            .map_err(|e| ServeError::Reflection(e.to_string()))?;

        let max = config.max_message_bytes;
        let verification = VerificationServer::new(VerificationService {
            state: state.clone(),
        })
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
        let similarity = SimilarityServer::new(SimilarityService {
            state: state.clone(),
        })
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
        let enrollment = EnrollmentServer::new(EnrollmentService {
            state: state.clone(),
        })
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
        let audit_trail = AuditTrailServer::new(AuditTrailService {
            state: state.clone(),
        });
        let api_keys = ApiKeysServer::new(ApiKeysService {
            state: state.clone(),
        });
        let models = ModelsServer::new(ModelsService { state });
        for name in [
            "twin.v1.Verification",
            "twin.v1.Similarity",
            "twin.v1.Enrollment",
            "twin.v1.Models",
            "twin.v1.AuditTrail",
            "twin.v1.ApiKeys",
            "",
        ] {
            health_reporter
                .set_service_status(name, tonic_health::ServingStatus::Serving)
                .await;
        }

        let tls = if config.tls_cert.is_empty() {
            None
        } else {
            Some(tls_acceptor(&config.tls_cert, &config.tls_key)?)
        };
        let builder = Server::builder();
        // HTTP/1.1 too, for the REST edge and the console (gRPC stays on HTTP/2).
        let router = builder
            .accept_http1(true)
            .timeout(Duration::from_millis(config.request_timeout_ms))
            .layer(RestLayer::new(config.max_message_bytes))
            .layer(AdmissionLayer::new(
                keys,
                config.max_concurrent_requests,
                metrics,
            ))
            .add_service(health_service)
            .add_service(reflection)
            .add_service(reflection_alpha)
            .add_service(verification)
            .add_service(similarity)
            .add_service(enrollment)
            .add_service(audit_trail)
            .add_service(api_keys)
            .add_service(models);

        tracing::info!(addr = %self.addr, tls = !config.tls_cert.is_empty(), "gateway serving");
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let deadline = Duration::from_secs(config.shutdown_deadline_s);
        let shutdown = async move {
            shutdown.await;
            tracing::info!("gateway shutting down: finishing in-flight requests");
            let _ = stop_tx.send(());
        };
        let serving: std::pin::Pin<
            Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send>,
        > = match tls {
            // TCP_NODELAY on every connection: tonic sets it only on listeners it
            // binds itself. Without it a response's last frames wait for the client's
            // delayed ACK (Nagle), some 40 ms on every unary call.
            None => Box::pin(router.serve_with_incoming_shutdown(
                TcpIncoming::from(self.listener).with_nodelay(Some(true)),
                shutdown,
            )),
            Some(acceptor) => Box::pin(
                router
                    .serve_with_incoming_shutdown(tls_incoming(self.listener, acceptor), shutdown),
            ),
        };
        tokio::pin!(serving);
        tokio::select! {
            result = &mut serving => result?,
            () = async {
                let _ = stop_rx.await;
                tokio::time::sleep(deadline).await;
            } => {
                tracing::warn!(deadline_s = deadline.as_secs(), "shutdown deadline passed; dropping in-flight requests");
            }
        }
        Ok(())
    }
}

/// TLS with both ALPN protocols, h2 (gRPC, and REST clients that speak it) and
/// http/1.1 (REST clients that do not): tonic's own TLS offers h2 only, so an
/// HTTP/1.1 client that says so would be refused in the handshake.
fn tls_acceptor(cert: &str, key: &str) -> Result<tokio_rustls::TlsAcceptor, ServeError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| ServeError::Tls(format!("{cert}: {e}")))?;
    if certs.is_empty() {
        return Err(ServeError::Tls(format!("{cert}: no PEM certificate in it")));
    }
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| ServeError::Tls(format!("{key}: {e}")))?;
    // ring, whatever the process default is (twin's binaries install ring too).
    let provider = std::sync::Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServeError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServeError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)))
}

/// How long a client may take over its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepted connections after their TLS handshake; a failed handshake is logged and
/// dropped without holding up the others.
fn tls_incoming(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
) -> tokio_stream::wrappers::ReceiverStream<
    Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>, std::io::Error>,
> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            if tx.is_closed() {
                break;
            }
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
