//! The distributed shape on one machine: a `twin-gateway` process and a `twin-worker`
//! process talking through the real RabbitMQ broker (127.0.0.1:5672) and sharing a
//! Qdrant store over Qdrant's gRPC protocol (the test-only server from twin-store's
//! test support, backed by Qdrant's own engine).

#[path = "../../crates/twin-store/tests/support/fake_qdrant_server.rs"]
#[allow(dead_code)]
mod fake_qdrant_server;

use std::time::Duration;

use fake_qdrant_server::FakeQdrant;
use tonic::Request;
use twin_proto::v1 as pb;
use twin_proto::v1::enrollment_client::EnrollmentClient;
use twin_proto::v1::verification_client::VerificationClient;
use twin_tests::{bin, channel, dev_model, genuine, TwinProcess};

fn timed<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.set_timeout(Duration::from_secs(60));
    request
}

#[tokio::test]
async fn gateway_and_worker_processes_enrol_through_rabbitmq() {
    let dir = tempfile::tempdir().expect("tempdir");
    let qdrant = FakeQdrant::start(&dir.path().join("qdrant"), None).await;
    let queue_name = format!("twin.e2e.{}", uuid::Uuid::new_v4().simple());
    let env = vec![
        ("TWIN_QUEUE__BACKEND", "rabbitmq".to_owned()),
        ("TWIN_QUEUE__QUEUE", queue_name.clone()),
        (
            "TWIN_QUEUE__JOBS_DIR",
            dir.path().join("jobs").display().to_string(),
        ),
        ("TWIN_STORE__BACKEND", "qdrant".to_owned()),
        ("TWIN_STORE__URL", qdrant.url.clone()),
        ("TWIN_MODELS__DIRS", dev_model().display().to_string()),
        ("TWIN_GATEWAY__ADDR", "127.0.0.1:0".to_owned()),
        ("TWIN_GATEWAY__METRICS_ADDR", String::new()),
        ("TWIN_WORKER__BATCH_WAIT_MS", "5".to_owned()),
        ("TWIN_WORKER__SHUTDOWN_DEADLINE_S", "10".to_owned()),
    ];
    let gateway = TwinProcess::start(
        &bin("twin-gateway"),
        &[],
        &env,
        "twin-gateway listening on ",
        dir.path().join("gateway.log"),
    )
    .await;
    let mut worker =
        TwinProcess::start_detached(&bin("twin-worker"), &env, dir.path().join("worker.log")).await;

    let ch = channel(&gateway.url()).await;
    let mut enrollment = EnrollmentClient::new(ch.clone());
    let mut verification = VerificationClient::new(ch);

    // A synchronous enrolment goes gateway → broker → worker → store and back.
    let job = enrollment
        .enroll(timed(pb::EnrollRequest {
            subject_id: "alice".into(),
            image: Some(pb::Image::from_bytes(genuine(0, 0), "alice-1.png")),
            wait: true,
            ..Default::default()
        }))
        .await
        .unwrap_or_else(|e| panic!("enrol: {e}\nworker log:\n{}", worker.log_text()))
        .into_inner()
        .job
        .expect("job");
    assert_eq!(job.status, pb::JobStatus::Done as i32, "{job:?}");

    // A stream of 20 images: all accepted, all stored, GetJob says done.
    let items: Vec<pb::EnqueueItem> = (0..20)
        .map(|i| pb::EnqueueItem {
            client_ref: format!("bob-{i}"),
            subject_id: "bob".into(),
            image: Some(pb::Image::from_bytes(genuine(1, i), String::new())),
            ..Default::default()
        })
        .collect();
    let batch = enrollment
        .enqueue_batch(timed(tokio_stream::iter(items)))
        .await
        .expect("batch")
        .into_inner();
    assert_eq!(batch.accepted, 20, "{batch:?}");
    for result in &batch.results {
        let mut status = 0;
        for _ in 0..400 {
            status = enrollment
                .get_job(timed(pb::GetJobRequest {
                    job_id: result.job_id.clone(),
                }))
                .await
                .expect("get job")
                .into_inner()
                .status;
            if status == pb::JobStatus::Done as i32 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(status, pb::JobStatus::Done as i32, "job {}", result.job_id);
    }
    let subject = enrollment
        .get_subject(timed(pb::GetSubjectRequest {
            subject_id: "bob".into(),
            model: String::new(),
            thumbnails: false,
        }))
        .await
        .expect("subject")
        .into_inner();
    assert_eq!(subject.references.len(), 20);

    let verdict = verification
        .verify_subject(timed(pb::VerifySubjectRequest {
            subject_id: "bob".into(),
            probe: Some(pb::Image::from_bytes(genuine(1, 3), String::new())),
            policy: Some(pb::DecisionPolicy {
                threshold: Some(pb::decision_policy::Threshold::ExplicitThreshold(0.999)),
            }),
            ..Default::default()
        }))
        .await
        .expect("verify subject")
        .into_inner();
    assert!(verdict.r#match && verdict.references == 20, "{verdict:?}");

    // SIGTERM: the worker drains and exits by itself within its deadline.
    assert!(
        worker.terminate(Duration::from_secs(15)).await,
        "worker did not stop on SIGTERM"
    );
    assert!(
        worker.log_text().contains("worker stopped"),
        "{}",
        worker.log_text()
    );

    // Clean up this run's queues.
    let config = twin_core::config::QueueConfig {
        backend: "rabbitmq".into(),
        queue: queue_name,
        ..Default::default()
    };
    twin_queue::JobQueue::open(&config)
        .expect("queue config")
        .delete()
        .await
        .expect("delete queues");
}
