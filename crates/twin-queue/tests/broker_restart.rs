//! Restarts the real broker (`rabbitmqctl stop_app` / `start_app`) during consumption.
//! Its own test binary, so `cargo test` runs it after the others; under nextest every
//! test whose name contains `broker_restart` runs alone (see `.config/nextest.toml`),
//! since restarting the broker disturbs any test that uses it meanwhile.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{job, maybe_delivery, next_delivery, rabbit_config, within, BrokerRestart, Cleanup};
use twin_queue::{JobQueue, QueueError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_during_consumption_loses_no_confirmed_job() {
    let config = rabbit_config("broker-restart");
    let _cleanup = Cleanup::new(&config);
    within(240, "broker restart", async {
        let queue = JobQueue::connect(&config).await.expect("connect");
        let before: Vec<_> = (0..40).map(|i| job(&format!("b{i}"), 1_000)).collect();
        for r in queue.publish_many(&before).await {
            r.expect("publish before the restart");
        }
        let mut expected: HashSet<String> = before.iter().map(|j| j.job_id.clone()).collect();
        let mut consumer = queue.consumer(8);
        let mut done = HashSet::new();
        for _ in 0..10 {
            let delivery = next_delivery(&mut consumer, 20).await;
            done.insert(delivery.job_id().to_owned());
            delivery.ack().await.expect("ack before the restart");
        }
        // Held, unacknowledged, while the broker goes away.
        let held = next_delivery(&mut consumer, 20).await;

        let restart = BrokerRestart::stop().await;
        let err = queue
            .publish(&job("during", 100))
            .await
            .expect_err("broker down");
        assert!(err.is_retryable(), "{err}");
        let err = held
            .ack()
            .await
            .expect_err("its channel died with the broker");
        assert!(matches!(err, QueueError::DeliveryLost { .. }), "{err}");
        tokio::time::sleep(Duration::from_secs(2)).await;
        restart.start().await;

        // Publishing works again once the broker is back (a producer retries).
        let after: Vec<_> = (0..10).map(|i| job(&format!("a{i}"), 1_000)).collect();
        for j in &after {
            within(60, "publish after the restart", async {
                loop {
                    match queue.publish(j).await {
                        Ok(()) => break,
                        Err(e) if e.is_retryable() => {
                            tokio::time::sleep(Duration::from_millis(500)).await
                        }
                        Err(e) => panic!("publish after restart: {e}"),
                    }
                }
            })
            .await;
            expected.insert(j.job_id.clone());
        }

        // The consumer recovers by itself and every confirmed job arrives.
        let mut lost_acks = 0;
        within(120, "consume everything", async {
            while !expected.iter().all(|id| done.contains(id)) {
                let delivery = next_delivery(&mut consumer, 60).await;
                let job_id = delivery.job_id().to_owned();
                match delivery.ack().await {
                    Ok(()) => {
                        done.insert(job_id);
                    }
                    // Received just before its channel died: the broker redelivers it.
                    Err(QueueError::DeliveryLost { .. }) => lost_acks += 1,
                    Err(e) => panic!("ack after the restart: {e}"),
                }
            }
        })
        .await;
        assert!(consumer.recoveries() >= 1, "the consumer reconnected");
        eprintln!("acks lost with the old channel: {lost_acks}");
        assert!(maybe_delivery(&mut consumer, 500).await.is_none());
        consumer.close().await;
        queue.close().await;
    })
    .await;
}
