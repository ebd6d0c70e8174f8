//! Test support for the queue's and the worker's fault tests against the real broker
//! (feature `testing`): unique queue names per run, cleanup that also runs when a test
//! panics, time bounds, a TCP relay that cuts connections like a network failure, a
//! broker restart, and poison jobs of every kind the worker must dead-letter.
//!
//! ```no_run
//! # async fn demo() {
//! use twin_queue::testing::{rabbit_config, within, QueueCleanup};
//! let config = rabbit_config("my-test");
//! let _cleanup = QueueCleanup::new(&config); // deletes the queues at the end
//! within(60, "the whole test", async { /* ... */ }).await;
//! # }
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use twin_core::config::QueueConfig;
use twin_core::job::EmbedJob;

use crate::{Delivery, JobConsumer, JobQueue};

/// The broker the tests use.
pub const BROKER_ADDR: &str = "127.0.0.1:5672";

/// A RabbitMQ config whose queue name is unique to `test` and this run
/// (`twin-test.<test>.<8 hex>`), with delivery limit 2 and a 5 s confirm timeout.
pub fn rabbit_config(test: &str) -> QueueConfig {
    let run = uuid::Uuid::new_v4().simple().to_string();
    QueueConfig {
        backend: "rabbitmq".into(),
        url: format!("amqp://guest:guest@{BROKER_ADDR}/%2f"),
        queue: format!("twin-test.{test}.{}", &run[..8]),
        delivery_limit: 2,
        confirm_timeout_ms: 5_000,
        ..QueueConfig::default()
    }
}

/// A job for `image` (any bytes) under `model_id`, with a fresh job id, the image's
/// sha256 and the enqueue time set.
pub fn embed_job(subject: &str, image: Vec<u8>, model_id: &str) -> EmbedJob {
    let now = twin_core::clock::now_ms();
    EmbedJob {
        job_id: uuid::Uuid::new_v4().to_string(),
        subject_id: subject.to_owned(),
        image_sha256: twin_core::ids::sha256_hex(&image),
        image,
        model_id: model_id.to_owned(),
        enqueued_at_ms: now,
        ..EmbedJob::default()
    }
}

/// A job whose "image" is `image_bytes` patterned bytes (not an image: for queue tests).
pub fn job(subject: &str, image_bytes: usize) -> EmbedJob {
    let image = (0..image_bytes).map(|i| (i % 251) as u8).collect();
    embed_job(subject, image, "test-model")
}

/// Poison messages of each kind a worker must dead-letter (while good jobs around
/// them complete).
pub mod poison {
    use super::EmbedJob;

    /// A body that is not protobuf (publish it with `JobQueue::publish_raw`).
    pub fn not_protobuf() -> Vec<u8> {
        b"this is not a protobuf EmbedJob \x00\xff".to_vec()
    }

    /// `job` with its image cut in half (sha256 updated, so only decoding fails).
    pub fn truncated_image(job: &EmbedJob) -> EmbedJob {
        let mut bad = job.clone();
        bad.job_id = uuid::Uuid::new_v4().to_string();
        bad.image.truncate(job.image.len() / 2);
        bad.image_sha256 = twin_core::ids::sha256_hex(&bad.image);
        bad
    }

    /// `job` with an image whose header claims `side` × `side` pixels (a PNG
    /// signature and IHDR, no pixel data): too large for `embed.max_image_side`.
    pub fn oversized_image(job: &EmbedJob, side: u32) -> EmbedJob {
        let mut bad = job.clone();
        bad.job_id = uuid::Uuid::new_v4().to_string();
        bad.image = png_header(side, side);
        bad.image_sha256 = twin_core::ids::sha256_hex(&bad.image);
        bad
    }

    /// `job` for a model no worker serves.
    pub fn unknown_model(job: &EmbedJob) -> EmbedJob {
        let mut bad = job.clone();
        bad.job_id = uuid::Uuid::new_v4().to_string();
        bad.model_id = "0".repeat(64);
        bad
    }

    /// `job` whose image does not match its declared sha256.
    pub fn sha_mismatch(job: &EmbedJob) -> EmbedJob {
        let mut bad = job.clone();
        bad.job_id = uuid::Uuid::new_v4().to_string();
        bad.image_sha256 = "f".repeat(64);
        bad
    }

    /// A PNG signature, an IHDR chunk for `width` × `height` 8-bit grey, and IEND.
    pub fn png_header(width: u32, height: u32) -> Vec<u8> {
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&width.to_be_bytes());
        ihdr.extend_from_slice(&height.to_be_bytes());
        ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // depth 8, grey, deflate, filter 0, no interlace
        chunk(&mut png, b"IHDR", &ihdr);
        chunk(&mut png, b"IEND", &[]);
        png
    }

    fn chunk(png: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        png.extend_from_slice(&u32::try_from(data.len()).unwrap_or(0).to_be_bytes());
        png.extend_from_slice(kind);
        png.extend_from_slice(data);
        let mut crc = 0xffff_ffffu32;
        for &byte in kind.iter().chain(data) {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        png.extend_from_slice(&(!crc).to_be_bytes());
    }
}

/// Runs `fut`; panics (failing the test) when it takes longer than `secs`.
pub async fn within<T>(secs: u64, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(value) => value,
        Err(_) => panic!("{what}: not done within {secs} s"),
    }
}

/// Polls `condition` every 100 ms until it holds; panics after `secs`.
pub async fn wait_until<F, Fut>(secs: u64, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    within(secs, what, async {
        while !condition().await {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}

/// The next delivery, skipping reported connection errors; panics after `secs`.
pub async fn next_delivery(consumer: &mut JobConsumer, secs: u64) -> Delivery {
    within(secs, "next delivery", async {
        loop {
            match consumer.next().await {
                Some(Ok(delivery)) => return delivery,
                Some(Err(e)) => tracing::info!(error = %e, "consumer waiting"),
                None => panic!("the consumer ended"),
            }
        }
    })
    .await
}

/// A delivery if one arrives within `ms` (connection errors skipped), else `None`.
pub async fn maybe_delivery(consumer: &mut JobConsumer, ms: u64) -> Option<Delivery> {
    tokio::time::timeout(Duration::from_millis(ms), async {
        loop {
            match consumer.next().await {
                Some(Ok(delivery)) => return Some(delivery),
                Some(Err(_)) => continue,
                None => return None,
            }
        }
    })
    .await
    .ok()
    .flatten()
}

/// Deletes a queue's topology (queues, exchanges) when dropped, also after a panic.
#[derive(Debug)]
pub struct QueueCleanup {
    config: QueueConfig,
}

impl QueueCleanup {
    pub fn new(config: &QueueConfig) -> Self {
        Self {
            config: config.clone(),
        }
    }
}

impl Drop for QueueCleanup {
    fn drop(&mut self) {
        let config = self.config.clone();
        // Its own thread and runtime: Drop may run inside the test's runtime.
        let joined = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                let deleted = tokio::time::timeout(Duration::from_secs(30), async {
                    JobQueue::open(&config)?.delete().await
                })
                .await;
                match deleted {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => eprintln!("cleanup of queue {}: {e}", config.queue),
                    Err(_) => eprintln!("cleanup of queue {} timed out", config.queue),
                }
            });
        })
        .join();
        if joined.is_err() {
            eprintln!("cleanup of queue {} panicked", self.config.queue);
        }
    }
}

/// A TCP relay in front of the broker whose connections can be cut on demand, like a
/// network failure (no broker restart, so it disturbs no other test).
#[derive(Debug)]
pub struct Relay {
    pub addr: SocketAddr,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Relay {
    /// Listens on an ephemeral local port and relays to [`BROKER_ADDR`].
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("cannot bind the relay: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("relay address: {e}"));
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accepted = links.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let link = tokio::spawn(async move {
                    if let Ok(mut broker) = TcpStream::connect(BROKER_ADDR).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut broker).await;
                    }
                });
                accepted
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(link);
            }
        });
        Self {
            addr,
            links,
            accept,
        }
    }

    /// `config` with its URL pointing at this relay.
    pub fn config(&self, config: &QueueConfig) -> QueueConfig {
        QueueConfig {
            url: format!("amqp://guest:guest@{}/%2f", self.addr),
            ..config.clone()
        }
    }

    /// The relay's URL (for a worker process's `TWIN_QUEUE__URL`).
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.addr)
    }

    /// Cuts every open connection through the relay; returns how many. New
    /// connections are still accepted (the network "comes back" at once).
    pub fn cut(&self) -> usize {
        let links: Vec<_> = self
            .links
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
            .collect();
        let count = links.len();
        for link in links {
            link.abort();
        }
        count
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// Runs `rabbitmqctl` with `args`; panics with its stderr when it fails.
pub fn rabbitmqctl(args: &[&str]) {
    let output = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("rabbitmqctl {args:?} could not run ({e}); is RabbitMQ installed here?")
        });
    assert!(
        output.status.success(),
        "rabbitmqctl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A broker restart in two steps (`stop`, then `start`), off the async executor; if
/// the test fails in between, dropping it starts the broker again. Only for tests
/// named `*broker_restart*`, which nextest runs alone (`.config/nextest.toml`).
#[derive(Debug)]
pub struct BrokerRestart {
    started: bool,
}

impl BrokerRestart {
    /// `rabbitmqctl stop_app`: every connection to the broker breaks.
    pub async fn stop() -> Self {
        blocking(|| rabbitmqctl(&["stop_app"])).await;
        Self { started: false }
    }

    /// `rabbitmqctl start_app`, then waits until the broker is up.
    pub async fn start(mut self) {
        blocking(start_app).await;
        self.started = true;
    }
}

fn start_app() {
    rabbitmqctl(&["start_app"]);
    rabbitmqctl(&["await_startup", "--timeout", "60"]);
}

async fn blocking(f: fn()) {
    if let Err(e) = tokio::task::spawn_blocking(f).await {
        std::panic::resume_unwind(e.into_panic());
    }
}

impl Drop for BrokerRestart {
    fn drop(&mut self) {
        if !self.started {
            let _ = Command::new("rabbitmqctl").arg("start_app").output();
            let _ = Command::new("rabbitmqctl")
                .args(["await_startup", "--timeout", "60"])
                .output();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_header_is_well_formed() {
        let png = poison::png_header(20_000, 10);
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&png[12..16], b"IHDR");
        assert_eq!(
            u32::from_be_bytes([png[16], png[17], png[18], png[19]]),
            20_000
        );
        // Every PNG ends with the same IEND chunk, whose CRC is well known.
        assert_eq!(&png[png.len() - 12..], b"\0\0\0\0IEND\xae\x42\x60\x82");
        assert_eq!(png.len(), 8 + 25 + 12);
    }

    #[test]
    fn poison_jobs_differ_from_the_good_one() {
        let good = job("s", 100);
        for bad in [
            poison::truncated_image(&good),
            poison::oversized_image(&good, 50_000),
            poison::unknown_model(&good),
            poison::sha_mismatch(&good),
        ] {
            assert_ne!(bad.job_id, good.job_id);
            assert_ne!(bad, good);
        }
        let truncated = poison::truncated_image(&good);
        assert_eq!(
            truncated.image_sha256,
            twin_core::ids::sha256_hex(&truncated.image)
        );
    }
}
