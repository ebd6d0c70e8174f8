//! The text branch end to end: the real `twin serve` with an image model (the default) and
//! the shipped text model `paraphrase-v1`, driven over gRPC: text Verify, text enrolment
//! then Search, and every bad-input class of a text request, each INVALID_ARGUMENT with a
//! message that says what was wrong.

use std::time::Duration;

use tonic::{Code, Request};
use twin_proto::v1 as pb;
use twin_proto::v1::enrollment_client::EnrollmentClient;
use twin_proto::v1::models_client::ModelsClient;
use twin_proto::v1::similarity_client::SimilarityClient;
use twin_proto::v1::verification_client::VerificationClient;
use twin_tests::{channel, dev_model, genuine, repo_root, twin_command, TwinProcess};

const TEXT_MODEL: &str = "paraphrase-v1";

struct Serve {
    process: TwinProcess,
    _dir: tempfile::TempDir,
}

async fn serve() -> Serve {
    let dir = tempfile::tempdir().expect("tempdir");
    let text_model = repo_root().join("models").join(TEXT_MODEL);
    let env = [("TWIN_WORKER__BATCH_WAIT_MS", "5".to_owned())];
    let process = TwinProcess::serve(dir.path(), &[&dev_model(), &text_model], &env).await;
    Serve { process, _dir: dir }
}

fn request<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.set_timeout(Duration::from_secs(60));
    request
}

fn text(sentence: &str) -> Option<pb::Image> {
    Some(pb::Image::from_text(sentence, ""))
}

fn verify_text(a: &str, b: &str) -> pb::VerifyRequest {
    pb::VerifyRequest {
        a: text(a),
        b: text(b),
        model: TEXT_MODEL.to_owned(),
        ..Default::default()
    }
}

/// A sentence far over the model's 256 tokens.
fn long_sentence() -> String {
    "The committee approved the budget after a long debate about schools. ".repeat(60)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_verify_scores_paraphrases_above_unrelated_sentences() {
    let serve = serve().await;
    let channel = channel(&serve.process.url()).await;
    let models = ModelsClient::new(channel.clone())
        .list_models(request(pb::ListModelsRequest {}))
        .await
        .expect("list models")
        .into_inner();
    let model = models
        .models
        .iter()
        .find(|m| m.name == TEXT_MODEL)
        .expect("the text model is served");
    assert_eq!(model.input_kind, "text");
    assert_eq!(model.max_tokens, 256);
    assert_eq!(model.input_shape, [-1, -1]);
    let image_model = models
        .models
        .iter()
        .find(|m| m.name != TEXT_MODEL)
        .expect("image model");
    assert_eq!(image_model.input_kind, "image");

    let mut verification = VerificationClient::new(channel);
    let same = verification
        .verify(request(verify_text(
            "The company said its quarterly profit rose 10 percent.",
            "Quarterly profit at the company increased by 10 percent, it said.",
        )))
        .await
        .expect("verify a paraphrase")
        .into_inner();
    let different = verification
        .verify(request(verify_text(
            "The company said its quarterly profit rose 10 percent.",
            "Heavy rain flooded several streets in the old town on Sunday.",
        )))
        .await
        .expect("verify unrelated sentences")
        .into_inner();
    assert!(same.r#match, "a paraphrase matches: {same:?}");
    assert!(
        !different.r#match,
        "unrelated sentences do not: {different:?}"
    );
    assert!(
        same.score > different.score + 0.2,
        "{} vs {}",
        same.score,
        different.score
    );
    assert!(same.warnings.is_empty() && different.warnings.is_empty());
    let audit = same.audit.expect("audit");
    assert!(
        audit.model_name.starts_with(TEXT_MODEL),
        "{}",
        audit.model_name
    );
    assert!(!audit.operating_point.is_empty());

    // Over max_tokens: embedded truncated, and the answer says so for that field alone.
    let long = verification
        .verify(request(verify_text(&long_sentence(), "A short sentence.")))
        .await
        .expect("a long text is truncated, not refused")
        .into_inner();
    assert_eq!(long.warnings.len(), 1, "{:?}", long.warnings);
    assert!(
        long.warnings[0].starts_with("a: ") && long.warnings[0].contains("256 tokens"),
        "{:?}",
        long.warnings
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_enrolment_then_search_finds_the_enrolled_sentence() {
    let serve = serve().await;
    let channel = channel(&serve.process.url()).await;
    let mut enrollment = EnrollmentClient::new(channel.clone());
    let sentences = [
        (
            "weather",
            "Heavy rain flooded several streets in the old town on Sunday.",
        ),
        (
            "markets",
            "Shares fell sharply after the central bank raised interest rates.",
        ),
        (
            "sport",
            "The home team won the championship final in extra time.",
        ),
    ];
    for (subject, sentence) in sentences {
        let job = enrollment
            .enroll(request(pb::EnrollRequest {
                subject_id: subject.to_owned(),
                image: text(sentence),
                model: TEXT_MODEL.to_owned(),
                wait: true,
                ..Default::default()
            }))
            .await
            .expect("enrol a sentence")
            .into_inner();
        let job = job.job.expect("job");
        assert_eq!(job.status, pb::JobStatus::Done as i32, "{job:?}");
    }
    let mut similarity = SimilarityClient::new(channel);
    let found = similarity
        .search(request(pb::SearchRequest {
            query: Some(pb::search_request::Query::Image(pb::Image::from_text(
                "Stock prices dropped steeply once the central bank lifted rates.",
                "",
            ))),
            model: TEXT_MODEL.to_owned(),
            top_k: 3,
            policy: Some(pb::DecisionPolicy {
                threshold: Some(pb::decision_policy::Threshold::ExplicitThreshold(-1.0)),
            }),
            ..Default::default()
        }))
        .await
        .expect("search by text")
        .into_inner();
    assert!(!found.unknown);
    assert_eq!(found.hits.len(), 3);
    assert_eq!(found.hits[0].subject_id, "markets", "{:?}", found.hits);

    // Embed answers the same vector for the same text, unit-norm (the graph normalises).
    let embedded = similarity
        .embed(request(pb::EmbedRequest {
            image: text(sentences[0].1),
            model: TEXT_MODEL.to_owned(),
        }))
        .await
        .expect("embed a text")
        .into_inner();
    assert_eq!(embedded.vector.len(), 384);
    let norm: f32 = embedded.vector.iter().map(|v| v * v).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-3, "{norm}");
}

/// A VerifyRequest whose `a.text` carries raw bytes: the only way to send invalid UTF-8,
/// which no generated client can build.
#[derive(Clone, PartialEq, prost::Message)]
struct RawImage {
    #[prost(bytes = "vec", tag = "3")]
    text: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RawVerifyRequest {
    #[prost(message, optional, tag = "1")]
    a: Option<RawImage>,
    #[prost(message, optional, tag = "2")]
    b: Option<RawImage>,
    #[prost(string, tag = "3")]
    model: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_text_input_is_invalid_argument_and_says_why() {
    let serve = serve().await;
    let channel = channel(&serve.process.url()).await;
    let mut verification = VerificationClient::new(channel.clone());
    // (request, what the message must say)
    let cases = [
        (
            pb::VerifyRequest {
                a: text("A sentence."),
                b: text("Another sentence."),
                model: String::new(), // the default, an image model
                ..Default::default()
            },
            "takes image input, this request sent text",
        ),
        (
            pb::VerifyRequest {
                a: Some(pb::Image::from_bytes(genuine(0, 0), "")),
                b: text("A sentence."),
                ..verify_text("", "")
            },
            "takes text input, this request sent image",
        ),
        (verify_text("A sentence.", ""), "text is empty"),
        (verify_text("   \n\t ", "A sentence."), "text is empty"),
        (
            verify_text(&"x".repeat(70 * 1024), "A sentence."),
            "more than the limit of 65536 bytes",
        ),
    ];
    for (message, says) in cases {
        let status = verification
            .verify(request(message.clone()))
            .await
            .expect_err(says);
        assert_eq!(status.code(), Code::InvalidArgument, "{says}: {status:?}");
        assert!(
            status.message().contains(says),
            "{says}: {}",
            status.message()
        );
    }

    // Invalid UTF-8 in a text field: INVALID_ARGUMENT naming the field, not INTERNAL.
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.expect("ready");
    let raw = RawVerifyRequest {
        a: Some(RawImage {
            text: vec![b'o', b'k', 0xff, 0xfe],
        }),
        b: Some(RawImage {
            text: b"fine".to_vec(),
        }),
        model: TEXT_MODEL.to_owned(),
    };
    let status = grpc
        .unary::<_, pb::VerifyResponse, _>(
            request(raw),
            http::uri::PathAndQuery::from_static("/twin.v1.Verification/Verify"),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .expect_err("invalid UTF-8 is refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().starts_with("malformed request")
            && status.message().contains("UTF-8")
            && status.message().contains("VerifyRequest.a"),
        "{}",
        status.message()
    );

    // Enrolment of a text into the image model is refused before anything is queued.
    let status = EnrollmentClient::new(channel)
        .enroll(request(pb::EnrollRequest {
            subject_id: "alice".into(),
            image: text("A sentence."),
            ..Default::default()
        }))
        .await
        .expect_err("text into an image model");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("this request sent text"),
        "{}",
        status.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_enqueues_verifies_and_searches_text() {
    let serve = serve().await;
    let url = serve.process.url();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("sentences.tsv");
    std::fs::write(
        &file,
        "# subject<TAB>text\n\
         weather\tHeavy rain flooded several streets in the old town on Sunday.\n\
         markets\tShares fell sharply after the central bank raised interest rates.\n\
         broken\t\n",
    )
    .expect("write sentences");
    let file = file.display().to_string();
    let enqueued = twin_command(
        &url,
        &[
            "enqueue", "--texts", &file, "--model", TEXT_MODEL, "--wait", "--json",
        ],
    )
    .await;
    // The empty text is rejected by the server and named; the other two are stored.
    assert!(!enqueued.status.success(), "one line is bad: {enqueued:?}");
    let report: serde_json::Value =
        serde_json::from_slice(&enqueued.stdout).expect("enqueue --json prints JSON");
    assert_eq!(report["accepted"], 2, "{report}");
    assert_eq!(report["stored"], 2, "{report}");
    assert_eq!(report["rejected"], 1, "{report}");
    let rejected = report["rejections"].to_string();
    assert!(
        rejected.contains("sentences.tsv:4") && rejected.contains("text is empty"),
        "{report}"
    );

    let verified = twin_command(
        &url,
        &[
            "verify",
            "--text",
            "--model",
            TEXT_MODEL,
            "--json",
            "The company said its quarterly profit rose 10 percent.",
            "Quarterly profit at the company increased by 10 percent, it said.",
        ],
    )
    .await;
    assert!(verified.status.success(), "{verified:?}");
    let answer: serde_json::Value = serde_json::from_slice(&verified.stdout).expect("json");
    assert_eq!(answer["match"], true, "{answer}");

    let searched = twin_command(
        &url,
        &[
            "search",
            "--text",
            "--model",
            TEXT_MODEL,
            "--json",
            "--top-k",
            "1",
            "--threshold",
            "-1",
            "Stock prices dropped steeply once the central bank lifted rates.",
        ],
    )
    .await;
    assert!(searched.status.success(), "{searched:?}");
    let answer: serde_json::Value = serde_json::from_slice(&searched.stdout).expect("json");
    assert_eq!(answer["hits"][0]["subject_id"], "markets", "{answer}");
}
