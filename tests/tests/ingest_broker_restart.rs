//! The broker restarts during consumption: the worker recovers by itself and finishes;
//! no confirmed job is lost. Named `broker_restart` so nextest runs it alone (see
//! .config/nextest.toml): nothing else may see the broker vanish.

mod common;

use std::process::Command;
use std::time::Duration;

use common::Cluster;

fn rabbitmqctl(args: &[&str]) {
    let status = Command::new("rabbitmqctl")
        .args(args)
        .status()
        .expect("rabbitmqctl");
    assert!(status.success(), "rabbitmqctl {args:?} failed");
}

#[tokio::test]
async fn broker_restart_during_consumption_loses_no_confirmed_job() {
    let mut cluster = Cluster::start(&[]).await;
    let jobs = cluster.jobs(600);
    cluster.publish(&jobs).await;
    let mut worker = cluster.worker().await;
    let partial = cluster.wait_for_points(50, Duration::from_secs(120)).await;
    assert!(partial >= 50, "{}", worker.log_text());
    rabbitmqctl(&["stop_app"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    rabbitmqctl(&["start_app"]);
    rabbitmqctl(&["await_startup"]);
    let stored = cluster.wait_for_points(600, Duration::from_secs(240)).await;
    assert_eq!(
        stored,
        600,
        "every confirmed job stored:\n{}",
        worker.log_text()
    );
    assert!(worker.terminate(Duration::from_secs(20)).await);
    // The producer's connection died with the broker: reconnect to clean up.
    let queue = twin_queue::JobQueue::connect(&cluster.queue_config)
        .await
        .expect("broker back");
    let _ = queue.delete().await;
    cluster.cleanup().await;
}
