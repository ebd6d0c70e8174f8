//! The queue declares its `EmbedJob` wire message itself (so that it and the worker do not
//! depend on the API's generated code); this holds it to `proto/twin/v1/job.proto` as
//! twin-proto compiles it, both ways, so producers and consumers of either build agree.

use prost::Message;
use twin_core::job::EmbedJob;
use twin_proto::v1 as pb;

fn job() -> EmbedJob {
    EmbedJob {
        job_id: "4b0b7a7e-1d1c-4b51-9a3e-0a8d2f1c9e11".into(),
        tenant: "acme".into(),
        subject_id: "alice".into(),
        model_id: "ab".repeat(32),
        image: vec![1, 2, 3, 250],
        text: String::new(),
        image_sha256: "cd".repeat(32),
        labels: [
            ("site".to_owned(), "north".to_owned()),
            ("b".to_owned(), String::new()),
        ]
        .into(),
        source: "scans/alice-1.png".into(),
        enqueued_at_ms: 1_700_000_000_123,
        traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
    }
}

#[test]
fn the_queue_encoding_is_the_api_schema() {
    let job = job();
    let body = twin_queue::codec::encode_job(&job, 1 << 20).expect("encode");
    let api = pb::EmbedJob::decode(body.as_slice()).expect("twin-proto reads the queue's body");
    assert_eq!(api.job_id, job.job_id);
    assert_eq!(api.tenant, job.tenant);
    assert_eq!(api.subject_id, job.subject_id);
    assert_eq!(api.model_id, job.model_id);
    assert_eq!(api.image, job.image);
    assert_eq!(api.image_sha256, job.image_sha256);
    assert_eq!(api.source, job.source);
    assert_eq!(api.traceparent, job.traceparent);
    let labels: Vec<(String, String)> = api
        .labels
        .iter()
        .map(|l| (l.key.clone(), l.value.clone()))
        .collect();
    assert_eq!(labels, job.labels.clone().into_iter().collect::<Vec<_>>());
    let at = api.enqueued_at.expect("enqueued_at");
    assert_eq!((at.seconds, at.nanos), (1_700_000_000, 123_000_000));

    // And back: a body twin-proto writes is the same job to the queue.
    let again = twin_queue::codec::decode_job(&api.encode_to_vec(), &job.job_id).expect("decode");
    assert_eq!(again, job);
}

#[test]
fn a_text_job_crosses_too() {
    let mut job = job();
    job.image.clear();
    job.text = "a sentence to embed".into();
    let api = pb::EmbedJob {
        text: job.text.clone(),
        ..pb::EmbedJob::decode(
            twin_queue::codec::encode_job(&job, 1 << 20)
                .expect("encode")
                .as_slice(),
        )
        .expect("decode")
    };
    assert_eq!(api.text, job.text);
    assert!(api.image.is_empty());
    let back = twin_queue::codec::decode_job(&api.encode_to_vec(), "m").expect("decode");
    assert_eq!(back, job);
}
