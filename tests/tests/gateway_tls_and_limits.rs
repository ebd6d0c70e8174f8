//! The gateway's transport edges on the real `twin serve`: TLS end to end (server and
//! client: tonic with the test CA, the `twin` command with `--ca-cert`, and REST from an
//! HTTP/1.1-only client), and load
//! shedding provoked for real (an in-flight limit of 1 held by an open stream).

use std::time::Duration;

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
use tonic::{Code, Request};
use twin_proto::v1 as pb;
use twin_proto::v1::enrollment_client::EnrollmentClient;
use twin_proto::v1::models_client::ModelsClient;
use twin_tests::{bin, channel, dev_model, repo_root, TwinProcess};

fn fixture(name: &str) -> String {
    repo_root()
        .join("tests/fixtures/tls")
        .join(name)
        .display()
        .to_string()
}

/// `https://localhost:<port>` of a server that printed `127.0.0.1:<port>`.
fn https_url(process: &TwinProcess) -> String {
    let url = process.url();
    let port = url.rsplit(':').next().expect("a port");
    format!("https://localhost:{port}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_clients_that_trust_its_ca_and_refuses_plain_text() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = [
        ("TWIN_GATEWAY__TLS_CERT", fixture("server.pem")),
        ("TWIN_GATEWAY__TLS_KEY", fixture("server.key")),
    ];
    let serve = TwinProcess::serve(dir.path(), &[&dev_model()], &env).await;
    let url = https_url(&serve);

    let ca = std::fs::read(fixture("ca.pem")).expect("ca.pem");
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name("localhost");
    let secure = Endpoint::from_shared(url.clone())
        .expect("url")
        .tls_config(tls)
        .expect("tls config")
        .connect()
        .await
        .expect("a TLS client with the CA connects");
    let listed = ModelsClient::new(secure)
        .list_models(Request::new(pb::ListModelsRequest {}))
        .await
        .expect("ListModels over TLS")
        .into_inner();
    assert_eq!(listed.models.len(), 1);

    // Plain HTTP/2 to the TLS port gets no answer.
    let plain = Endpoint::from_shared(serve.url())
        .expect("url")
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5));
    let refused = match plain.connect().await {
        Err(_) => true,
        Ok(channel) => ModelsClient::new(channel)
            .list_models(Request::new(pb::ListModelsRequest {}))
            .await
            .is_err(),
    };
    assert!(
        refused,
        "a plain-text client must not be served on the TLS port"
    );

    // The `twin` command: trusts the CA given with --ca-cert, refuses the server without it.
    let twin = |with_ca: bool| {
        let mut command = std::process::Command::new(bin("twin"));
        command
            .args(["health", "--addr", &url])
            .env("RUST_LOG", "warn");
        if with_ca {
            command.args(["--ca-cert", &fixture("ca.pem")]);
        }
        command.output().expect("run twin health")
    };
    let trusted = twin(true);
    assert!(trusted.status.success(), "{trusted:?}");
    let untrusted = twin(false);
    assert!(
        !untrusted.status.success(),
        "an unknown CA must not be trusted: {untrusted:?}"
    );

    // REST on the same TLS port, from a client that speaks only HTTP/1.1 and says so
    // in its ALPN (as Python's requests does): served, not refused in the handshake.
    let answer = http1_over_tls(&url, "POST /v1/list-models", &fixture("ca.pem")).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"models\""), "{answer}");
}

/// One HTTP/1.1 request (no body) over TLS with ALPN `http/1.1` only; the whole answer.
async fn http1_over_tls(url: &str, request_line: &str, ca: &str) -> String {
    use rustls_pki_types::pem::PemObject;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let port = url.rsplit(':').next().expect("a port");
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(ca).expect("ca.pem") {
        roots.add(cert.expect("a certificate")).expect("a CA");
    }
    let provider = std::sync::Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
        .await
        .expect("connect");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("an HTTP/1.1-only TLS client is accepted");
    let request = format!(
        "{request_line} HTTP/1.1\r\nhost: localhost\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    );
    tls.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), tls.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_in_flight_limit_requests_are_shed_with_resource_exhausted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = [("TWIN_GATEWAY__MAX_CONCURRENT_REQUESTS", "1".to_owned())];
    let serve = TwinProcess::serve(dir.path(), &[&dev_model()], &env).await;
    let channel = channel(&serve.url()).await;

    // An EnqueueBatch stream that stays open holds the one permit until it ends. It is
    // opened again whenever it was itself shed: a probe below that was in flight when the
    // stream arrived held the one permit then.
    let open_held = || {
        let (items, stream) = tokio::sync::mpsc::channel::<pb::EnqueueItem>(1);
        let mut enrollment = EnrollmentClient::new(channel.clone());
        let held = tokio::spawn(async move {
            enrollment
                .enqueue_batch(tokio_stream::wrappers::ReceiverStream::new(stream))
                .await
        });
        (items, held)
    };
    let (mut items, mut held) = open_held();
    // One item on the stream, so its frames are flushed to the server now: an empty
    // client stream may sit in the client unsent (the gateway holds items until 64 or the
    // end, so the permit stays taken).
    items
        .send(pb::EnqueueItem::default())
        .await
        .expect("the stream takes an item");
    let mut models = ModelsClient::new(channel.clone());
    let mut shed = None;
    // Up to 30 s: on a loaded machine (the whole suite in parallel) the stream can take
    // seconds to reach the server.
    for _ in 0..600 {
        if held.is_finished() {
            (items, held) = open_held();
            items
                .send(pb::EnqueueItem::default())
                .await
                .expect("the stream takes an item");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        match models
            .list_models(Request::new(pb::ListModelsRequest {}))
            .await
        {
            Err(status) if status.code() == Code::ResourceExhausted => {
                shed = Some(status);
                break;
            }
            // The stream may not have reached the server yet.
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let status = shed.expect("a second request past the limit of 1 is shed");
    assert!(
        status.message().contains("server busy"),
        "{}",
        status.message()
    );

    // Once the stream ends its permit is free and requests are served again.
    drop(items);
    let finished = held
        .await
        .expect("task")
        .expect("the held stream completes");
    // The one empty item is rejected (no subject, no image) once the stream ends.
    assert_eq!(finished.into_inner().rejected, 1);
    models
        .list_models(Request::new(pb::ListModelsRequest {}))
        .await
        .expect("served again after the stream ended");
}
