//! Helpers shared by the queue's integration tests: unique queue names per run, jobs,
//! time bounds, cleanup that runs even when a test fails, and a TCP relay that can cut
//! the connection to the broker on demand.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use twin_core::config::QueueConfig;
use twin_proto::v1::EmbedJob;
use twin_queue::{Delivery, JobConsumer, JobQueue};

pub const BROKER: &str = "127.0.0.1:5672";

/// A RabbitMQ config with a queue name unique to this test and run.
pub fn rabbit_config(test: &str) -> QueueConfig {
    QueueConfig {
        backend: "rabbitmq".into(),
        url: format!("amqp://guest:guest@{BROKER}/%2f"),
        queue: format!(
            "twin-test.{test}.{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ),
        delivery_limit: 2,
        confirm_timeout_ms: 5_000,
        ..QueueConfig::default()
    }
}

/// A job with an image of `image_bytes` bytes.
pub fn job(subject: &str, image_bytes: usize) -> EmbedJob {
    let image: Vec<u8> = (0..image_bytes).map(|i| (i % 251) as u8).collect();
    EmbedJob {
        job_id: uuid::Uuid::new_v4().to_string(),
        subject_id: subject.to_owned(),
        image_sha256: twin_core::ids::sha256_hex(&image),
        image,
        model_id: "test-model".into(),
        ..EmbedJob::default()
    }
}

/// Runs `fut`, failing the test if it takes longer than `secs`.
pub async fn within<T>(secs: u64, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(value) => value,
        Err(_) => panic!("{what}: not done within {secs} s"),
    }
}

/// The next delivery, skipping reported connection errors; panics after `secs`.
pub async fn next_delivery(consumer: &mut JobConsumer, secs: u64) -> Delivery {
    within(secs, "next delivery", async {
        loop {
            match consumer.next().await {
                Some(Ok(delivery)) => return delivery,
                Some(Err(e)) => eprintln!("consumer: {e}"),
                None => panic!("consumer ended"),
            }
        }
    })
    .await
}

/// A delivery if one arrives within `ms`, else `None` (errors are skipped).
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

/// Deletes the queue's topology when dropped, also when the test panicked.
pub struct Cleanup {
    config: QueueConfig,
}

impl Cleanup {
    pub fn new(config: &QueueConfig) -> Self {
        Self {
            config: config.clone(),
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let config = self.config.clone();
        // A fresh runtime on its own thread: Drop may run inside the test's runtime.
        let joined = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let deleted = tokio::time::timeout(Duration::from_secs(30), async {
                    let queue = JobQueue::open(&config)?;
                    queue.delete().await
                })
                .await;
                match deleted {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => eprintln!("cleanup of {}: {e}", config.queue),
                    Err(_) => eprintln!("cleanup of {} timed out", config.queue),
                }
            });
        })
        .join();
        if joined.is_err() {
            eprintln!("cleanup of {} panicked", self.config.queue);
        }
    }
}

/// A TCP relay to the broker whose connections can be cut, like a network failure.
pub struct Relay {
    pub addr: SocketAddr,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Relay {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let addr = listener.local_addr().expect("relay addr");
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accepted = links.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let link = tokio::spawn(async move {
                    if let Ok(mut broker) = TcpStream::connect(BROKER).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut broker).await;
                    }
                });
                accepted.lock().expect("links").push(link);
            }
        });
        Self {
            addr,
            links,
            accept,
        }
    }

    /// `config` talking to the broker through this relay.
    pub fn config(&self, config: &QueueConfig) -> QueueConfig {
        QueueConfig {
            url: format!("amqp://guest:guest@{}/%2f", self.addr),
            ..config.clone()
        }
    }

    /// Cuts every connection through the relay (new ones are still accepted).
    pub fn cut(&self) -> usize {
        let links: Vec<_> = self.links.lock().expect("links").drain(..).collect();
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
