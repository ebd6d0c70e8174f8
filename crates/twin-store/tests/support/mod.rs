//! Test support: one harness per backend, so the contract suite runs unchanged against
//! the embedded engine, the remote backend over the test-only gRPC server, and a real
//! Qdrant server when `TWIN_QDRANT_URL` is set.

#![allow(dead_code)] // each test binary uses a different part of this module

pub mod fake_qdrant_server;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use fake_qdrant_server::FakeQdrant;
use twin_core::config::StoreConfig;
use twin_core::Metric;
use twin_store::{
    CollectionSpec, EmbeddedStore, Point, PointPayload, RemoteStore, StoreError, VectorStore,
};

/// Environment variable naming a real Qdrant server (gRPC URL, e.g. http://localhost:6334).
pub const QDRANT_URL_VAR: &str = "TWIN_QDRANT_URL";
/// Optional API key for that server.
pub const QDRANT_API_KEY_VAR: &str = "TWIN_QDRANT_API_KEY";

/// A store under test and what keeps it alive.
pub struct Harness {
    pub store: Arc<dyn VectorStore>,
    /// Prefix that makes this test's collection names unique on a shared server.
    prefix: String,
    created: Mutex<Vec<String>>,
    aliases: Mutex<Vec<String>>,
    server: Option<FakeQdrant>,
    _dir: Option<tempfile::TempDir>,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

fn unique_prefix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "twintest-{}-{nanos:x}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

impl Harness {
    fn new(
        store: Arc<dyn VectorStore>,
        server: Option<FakeQdrant>,
        dir: Option<tempfile::TempDir>,
    ) -> Self {
        Self {
            store,
            prefix: unique_prefix(),
            created: Mutex::new(Vec::new()),
            aliases: Mutex::new(Vec::new()),
            server,
            _dir: dir,
        }
    }

    /// A collection or alias name unique to this test; remembered for cleanup.
    pub fn name(&self, base: &str) -> String {
        let name = format!("{}-{base}", self.prefix);
        self.created.lock().expect("names").push(name.clone());
        name
    }

    /// An alias name unique to this test; removed at cleanup.
    pub fn alias(&self, base: &str) -> String {
        let name = format!("{}-{base}", self.prefix);
        self.aliases.lock().expect("aliases").push(name.clone());
        name
    }

    /// Creates a collection for this test.
    pub async fn collection(&self, base: &str, dim: usize, metric: Metric) -> String {
        let spec = CollectionSpec {
            name: self.name(base),
            dim,
            metric,
        };
        self.store
            .ensure_collection(&spec)
            .await
            .expect("ensure collection");
        spec.name
    }

    /// Removes what the test created (matters on a shared real server).
    pub async fn finish(self) {
        let aliases = self.aliases.lock().expect("aliases").clone();
        for alias in aliases {
            let _ = self.store.delete_alias(&alias).await;
        }
        let created = self.created.lock().expect("names").clone();
        for name in created {
            let _ = self.store.delete_collection(&name).await;
        }
        if let Some(server) = self.server {
            server.stop().await;
        }
    }
}

/// The embedded backend in a fresh directory.
pub async fn embedded() -> Option<Harness> {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path(), 0)
        .await
        .expect("open embedded store");
    Some(Harness::new(Arc::new(store), None, Some(dir)))
}

/// Store settings for a server at `url`.
pub fn remote_config(url: &str, api_key: &str) -> StoreConfig {
    StoreConfig {
        backend: "qdrant".to_owned(),
        url: url.to_owned(),
        api_key: api_key.to_owned(),
        timeout_ms: 10_000,
        retries: 2,
        retry_backoff_ms: 50,
        ..StoreConfig::default()
    }
}

/// The remote backend talking gRPC to the test-only server.
pub async fn remote() -> Option<Harness> {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = FakeQdrant::start(dir.path(), Some("test-key")).await;
    let store = RemoteStore::connect(&remote_config(&server.url, "test-key"))
        .await
        .expect("remote store");
    Some(Harness::new(Arc::new(store), Some(server), Some(dir)))
}

/// The remote backend against a real Qdrant server, or `None` (the case is skipped)
/// when `TWIN_QDRANT_URL` is not set.
pub async fn real_qdrant() -> Option<Harness> {
    let Ok(url) = std::env::var(QDRANT_URL_VAR) else {
        println!("skipped: {QDRANT_URL_VAR} not set");
        return None;
    };
    let api_key = std::env::var(QDRANT_API_KEY_VAR).unwrap_or_default();
    let store = RemoteStore::connect(&remote_config(&url, &api_key))
        .await
        .expect("remote store");
    store
        .health()
        .await
        .unwrap_or_else(|e| panic!("{QDRANT_URL_VAR}={url} is set but unreachable: {e}"));
    Some(Harness::new(Arc::new(store), None, None))
}

/// A payload for test points.
pub fn payload(subject: &str, image: &str) -> PointPayload {
    PointPayload {
        subject_id: subject.to_owned(),
        image_sha256: twin_core::ids::sha256_hex(image.as_bytes()),
        source: format!("{image}.png"),
        enrolled_at_ms: 1_700_000_000_000,
        model_id: "0".repeat(64),
        ..PointPayload::default()
    }
}

/// A point of `subject` for image `image` with this vector.
pub fn point(subject: &str, image: &str, vector: Vec<f32>) -> Point {
    Point::new(vector, payload(subject, image))
}

/// A unit vector along axis `axis` (of `dim`), nudged by `nudge` along the next axis.
pub fn axis(dim: usize, axis: usize, nudge: f32) -> Vec<f32> {
    let mut v = vec![0.0; dim];
    v[axis % dim] = 1.0;
    v[(axis + 1) % dim] += nudge;
    v
}

/// Asserts an error is of the expected kind, printing it otherwise.
pub fn assert_kind<T: std::fmt::Debug>(result: Result<T, StoreError>, kind: &str) -> StoreError {
    match result {
        Err(err) if err.kind() == kind => err,
        other => panic!("expected a {kind} error, got {other:?}"),
    }
}
