//! Fault tests of the ingest pipeline against the real RabbitMQ broker: killed
//! workers, an unavailable store, poison messages, competing workers. Each asserts on
//! the final state, is bounded in time, and deletes its own queues.

mod common;

use std::time::Duration;

use common::Cluster;
use twin_queue::DeadReason;

#[tokio::test]
async fn a_worker_killed_mid_batch_loses_nothing_and_a_second_finishes() {
    let mut cluster = Cluster::start(&[]).await;
    let jobs = cluster.jobs(1000);
    cluster.publish(&jobs).await;
    let mut first = cluster.worker().await;
    // Let it store part of the batch, then kill it without any grace.
    let partial = cluster.wait_for_points(100, Duration::from_secs(120)).await;
    assert!(
        partial >= 100,
        "first worker stored only {partial}:\n{}",
        first.log_text()
    );
    first.kill().await;
    let at_kill = cluster.points().await;
    assert!(
        at_kill < 1000,
        "the kill came too late to test anything ({at_kill} stored)"
    );
    let mut second = cluster.worker().await;
    let stored = cluster
        .wait_for_points(1000, Duration::from_secs(240))
        .await;
    assert_eq!(
        stored,
        1000,
        "every job stored exactly once:\n{}",
        second.log_text()
    );
    let depth = cluster.queue.depth().await.expect("depth");
    assert_eq!((depth.ready, depth.dead), (0, 0), "{depth:?}");
    assert!(second.terminate(Duration::from_secs(20)).await);
    cluster.cleanup().await;
}

#[tokio::test]
async fn jobs_wait_while_the_store_is_down_and_complete_after_it_returns() {
    let mut cluster = Cluster::start(&[]).await;
    let mut worker = cluster.worker().await;
    let jobs = cluster.jobs(60);
    cluster.publish(&jobs[..10]).await;
    assert_eq!(
        cluster.wait_for_points(10, Duration::from_secs(60)).await,
        10
    );
    // The store goes away while the worker runs and more jobs arrive...
    let qdrant = cluster.qdrant.take().expect("running store");
    qdrant.stop().await;
    cluster.publish(&jobs[10..]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    // ...and comes back on the same address with the same data directory.
    cluster.qdrant = Some(
        common::fake_qdrant_server::FakeQdrant::start_on(
            cluster.qdrant_addr,
            &cluster.qdrant_dir(),
            None,
        )
        .await,
    );
    let stored = cluster.wait_for_points(60, Duration::from_secs(120)).await;
    assert_eq!(stored, 60, "{}", worker.log_text());
    let depth = cluster.queue.depth().await.expect("depth");
    assert_eq!(depth.dead, 0, "an outage must not dead-letter jobs");
    assert!(worker.terminate(Duration::from_secs(20)).await);
    cluster.cleanup().await;
}

#[tokio::test]
async fn poison_messages_are_dead_lettered_with_reasons_and_good_jobs_complete() {
    let mut cluster = Cluster::start(&[("TWIN_EMBED__MAX_IMAGE_BYTES", "60000".to_owned())]).await;
    let good = cluster.jobs(20);
    let mut truncated = cluster.job("poison-truncated", twin_tests::genuine(0, 0));
    truncated.image.truncate(truncated.image.len() / 2);
    truncated.image_sha256 = twin_core::ids::sha256_hex(&truncated.image);
    let too_large = cluster.job("poison-large", vec![0x89; 70_000]);
    let mut unknown_model = cluster.job("poison-model", twin_tests::genuine(1, 0));
    unknown_model.model_id = "f".repeat(64);
    cluster.publish(&good[..10]).await;
    cluster
        .queue
        .publish_raw(
            "poison-not-protobuf",
            b"\xff\xfe this is not a protobuf message".to_vec(),
        )
        .await
        .expect("published");
    cluster
        .publish(&[truncated, too_large, unknown_model])
        .await;
    cluster.publish(&good[10..]).await;
    let mut worker = cluster.worker().await;
    let stored = cluster.wait_for_points(20, Duration::from_secs(120)).await;
    assert_eq!(stored, 20, "{}", worker.log_text());
    let mut dead = Vec::new();
    for _ in 0..100 {
        dead = cluster.queue.dead_letters(10).await.expect("dead letters");
        if dead.len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(dead.len(), 4, "{dead:?}");
    let reason_of = |needle: &str| {
        dead.iter()
            .find(|d| {
                d.job_id.contains(needle)
                    || d.job.as_ref().is_ok_and(|j| j.subject_id.contains(needle))
            })
            .map(|d| d.reason.clone())
            .unwrap_or_else(|| panic!("no dead letter for {needle}: {dead:?}"))
    };
    let text = |r: DeadReason| r.to_string();
    assert!(text(reason_of("not-protobuf")).contains("not a twin.v1.EmbedJob"));
    assert!(text(reason_of("truncated")).contains("corrupt or truncated"));
    assert!(text(reason_of("large")).contains("limit of 60000 bytes"));
    assert!(text(reason_of("model")).contains("unknown model id"));
    // Poison is dead-lettered at once, not after burning the delivery limit.
    assert!(
        dead.iter()
            .all(|d| matches!(d.reason, DeadReason::Rejected(_))),
        "{dead:?}"
    );
    assert!(worker.terminate(Duration::from_secs(20)).await);
    cluster.cleanup().await;
}

async fn competing_workers(count: usize, jobs: usize) {
    let mut cluster = Cluster::start(&[]).await;
    let published = cluster.jobs(jobs);
    cluster.publish(&published).await;
    let mut workers = Vec::new();
    for _ in 0..count {
        workers.push(cluster.worker().await);
    }
    let stored = cluster
        .wait_for_points(jobs as u64, Duration::from_secs(240))
        .await;
    assert_eq!(stored, jobs as u64, "no job lost, none duplicated");
    let mut busy = 0;
    for worker in &mut workers {
        assert!(worker.terminate(Duration::from_secs(20)).await);
        // The worker's last line: "twin-worker stopped: N stored, M dead-lettered".
        let stored_by_worker: u64 = worker
            .stdout_text()
            .split("stopped: ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if stored_by_worker > 0 {
            busy += 1;
        }
    }
    assert!(
        busy >= 2,
        "the load was not shared between the {count} workers"
    );
    let depth = cluster.queue.depth().await.expect("depth");
    assert_eq!((depth.ready, depth.dead), (0, 0), "{depth:?}");
    cluster.cleanup().await;
}

#[tokio::test]
async fn two_workers_share_the_load_without_duplicates() {
    competing_workers(2, 400).await;
}

#[tokio::test]
async fn four_workers_share_the_load_without_duplicates() {
    competing_workers(4, 400).await;
}
