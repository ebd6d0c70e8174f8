//! The worker's decisions, on the in-process queue and the embedded store (both real),
//! with the committed development model on the real ONNX Runtime (`TWIN_ORT_DYLIB`, as
//! `scripts/test.sh` sets): poison dead-lettered with its reason while good jobs around it
//! are stored, a batch the store refuses split so only the bad point dies, and a store
//! outage waited out without spending the jobs' delivery budget.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use twin_core::config::{EmbedConfig, ProviderChoice, QueueConfig, StoreConfig, WorkerConfig};
use twin_core::job::EmbedJob;
use twin_embed::ModelRegistry;
use twin_queue::testing::{embed_job, poison, within};
use twin_queue::{DeadReason, JobQueue};
use twin_store::{CollectionSpec, EmbeddedStore, PointFilter, VectorStore};
use twin_worker::{Worker, WorkerMetrics, WorkerSummary};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn models() -> ModelRegistry {
    let config = EmbedConfig {
        provider: ProviderChoice::Cpu,
        ..EmbedConfig::default()
    };
    ModelRegistry::load(
        &[repo().join("models/signature-dev")],
        "signature-dev",
        &config,
    )
    .expect("development model loads")
}

/// A white PNG with one dark stroke: enough ink for the signature preprocessing.
fn signature_png(seed: u32) -> Vec<u8> {
    let (w, h) = (240u32, 90u32);
    let mut img = image::GrayImage::from_pixel(w, h, image::Luma([255]));
    for x in 20..220 {
        let y = 45.0 + 20.0 * ((x as f32 + seed as f32 * 7.0) / 25.0).sin();
        for dy in 0..4 {
            let py = (y as u32 + dy).min(h - 1);
            img.put_pixel(x, py, image::Luma([20]));
        }
    }
    let mut png = Vec::new();
    image::DynamicImage::ImageLuma8(img)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .expect("encode png");
    png
}

fn queue() -> JobQueue {
    JobQueue::open(&QueueConfig {
        backend: "inprocess".into(),
        delivery_limit: 2,
        ..QueueConfig::default()
    })
    .expect("in-process queue")
}

fn worker(models: &ModelRegistry, store: Arc<dyn VectorStore>, queue: &JobQueue) -> Worker {
    Worker::new(
        models.clone(),
        store,
        queue.clone(),
        WorkerConfig {
            batch_size: 8,
            batch_wait_ms: 50,
            ..WorkerConfig::default()
        },
        WorkerMetrics::new().expect("metrics"),
    )
}

/// Runs `worker` until `done` says the queue has settled, then stops it.
async fn run_until(
    worker: Worker,
    queue: &JobQueue,
    done: impl Fn(u64, u64) -> bool,
) -> WorkerSummary {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run(async {
        let _ = stopped.await;
    }));
    within(120, "the queue settles", async {
        loop {
            let depth = queue.depth().await.expect("depth");
            let dead = queue.dead_letters(100).await.expect("dead").len() as u64;
            if depth.ready == 0 && done(depth.ready, dead) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let _ = stop.send(());
    running.await.expect("worker task").expect("worker ran")
}

async fn stored(store: &dyn VectorStore, models: &ModelRegistry) -> u64 {
    let model = models.all().first().expect("a model");
    let spec = CollectionSpec::for_model(model.manifest());
    store
        .count(&spec.name, &PointFilter::all())
        .await
        .unwrap_or(0)
}

fn dead_reason(dead: &[twin_queue::DeadLetter], job: &EmbedJob) -> String {
    dead.iter()
        .find(|d| d.job_id == job.job_id)
        .map(|d| d.reason.to_string())
        .unwrap_or_else(|| panic!("job {} was not dead-lettered", job.job_id))
}

/// The development model, an embedded store in a temporary folder, an in-process queue.
struct Fixture {
    models: ModelRegistry,
    model_id: String,
    store: Arc<dyn VectorStore>,
    queue: JobQueue,
    _dir: tempfile::TempDir,
}

impl Fixture {
    async fn new() -> Self {
        let models = models();
        let model_id = models.all().first().expect("model").manifest().id.clone();
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(dir.path(), 0).await.expect("store");
        Self {
            models,
            model_id,
            store: Arc::new(store),
            queue: queue(),
            _dir: dir,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_is_dead_lettered_with_its_reason_and_good_jobs_are_stored() {
    // The folder is bound first so that it is removed last, after the store's final flush.
    let Fixture {
        _dir,
        models,
        model_id,
        store,
        queue,
    } = Fixture::new().await;

    let good: Vec<EmbedJob> = (0..4)
        .map(|i| embed_job(&format!("writer-{i}"), signature_png(i), &model_id))
        .collect();
    let truncated = poison::truncated_image(&good[0]);
    let unknown = poison::unknown_model(&good[1]);
    let altered = poison::sha_mismatch(&good[2]);
    let mut both = good[3].clone();
    both.job_id = uuid::Uuid::new_v4().to_string();
    both.text = "a text as well".into();
    let mut jobs = good.clone();
    jobs.extend([
        truncated.clone(),
        unknown.clone(),
        altered.clone(),
        both.clone(),
    ]);
    for result in queue.publish_many(&jobs).await {
        result.expect("queued");
    }
    queue
        .publish_raw(&uuid::Uuid::new_v4().to_string(), poison::not_protobuf())
        .await
        .expect("raw queued");

    let summary = run_until(worker(&models, store.clone(), &queue), &queue, |_, dead| {
        dead == 5
    })
    .await;

    assert_eq!(summary.stored, 4, "{summary:?}");
    assert_eq!(summary.dead_lettered, 5, "{summary:?}");
    assert_eq!(stored(store.as_ref(), &models).await, 4);
    let dead = queue.dead_letters(100).await.expect("dead letters");
    assert!(dead_reason(&dead, &truncated).starts_with("bad sample:"));
    assert!(dead_reason(&dead, &unknown).contains("unknown model id"));
    assert!(dead_reason(&dead, &altered).contains("altered in transit"));
    assert!(dead_reason(&dead, &both).contains("both an image and a text"));
    assert!(dead.iter().any(|d| d.job.is_err()
        && matches!(&d.reason, DeadReason::Rejected(r) if r.contains("not a twin.v1.EmbedJob"))));
    // Every poison job died on its first delivery: nothing was retried.
    assert!(dead.iter().all(|d| d.attempts == 1), "{dead:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_the_store_refuses_is_split_so_only_the_bad_point_dies() {
    // The folder is bound first so that it is removed last, after the store's final flush.
    let Fixture {
        _dir,
        models,
        model_id,
        store,
        queue,
    } = Fixture::new().await;

    let mut jobs: Vec<EmbedJob> = (0..5)
        .map(|i| embed_job(&format!("writer-{i}"), signature_png(i), &model_id))
        .collect();
    // Past the gateway's checks, the store itself refuses this label key.
    jobs[2].labels.insert("not a valid key!".into(), "x".into());
    for result in queue.publish_many(&jobs).await {
        result.expect("queued");
    }

    let summary = run_until(worker(&models, store.clone(), &queue), &queue, |_, dead| {
        dead == 1
    })
    .await;

    assert_eq!(summary.stored, 4, "{summary:?}");
    assert_eq!(stored(store.as_ref(), &models).await, 4);
    let dead = queue.dead_letters(100).await.expect("dead letters");
    assert_eq!(dead.len(), 1);
    assert!(
        dead_reason(&dead, &jobs[2]).starts_with("store refused the point:"),
        "{dead:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_is_down_is_waited_for_without_spending_deliveries() {
    let models = models();
    let model_id = models.all().first().expect("model").manifest().id.clone();
    // Nothing listens on this port: every call is refused, for real (transient).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let store = twin_store::open_store(&StoreConfig {
        backend: "qdrant".into(),
        url,
        ..StoreConfig::default()
    })
    .await
    .expect("a remote store client (it connects lazily)");
    let queue = queue();
    let job = embed_job("writer-0", signature_png(0), &model_id);
    queue.publish(&job).await.expect("queued");

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker(&models, store, &queue).run(async {
        let _ = stopped.await;
    }));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = stop.send(());
    let summary = within(30, "the waiting worker stops", running)
        .await
        .expect("worker task")
        .expect("a store outage is not an error");

    assert_eq!(summary, WorkerSummary::default());
    // The job is still queued, never delivered: the outage cost it no attempt.
    let depth = queue.depth().await.expect("depth");
    assert_eq!(depth.ready, 1);
    assert!(queue.dead_letters(10).await.expect("dead").is_empty());
    let mut consumer = queue.consumer(1);
    let delivery = within(10, "the job is delivered", consumer.next())
        .await
        .expect("a delivery")
        .expect("no error");
    assert_eq!(delivery.attempt(), 1);
    assert_eq!(delivery.job().expect("a job").job_id, job.job_id);
}
