//! A one-machine ingest cluster for the fault tests: the test-only Qdrant gRPC server
//! (twin-store's test support, over Qdrant's engine), a RabbitMQ queue unique to the
//! test on the real local broker, worker processes, and a producer publishing jobs.

#![allow(dead_code)] // each test binary uses a different part

#[path = "../../../crates/twin-store/tests/support/fake_qdrant_server.rs"]
pub mod fake_qdrant_server;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use fake_qdrant_server::FakeQdrant;
use twin_core::config::{QueueConfig, StoreConfig};
use twin_core::ids::sha256_hex;
use twin_core::job::EmbedJob;
use twin_core::manifest::ModelManifest;
use twin_queue::JobQueue;
use twin_store::{CollectionSpec, PointFilter, RemoteStore, VectorStore};
use twin_tests::{bin, dev_model, genuine, TwinProcess};

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub qdrant: Option<FakeQdrant>,
    pub qdrant_addr: SocketAddr,
    pub queue: JobQueue,
    pub queue_config: QueueConfig,
    pub manifest: ModelManifest,
    workers: usize,
    extra_env: Vec<(&'static str, String)>,
}

impl Cluster {
    pub async fn start(extra_env: &[(&'static str, String)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let qdrant = FakeQdrant::start(&dir.path().join("qdrant"), None).await;
        let qdrant_addr: SocketAddr = qdrant
            .url
            .trim_start_matches("http://")
            .parse()
            .expect("socket address");
        let queue_config = QueueConfig {
            backend: "rabbitmq".into(),
            queue: format!("twin.fault.{}", uuid::Uuid::new_v4().simple()),
            ..QueueConfig::default()
        };
        let queue = JobQueue::connect(&queue_config)
            .await
            .expect("broker at 127.0.0.1:5672");
        let manifest = ModelManifest::load(&dev_model()).expect("dev model");
        Self {
            dir,
            qdrant: Some(qdrant),
            qdrant_addr,
            queue,
            queue_config,
            manifest,
            workers: 0,
            extra_env: extra_env.to_vec(),
        }
    }

    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("TWIN_QUEUE__BACKEND", "rabbitmq".to_owned()),
            ("TWIN_QUEUE__QUEUE", self.queue_config.queue.clone()),
            ("TWIN_STORE__BACKEND", "qdrant".to_owned()),
            ("TWIN_STORE__URL", format!("http://{}", self.qdrant_addr)),
            ("TWIN_MODELS__DIRS", dev_model().display().to_string()),
            ("TWIN_WORKER__BATCH_WAIT_MS", "10".to_owned()),
            ("TWIN_WORKER__SHUTDOWN_DEADLINE_S", "10".to_owned()),
            ("TWIN_EMBED__SESSIONS", "1".to_owned()),
        ];
        env.extend(self.extra_env.iter().cloned());
        env
    }

    pub async fn worker(&mut self) -> TwinProcess {
        self.workers += 1;
        let log = self.dir.path().join(format!("worker-{}.log", self.workers));
        TwinProcess::start_detached(&bin("twin-worker"), &self.env(), log).await
    }

    /// `n` valid jobs: a few distinct images under many subjects (distinct points).
    pub fn jobs(&self, n: usize) -> Vec<EmbedJob> {
        let images: Vec<Vec<u8>> = (0..8).map(|i| genuine(i % 4, i / 4)).collect();
        (0..n)
            .map(|i| self.job(&format!("subject-{i:05}"), images[i % images.len()].clone()))
            .collect()
    }

    pub fn job(&self, subject: &str, image: Vec<u8>) -> EmbedJob {
        EmbedJob {
            job_id: uuid::Uuid::new_v4().to_string(),
            subject_id: subject.to_owned(),
            image_sha256: sha256_hex(&image),
            image,
            model_id: self.manifest.id.clone(),
            enqueued_at_ms: twin_core::clock::now_ms(),
            ..EmbedJob::default()
        }
    }

    pub async fn publish(&self, jobs: &[EmbedJob]) {
        for chunk in jobs.chunks(200) {
            for result in self.queue.publish_many(chunk).await {
                result.expect("broker confirmed the job");
            }
        }
    }

    pub async fn store(&self) -> RemoteStore {
        let config = StoreConfig {
            backend: "qdrant".into(),
            url: format!("http://{}", self.qdrant_addr),
            ..StoreConfig::default()
        };
        RemoteStore::connect(&config).await.expect("store client")
    }

    pub fn collection(&self) -> String {
        CollectionSpec::for_model(&self.manifest).name
    }

    /// Points stored so far (0 while the collection does not exist yet).
    pub async fn points(&self) -> u64 {
        self.store()
            .await
            .count(&self.collection(), &PointFilter::all())
            .await
            .unwrap_or(0)
    }

    /// Waits until `n` points are stored or `timeout` passes; returns the count.
    pub async fn wait_for_points(&self, n: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        loop {
            let count = self.points().await;
            if count >= n || Instant::now() > deadline {
                return count;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn qdrant_dir(&self) -> PathBuf {
        self.dir.path().join("qdrant")
    }

    pub async fn cleanup(self) {
        let _ = self.queue.delete().await;
        self.queue.close().await;
        if let Some(qdrant) = self.qdrant {
            qdrant.stop().await;
        }
    }
}
