//! Tenants through the real `twin serve`: keys bound to tenants see only their tenant's
//! subjects, points, jobs, search hits and decisions, whatever they send; admin keys
//! manage keys through the API; key changes (API or a hand edit of the file) apply
//! without a restart.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use tonic::Code;
use twin_proto::v1 as pb;
use twin_proto::v1::api_keys_client::ApiKeysClient;
use twin_proto::v1::audit_trail_client::AuditTrailClient;
use twin_proto::v1::enrollment_client::EnrollmentClient;
use twin_proto::v1::similarity_client::SimilarityClient;
use twin_proto::v1::verification_client::VerificationClient;
use twin_tests::{authed, channel, dev_model, genuine, image, twin_command, TwinProcess};

const ADMIN: &str = "admin-key-for-tenant-tests-01";
const ACME: &str = "acme-writer-for-tenant-tests-01";
const GLOBEX: &str = "globex-writer-for-tenant-tests-01";
const GLOBEX_READER: &str = "globex-reader-for-tenant-tests-01";
const DEFAULT_WRITER: &str = "default-writer-for-tenant-tests-01";

struct Serve {
    process: TwinProcess,
    keys: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

async fn serve() -> Serve {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = dir.path().join("keys.txt");
    std::fs::write(
        &keys,
        format!(
            "# tenants test\nadmin {ADMIN} name=operator\nwrite {ACME} tenant=acme\n\
             write {GLOBEX} tenant=globex\nread {GLOBEX_READER} tenant=globex\n\
             write {DEFAULT_WRITER}\n"
        ),
    )
    .expect("keys");
    let env = [
        ("TWIN_GATEWAY__API_KEYS_FILE", keys.display().to_string()),
        ("TWIN_WORKER__BATCH_WAIT_MS", "5".to_owned()),
    ];
    let process = TwinProcess::serve(dir.path(), &[&dev_model()], &env).await;
    Serve {
        process,
        keys,
        _dir: dir,
    }
}

/// A threshold every score passes: the search returns its nearest points, whoever's.
fn accept_all() -> Option<pb::DecisionPolicy> {
    Some(pb::DecisionPolicy {
        threshold: Some(pb::decision_policy::Threshold::ExplicitThreshold(-1e9)),
    })
}

struct Clients {
    enrollment: EnrollmentClient<tonic::transport::Channel>,
    similarity: SimilarityClient<tonic::transport::Channel>,
    verification: VerificationClient<tonic::transport::Channel>,
    audit: AuditTrailClient<tonic::transport::Channel>,
    keys: ApiKeysClient<tonic::transport::Channel>,
}

async fn clients(url: &str) -> Clients {
    let ch = channel(url).await;
    Clients {
        enrollment: EnrollmentClient::new(ch.clone()),
        similarity: SimilarityClient::new(ch.clone()),
        verification: VerificationClient::new(ch.clone()),
        audit: AuditTrailClient::new(ch.clone()),
        keys: ApiKeysClient::new(ch),
    }
}

impl Clients {
    async fn enroll(&mut self, key: &str, subject: &str, data: Vec<u8>) -> pb::Job {
        self.enrollment
            .enroll(authed(
                pb::EnrollRequest {
                    subject_id: subject.to_owned(),
                    image: image(data),
                    wait: true,
                    ..Default::default()
                },
                key,
            ))
            .await
            .expect("enrol")
            .into_inner()
            .job
            .expect("job")
    }

    async fn subject(&mut self, key: &str, subject: &str) -> Result<pb::Subject, tonic::Status> {
        self.enrollment
            .get_subject(authed(
                pb::GetSubjectRequest {
                    subject_id: subject.to_owned(),
                    model: String::new(),
                    thumbnails: false,
                },
                key,
            ))
            .await
            .map(tonic::Response::into_inner)
    }

    async fn search(
        &mut self,
        key: &str,
        query: pb::search_request::Query,
    ) -> Result<pb::SearchResponse, tonic::Status> {
        self.similarity
            .search(authed(
                pb::SearchRequest {
                    query: Some(query),
                    top_k: 50,
                    policy: accept_all(),
                    ..Default::default()
                },
                key,
            ))
            .await
            .map(tonic::Response::into_inner)
    }

    async fn audit(
        &mut self,
        key: &str,
        tenant: &str,
    ) -> Result<Vec<pb::AuditEntry>, tonic::Status> {
        self.audit
            .query_audit(authed(
                pb::QueryAuditRequest {
                    tenant: tenant.to_owned(),
                    limit: 1000,
                    ..Default::default()
                },
                key,
            ))
            .await
            .map(|r| r.into_inner().entries)
    }
}

fn point_ids(subject: &pb::Subject) -> HashSet<String> {
    subject
        .references
        .iter()
        .map(|r| r.point_id.clone())
        .collect()
}

#[tokio::test]
async fn tenants_never_see_each_others_subjects_points_jobs_search_hits_or_decisions() {
    let serve = serve().await;
    let mut c = clients(&serve.process.url()).await;

    // Two tenants enrol a subject of the same name; globex also enrols acme's very image.
    let mut acme_jobs = Vec::new();
    for i in 0..3 {
        let job = c.enroll(ACME, "alice", genuine(0, i)).await;
        assert_eq!(job.status, pb::JobStatus::Done as i32, "{job:?}");
        acme_jobs.push(job);
    }
    c.enroll(GLOBEX, "alice", genuine(1, 0)).await;
    let same_image = c.enroll(GLOBEX, "alice", genuine(0, 0)).await;
    assert_ne!(
        same_image.point_id, acme_jobs[0].point_id,
        "one image, two tenants: two points"
    );
    c.enroll(GLOBEX, "bob", genuine(2, 0)).await;

    // Subjects: each tenant's own alice, none for the default tenant.
    let acme_alice = c.subject(ACME, "alice").await.expect("acme's alice");
    let globex_alice = c
        .subject(GLOBEX_READER, "alice")
        .await
        .expect("globex's alice");
    assert_eq!(acme_alice.references.len(), 3);
    assert_eq!(globex_alice.references.len(), 2);
    assert!(point_ids(&acme_alice).is_disjoint(&point_ids(&globex_alice)));
    let default = c
        .subject(DEFAULT_WRITER, "alice")
        .await
        .expect_err("no default alice");
    assert_eq!(default.code(), Code::NotFound);

    // Search: acme's probe image, asked by globex, finds only globex's points, and by
    // acme only acme's.
    let globex_points: HashSet<String> = point_ids(&globex_alice)
        .union(&point_ids(&c.subject(GLOBEX, "bob").await.expect("bob")))
        .cloned()
        .collect();
    let probe =
        pb::search_request::Query::Image(pb::Image::from_bytes(genuine(0, 5), String::new()));
    let hits = c
        .search(GLOBEX_READER, probe.clone())
        .await
        .expect("search")
        .hits;
    assert_eq!(hits.len(), 3, "{hits:?}");
    assert!(
        hits.iter().all(|h| globex_points.contains(&h.point_id)),
        "{hits:?}"
    );
    let hits = c.search(ACME, probe).await.expect("search").hits;
    assert_eq!(
        hits.iter()
            .map(|h| h.point_id.clone())
            .collect::<HashSet<_>>(),
        point_ids(&acme_alice)
    );
    // Naming another tenant's point, subject or job is the same as naming nothing.
    let acme_point = acme_jobs[0].point_id.clone();
    let foreign = c
        .search(
            GLOBEX,
            pb::search_request::Query::PointId(acme_point.clone()),
        )
        .await
        .expect_err("another tenant's point");
    assert_eq!(foreign.code(), Code::NotFound);
    c.search(ACME, pb::search_request::Query::PointId(acme_point))
        .await
        .expect("one's own point");
    let foreign_job = c
        .enrollment
        .get_job(authed(
            pb::GetJobRequest {
                job_id: acme_jobs[0].job_id.clone(),
            },
            GLOBEX,
        ))
        .await
        .expect_err("another tenant's job");
    assert_eq!(foreign_job.code(), Code::NotFound);
    c.enrollment
        .get_job(authed(
            pb::GetJobRequest {
                job_id: acme_jobs[0].job_id.clone(),
            },
            ACME,
        ))
        .await
        .expect("one's own job");

    // VerifySubject compares with the asking tenant's references only.
    let verified = c
        .verification
        .verify_subject(authed(
            pb::VerifySubjectRequest {
                subject_id: "alice".into(),
                probe: image(genuine(0, 6)),
                ..Default::default()
            },
            GLOBEX_READER,
        ))
        .await
        .expect("verify subject")
        .into_inner();
    // (It may compare fewer than the two, down to the reference count its operating point
    // was calibrated for, but never one of acme's three.)
    assert!(verified.references >= 1, "{verified:?}");
    assert!(
        verified
            .per_reference
            .iter()
            .all(|r| point_ids(&globex_alice).contains(&r.point_id)),
        "{verified:?}"
    );
    let globex_request = verified.audit.expect("audit").request_id;

    // Deleting globex's alice leaves acme's alone.
    let deleted = c
        .enrollment
        .delete_subject(authed(
            pb::DeleteSubjectRequest {
                subject_id: "alice".into(),
                model: String::new(),
            },
            GLOBEX,
        ))
        .await
        .expect("delete")
        .into_inner();
    assert_eq!(deleted.deleted_points, 2);
    assert_eq!(
        c.subject(ACME, "alice")
            .await
            .expect("still there")
            .references
            .len(),
        3
    );

    // The audit trail: each tenant reads its own; only the admin may name another.
    tokio::time::sleep(Duration::from_millis(500)).await; // the trail commits every 20 ms
    let globex_trail = c.audit(GLOBEX_READER, "").await.expect("globex trail");
    assert!(!globex_trail.is_empty());
    assert!(
        globex_trail.iter().all(|e| e.tenant == "globex"),
        "{globex_trail:?}"
    );
    assert!(globex_trail.iter().any(|e| e
        .audit
        .as_ref()
        .is_some_and(|a| a.request_id == globex_request)));
    let acme_trail = c.audit(ACME, "").await.expect("acme trail");
    assert!(!acme_trail.is_empty());
    assert!(
        acme_trail.iter().all(|e| e.tenant == "acme"),
        "{acme_trail:?}"
    );
    let refused = c
        .audit(ACME, "globex")
        .await
        .expect_err("another tenant's trail");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let by_admin = c
        .audit(ADMIN, "globex")
        .await
        .expect("admin reads any tenant");
    assert_eq!(by_admin.len(), globex_trail.len());
    assert!(c
        .audit(DEFAULT_WRITER, "")
        .await
        .expect("default trail")
        .is_empty());
}

/// Polls until `check` holds, for at most `within`.
async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

#[tokio::test]
async fn admin_keys_create_and_revoke_keys_and_file_edits_apply_without_a_restart() {
    let serve = serve().await;
    let url = serve.process.url();
    let mut c = clients(&url).await;
    c.enroll(ACME, "carol", genuine(3, 0)).await;

    let listed = c
        .keys
        .list_keys(authed(pb::ListKeysRequest {}, ADMIN))
        .await
        .expect("admin lists keys")
        .into_inner()
        .keys;
    assert_eq!(listed.len(), 5);
    assert!(listed
        .iter()
        .any(|k| k.tenant == "acme" && k.scope == pb::KeyScope::Write as i32));
    let not_admin = c
        .keys
        .list_keys(authed(pb::ListKeysRequest {}, ACME))
        .await
        .expect_err("a write key is no admin");
    assert_eq!(not_admin.code(), Code::PermissionDenied);

    // A created key works at once, in its tenant, and the file keeps only its hash.
    let created = c
        .keys
        .create_key(authed(
            pb::CreateKeyRequest {
                scope: pb::KeyScope::Read as i32,
                tenant: "acme".into(),
                name: "auditor".into(),
            },
            ADMIN,
        ))
        .await
        .expect("create")
        .into_inner();
    let key = created.key.expect("key");
    assert!(!std::fs::read_to_string(&serve.keys)
        .expect("keys")
        .contains(&created.secret));
    assert_eq!(
        c.subject(&created.secret, "carol")
            .await
            .expect("acme's carol")
            .references
            .len(),
        1
    );
    let bound = c
        .keys
        .create_key(authed(
            pb::CreateKeyRequest {
                scope: pb::KeyScope::Admin as i32,
                tenant: "acme".into(),
                name: String::new(),
            },
            ADMIN,
        ))
        .await
        .expect_err("admin keys have no tenant");
    assert_eq!(bound.code(), Code::InvalidArgument);

    // Revoked: refused from the next call on.
    c.keys
        .revoke_key(authed(
            pb::RevokeKeyRequest {
                key_id: key.key_id.clone(),
            },
            ADMIN,
        ))
        .await
        .expect("revoke");
    let revoked = c
        .subject(&created.secret, "carol")
        .await
        .expect_err("revoked");
    assert_eq!(revoked.code(), Code::Unauthenticated);

    // A hand edit of the file is picked up within seconds.
    let handmade = "handmade-key-for-tenant-tests-01";
    let mut text = std::fs::read_to_string(&serve.keys).expect("keys");
    text.push_str(&format!("read {handmade} tenant=acme\n"));
    std::fs::write(&serve.keys, &text).expect("edit keys");
    let picked_up = eventually(Duration::from_secs(10), || {
        let mut enrollment = c.enrollment.clone();
        async move {
            enrollment
                .get_subject(authed(
                    pb::GetSubjectRequest {
                        subject_id: "carol".into(),
                        model: String::new(),
                        thumbnails: false,
                    },
                    handmade,
                ))
                .await
                .is_ok()
        }
    })
    .await;
    assert!(
        picked_up,
        "a key added to the file was not taken within 10 s"
    );
    // A broken file leaves the keys in force unchanged.
    std::fs::write(&serve.keys, "reed not-a-scope-0123456789\n").expect("break keys");
    tokio::time::sleep(Duration::from_secs(3)).await;
    c.subject(handmade, "carol")
        .await
        .expect("keys in force are kept");
    assert!(serve
        .process
        .log_text()
        .contains("api keys file not reloaded"));

    // The CLI manages keys too.
    std::fs::write(&serve.keys, &text).expect("repair keys");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let out = twin_command(
        &url,
        &[
            "keys",
            "create",
            "--scope",
            "write",
            "--tenant",
            "initech",
            "--json",
            "--api-key",
            ADMIN,
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(created["tenant"], "initech");
    let secret = created["secret"].as_str().expect("secret").to_owned();
    let initech = c
        .subject(&secret, "carol")
        .await
        .expect_err("initech has no carol");
    assert_eq!(initech.code(), Code::NotFound);
    let out = twin_command(&url, &["keys", "list", "--api-key", ADMIN]).await;
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("initech") && table.contains("operator"),
        "{table}"
    );
}
