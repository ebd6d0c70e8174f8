//! `twin serve`'s in-process queue keeps every accepted job on disk until it is settled: a
//! `twin serve` killed with SIGKILL in the middle of an enrolment batch loses nothing, and
//! the restarted process finishes the batch (no job ends "lost at restart").

use std::path::Path;
use std::time::{Duration, Instant};

use tonic::Request;
use twin_proto::v1 as pb;
use twin_proto::v1::enrollment_client::EnrollmentClient;
use twin_tests::{channel, dev_model, twin_command, TwinProcess};

/// One delivery and one point at a time, so that the batch is still being worked on when the
/// process is killed.
fn slow_worker() -> Vec<(&'static str, String)> {
    vec![
        ("TWIN_WORKER__BATCH_SIZE", "1".to_owned()),
        ("TWIN_WORKER__PREFETCH", "1".to_owned()),
        ("TWIN_WORKER__BATCH_WAIT_MS", "1".to_owned()),
    ]
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_survives_sigkill_and_the_restarted_serve_finishes_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let images = dir.path().join("images");
    let synth = twin_command(
        "",
        &[
            "synth",
            "--out",
            path(&images),
            "--writers",
            "30",
            "--genuine",
            "10",
            "--forgeries",
            "0",
            "--width",
            "300",
            "--height",
            "100",
        ],
    )
    .await;
    assert!(synth.status.success(), "{synth:?}");

    let mut first = TwinProcess::serve(dir.path(), &[&dev_model()], &slow_worker()).await;
    let enqueued = twin_command(&first.url(), &["enqueue", path(&images), "--json"]).await;
    assert!(enqueued.status.success(), "{enqueued:?}");
    let report: serde_json::Value =
        serde_json::from_slice(&enqueued.stdout).expect("enqueue --json");
    let jobs: Vec<String> = report["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| j["job_id"].as_str().expect("job id").to_owned())
        .collect();
    assert_eq!(jobs.len(), 300, "{report}");
    first.kill().await;

    let second = TwinProcess::serve(dir.path(), &[&dev_model()], &slow_worker()).await;
    let mut enrollment = EnrollmentClient::new(channel(&second.url()).await);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut pending = jobs.clone();
    while !pending.is_empty() {
        assert!(
            Instant::now() < deadline,
            "{} jobs still not done; log:\n{}",
            pending.len(),
            second.log_text()
        );
        let mut still = Vec::new();
        for job_id in pending {
            let job = enrollment
                .get_job(Request::new(pb::GetJobRequest {
                    job_id: job_id.clone(),
                }))
                .await
                .expect("get job")
                .into_inner();
            match pb::JobStatus::try_from(job.status) {
                Ok(pb::JobStatus::Done) => {}
                Ok(pb::JobStatus::Failed) => panic!("job {job_id} failed: {}", job.error),
                _ => still.push(job_id),
            }
        }
        pending = still;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The kill came while the batch was being worked on: the restarted serve took the
    // rest from its journal (not from a second enqueue).
    let log = second.log_text();
    assert!(
        log.contains("jobs from before the restart are queued again"),
        "the kill found no job waiting, so this run proved nothing; log:\n{log}"
    );
    let again = twin_command(&second.url(), &["enqueue", path(&images), "--json"]).await;
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).expect("json");
    assert_eq!(again["already_stored"], 300, "{again}");
}
