//! The in-process backend: the same contract as RabbitMQ, within one process.

mod common;

use std::time::Duration;

use common::{job, maybe_delivery, next_delivery, within};
use twin_core::config::QueueConfig;
use twin_queue::{DeadReason, JobQueue, JobRecord, JobState, JobStore, QueueError};

fn config() -> QueueConfig {
    QueueConfig {
        backend: "inprocess".into(),
        delivery_limit: 2,
        inprocess_capacity: 4,
        confirm_timeout_ms: 200,
        max_message_bytes: 10_000,
        ..QueueConfig::default()
    }
}

#[tokio::test]
async fn roundtrip_in_order_with_attempts() {
    within(10, "roundtrip", async {
        let queue = JobQueue::connect(&config()).await.expect("open");
        let jobs: Vec<_> = (0..3).map(|i| job(&format!("s{i}"), 100)).collect();
        for r in queue.publish_many(&jobs).await {
            r.expect("publish");
        }
        let mut consumer = queue.consumer(8);
        for sent in &jobs {
            let delivery = next_delivery(&mut consumer, 5).await;
            assert_eq!(delivery.job().expect("job"), sent);
            assert_eq!(delivery.attempt(), 1);
            delivery.ack().await.expect("ack");
        }
        assert_eq!(queue.depth().await.expect("depth").ready, 0);
    })
    .await;
}

#[tokio::test]
async fn bounded_publishers_get_full_then_room_after_acks() {
    within(10, "capacity", async {
        let queue = JobQueue::open(&config()).expect("open");
        for i in 0..4 {
            queue
                .publish(&job(&format!("f{i}"), 10))
                .await
                .expect("room");
        }
        let err = queue.publish(&job("over", 10)).await.expect_err("full");
        assert!(matches!(err, QueueError::Full { capacity: 4 }), "{err}");
        assert!(err.is_retryable());
        // A publisher waiting for room gets in once a job is acknowledged.
        let waiting = {
            let queue = queue.clone();
            tokio::spawn(async move { queue.publish(&job("waits", 10)).await })
        };
        let mut consumer = queue.consumer(1);
        next_delivery(&mut consumer, 5)
            .await
            .ack()
            .await
            .expect("ack");
        waiting
            .await
            .expect("task")
            .expect("published after room was made");
    })
    .await;
}

#[tokio::test]
async fn too_large_is_refused() {
    let queue = JobQueue::open(&config()).expect("open");
    let err = queue
        .publish(&job("big", 20_000))
        .await
        .expect_err("too large");
    assert!(
        matches!(err, QueueError::TooLarge { limit: 10_000, .. }),
        "{err}"
    );
    assert_eq!(queue.depth().await.expect("depth").ready, 0);
}

#[tokio::test]
async fn retries_exhaust_into_the_dead_letters_and_dead_letter_keeps_the_reason() {
    within(10, "dead letters", async {
        let queue = JobQueue::open(&config()).expect("open");
        let (doomed, poison) = (job("doomed", 10), job("poison", 10));
        queue.publish(&doomed).await.expect("publish");
        queue.publish(&poison).await.expect("publish");
        queue
            .publish_raw("garbage", b"not protobuf".to_vec())
            .await
            .expect("raw");
        let mut consumer = queue.consumer(1);
        let mut doomed_attempts = Vec::new();
        while let Some(delivery) = maybe_delivery(&mut consumer, 200).await {
            match delivery.job() {
                Err(e) => {
                    let reason = e.to_string();
                    delivery.dead_letter(&reason).await.expect("dead");
                }
                Ok(j) if j.job_id == poison.job_id => {
                    delivery
                        .dead_letter("unknown model id")
                        .await
                        .expect("dead");
                }
                Ok(_) => {
                    doomed_attempts.push(delivery.attempt());
                    delivery.retry().await.expect("retry");
                }
            }
        }
        assert_eq!(
            doomed_attempts,
            vec![1, 2, 3],
            "delivered delivery_limit + 1 times"
        );
        let dead = queue.dead_letters(10).await.expect("dead");
        assert_eq!(dead.len(), 3);
        let find = |id: &str| dead.iter().find(|d| d.job_id == id).expect("dead letter");
        assert_eq!(
            find(&poison.job_id).reason,
            DeadReason::Rejected("unknown model id".into())
        );
        assert_eq!(find(&doomed.job_id).reason, DeadReason::DeliveryLimit);
        assert_eq!(find(&doomed.job_id).attempts, 3);
        assert!(find("garbage").job.is_err());
        assert_eq!(queue.depth().await.expect("depth").dead, 3);
    })
    .await;
}

#[tokio::test]
async fn dropped_deliveries_come_back_and_prefetch_is_respected() {
    within(10, "at least once", async {
        let queue = JobQueue::open(&config()).expect("open");
        let (a, b) = (job("a", 10), job("b", 10));
        queue.publish(&a).await.expect("a");
        queue.publish(&b).await.expect("b");
        let mut consumer = queue.consumer(1);
        let first = next_delivery(&mut consumer, 5).await;
        assert!(
            maybe_delivery(&mut consumer, 100).await.is_none(),
            "prefetch 1"
        );
        drop(first); // a worker dying mid-job
        let second = next_delivery(&mut consumer, 5).await;
        assert_eq!(second.job().expect("b").job_id, b.job_id);
        second.ack().await.expect("ack");
        let again = next_delivery(&mut consumer, 5).await;
        assert_eq!(again.job().expect("a").job_id, a.job_id);
        assert_eq!(again.attempt(), 2);
        again.ack().await.expect("ack");
    })
    .await;
}

#[tokio::test]
async fn cancel_and_close_end_consumers() {
    within(10, "close", async {
        let queue = JobQueue::open(&config()).expect("open");
        let mut cancelled = queue.consumer(1);
        cancelled.cancel().await;
        assert!(cancelled.next().await.is_none());
        let mut waiting = queue.consumer(1);
        let waiter = tokio::spawn(async move { waiting.next().await.is_none() });
        tokio::time::sleep(Duration::from_millis(50)).await;
        queue.close().await;
        assert!(waiter.await.expect("task"), "close ends a waiting consumer");
        let err = queue.publish(&job("late", 1)).await.expect_err("closed");
        assert!(matches!(err, QueueError::Closed));
    })
    .await;
}

#[tokio::test]
async fn job_status_in_embedded_mode_and_lost_jobs_after_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (lost, done, poison) = (job("lost", 10), job("done", 10), job("poison", 10));
    within(20, "embedded status", async {
        {
            // First "process": a job is queued and never handled.
            let store = JobStore::open(dir.path(), None).expect("store");
            let queue = JobQueue::open(&config()).expect("open");
            let _feed = queue
                .attach_status_store(store.clone())
                .await
                .expect("attach");
            queue.publish(&lost).await.expect("publish");
            assert_eq!(
                store.get(&lost.job_id).map(|r| r.state),
                Some(JobState::Queued)
            );
        }
        // Second "process": the in-process queue lost it; the store says so.
        let store = JobStore::open(dir.path(), None).expect("reopen");
        let queue = JobQueue::open(&config()).expect("open");
        let _feed = queue
            .attach_status_store(store.clone())
            .await
            .expect("attach");
        let record = store.get(&lost.job_id).expect("lost job");
        assert_eq!(record.state, JobState::Failed);
        assert!(record.error.contains("lost at restart"), "{}", record.error);

        queue.publish(&done).await.expect("publish");
        queue.publish(&poison).await.expect("publish");
        let late = JobQueue::open(&config()).expect("open");
        late.publish(&job("early", 1)).await.expect("publish");
        let err = late
            .attach_status_store(store.clone())
            .await
            .expect_err("attaching after publishing is refused");
        assert!(err.to_string().contains("before publishing"), "{err}");
        let mut consumer = queue.consumer(2);
        for _ in 0..2 {
            let delivery = next_delivery(&mut consumer, 5).await;
            let j = delivery.job().expect("job").clone();
            if j.job_id == done.job_id {
                let attempts = delivery.attempt();
                delivery.ack().await.expect("ack");
                queue
                    .report(vec![JobRecord::done(&j, attempts)])
                    .await
                    .expect("report");
            } else {
                delivery
                    .dead_letter("bad image: not a PNG")
                    .await
                    .expect("dead");
            }
        }
        let done_record = store.get(&done.job_id).expect("done");
        assert_eq!(
            (done_record.state, done_record.attempts),
            (JobState::Done, 1)
        );
        let failed = store.get(&poison.job_id).expect("poison");
        assert_eq!(failed.state, JobState::Failed);
        assert_eq!(failed.error, "bad image: not a PNG");
        assert_eq!(failed.subject_id, "poison");
    })
    .await;
}

/// With a journal (what `twin serve` uses), the jobs not settled when the process ends come
/// back in the next one, in acceptance order and with their attempt counts, and their status
/// stays queued; an acknowledged one does not come back.
#[tokio::test]
async fn with_a_journal_unsettled_jobs_survive_a_restart_with_their_attempts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let durable = QueueConfig {
        inprocess_dir: dir.path().join("queue"),
        ..config()
    };
    let (acked, held, waiting) = (job("acked", 10), job("held", 10), job("waiting", 10));
    within(20, "journal", async {
        {
            let store = JobStore::open(&dir.path().join("jobs"), None).expect("store");
            let queue = JobQueue::connect(&durable).await.expect("open");
            let _feed = queue
                .attach_status_store(store.clone())
                .await
                .expect("attach");
            for j in [&acked, &held, &waiting] {
                queue.publish(j).await.expect("publish");
            }
            let mut consumer = queue.consumer(8);
            let first = next_delivery(&mut consumer, 5).await;
            let attempts = first.attempt();
            let done = first.job().expect("job").clone();
            first.ack().await.expect("ack");
            queue
                .report(vec![JobRecord::done(&done, attempts)])
                .await
                .expect("report");
            // Delivered, never settled: the process ends with the job in a worker's hands.
            let second = next_delivery(&mut consumer, 5).await;
            assert_eq!(second.job().expect("job"), &held);
            drop(second);
            drop(consumer);
            queue.close().await;
        }
        let store = JobStore::open(&dir.path().join("jobs"), None).expect("reopen");
        let queue = JobQueue::connect(&durable).await.expect("reopen");
        let _feed = queue
            .attach_status_store(store.clone())
            .await
            .expect("attach");
        assert_eq!(queue.depth().await.expect("depth").ready, 2);
        for j in [&held, &waiting] {
            assert_eq!(
                store.get(&j.job_id).map(|r| r.state),
                Some(JobState::Queued),
                "{} is still waiting, not lost",
                j.job_id
            );
        }
        assert_eq!(
            store.get(&acked.job_id).map(|r| r.state),
            Some(JobState::Done)
        );
        let mut consumer = queue.consumer(8);
        let again = next_delivery(&mut consumer, 5).await;
        assert_eq!(again.job().expect("job"), &held);
        assert_eq!(again.attempt(), 2, "the first delivery was counted");
        again.ack().await.expect("ack");
        let last = next_delivery(&mut consumer, 5).await;
        assert_eq!(last.job().expect("job"), &waiting);
        assert_eq!(last.attempt(), 1);
        last.ack().await.expect("ack");
        assert!(maybe_delivery(&mut consumer, 300).await.is_none());
    })
    .await;
    // Settled jobs are gone from the journal: a third start finds nothing.
    within(10, "journal emptied", async {
        let queue = JobQueue::connect(&durable).await.expect("third open");
        assert_eq!(queue.depth().await.expect("depth").ready, 0);
    })
    .await;
}

#[tokio::test]
async fn a_journal_in_use_by_another_queue_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let durable = QueueConfig {
        inprocess_dir: dir.path().join("queue"),
        ..config()
    };
    let _first = JobQueue::connect(&durable).await.expect("first");
    let error = JobQueue::connect(&durable).await.expect_err("second");
    assert!(error.to_string().contains("another twin serve"), "{error}");
}
