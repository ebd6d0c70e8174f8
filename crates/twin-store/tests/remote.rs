//! What only the remote backend has to show, over Qdrant's gRPC protocol (against the
//! test-only server): it retries while the server is unreachable, sends the API key,
//! and reports a refused key as such.

mod support;

use std::time::{Duration, Instant};

use support::fake_qdrant_server::FakeQdrant;
use support::remote_config;
use twin_core::Metric;
use twin_store::{CollectionSpec, RemoteStore, StoreError, VectorStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_retried_until_the_server_comes_up() {
    // Reserve a port, free it, and start the server there only after a while.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("reserve a port");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = remote_config(&format!("http://{addr}"), "");
    config.retries = 6;
    config.retry_backoff_ms = 100;
    config.connect_timeout_ms = 500;
    let store = RemoteStore::connect(&config).await.expect("client");

    let server_dir = dir.path().to_owned();
    let server = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(600)).await;
        FakeQdrant::start_on(addr, &server_dir, None).await
    });
    let started = Instant::now();
    let spec = CollectionSpec {
        name: "late".into(),
        dim: 4,
        metric: Metric::L2,
    };
    let info = store
        .ensure_collection(&spec)
        .await
        .expect("succeeds once the server is up");
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "the first attempts cannot have succeeded"
    );
    assert_eq!(info.dim, 4);
    server.await.expect("server task").stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_reported_as_unavailable() {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("reserve a port");
    let mut config = remote_config(&format!("http://{addr}"), "");
    config.retries = 1;
    config.retry_backoff_ms = 10;
    let store = RemoteStore::connect(&config).await.expect("client");
    let err = store.health().await.expect_err("nobody listens");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_key_is_sent_and_a_wrong_one_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = FakeQdrant::start(dir.path(), Some("s3cret")).await;

    let good = RemoteStore::connect(&remote_config(&server.url, "s3cret"))
        .await
        .expect("client");
    good.health().await.expect("right key accepted");

    let bad = RemoteStore::connect(&remote_config(&server.url, "wrong"))
        .await
        .expect("client");
    let err = bad.health().await.expect_err("wrong key refused");
    assert!(matches!(err, StoreError::Internal(_)), "{err:?}");
    assert!(err.to_string().contains("store.api_key"), "{err}");
    assert!(
        !err.to_string().contains("s3cret"),
        "the key must not leak: {err}"
    );

    let bad_url = remote_config("not a url", "");
    assert!(matches!(
        RemoteStore::connect(&bad_url).await,
        Err(StoreError::InvalidArgument(_))
    ));
    server.stop().await;
}
