//! The RabbitMQ backend against the real broker at 127.0.0.1:5672 (run
//! `bash scripts/ensure-rabbitmq.sh` first). Every test uses its own queues (unique
//! names per run), deletes them at the end (also on failure), and is bounded in time.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{job, maybe_delivery, next_delivery, rabbit_config, within, Cleanup, Relay};
use twin_queue::{DeadReason, JobQueue, JobRecord, JobState, JobStore, QueueError};

#[tokio::test]
async fn topology_declared_twice_is_fine_and_a_conflict_is_explained() {
    let config = rabbit_config("topology");
    let _cleanup = Cleanup::new(&config);
    within(30, "declare", async {
        let first = JobQueue::connect(&config).await.expect("first declare");
        let second = JobQueue::connect(&config)
            .await
            .expect("second declare, same arguments");
        second.ensure_ready().await.expect("third declare");
        first.close().await;
        second.close().await;

        let conflicting = twin_core::config::QueueConfig {
            delivery_limit: config.delivery_limit + 3,
            ..config.clone()
        };
        let err = JobQueue::connect(&conflicting)
            .await
            .expect_err("a queue with another delivery limit must be refused");
        assert!(matches!(err, QueueError::Topology(_)), "{err}");
        assert!(!err.is_retryable());
        assert!(err.to_string().contains(&config.queue), "{err}");
    })
    .await;
}

#[tokio::test]
async fn publish_with_confirm_then_consume_roundtrip() {
    let config = rabbit_config("roundtrip");
    let _cleanup = Cleanup::new(&config);
    within(60, "roundtrip", async {
        let queue = JobQueue::connect(&config).await.expect("connect");
        let jobs: Vec<_> = (0..25).map(|i| job(&format!("s{i}"), 2_000 + i)).collect();
        queue.publish(&jobs[0]).await.expect("publish one");
        for result in queue.publish_many(&jobs[1..]).await {
            result.expect("publish many");
        }
        let depth = queue.depth().await.expect("depth");
        assert_eq!(depth.ready, 25);

        let mut consumer = queue.consumer(10);
        let mut seen = HashSet::new();
        for _ in 0..25 {
            let delivery = next_delivery(&mut consumer, 20).await;
            assert_eq!(delivery.attempt(), 1);
            let got = delivery.job().expect("a job").clone();
            let sent = jobs
                .iter()
                .find(|j| j.job_id == got.job_id)
                .expect("a sent job");
            assert_eq!(&got, sent, "the job arrives unchanged");
            assert_eq!(delivery.job_id(), sent.job_id);
            assert!(
                seen.insert(got.job_id.clone()),
                "no duplicate without a failure"
            );
            delivery.ack().await.expect("ack");
        }
        assert!(maybe_delivery(&mut consumer, 300).await.is_none());
        consumer.close().await;
        let depth = queue.depth().await.expect("depth");
        assert_eq!((depth.ready, depth.dead), (0, 0));
        queue.close().await;
    })
    .await;
}

#[tokio::test]
async fn oversized_job_is_refused_before_publishing() {
    let mut config = rabbit_config("too-large");
    config.max_message_bytes = 4_096;
    let _cleanup = Cleanup::new(&config);
    within(30, "too large", async {
        let queue = JobQueue::connect(&config).await.expect("connect");
        let big = job("big", 5_000);
        let err = queue.publish(&big).await.expect_err("too large");
        match &err {
            QueueError::TooLarge {
                job_id,
                size,
                limit,
            } => {
                assert_eq!(job_id, &big.job_id);
                assert!(*size > 5_000);
                assert_eq!(*limit, 4_096);
            }
            other => panic!("expected TooLarge, got {other}"),
        }
        assert!(!err.is_retryable());
        assert!(err.to_string().contains("queue.max_message_bytes"), "{err}");
        let err = queue
            .publish_raw("raw", vec![0; 4_097])
            .await
            .expect_err("raw too large");
        assert!(matches!(err, QueueError::TooLarge { .. }));
        // A batch refuses only the big one.
        let small = job("small", 100);
        let results = queue.publish_many(&[small, big]).await;
        assert!(results[0].is_ok());
        assert!(matches!(results[1], Err(QueueError::TooLarge { .. })));
        assert_eq!(
            queue.depth().await.expect("depth").ready,
            1,
            "nothing big was sent"
        );
        queue.close().await;
    })
    .await;
}

#[tokio::test]
async fn dead_letter_lands_in_the_dead_letter_queue_with_its_reason() {
    let config = rabbit_config("dead-letter");
    let _cleanup = Cleanup::new(&config);
    within(60, "dead letter", async {
        let queue = JobQueue::connect(&config).await.expect("connect");
        let good = job("alice", 300);
        queue.publish(&good).await.expect("publish");
        queue
            .publish_raw("not-a-job", b"hello, not protobuf".to_vec())
            .await
            .expect("publish raw");

        let mut consumer = queue.consumer(4);
        for _ in 0..2 {
            let delivery = next_delivery(&mut consumer, 20).await;
            let reason = match delivery.job() {
                Ok(_) => "bad image: truncated PNG data".to_owned(),
                Err(e) => e.to_string(),
            };
            delivery.dead_letter(&reason).await.expect("dead letter");
        }
        assert!(
            maybe_delivery(&mut consumer, 300).await.is_none(),
            "dead jobs do not come back"
        );
        consumer.close().await;

        let dead = queue.dead_letters(10).await.expect("dead letters");
        assert_eq!(dead.len(), 2);
        let poison = dead
            .iter()
            .find(|d| d.job_id == good.job_id)
            .expect("good job dead");
        assert_eq!(
            poison.reason,
            DeadReason::Rejected("bad image: truncated PNG data".into())
        );
        assert_eq!(poison.attempts, 1);
        assert!(poison.dead_at_ms > 0);
        assert_eq!(poison.job.as_ref().expect("decodes"), &good);
        let garbage = dead
            .iter()
            .find(|d| d.job_id == "not-a-job")
            .expect("garbage dead");
        assert!(garbage.job.is_err());
        match &garbage.reason {
            DeadReason::Rejected(reason) => {
                assert!(reason.contains("not a twin.v1.EmbedJob"), "{reason}")
            }
            other => panic!("unexpected reason {other:?}"),
        }
        // Reading left them in place.
        assert_eq!(queue.dead_letters(10).await.expect("again").len(), 2);
        let depth = queue.depth().await.expect("depth");
        assert_eq!((depth.ready, depth.dead), (0, 2));
        queue.close().await;
    })
    .await;
}

#[tokio::test]
async fn delivery_limit_exhaustion_lands_in_the_dead_letter_queue() {
    let config = rabbit_config("exhausted"); // delivery_limit = 2
    let _cleanup = Cleanup::new(&config);
    within(60, "exhaustion", async {
        let queue = JobQueue::connect(&config).await.expect("connect");
        let doomed = job("doomed", 200);
        queue.publish(&doomed).await.expect("publish");
        let mut consumer = queue.consumer(1);
        let mut attempts = Vec::new();
        while let Some(delivery) = maybe_delivery(&mut consumer, 2_000).await {
            attempts.push(delivery.attempt());
            delivery.retry().await.expect("retry");
        }
        assert_eq!(
            attempts,
            vec![1, 2, 3],
            "delivered delivery_limit + 1 times"
        );
        consumer.close().await;
        let dead = within(10, "dead letter appears", async {
            loop {
                let dead = queue.dead_letters(5).await.expect("dead letters");
                if !dead.is_empty() {
                    return dead;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].job_id, doomed.job_id);
        assert_eq!(dead[0].reason, DeadReason::DeliveryLimit);
        assert_eq!(dead[0].attempts, 3);
        assert_eq!(dead[0].job.as_ref().expect("job"), &doomed);
        queue.close().await;
    })
    .await;
}

#[tokio::test]
async fn prefetch_is_reapplied_after_the_connection_is_cut() {
    let config = rabbit_config("prefetch");
    let _cleanup = Cleanup::new(&config);
    let relay = Relay::start().await;
    within(60, "prefetch after reconnect", async {
        let publisher = JobQueue::connect(&config).await.expect("connect");
        let jobs: Vec<_> = (0..6).map(|i| job(&format!("p{i}"), 100)).collect();
        for r in publisher.publish_many(&jobs).await {
            r.expect("publish");
        }
        let through_relay = JobQueue::open(&relay.config(&config)).expect("open");
        let mut consumer = through_relay.consumer(2);
        let held = [
            next_delivery(&mut consumer, 20).await,
            next_delivery(&mut consumer, 20).await,
        ];
        assert!(
            maybe_delivery(&mut consumer, 700).await.is_none(),
            "prefetch 2 holds before the cut"
        );
        assert_eq!(consumer.recoveries(), 0);

        assert!(
            relay.cut() > 0,
            "the consumer's connection went through the relay"
        );
        // The consumer notices, reconnects by itself and gets prefetch deliveries again.
        let again = [
            next_delivery(&mut consumer, 30).await,
            next_delivery(&mut consumer, 30).await,
        ];
        assert!(
            maybe_delivery(&mut consumer, 700).await.is_none(),
            "prefetch 2 holds after recovery (basic_qos re-applied)"
        );
        assert_eq!(consumer.recoveries(), 1);
        assert!(consumer.is_connected());
        // Deliveries from the dead channel cannot be settled: the broker took them back.
        for delivery in held {
            let err = delivery.ack().await.expect_err("ack on a dead channel");
            assert!(matches!(err, QueueError::DeliveryLost { .. }), "{err}");
        }
        for delivery in again {
            delivery.ack().await.expect("ack after recovery");
        }
        // The remaining jobs (including the two redelivered ones) all arrive.
        let mut rest = 0;
        while let Some(delivery) = maybe_delivery(&mut consumer, 1_000).await {
            delivery.ack().await.expect("ack");
            rest += 1;
        }
        assert_eq!(rest, 4);
        consumer.close().await;
        publisher.close().await;
    })
    .await;
}

#[tokio::test]
async fn broker_unreachable_is_a_retryable_error_not_a_hang() {
    let config = twin_core::config::QueueConfig {
        url: "amqp://guest:guest@127.0.0.1:1/%2f".into(),
        ..rabbit_config("unreachable")
    };
    within(20, "unreachable", async {
        let queue = JobQueue::open(&config).expect("open");
        let err = queue.publish(&job("x", 10)).await.expect_err("no broker");
        assert!(matches!(err, QueueError::Unavailable(_)), "{err}");
        assert!(err.is_retryable());
        assert!(
            !err.to_string().contains("guest:guest"),
            "password is not shown: {err}"
        );
        let mut consumer = queue.consumer(1);
        let first = consumer.next().await.expect("an item");
        assert!(matches!(first, Err(QueueError::Unavailable(_))));
        assert!(!consumer.is_connected());
    })
    .await;
}

#[tokio::test]
async fn job_status_follows_queued_done_and_failed_through_the_broker() {
    let mut config = rabbit_config("status");
    config.delivery_limit = 1;
    let _cleanup = Cleanup::new(&config);
    let dir = tempfile::tempdir().expect("tempdir");
    within(90, "job status", async {
        // The gateway's side: a queue with the job store attached.
        let gateway = JobQueue::connect(&config).await.expect("connect");
        let store = JobStore::open(dir.path(), None).expect("store");
        let feed = gateway
            .attach_status_store(store.clone())
            .await
            .expect("attach");
        let (done, poison, doomed) = (job("done", 100), job("poison", 100), job("doomed", 100));
        for r in gateway
            .publish_many(&[done.clone(), poison.clone(), doomed.clone()])
            .await
        {
            r.expect("publish");
        }
        for j in [&done, &poison, &doomed] {
            let record = store.get(&j.job_id).expect("recorded at enqueue");
            assert_eq!(record.state, JobState::Queued);
            assert_eq!(
                record.point_id,
                twin_core::ids::point_id(&j.model_id, &j.tenant, &j.subject_id, &j.image_sha256)
                    .to_string()
            );
        }

        // The worker's side: its own queue handle, no store.
        let worker = JobQueue::open(&config).expect("worker queue");
        let mut consumer = worker.consumer(4);
        let mut handled = 0;
        while handled < 4 {
            let delivery = next_delivery(&mut consumer, 20).await;
            let j = delivery.job().expect("job").clone();
            if j.job_id == done.job_id {
                let attempts = delivery.attempt();
                delivery.ack().await.expect("ack");
                worker
                    .report(vec![JobRecord::done(&j, attempts)])
                    .await
                    .expect("report");
            } else if j.job_id == poison.job_id {
                delivery
                    .dead_letter("bad image: truncated PNG data")
                    .await
                    .expect("dead");
            } else {
                delivery.retry().await.expect("retry"); // twice: limit 1 → dead
            }
            handled += 1;
        }
        let settled = within(20, "statuses settle", async {
            loop {
                let states: Vec<_> = [&done, &poison, &doomed]
                    .iter()
                    .map(|j| store.get(&j.job_id).expect("known"))
                    .collect();
                if states.iter().all(|r| r.state.is_terminal()) {
                    return states;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
        assert_eq!(settled[0].state, JobState::Done);
        assert_eq!(settled[0].attempts, 1);
        assert_eq!(settled[1].state, JobState::Failed);
        assert_eq!(settled[1].error, "bad image: truncated PNG data");
        assert_eq!(settled[2].state, JobState::Failed);
        assert!(
            settled[2].error.contains("delivery limit"),
            "{}",
            settled[2].error
        );
        assert_eq!(settled[2].attempts, 2);
        assert_eq!(settled[2].subject_id, "doomed");

        consumer.close().await;
        feed.stop().await;
        worker.close().await;
        gateway.close().await;
        // The queue holds a clone of the store: release both before reopening.
        drop((gateway, store));
        // Durable: a reopened store still knows.
        let reopened = JobStore::open(dir.path(), None).expect("reopen");
        assert_eq!(
            reopened.get(&done.job_id).map(|r| r.state),
            Some(JobState::Done)
        );
        assert_eq!(
            reopened.get(&poison.job_id).map(|r| r.state),
            Some(JobState::Failed)
        );
    })
    .await;
}

#[tokio::test]
async fn cancel_stops_new_deliveries_but_lets_held_ones_settle() {
    let config = rabbit_config("cancel");
    let _cleanup = Cleanup::new(&config);
    within(60, "cancel", async {
        let queue = JobQueue::connect(&config).await.expect("connect");
        for r in queue
            .publish_many(
                &(0..5)
                    .map(|i| job(&format!("c{i}"), 50))
                    .collect::<Vec<_>>(),
            )
            .await
        {
            r.expect("publish");
        }
        let mut consumer = queue.consumer(2);
        let held = next_delivery(&mut consumer, 20).await;
        consumer.cancel().await;
        // What was already sent to us may still be handed out, then the stream ends.
        let mut drained = Vec::new();
        while let Some(next) = within(10, "drain", consumer.next()).await {
            drained.push(next.expect("delivery"));
        }
        assert!(
            drained.len() <= 1,
            "prefetch 2: at most one more was in flight"
        );
        held.ack()
            .await
            .expect("a held delivery settles after cancel");
        for d in drained {
            d.retry().await.expect("retry");
        }
        consumer.close().await;
        let depth = within(10, "depth", async {
            loop {
                let depth = queue.depth().await.expect("depth");
                if depth.ready == 4 {
                    return depth;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
        assert_eq!(depth.consumers, 0);
        queue.close().await;
    })
    .await;
}
