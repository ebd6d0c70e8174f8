//! The soak of issue 24: `twin serve` killed with SIGKILL at seeded random moments while a
//! 5,000-image enrolment is enqueued and embedded, restarted each time on the same data
//! directory. At the end every image is stored exactly once (one point per image, none
//! missing, no job failed) and every decision made between the kills is in the audit trail.
//! Bounded: 3 kills, 5,000 images, a deadline of a few minutes.

use std::path::Path;
use std::time::{Duration, Instant};

use tonic::Request;
use twin_proto::v1 as pb;
use twin_proto::v1::audit_trail_client::AuditTrailClient;
use twin_proto::v1::enrollment_client::EnrollmentClient;
use twin_tests::{channel, dev_model, twin_command, TwinProcess};

const WRITERS: usize = 100;
const PER_WRITER: usize = 50;
const KILLS: usize = 3;
/// What a restarted `twin serve` logs when its journal held accepted, unsettled jobs.
const REPLAYED: &str = "jobs from before the restart are queued again";

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A deterministic generator for the kill moments (no dependency for one number a round).
struct Lcg(u64);

impl Lcg {
    fn millis(&mut self, low: u64, high: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        low + (self.0 >> 33) % (high - low)
    }
}

/// One Verify through `twin verify --json`; its request id, for the audit check.
async fn verify(url: &str, images: &Path, writer: usize) -> String {
    let a = images.join(format!("w{:04}/w{:04}-G-01.png", writer + 1, writer + 1));
    let b = images.join(format!("w{:04}/w{:04}-G-02.png", writer + 1, writer + 1));
    let out = twin_command(url, &["verify", path(&a), path(&b), "--json"]).await;
    assert!(out.status.success(), "{out:?}");
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).expect("verify --json");
    answer["audit"]["request_id"]
        .as_str()
        .expect("request id")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_a_5000_image_enrolment_stores_every_image_exactly_once_and_keeps_the_audit_trail(
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let images = dir.path().join("images");
    let synth = twin_command(
        "",
        &[
            "synth",
            "--out",
            path(&images),
            "--writers",
            &WRITERS.to_string(),
            "--genuine",
            &PER_WRITER.to_string(),
            "--forgeries",
            "0",
            "--width",
            "200",
            "--height",
            "80",
        ],
    )
    .await;
    assert!(synth.status.success(), "{synth:?}");
    let env = [("TWIN_WORKER__BATCH_WAIT_MS", "5".to_owned())];
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut rng = Lcg(24);
    let mut decisions = Vec::new();
    let mut replays = 0;

    for round in 0..KILLS {
        let mut serve = TwinProcess::serve(dir.path(), &[&dev_model()], &env).await;
        replays += usize::from(serve.log_text().contains(REPLAYED));
        let url = serve.url();
        decisions.push(verify(&url, &images, round).await);
        // The enrolment runs while the process is killed under it, at a seeded moment.
        let enqueue = tokio::spawn({
            let url = url.clone();
            let images = images.clone();
            async move { twin_command(&url, &["enqueue", path(&images), "--json"]).await }
        });
        tokio::time::sleep(Duration::from_millis(rng.millis(300, 3000))).await;
        serve.kill().await;
        let enqueued = enqueue.await.expect("enqueue task");
        eprintln!(
            "round {round}: killed; the interrupted enqueue exited {:?}",
            enqueued.status.code()
        );
        assert!(
            Instant::now() < deadline,
            "the soak ran out of time in round {round}"
        );
    }

    // The last start: enqueue everything once more (what is stored is skipped) and wait.
    let serve = TwinProcess::serve(dir.path(), &[&dev_model()], &env).await;
    replays += usize::from(serve.log_text().contains(REPLAYED));
    assert!(
        replays > 0,
        "no kill found accepted jobs waiting, so this run proved nothing"
    );
    let url = serve.url();
    decisions.push(verify(&url, &images, KILLS).await);
    let finished = twin_command(&url, &["enqueue", path(&images), "--wait", "--json"]).await;
    let report: serde_json::Value = serde_json::from_slice(&finished.stdout).expect("json");
    assert!(
        finished.status.success(),
        "{report}\nlog:\n{}",
        serve.log_text()
    );
    assert_eq!(report["failed"], 0, "{report}");
    let again = twin_command(&url, &["enqueue", path(&images), "--json"]).await;
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).expect("json");
    assert_eq!(again["already_stored"], WRITERS * PER_WRITER, "{again}");

    // Exactly once: each subject holds one point per image, no more.
    let mut enrollment = EnrollmentClient::new(channel(&url).await);
    let mut points = std::collections::HashSet::new();
    for writer in 1..=WRITERS {
        let subject = enrollment
            .get_subject(Request::new(pb::GetSubjectRequest {
                subject_id: format!("w{writer:04}"),
                ..Default::default()
            }))
            .await
            .expect("get subject")
            .into_inner();
        assert_eq!(subject.references.len(), PER_WRITER, "w{writer:04}");
        points.extend(subject.references.into_iter().map(|r| r.point_id));
    }
    assert_eq!(points.len(), WRITERS * PER_WRITER);

    // The audit trail kept every decision made before each kill.
    let mut audit = AuditTrailClient::new(channel(&url).await);
    for request_id in &decisions {
        let found = audit
            .query_audit(Request::new(pb::QueryAuditRequest {
                request_id: request_id.clone(),
                ..Default::default()
            }))
            .await
            .expect("query audit")
            .into_inner();
        assert_eq!(found.entries.len(), 1, "decision {request_id} is missing");
    }
}
