//! The real `twin serve` process (gateway + in-process worker + embedded store) on an
//! ephemeral port, driven over gRPC like a user would: enrol, verify, search, jobs,
//! delete, auth, and every class of bad input.

use std::time::Duration;

use tonic::{Code, Request};
use twin_proto::v1 as pb;
use twin_proto::v1::enrollment_client::EnrollmentClient;
use twin_proto::v1::models_client::ModelsClient;
use twin_proto::v1::similarity_client::SimilarityClient;
use twin_proto::v1::verification_client::VerificationClient;
use twin_tests::{
    authed, channel, dev_model, genuine, image, png_header, signature, Kind, TwinProcess,
};

const READ_KEY: &str = "read-key-for-e2e-tests-0001";
const WRITE_KEY: &str = "write-key-for-e2e-tests-0001";

struct Serve {
    process: TwinProcess,
    _dir: tempfile::TempDir,
}

async fn serve(extra_env: &[(&str, String)]) -> Serve {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = dir.path().join("keys.txt");
    std::fs::write(&keys, format!("read {READ_KEY}\nwrite {WRITE_KEY}\n")).expect("keys");
    let mut env = vec![
        ("TWIN_GATEWAY__API_KEYS_FILE", keys.display().to_string()),
        ("TWIN_WORKER__BATCH_WAIT_MS", "5".to_owned()),
    ];
    env.extend(extra_env.iter().cloned());
    let process = TwinProcess::serve(dir.path(), &[&dev_model()], &env).await;
    Serve { process, _dir: dir }
}

fn explicit(threshold: f64) -> Option<pb::DecisionPolicy> {
    Some(pb::DecisionPolicy {
        threshold: Some(pb::decision_policy::Threshold::ExplicitThreshold(threshold)),
    })
}

async fn enroll(
    client: &mut EnrollmentClient<tonic::transport::Channel>,
    subject: &str,
    data: Vec<u8>,
    wait: bool,
) -> pb::Job {
    client
        .enroll(authed(
            pb::EnrollRequest {
                subject_id: subject.to_owned(),
                image: image(data),
                labels: vec![pb::Label {
                    key: "session".into(),
                    value: "e2e".into(),
                }],
                model: String::new(),
                wait,
            },
            WRITE_KEY,
        ))
        .await
        .expect("enrol")
        .into_inner()
        .job
        .expect("job")
}

#[tokio::test]
async fn enrol_verify_search_and_delete_through_the_real_server() {
    let serve = serve(&[]).await;
    let ch = channel(&serve.process.url()).await;
    let mut enrollment = EnrollmentClient::new(ch.clone());
    let mut verification = VerificationClient::new(ch.clone());
    let mut similarity = SimilarityClient::new(ch.clone());
    let mut models = ModelsClient::new(ch);

    let listed = models
        .list_models(authed(pb::ListModelsRequest {}, READ_KEY))
        .await
        .expect("models")
        .into_inner();
    assert_eq!(listed.models.len(), 1);
    assert_eq!(listed.models[0].embedding_size, 128);
    assert_eq!(listed.models[0].execution_provider, "cpu");

    // Enrol three writers, two references each, synchronously.
    for writer in 0..3 {
        for index in 0..2 {
            let job = enroll(
                &mut enrollment,
                &format!("writer-{writer}"),
                genuine(writer, index),
                true,
            )
            .await;
            assert_eq!(job.status, pb::JobStatus::Done as i32, "{job:?}");
            assert!(!job.point_id.is_empty());
        }
    }

    // The same image enrolled again is the same point (idempotent).
    let again = enroll(&mut enrollment, "writer-0", genuine(0, 0), true).await;
    let subject = enrollment
        .get_subject(authed(
            pb::GetSubjectRequest {
                subject_id: "writer-0".into(),
                model: String::new(),
                thumbnails: false,
            },
            READ_KEY,
        ))
        .await
        .expect("subject")
        .into_inner();
    assert_eq!(
        subject.references.len(),
        2,
        "re-enrolment must not add a point"
    );
    assert!(subject
        .references
        .iter()
        .any(|r| r.point_id == again.point_id));

    // 1:1 — an image against itself is a perfect match; two writers are not.
    let same = verification
        .verify(authed(
            pb::VerifyRequest {
                a: image(genuine(1, 0)),
                b: image(genuine(1, 0)),
                policy: explicit(0.999),
                ..Default::default()
            },
            READ_KEY,
        ))
        .await
        .expect("verify")
        .into_inner();
    assert!(same.r#match && (same.score - 1.0).abs() < 1e-4, "{same:?}");
    let audit = same.audit.expect("audit");
    assert_eq!(audit.operating_point, "explicit");
    assert_eq!(audit.metric, pb::Metric::Cosine as i32);
    assert!(!audit.model_id.is_empty() && !audit.request_id.is_empty());
    let different = verification
        .verify(authed(
            pb::VerifyRequest {
                a: image(genuine(1, 0)),
                b: image(genuine(2, 0)),
                policy: explicit(0.999),
                ..Default::default()
            },
            READ_KEY,
        ))
        .await
        .expect("verify")
        .into_inner();
    assert!(
        !different.r#match && different.score < same.score,
        "{different:?}"
    );
    // The model's calibrated default operating point is used when none is named.
    let default_policy = verification
        .verify(authed(
            pb::VerifyRequest {
                a: image(genuine(1, 0)),
                b: image(genuine(1, 1)),
                ..Default::default()
            },
            READ_KEY,
        ))
        .await
        .expect("verify")
        .into_inner();
    assert_eq!(
        default_policy.audit.expect("audit").operating_point,
        "FAR 1 %"
    );

    // Probe vs subject: an enrolled image matches its subject, with the reference named.
    let subject_match = verification
        .verify_subject(authed(
            pb::VerifySubjectRequest {
                subject_id: "writer-2".into(),
                probe: image(genuine(2, 1)),
                policy: explicit(0.999),
                aggregation: pb::Aggregation::Best as i32,
                ..Default::default()
            },
            READ_KEY,
        ))
        .await
        .expect("verify subject")
        .into_inner();
    assert!(subject_match.r#match, "{subject_match:?}");
    assert_eq!(subject_match.references, 2);
    assert!(!subject_match
        .audit
        .expect("audit")
        .matched_point_id
        .is_empty());
    let unknown_subject = verification
        .verify_subject(authed(
            pb::VerifySubjectRequest {
                subject_id: "nobody".into(),
                probe: image(genuine(2, 1)),
                ..Default::default()
            },
            READ_KEY,
        ))
        .await
        .expect_err("unknown subject");
    assert_eq!(unknown_subject.code(), Code::NotFound);

    // 1:N — the enrolled image finds its writer first; a stranger is "unknown".
    let found = similarity
        .search(authed(
            pb::SearchRequest {
                query: Some(pb::search_request::Query::Image(pb::Image::from_bytes(
                    genuine(1, 1),
                    String::new(),
                ))),
                top_k: 3,
                policy: explicit(0.999),
                ..Default::default()
            },
            READ_KEY,
        ))
        .await
        .expect("search")
        .into_inner();
    assert!(!found.unknown);
    assert_eq!(found.hits[0].subject_id, "writer-1");
    assert_eq!(found.hits[0].labels.len(), 1);
    let stranger = similarity
        .search(authed(
            pb::SearchRequest {
                query: Some(pb::search_request::Query::Image(pb::Image::from_bytes(
                    genuine(9, 0),
                    String::new(),
                ))),
                top_k: 3,
                policy: explicit(0.999),
                ..Default::default()
            },
            READ_KEY,
        ))
        .await
        .expect("search")
        .into_inner();
    assert!(stranger.unknown && stranger.hits.is_empty(), "{stranger:?}");
    assert!(stranger.audit.expect("audit").score < 0.999);

    // Async enrolment: GetJob goes from queued (or already done) to done.
    let job = enroll(&mut enrollment, "writer-3", genuine(3, 0), false).await;
    let mut status = job.status;
    for _ in 0..200 {
        let fetched = enrollment
            .get_job(authed(
                pb::GetJobRequest {
                    job_id: job.job_id.clone(),
                },
                READ_KEY,
            ))
            .await
            .expect("get job")
            .into_inner();
        status = fetched.status;
        if status == pb::JobStatus::Done as i32 {
            assert_eq!(fetched.point_id, job.point_id);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, pb::JobStatus::Done as i32);
    let missing = enrollment
        .get_job(authed(
            pb::GetJobRequest {
                job_id: "no-such-job".into(),
            },
            READ_KEY,
        ))
        .await
        .expect_err("unknown job");
    assert_eq!(missing.code(), Code::NotFound);

    // Delete a subject: its points are gone, and deleting again deletes nothing.
    let deleted = enrollment
        .delete_subject(authed(
            pb::DeleteSubjectRequest {
                subject_id: "writer-0".into(),
                model: String::new(),
            },
            WRITE_KEY,
        ))
        .await
        .expect("delete")
        .into_inner();
    assert_eq!(deleted.deleted_points, 2);
    let gone = enrollment
        .get_subject(authed(
            pb::GetSubjectRequest {
                subject_id: "writer-0".into(),
                model: String::new(),
                thumbnails: false,
            },
            READ_KEY,
        ))
        .await
        .expect_err("deleted subject");
    assert_eq!(gone.code(), Code::NotFound);
}

#[tokio::test]
async fn batch_enrolment_accepts_good_items_and_rejects_bad_ones_with_reasons() {
    let serve = serve(&[]).await;
    let ch = channel(&serve.process.url()).await;
    let mut enrollment = EnrollmentClient::new(ch);
    let item = |i: u64, subject: &str, data: Vec<u8>| pb::EnqueueItem {
        client_ref: format!("item-{i}"),
        subject_id: subject.to_owned(),
        image: image(data),
        labels: vec![],
        model: String::new(),
    };
    let items = vec![
        item(0, "w-a", genuine(4, 0)),
        item(1, "w-a", b"not an image at all".to_vec()),
        item(2, "w-b", genuine(5, 0)),
        item(3, "", genuine(5, 1)),
        item(4, "w-b", Vec::new()),
        item(5, "w-c", signature(6, Kind::Forgery, 0)),
    ];
    let response = enrollment
        .enqueue_batch(authed(tokio_stream::iter(items.clone()), WRITE_KEY))
        .await
        .expect("batch")
        .into_inner();
    assert_eq!(
        (response.accepted, response.rejected),
        (3, 3),
        "{response:?}"
    );
    let reasons: Vec<&str> = response.results.iter().map(|r| r.reason.as_str()).collect();
    assert!(
        reasons[1].contains("unsupported image format"),
        "{reasons:?}"
    );
    assert!(reasons[3].contains("subject id is empty"), "{reasons:?}");
    assert!(reasons[4].contains("empty"), "{reasons:?}");
    assert_eq!(response.results[2].client_ref, "item-2");

    // Once stored, sending the same items again queues nothing new.
    for result in response.results.iter().filter(|r| r.accepted) {
        let mut done = false;
        for _ in 0..200 {
            let job = enrollment
                .get_job(authed(
                    pb::GetJobRequest {
                        job_id: result.job_id.clone(),
                    },
                    READ_KEY,
                ))
                .await
                .expect("job")
                .into_inner();
            if job.status == pb::JobStatus::Done as i32 {
                done = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(done, "job {} never finished", result.job_id);
    }
    let again = enrollment
        .enqueue_batch(authed(tokio_stream::iter(items), WRITE_KEY))
        .await
        .expect("batch")
        .into_inner();
    assert_eq!((again.accepted, again.already_stored), (0, 3), "{again:?}");
}

#[tokio::test]
async fn auth_is_enforced_by_scope() {
    let serve = serve(&[]).await;
    let ch = channel(&serve.process.url()).await;
    let mut verification = VerificationClient::new(ch.clone());
    let mut enrollment = EnrollmentClient::new(ch.clone());
    let request = || pb::VerifyRequest {
        a: image(genuine(0, 0)),
        b: image(genuine(0, 1)),
        ..Default::default()
    };
    let none = verification
        .verify(Request::new(request()))
        .await
        .expect_err("no key");
    assert_eq!(none.code(), Code::Unauthenticated);
    let wrong = verification
        .verify(authed(request(), "not-a-key-of-this-server"))
        .await
        .expect_err("wrong key");
    assert_eq!(wrong.code(), Code::Unauthenticated);
    verification
        .verify(authed(request(), READ_KEY))
        .await
        .expect("read key verifies");
    let read_only = enrollment
        .delete_subject(authed(
            pb::DeleteSubjectRequest {
                subject_id: "x".into(),
                model: String::new(),
            },
            READ_KEY,
        ))
        .await
        .expect_err("read key cannot delete");
    assert_eq!(read_only.code(), Code::PermissionDenied);
    // Health stays open to probes without a key.
    let mut health = tonic_health::pb::health_client::HealthClient::new(ch);
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health")
        .into_inner();
    assert_eq!(
        serving.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}

#[tokio::test]
async fn reflection_lists_the_twin_services_like_grpcurl_list() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let serve = serve(&[]).await;
    let mut client = ServerReflectionClient::new(channel(&serve.process.url()).await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .expect("reflection")
        .into_inner();
    let response = responses
        .message()
        .await
        .expect("answer")
        .expect("one answer");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("expected a service list, got {response:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "twin.v1.Verification",
        "twin.v1.Similarity",
        "twin.v1.Enrollment",
        "twin.v1.Models",
        "twin.v1.AuditTrail",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
}

#[tokio::test]
async fn every_bad_input_class_is_invalid_argument_with_a_reason() {
    let serve = serve(&[("TWIN_EMBED__MAX_IMAGE_BYTES", "200000".to_owned())]).await;
    let ch = channel(&serve.process.url()).await;
    let mut verification = VerificationClient::new(ch.clone());
    let mut similarity = SimilarityClient::new(ch.clone());
    let mut enrollment = EnrollmentClient::new(ch);
    let good = genuine(0, 0);
    let mut truncated = good.clone();
    truncated.truncate(good.len() / 2);
    let oversized = vec![0u8; 300_000];
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("corrupt", b"GIF89a but not really".to_vec(), "format"),
        ("truncated", truncated, "corrupt or truncated"),
        ("empty", Vec::new(), "empty"),
        ("oversized", oversized, "limit of 200000 bytes"),
        (
            "huge dimensions",
            png_header(100_000, 100_000),
            "pixels on a side",
        ),
    ];
    for (name, data, expected) in cases {
        let status = verification
            .verify(authed(
                pb::VerifyRequest {
                    a: image(good.clone()),
                    b: image(data),
                    ..Default::default()
                },
                READ_KEY,
            ))
            .await
            .expect_err(name);
        assert_eq!(status.code(), Code::InvalidArgument, "{name}: {status:?}");
        assert!(
            status.message().starts_with("b: "),
            "{name}: names the field: {}",
            status.message()
        );
        assert!(
            status.message().contains(expected),
            "{name}: {}",
            status.message()
        );
    }
    // Wrong field combinations.
    let missing = verification
        .verify(authed(
            pb::VerifyRequest {
                a: image(good.clone()),
                ..Default::default()
            },
            READ_KEY,
        ))
        .await
        .expect_err("missing b");
    assert_eq!(missing.code(), Code::InvalidArgument);
    let no_query = similarity
        .search(authed(pb::SearchRequest::default(), READ_KEY))
        .await
        .expect_err("no query");
    assert_eq!(no_query.code(), Code::InvalidArgument);
    let short_vector = similarity
        .search(authed(
            pb::SearchRequest {
                query: Some(pb::search_request::Query::Vector(pb::Vector {
                    values: vec![0.5; 3],
                })),
                ..Default::default()
            },
            READ_KEY,
        ))
        .await
        .expect_err("vector of the wrong size");
    assert_eq!(short_vector.code(), Code::InvalidArgument);
    let bad_far = verification
        .verify(authed(
            pb::VerifyRequest {
                a: image(good.clone()),
                b: image(good.clone()),
                policy: Some(pb::DecisionPolicy {
                    threshold: Some(pb::decision_policy::Threshold::TargetFar(0.123)),
                }),
                ..Default::default()
            },
            READ_KEY,
        ))
        .await
        .expect_err("uncalibrated FAR");
    assert_eq!(bad_far.code(), Code::InvalidArgument);
    assert!(
        bad_far.message().contains("available"),
        "{}",
        bad_far.message()
    );
    let unknown_model = verification
        .verify(authed(
            pb::VerifyRequest {
                a: image(good.clone()),
                b: image(good.clone()),
                model: "no-such-model".into(),
                ..Default::default()
            },
            READ_KEY,
        ))
        .await
        .expect_err("unknown model");
    assert_eq!(unknown_model.code(), Code::NotFound);
    let zero_k = verification
        .verify_subject(authed(
            pb::VerifySubjectRequest {
                subject_id: "anyone".into(),
                probe: image(good.clone()),
                aggregation: pb::Aggregation::KOfN as i32,
                k: 0,
                max_references: 5000,
                ..Default::default()
            },
            READ_KEY,
        ))
        .await
        .expect_err("k-of-n with k = 0 and too many references");
    assert_eq!(zero_k.code(), Code::InvalidArgument);
    let bad_enrol = enrollment
        .enroll(authed(
            pb::EnrollRequest {
                subject_id: "a\u{7}b".into(),
                image: image(good),
                ..Default::default()
            },
            WRITE_KEY,
        ))
        .await
        .expect_err("control characters in the subject");
    assert_eq!(bad_enrol.code(), Code::InvalidArgument);
    // The server is still healthy after all of that.
    assert!(serve.process.log_text().contains("gateway serving"));
    assert!(!serve.process.log_text().contains("panicked"));
}

/// GET `path` from a plain HTTP/1.0 endpoint; the whole response as text.
async fn http_get(addr: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("metrics endpoint");
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .expect("request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("response");
    response
}

/// The value of the sample whose line starts with `series` (name and labels).
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test]
async fn metrics_count_requests_by_code_and_embedding_runs_by_lane() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let metrics_addr = format!("127.0.0.1:{port}");
    // Two sessions whatever the machine: every pair is spread over them.
    let serve = serve(&[
        ("TWIN_GATEWAY__METRICS_ADDR", metrics_addr.clone()),
        ("TWIN_EMBED__SESSIONS", "2".to_owned()),
    ])
    .await;
    let mut verification = VerificationClient::new(channel(&serve.process.url()).await);
    // One caller at a time: every pair is two express runs of 1 image, one per session.
    for index in 0..3 {
        verification
            .verify(authed(
                pb::VerifyRequest {
                    a: image(genuine(0, index)),
                    b: image(genuine(1, index)),
                    ..Default::default()
                },
                READ_KEY,
            ))
            .await
            .expect("verify");
    }
    let bad = verification
        .verify(authed(
            pb::VerifyRequest {
                a: image(b"not an image".to_vec()),
                b: image(genuine(1, 0)),
                ..Default::default()
            },
            READ_KEY,
        ))
        .await
        .expect_err("bad image");
    assert_eq!(bad.code(), Code::InvalidArgument);

    let text = http_get(&metrics_addr, "/metrics").await;
    let verify = "method=\"/twin.v1.Verification/Verify\"";
    let requests = |code: &str| {
        sample(
            &text,
            &format!("twin_gateway_requests_total{{code=\"{code}\",{verify}}}"),
        )
    };
    assert_eq!(requests("OK"), Some(3.0), "{text}");
    assert_eq!(requests("INVALID_ARGUMENT"), Some(1.0), "{text}");
    assert_eq!(
        sample(&text, "twin_gateway_execution_provider{provider=\"cpu\"}"),
        Some(1.0)
    );
    let model = "model=\"signature-dev\"";
    assert_eq!(
        sample(
            &text,
            &format!("twin_gateway_embed_runs_total{{lane=\"express\",{model},outcome=\"ok\"}}")
        ),
        Some(6.0),
        "{text}"
    );
    // Six runs of exactly one image: all in the `le="1"` bucket.
    let bucket = |le: &str| {
        sample(
            &text,
            &format!("twin_gateway_embed_batch_size_bucket{{{model},le=\"{le}\"}}"),
        )
    };
    assert_eq!(bucket("1"), Some(6.0), "{text}");
    assert_eq!(bucket("2"), Some(6.0), "{text}");
    assert_eq!(
        sample(
            &text,
            &format!("twin_gateway_embed_batch_size_sum{{{model}}}")
        ),
        Some(6.0)
    );
}

/// `VerifySubject` decides at the subject-level point of its aggregation and of the largest
/// calibrated reference count the subject reaches, compares exactly that many references,
/// names the point in its audit, and refuses plainly where none is calibrated (never the
/// pairwise threshold).
#[tokio::test]
async fn verify_subject_runs_at_the_point_of_its_aggregation_and_reference_count() {
    let serve = serve(&[]).await;
    let ch = channel(&serve.process.url()).await;
    let mut enrollment = EnrollmentClient::new(ch.clone());
    let mut verification = VerificationClient::new(ch.clone());
    let mut models = ModelsClient::new(ch);

    let listed = models
        .list_models(authed(pb::ListModelsRequest {}, READ_KEY))
        .await
        .expect("models")
        .into_inner();
    let points = &listed.models[0].subject_operating_points;
    let threshold_of = |name: &str| {
        points
            .iter()
            .find(|p| p.name == name && p.metric == pb::Metric::Cosine as i32)
            .unwrap_or_else(|| panic!("the dev model has no cosine point {name:?}: {points:?}"))
            .threshold
    };
    let pairwise = listed.models[0]
        .operating_points
        .iter()
        .find(|p| p.name == "FAR 1 %")
        .expect("pairwise point")
        .threshold;

    for index in 0..4 {
        let job = enroll(&mut enrollment, "four", genuine(4, index), true).await;
        assert_eq!(job.status, pb::JobStatus::Done as i32, "{job:?}");
    }
    let job = enroll(&mut enrollment, "one", genuine(5, 0), true).await;
    assert_eq!(job.status, pb::JobStatus::Done as i32, "{job:?}");

    let ask =
        |subject: &str, aggregation: pb::Aggregation, k: u32, policy| pb::VerifySubjectRequest {
            subject_id: subject.to_owned(),
            probe: image(genuine(4, 5)),
            aggregation: aggregation as i32,
            k,
            policy,
            ..Default::default()
        };
    let far = |target: f64| {
        Some(pb::DecisionPolicy {
            threshold: Some(pb::decision_policy::Threshold::TargetFar(target)),
        })
    };
    let cases = [
        // 4 references: the largest calibrated count not above 4 is 3.
        (
            ask("four", pb::Aggregation::Best, 0, None),
            "FAR 1 %, best of 3",
            3,
        ),
        (
            ask("four", pb::Aggregation::Mean, 0, None),
            "FAR 1 %, mean of 3",
            3,
        ),
        (
            ask("four", pb::Aggregation::Unspecified, 0, far(0.1)),
            "FAR 10 %, best of 3",
            3,
        ),
        (
            ask("one", pb::Aggregation::Best, 0, None),
            "FAR 1 %, best of 1",
            1,
        ),
    ];
    for (request, name, compared) in cases {
        let answer = verification
            .verify_subject(authed(request, READ_KEY))
            .await
            .unwrap_or_else(|status| panic!("{name}: {status:?}"))
            .into_inner();
        let audit = answer.audit.expect("audit");
        assert_eq!(audit.operating_point, name);
        assert_eq!(audit.threshold, threshold_of(name), "{name}");
        assert_ne!(
            audit.threshold, pairwise,
            "{name}: the pairwise threshold was used"
        );
        assert_eq!(answer.references as usize, compared, "{name}");
        assert_eq!(answer.per_reference.len(), compared, "{name}");
        assert_eq!(answer.r#match, answer.score >= audit.threshold);
    }

    // An explicit threshold compares every reference.
    let explicit_answer = verification
        .verify_subject(authed(
            ask("four", pb::Aggregation::Best, 0, explicit(0.5)),
            READ_KEY,
        ))
        .await
        .expect("explicit")
        .into_inner();
    assert_eq!(explicit_answer.references, 4);
    assert_eq!(
        explicit_answer.audit.expect("audit").operating_point,
        "explicit"
    );

    // Nothing calibrated for 2 of n, nor for FAR 0.01 %: refused, saying what exists.
    for (request, wanted) in [
        (
            ask("four", pb::Aggregation::KOfN, 2, None),
            "FAR 1 %, 2 of 4",
        ),
        (
            ask("four", pb::Aggregation::Best, 0, far(0.0001)),
            "FAR 0.01 %, best of 4",
        ),
    ] {
        let refused = verification
            .verify_subject(authed(request, READ_KEY))
            .await
            .expect_err("no calibrated point");
        assert_eq!(refused.code(), Code::InvalidArgument);
        let message = refused.message();
        assert!(
            message.contains("no subject-level operating point") && message.contains(wanted),
            "{message}"
        );
        assert!(message.contains("calibrated"), "{message}");
    }
}

/// Every decision is on record in `twin serve`'s audit trail: found by request id, subject
/// and time, with the key's id (never the key) and the sha256 of each input image.
#[tokio::test]
async fn decisions_are_on_record_by_request_subject_and_time() {
    use sha2::{Digest, Sha256};
    use twin_proto::v1::audit_trail_client::AuditTrailClient;
    let serve = serve(&[]).await;
    let ch = channel(&serve.process.url()).await;
    let mut enrollment = EnrollmentClient::new(ch.clone());
    let mut verification = VerificationClient::new(ch.clone());
    let mut trail = AuditTrailClient::new(ch);
    for index in 0..2 {
        enroll(&mut enrollment, "audited", genuine(7, index), true).await;
    }
    let (a, b) = (genuine(7, 3), genuine(8, 3));
    let pair = verification
        .verify(authed(
            pb::VerifyRequest {
                a: image(a.clone()),
                b: image(b.clone()),
                ..Default::default()
            },
            READ_KEY,
        ))
        .await
        .expect("verify")
        .into_inner();
    let subject = verification
        .verify_subject(authed(
            pb::VerifySubjectRequest {
                subject_id: "audited".into(),
                probe: image(a.clone()),
                policy: explicit(0.5),
                ..Default::default()
            },
            READ_KEY,
        ))
        .await
        .expect("verify subject")
        .into_inner();
    let sha = |bytes: &[u8]| hex::encode(Sha256::digest(bytes));
    let key_id = format!("key:{}", &sha(READ_KEY.as_bytes())[..12]);
    let query = |q: pb::QueryAuditRequest| authed(q, READ_KEY);

    // Appending does not make decisions wait, so a record may take a moment to show.
    let pair_id = pair.audit.as_ref().expect("audit").request_id.clone();
    let mut found = Vec::new();
    for _ in 0..50 {
        found = trail
            .query_audit(query(pb::QueryAuditRequest {
                request_id: pair_id.clone(),
                ..Default::default()
            }))
            .await
            .expect("query")
            .into_inner()
            .entries;
        if !found.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(found.len(), 1, "the Verify is on record");
    let entry = &found[0];
    assert_eq!(entry.method, "Verify");
    assert_eq!(entry.r#match, pair.r#match);
    assert_eq!(entry.image_sha256, vec![sha(&a), sha(&b)]);
    assert_eq!(entry.key_id, key_id);
    let on_record = entry.audit.as_ref().expect("audit");
    let answered = pair.audit.as_ref().expect("audit");
    assert_eq!(
        (
            on_record.score,
            on_record.threshold,
            &on_record.operating_point
        ),
        (
            answered.score,
            answered.threshold,
            &answered.operating_point
        )
    );
    let text = format!("{found:?}");
    assert!(!text.contains(READ_KEY), "the key itself is never stored");

    let mut about = Vec::new();
    for _ in 0..50 {
        about = trail
            .query_audit(query(pb::QueryAuditRequest {
                subject_id: "audited".into(),
                ..Default::default()
            }))
            .await
            .expect("query")
            .into_inner()
            .entries;
        if !about.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let verify_subject = about
        .iter()
        .find(|e| e.method == "VerifySubject")
        .expect("the VerifySubject is on record under its subject");
    assert_eq!(
        verify_subject.audit.as_ref().map(|a| a.request_id.clone()),
        subject.audit.as_ref().map(|a| a.request_id.clone())
    );
    assert_eq!(verify_subject.image_sha256, vec![sha(&a)]);

    // A time range in the future holds nothing; a limit above 1000 is refused.
    let later = twin_proto::timestamp(std::time::SystemTime::now() + Duration::from_secs(3600));
    let none = trail
        .query_audit(query(pb::QueryAuditRequest {
            from: Some(later),
            ..Default::default()
        }))
        .await
        .expect("query")
        .into_inner();
    assert!(none.entries.is_empty());
    let too_many = trail
        .query_audit(query(pb::QueryAuditRequest {
            limit: 5000,
            ..Default::default()
        }))
        .await
        .expect_err("limit");
    assert_eq!(too_many.code(), Code::InvalidArgument);
}
