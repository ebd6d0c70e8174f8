//! Property-based fuzzing of the gateway's request path: arbitrary and malformed
//! `Verify`, `VerifySubject`, `Search`, `Embed`, `Enroll`, `EnqueueBatch`, subject and
//! model requests (random field combinations; missing, empty, garbage, mangled,
//! oversized and bomb-header images; unknown enum values; NaN, infinite and negative
//! thresholds, target FARs and RBF sigmas; random ids, labels and top_k) go through the
//! real services over a real state (the development model, the embedded store and the
//! in-process queue in a temporary directory).
//!
//! Properties: nothing panics; every refusal carries the code the API documents
//! (INVALID_ARGUMENT for a bad argument, NOT_FOUND for an unknown model, subject or point;
//! never INTERNAL or UNKNOWN) and a non-empty message; every valid request is accepted
//! and its answer is consistent. The number of cases is fixed (`FUZZ_CASES`), so the
//! suite takes seconds in CI.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use tonic::{Code, Request, Response, Status};
use twin_core::config::{EmbedConfig, ProviderChoice, TwinConfig};
use twin_core::decision::{
    resolve_subject_threshold, resolve_threshold, wanted, Aggregation, ThresholdChoice,
};
use twin_core::ids::sha256_hex;
use twin_core::manifest::ModelManifest;
use twin_core::Metric;
use twin_gateway::service::enrollment::EnrollmentService;
use twin_gateway::service::models::ModelsService;
use twin_gateway::service::similarity::SimilarityService;
use twin_gateway::service::verification::VerificationService;
use twin_gateway::{AppState, BoundGateway, GatewayMetrics};
use twin_proto::v1 as pb;
use twin_proto::v1::enrollment_client::EnrollmentClient;
use twin_proto::v1::enrollment_server::Enrollment;
use twin_proto::v1::models_server::Models;
use twin_proto::v1::similarity_server::Similarity;
use twin_proto::v1::verification_server::Verification;
use twin_store::{Point, PointPayload};

/// Cases per property: enough to cover every field variant many times over, few enough
/// to finish in seconds.
const FUZZ_CASES: u32 = 256;
/// The cases' seed unless PROPTEST_RNG_SEED says otherwise.
const FUZZ_SEED: u64 = 20_261_202;
/// The gateway's image size limit in these tests (small, so "oversized" is cheap).
const MAX_IMAGE_BYTES: usize = 256 * 1024;
/// The subject the harness enrols one reference for.
const ENROLLED: &str = "fuzz-enrolled-subject";

/// Runs the same cases every time (a fixed seed), so that CI is repeatable and the
/// "exercised both ways" counts cannot fall short by chance; `PROPTEST_RNG_SEED=N` explores
/// other cases (a failure prints its minimal input either way).
fn runner(cases: u32) -> TestRunner {
    let defaults = Config::default();
    let rng_seed = if std::env::var_os("PROPTEST_RNG_SEED").is_some() {
        defaults.rng_seed
    } else {
        RngSeed::Fixed(FUZZ_SEED)
    };
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        rng_seed,
        ..defaults
    })
}

/// A served state: the development model, the embedded store and the in-process queue
/// under a temporary directory; one subject enrolled; also listening on an ephemeral
/// port for the client-streaming call.
struct Harness {
    runtime: tokio::runtime::Runtime,
    state: AppState,
    manifest: ModelManifest,
    /// Valid signature images.
    pngs: Vec<Vec<u8>>,
    /// A valid PNG without ink.
    blank: Vec<u8>,
    enrolled_point: String,
    /// Accepted and refused calls per method, to show the properties were exercised
    /// both ways.
    tally: RefCell<BTreeMap<&'static str, (u32, u32)>>,
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Harness {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = TwinConfig::default();
        config.use_embedded(dir.path());
        config.models.dirs = vec![twin_tests::dev_model()];
        config.embed = EmbedConfig {
            provider: ProviderChoice::Cpu,
            max_image_bytes: MAX_IMAGE_BYTES,
            ..EmbedConfig::default()
        };
        // CI names the library in TWIN_ORT_DYLIB; a plain `cargo test` finds setup.sh's.
        if std::env::var_os("TWIN_ORT_DYLIB").is_none() {
            let library = twin_tests::repo_root().join("runtime/libonnxruntime.so");
            config.embed.ort_library = library.display().to_string();
        }
        config.gateway.request_timeout_ms = 60_000;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let (state, _feed) = runtime
            .block_on(AppState::open(&config))
            .expect("gateway state");
        let manifest = state.models.default_model().manifest().clone();
        let pngs: Vec<Vec<u8>> = (0..4).map(|i| twin_tests::genuine(i, i)).collect();
        let blank = blank_png();

        // One reference for ENROLLED, stored directly (no worker runs here).
        let model = state.models.default_model().clone();
        let vector = runtime
            .block_on(model.embed_image(pngs[0].clone()))
            .expect("embed");
        let point = Point::new(
            vector,
            PointPayload {
                subject_id: ENROLLED.to_owned(),
                image_sha256: sha256_hex(&pngs[0]),
                model_id: manifest.id.clone(),
                source: "fuzz".to_owned(),
                ..PointPayload::default()
            },
        );
        let collection = AppState::collection(&model).name;
        runtime
            .block_on(
                state
                    .store
                    .upsert(&collection, std::slice::from_ref(&point)),
            )
            .expect("seed point");

        let bound = runtime
            .block_on(BoundGateway::bind("127.0.0.1:0"))
            .expect("bind");
        let url = format!("http://{}", bound.addr);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = state.clone();
        let gateway = config.gateway.clone();
        runtime.spawn(async move {
            let metrics = GatewayMetrics::new().expect("metrics");
            let shutdown = async move {
                let _ = stopped.await;
            };
            if let Err(error) = bound.serve(served, &gateway, metrics, shutdown).await {
                panic!("gateway failed: {error}");
            }
        });
        Self {
            runtime,
            state,
            manifest,
            pngs,
            blank,
            enrolled_point: point.id.to_string(),
            tally: RefCell::default(),
            url,
            stop: Some(stop),
            _dir: dir,
        }
    }

    fn verification(&self) -> VerificationService {
        VerificationService {
            state: self.state.clone(),
        }
    }

    fn similarity(&self) -> SimilarityService {
        SimilarityService {
            state: self.state.clone(),
        }
    }

    fn enrollment(&self) -> EnrollmentService {
        EnrollmentService {
            state: self.state.clone(),
        }
    }

    fn count(&self, what: &'static str, accepted: bool) {
        let mut tally = self.tally.borrow_mut();
        let entry = tally.entry(what).or_default();
        if accepted {
            entry.0 += 1;
        } else {
            entry.1 += 1;
        }
    }

    /// Each method saw at least `min` accepted and `min` refused calls.
    fn assert_exercised(&self, methods: &[&str], min: u32) {
        let tally = self.tally.borrow();
        eprintln!("accepted and refused calls: {tally:?}");
        for method in methods {
            let (accepted, refused) = tally.get(method).copied().unwrap_or_default();
            assert!(
                accepted >= min && refused >= min,
                "{method}: {accepted} accepted and {refused} refused calls; the strategies \
                 should produce at least {min} of each"
            );
        }
    }

    fn model_known(&self, requested: &str) -> bool {
        requested.is_empty() || requested == self.manifest.name || requested == self.manifest.id
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// How far into `png` a cut must end to lose pixels for certain: 32 bytes before the end of
/// the last IDAT chunk's data. Behind that a cut may go either way: the decoder accepts a
/// file whose pixels are all there, and proptest found one cut inside its IEND trailer
/// (`head -c -1` of a `twin synth` PNG decodes; `head -c -5` does not).
fn lossy_cut_limit(png: &[u8]) -> usize {
    const SIGNATURE: usize = 8;
    let mut at = SIGNATURE;
    let mut pixels_end = SIGNATURE;
    while at + 8 <= png.len() {
        let length = u32::from_be_bytes([png[at], png[at + 1], png[at + 2], png[at + 3]]) as usize;
        let data_end = at + 8 + length;
        if &png[at + 4..at + 8] == b"IDAT" {
            pixels_end = data_end.min(png.len());
        }
        at = data_end + 4; // the chunk's CRC
    }
    assert!(
        pixels_end > SIGNATURE + 64,
        "test PNG has no IDAT chunk of any size"
    );
    pixels_end - 32
}

/// A white PNG: decodes fine, but has no ink.
fn blank_png() -> Vec<u8> {
    let mut bytes = Vec::new();
    image::GrayImage::from_pixel(120, 40, image::Luma([255u8]))
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .expect("encode png");
    bytes
}

// ---------------------------------------------------------------------------------
// Field strategies, each with whether the value is valid according to the API docs.
// ---------------------------------------------------------------------------------

/// How an image field is filled.
#[derive(Debug, Clone)]
enum ImageCase {
    Missing,
    Valid(usize),
    /// Decodes, but has no ink.
    Blank,
    Empty,
    Garbage(Vec<u8>),
    /// A valid image with one byte changed: may still decode.
    Mangled {
        index: usize,
        at: usize,
        value: u8,
    },
    /// A valid image cut short, inside its pixel data.
    Truncated {
        index: usize,
        keep: usize,
    },
    /// Over the size limit.
    Oversized,
    /// A header claiming an enormous picture.
    Bomb {
        width: u32,
        height: u32,
    },
}

impl ImageCase {
    /// Whether the image is accepted: `Some(valid)` when certain, `None` when it may go
    /// either way (a mangled byte may land where the decoder does not look).
    fn validity(&self) -> Option<bool> {
        match self {
            ImageCase::Valid(_) => Some(true),
            ImageCase::Mangled { .. } => None,
            _ => Some(false),
        }
    }

    fn image(&self, h: &Harness, source: String) -> Option<pb::Image> {
        let data = match self {
            ImageCase::Missing => return None,
            ImageCase::Valid(i) => h.pngs[i % h.pngs.len()].clone(),
            ImageCase::Blank => h.blank.clone(),
            ImageCase::Empty => Vec::new(),
            ImageCase::Garbage(bytes) => bytes.clone(),
            ImageCase::Mangled { index, at, value } => {
                let mut png = h.pngs[index % h.pngs.len()].clone();
                let at = at % png.len();
                png[at] = *value;
                png
            }
            ImageCase::Truncated { index, keep } => {
                let png = &h.pngs[index % h.pngs.len()];
                png[..keep % lossy_cut_limit(png)].to_vec()
            }
            ImageCase::Oversized => {
                let mut png = h.pngs[0].clone();
                png.resize(MAX_IMAGE_BYTES + 1, 0);
                png
            }
            ImageCase::Bomb { width, height } => twin_tests::png_header(*width, *height),
        };
        Some(pb::Image::from_bytes(data, source))
    }
}

fn image_case() -> impl Strategy<Value = ImageCase> {
    prop_oneof![
        1 => Just(ImageCase::Missing),
        20 => (0usize..4).prop_map(ImageCase::Valid),
        1 => Just(ImageCase::Blank),
        1 => Just(ImageCase::Empty),
        1 => proptest::collection::vec(any::<u8>(), 1..512).prop_map(ImageCase::Garbage),
        1 => (0usize..4, any::<usize>(), any::<u8>())
            .prop_map(|(index, at, value)| ImageCase::Mangled { index, at, value }),
        1 => (0usize..4, any::<usize>()).prop_map(|(index, keep)| ImageCase::Truncated { index, keep }),
        1 => Just(ImageCase::Oversized),
        1 => (9_000u32..=u32::MAX, 1u32..=u32::MAX)
            .prop_map(|(width, height)| ImageCase::Bomb { width, height }),
    ]
}

fn source() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z0-9._-]{0,40}",
        1 => ".{0,80}",
        1 => "[a-z]{257,300}",
    ]
}

/// A model name: the default, the served one by name or id, or anything.
fn model(manifest: &ModelManifest) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just(String::new()),
        1 => Just(manifest.name.clone()),
        1 => Just(manifest.id.clone()),
        1 => ".{0,24}",
    ]
}

fn metric() -> impl Strategy<Value = i32> {
    prop_oneof![9 => 0i32..=7, 1 => any::<i32>()]
}

fn metric_of(value: i32, native: Metric) -> Option<Metric> {
    Some(match value {
        0 => native,
        1 => Metric::L2,
        2 => Metric::SquaredL2,
        3 => Metric::L1,
        4 => Metric::Dot,
        5 => Metric::Cosine,
        6 => Metric::Rbf,
        7 => Metric::Learned,
        _ => return None,
    })
}

/// Floats that break naive code, and ordinary ones.
fn nasty_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(0.0),
        Just(-0.0),
        Just(1.0),
        Just(-1.0),
        Just(0.01),
        Just(0.1),
        Just(0.001),
        Just(f64::MIN_POSITIVE),
        Just(f64::MAX),
        -2.0f64..2.0,
        any::<f64>(),
    ]
}

fn policy() -> impl Strategy<Value = Option<pb::DecisionPolicy>> {
    use pb::decision_policy::Threshold;
    prop_oneof![
        6 => Just(None),
        1 => Just(Some(pb::DecisionPolicy { threshold: None })),
        2 => nasty_f64().prop_map(|far| Some(pb::DecisionPolicy {
            threshold: Some(Threshold::TargetFar(far)),
        })),
        2 => nasty_f64().prop_map(|t| Some(pb::DecisionPolicy {
            threshold: Some(Threshold::ExplicitThreshold(t)),
        })),
    ]
}

/// Whether the threshold of a policy can be resolved under `metric` for this model
/// (twin-core's resolution is tested on its own; here it is the oracle).
fn choice_of(policy: Option<&pb::DecisionPolicy>) -> ThresholdChoice {
    use pb::decision_policy::Threshold;
    match policy.and_then(|p| p.threshold.as_ref()) {
        None => ThresholdChoice::Default,
        Some(Threshold::TargetFar(far)) => ThresholdChoice::TargetFar(*far),
        Some(Threshold::ExplicitThreshold(t)) => ThresholdChoice::Explicit(*t),
    }
}

fn threshold_ok(
    manifest: &ModelManifest,
    metric: Metric,
    policy: Option<&pb::DecisionPolicy>,
) -> bool {
    resolve_threshold(
        &manifest.operating_points,
        metric,
        choice_of(policy),
        manifest.default_target_far,
    )
    .is_ok()
}

/// Whether a probe-vs-subject policy has a threshold for a subject of `references`
/// references: explicit, or a subject-level point of the aggregation at the target FAR
/// with at most that many references (never the pairwise points).
fn subject_threshold_ok(
    manifest: &ModelManifest,
    metric: Metric,
    aggregation: Aggregation,
    references: usize,
    policy: Option<&pb::DecisionPolicy>,
) -> bool {
    resolve_subject_threshold(
        &manifest.subject_operating_points,
        metric,
        aggregation,
        references,
        choice_of(policy),
        manifest.default_target_far,
    )
    .is_ok()
}

/// `rbf_sigma`: 0 means the default; otherwise finite and > 0, checked only for RBF.
fn sigma_ok(metric: Metric, sigma: f64) -> bool {
    metric != Metric::Rbf || sigma == 0.0 || (sigma.is_finite() && sigma > 0.0)
}

fn subject() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z0-9_-]{1,20}",
        1 => Just(String::new()),
        1 => "[a-z]{129,140}",
        1 => "[a-z]{0,5}[\\x00-\\x1f\\x7f][a-z]{0,5}",
        2 => ".{0,40}",
    ]
}

/// 1..=128 UTF-8 bytes without control characters (the API's rule).
fn subject_ok(subject: &str) -> bool {
    !subject.is_empty() && subject.len() <= 128 && !subject.chars().any(char::is_control)
}

fn label() -> impl Strategy<Value = pb::Label> {
    let key = prop_oneof![
        4 => "[A-Za-z0-9_.-]{1,64}",
        2 => Just("k".to_owned()),
        1 => Just(String::new()),
        1 => "[a-z]{65,70}",
        2 => ".{0,20}",
    ];
    let value = prop_oneof![5 => "[a-z0-9 ]{0,20}", 1 => "[a-z]{257,270}", 1 => ".{0,20}"];
    (key, value).prop_map(|(key, value)| pb::Label { key, value })
}

fn labels() -> impl Strategy<Value = Vec<pb::Label>> {
    prop_oneof![
        3 => Just(Vec::new()),
        3 => proptest::collection::vec(label(), 1..4),
        1 => proptest::collection::vec(label(), 15..20),
    ]
}

/// The API's label rules: at most `max` labels (if bounded), keys unique and 1..=64
/// bytes of [A-Za-z0-9_.-], values at most 256 bytes.
fn labels_ok(labels: &[pb::Label], max: Option<usize>) -> bool {
    let mut keys = BTreeSet::new();
    max.is_none_or(|max| labels.len() <= max)
        && labels.iter().all(|l| {
            keys.insert(l.key.as_str())
                && !l.key.is_empty()
                && l.key.len() <= 64
                && l.key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
                && l.value.len() <= 256
        })
}

// ---------------------------------------------------------------------------------
// The oracle: which outcomes a request may have.
// ---------------------------------------------------------------------------------

/// What a request must come to: refused with one of `must_fail` (when not empty), or
/// accepted; codes in `may_fail` are allowed too (a mangled image may or may not
/// decode; with several faults, which is reported first is the service's choice).
#[derive(Debug, Default)]
struct Oracle {
    must_fail: BTreeSet<i32>,
    may_fail: BTreeSet<i32>,
    why: Vec<&'static str>,
}

impl Oracle {
    fn fail_if(&mut self, condition: bool, code: Code, why: &'static str) {
        if condition {
            self.must_fail.insert(code as i32);
            self.why.push(why);
        }
    }

    fn image(&mut self, case: &ImageCase, why: &'static str) {
        match case.validity() {
            Some(valid) => self.fail_if(!valid, Code::InvalidArgument, why),
            None => {
                self.may_fail.insert(Code::InvalidArgument as i32);
            }
        }
    }

    /// The metric, threshold policy and RBF sigma of a decision request (Verify,
    /// VerifySubject).
    fn decision(
        &mut self,
        manifest: &ModelManifest,
        metric: i32,
        policy: Option<&pb::DecisionPolicy>,
        sigma: f64,
    ) {
        match metric_of(metric, manifest.native_metric) {
            None => self.fail_if(true, Code::InvalidArgument, "unknown metric"),
            Some(m) => {
                self.fail_if(
                    m == Metric::Learned && manifest.joint.is_none(),
                    Code::InvalidArgument,
                    "no joint head",
                );
                self.fail_if(
                    !threshold_ok(manifest, m, policy),
                    Code::InvalidArgument,
                    "no threshold",
                );
                self.fail_if(!sigma_ok(m, sigma), Code::InvalidArgument, "bad sigma");
            }
        }
    }

    /// The metric, policy and RBF sigma of a VerifySubject request: the policy is checked
    /// on its own before the subject is read; its threshold, for an enrolled subject with
    /// `enrolled` = (aggregation, references), against the subject-level points.
    fn subject_decision(
        &mut self,
        manifest: &ModelManifest,
        metric: i32,
        policy: Option<&pb::DecisionPolicy>,
        sigma: f64,
        enrolled: Option<(Aggregation, usize)>,
    ) {
        match metric_of(metric, manifest.native_metric) {
            None => self.fail_if(true, Code::InvalidArgument, "unknown metric"),
            Some(m) => {
                self.fail_if(
                    m == Metric::Learned && manifest.joint.is_none(),
                    Code::InvalidArgument,
                    "no joint head",
                );
                let choice_ok = wanted(choice_of(policy), manifest.default_target_far).is_ok();
                self.fail_if(!choice_ok, Code::InvalidArgument, "bad policy");
                if let Some((aggregation, references)) = enrolled {
                    self.fail_if(
                        !subject_threshold_ok(manifest, m, aggregation, references, policy),
                        Code::InvalidArgument,
                        "no subject-level threshold",
                    );
                }
                self.fail_if(!sigma_ok(m, sigma), Code::InvalidArgument, "bad sigma");
            }
        }
    }

    /// Checks an outcome; the response when the request was accepted.
    fn check<T>(
        &self,
        h: &Harness,
        what: &'static str,
        outcome: Result<Response<T>, Status>,
    ) -> Result<Option<T>, TestCaseError> {
        h.count(what, outcome.is_ok());
        match outcome {
            Ok(response) => {
                prop_assert!(
                    self.must_fail.is_empty(),
                    "{what} was accepted but must fail ({:?})",
                    self.why
                );
                Ok(Some(response.into_inner()))
            }
            Err(status) => {
                let code = status.code() as i32;
                prop_assert!(
                    !status.message().trim().is_empty(),
                    "{what}: {:?} without a message",
                    status.code()
                );
                prop_assert!(
                    self.must_fail.contains(&code) || self.may_fail.contains(&code),
                    "{what} failed with {:?} ({}); expected {} ({:?})",
                    status.code(),
                    status.message(),
                    if self.must_fail.is_empty() {
                        "success".to_owned()
                    } else {
                        format!(
                            "one of {:?}",
                            self.must_fail
                                .iter()
                                .map(|c| Code::from(*c))
                                .collect::<Vec<_>>()
                        )
                    },
                    self.why
                );
                Ok(None)
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Properties.
// ---------------------------------------------------------------------------------

#[test]
fn fuzz_verify_requests() {
    let h = Harness::start();
    let strategy = (
        (image_case(), image_case(), source(), source()),
        model(&h.manifest),
        metric(),
        policy(),
        nasty_f64(),
    );
    runner(FUZZ_CASES)
        .run(
            &strategy,
            |((a, b, source_a, source_b), model, metric, policy, sigma)| {
                let request = pb::VerifyRequest {
                    a: a.image(&h, source_a),
                    b: b.image(&h, source_b),
                    model: model.clone(),
                    metric,
                    policy,
                    rbf_sigma: sigma,
                };
                let mut oracle = Oracle::default();
                oracle.fail_if(!h.model_known(&model), Code::NotFound, "unknown model");
                oracle.decision(&h.manifest, metric, request.policy.as_ref(), sigma);
                oracle.image(&a, "image a");
                oracle.image(&b, "image b");
                let outcome = h
                    .runtime
                    .block_on(h.verification().verify(Request::new(request)));
                if let Some(answer) = oracle.check(&h, "Verify", outcome)? {
                    let audit = answer.audit.expect("an audit record");
                    prop_assert!(answer.score.is_finite(), "score {}", answer.score);
                    prop_assert_eq!(answer.r#match, answer.score >= audit.threshold);
                    prop_assert_eq!(audit.score, answer.score);
                    prop_assert_ne!(audit.metric, 0);
                    prop_assert_eq!(&audit.model_id, &h.manifest.id);
                }
                Ok(())
            },
        )
        .unwrap_or_else(|failure| panic!("{failure}"));
    h.assert_exercised(&["Verify"], 10);
}

#[test]
fn fuzz_verify_subject_requests() {
    let h = Harness::start();
    let strategy = (
        prop_oneof![2 => Just(ENROLLED.to_owned()), 3 => subject()],
        (
            image_case(),
            model(&h.manifest),
            // The native metric more often than elsewhere: a subject decision also needs a
            // subject-level point, which the dev model has for cosine and l2 only.
            prop_oneof![2 => Just(0), 3 => metric()],
            policy(),
            nasty_f64(),
        ),
        (
            prop_oneof![4 => 0i32..=4, 1 => any::<i32>()],
            prop_oneof![3 => 0u32..=3, 1 => any::<u32>()],
            prop_oneof![3 => 0u32..=1024, 1 => any::<u32>()],
        ),
    );
    runner(FUZZ_CASES)
        .run(
            &strategy,
            |(
                subject_id,
                (probe, model, metric, policy, sigma),
                (aggregation, k, max_references),
            )| {
                let request = pb::VerifySubjectRequest {
                    subject_id: subject_id.clone(),
                    probe: probe.image(&h, "probe".into()),
                    model: model.clone(),
                    metric,
                    policy,
                    aggregation,
                    k,
                    max_references,
                    rbf_sigma: sigma,
                };
                let mut oracle = Oracle::default();
                oracle.fail_if(
                    !subject_ok(&subject_id),
                    Code::InvalidArgument,
                    "bad subject",
                );
                oracle.fail_if(!h.model_known(&model), Code::NotFound, "unknown model");
                let parsed = match aggregation {
                    0 | 1 => Some(Aggregation::Best),
                    2 => Some(Aggregation::Mean),
                    3 => Some(Aggregation::KOfN(k as usize)),
                    4 => Some(Aggregation::Adapted),
                    _ => None,
                };
                let enrolled = parsed.filter(|_| subject_id == ENROLLED).map(|a| (a, 1));
                oracle.subject_decision(
                    &h.manifest,
                    metric,
                    request.policy.as_ref(),
                    sigma,
                    enrolled,
                );
                oracle.fail_if(
                    !(0..=4).contains(&aggregation),
                    Code::InvalidArgument,
                    "unknown aggregation",
                );
                oracle.fail_if(
                    max_references > 1024,
                    Code::InvalidArgument,
                    "too many references",
                );
                oracle.image(&probe, "probe");
                if subject_id == ENROLLED {
                    // One reference: k-of-n needs k = 1; adapted needs two.
                    oracle.fail_if(aggregation == 3 && k != 1, Code::InvalidArgument, "bad k");
                    oracle.fail_if(aggregation == 4, Code::InvalidArgument, "one reference");
                } else {
                    oracle.fail_if(subject_ok(&subject_id), Code::NotFound, "not enrolled");
                }
                let outcome = h
                    .runtime
                    .block_on(h.verification().verify_subject(Request::new(request)));
                if let Some(answer) = oracle.check(&h, "VerifySubject", outcome)? {
                    let audit = answer.audit.expect("an audit record");
                    prop_assert_eq!(answer.references, 1);
                    prop_assert_eq!(answer.per_reference.len(), 1);
                    prop_assert!(answer.score.is_finite(), "score {}", answer.score);
                    prop_assert_eq!(answer.r#match, answer.score >= audit.threshold);
                    prop_assert_eq!(&audit.matched_point_id, &h.enrolled_point);
                }
                Ok(())
            },
        )
        .unwrap_or_else(|failure| panic!("{failure}"));
    h.assert_exercised(&["VerifySubject"], 3);
}

/// A search query and what is wrong with it.
#[derive(Debug, Clone)]
enum QueryCase {
    Missing,
    Image(ImageCase),
    Vector(Vec<f32>),
    StoredPoint,
    RandomUuid(u128),
    NotAUuid(String),
}

fn query_case() -> impl Strategy<Value = QueryCase> {
    let value = prop_oneof![
        8 => -1.0f32..1.0,
        1 => Just(f32::NAN),
        1 => Just(f32::INFINITY),
        1 => any::<f32>(),
    ];
    prop_oneof![
        1 => Just(QueryCase::Missing),
        4 => image_case().prop_map(QueryCase::Image),
        2 => proptest::collection::vec(value.clone(), 128).prop_map(QueryCase::Vector),
        1 => proptest::collection::vec(value, 0..200).prop_map(QueryCase::Vector),
        1 => Just(QueryCase::StoredPoint),
        1 => any::<u128>().prop_map(QueryCase::RandomUuid),
        1 => ".{0,40}".prop_map(QueryCase::NotAUuid),
    ]
}

#[test]
fn fuzz_search_and_embed_requests() {
    let h = Harness::start();
    let strategy = (
        query_case(),
        model(&h.manifest),
        prop_oneof![3 => 0u32..=1000, 1 => any::<u32>()],
        proptest::collection::vec(".{0,20}", 0..3),
        labels(),
        policy(),
        any::<bool>(),
    );
    runner(FUZZ_CASES)
        .run(
            &strategy,
            |(query, model, top_k, subject_ids, labels, policy, group_by_subject)| {
                use pb::search_request::Query;
                let mut oracle = Oracle::default();
                oracle.fail_if(!h.model_known(&model), Code::NotFound, "unknown model");
                oracle.fail_if(top_k > 1000, Code::InvalidArgument, "top_k over 1000");
                oracle.fail_if(
                    !threshold_ok(&h.manifest, h.manifest.native_metric, policy.as_ref()),
                    Code::InvalidArgument,
                    "no threshold",
                );
                // A filter may name more labels than a point carries; the rest holds.
                oracle.fail_if(
                    !labels_ok(&labels, None),
                    Code::InvalidArgument,
                    "bad label filter",
                );
                let query = match &query {
                    QueryCase::Missing => {
                        oracle.fail_if(true, Code::InvalidArgument, "no query");
                        None
                    }
                    QueryCase::Image(case) => {
                        // A missing image is a missing query: refused all the same.
                        oracle.image(case, "query image");
                        case.image(&h, String::new()).map(Query::Image)
                    }
                    QueryCase::Vector(values) => {
                        oracle.fail_if(
                            values.len() != h.manifest.output.embedding_size as usize,
                            Code::InvalidArgument,
                            "vector size",
                        );
                        oracle.fail_if(
                            values.iter().any(|v| !v.is_finite()),
                            Code::InvalidArgument,
                            "vector not finite",
                        );
                        Some(Query::Vector(pb::Vector {
                            values: values.clone(),
                        }))
                    }
                    QueryCase::StoredPoint => Some(Query::PointId(h.enrolled_point.clone())),
                    QueryCase::RandomUuid(n) => {
                        oracle.fail_if(true, Code::NotFound, "point not stored");
                        Some(Query::PointId(uuid::Uuid::from_u128(*n).to_string()))
                    }
                    QueryCase::NotAUuid(text) => {
                        oracle.fail_if(
                            uuid::Uuid::parse_str(text).is_err(),
                            Code::InvalidArgument,
                            "point id not a uuid",
                        );
                        // A random string that parses as a UUID is not stored either.
                        oracle.fail_if(
                            uuid::Uuid::parse_str(text).is_ok(),
                            Code::NotFound,
                            "point not stored",
                        );
                        Some(Query::PointId(text.clone()))
                    }
                };
                let request = pb::SearchRequest {
                    query,
                    model: model.clone(),
                    top_k,
                    subject_ids,
                    labels,
                    policy,
                    group_by_subject,
                };
                let outcome = h
                    .runtime
                    .block_on(h.similarity().search(Request::new(request)));
                if let Some(answer) = oracle.check(&h, "Search", outcome)? {
                    let wanted = if top_k == 0 { 10 } else { top_k as usize };
                    prop_assert!(answer.hits.len() <= wanted);
                    prop_assert_eq!(answer.unknown, answer.hits.is_empty());
                    let audit = answer.audit.expect("an audit record");
                    prop_assert!(answer.hits.iter().all(|hit| hit.score >= audit.threshold));
                }
                Ok(())
            },
        )
        .unwrap_or_else(|failure| panic!("{failure}"));

    // Similarity.Embed: the image field alone.
    runner(FUZZ_CASES)
        .run(&(image_case(), model(&h.manifest)), |(case, model)| {
            let mut oracle = Oracle::default();
            oracle.fail_if(!h.model_known(&model), Code::NotFound, "unknown model");
            oracle.image(&case, "image");
            let data = case.image(&h, String::new());
            let sha = data.as_ref().map(|i| match &i.content {
                Some(pb::image::Content::Data(bytes)) => sha256_hex(bytes),
                _ => sha256_hex(b""),
            });
            let request = pb::EmbedRequest { image: data, model };
            let outcome = h
                .runtime
                .block_on(h.similarity().embed(Request::new(request)));
            if let Some(answer) = oracle.check(&h, "Embed", outcome)? {
                prop_assert_eq!(
                    answer.vector.len(),
                    h.manifest.output.embedding_size as usize
                );
                prop_assert!(answer.vector.iter().all(|v| v.is_finite()));
                prop_assert_eq!(Some(answer.image_sha256), sha);
            }
            Ok(())
        })
        .unwrap_or_else(|failure| panic!("{failure}"));
    h.assert_exercised(&["Search", "Embed"], 10);
}

/// One enrolment, as Enroll or as an EnqueueBatch item.
#[derive(Debug, Clone)]
struct EnrolCase {
    client_ref: String,
    subject: String,
    image: ImageCase,
    source: String,
    labels: Vec<pb::Label>,
    model: String,
}

fn enrol_case(manifest: &ModelManifest) -> impl Strategy<Value = EnrolCase> {
    (
        prop_oneof![4 => ".{0,30}", 1 => "[a-z]{1025,1030}"],
        subject(),
        image_case(),
        source(),
        labels(),
        model(manifest),
    )
        .prop_map(
            |(client_ref, subject, image, source, labels, model)| EnrolCase {
                client_ref,
                subject,
                image,
                source,
                labels,
                model,
            },
        )
}

impl EnrolCase {
    fn oracle(&self, h: &Harness, with_client_ref: bool) -> Oracle {
        let mut oracle = Oracle::default();
        oracle.fail_if(!h.model_known(&self.model), Code::NotFound, "unknown model");
        oracle.fail_if(
            !subject_ok(&self.subject),
            Code::InvalidArgument,
            "bad subject",
        );
        oracle.fail_if(
            !labels_ok(&self.labels, Some(16)),
            Code::InvalidArgument,
            "bad labels",
        );
        oracle.image(&self.image, "image");
        oracle.fail_if(
            !matches!(self.image, ImageCase::Missing) && self.source.len() > 256,
            Code::InvalidArgument,
            "source over 256 bytes",
        );
        oracle.fail_if(
            with_client_ref && self.client_ref.len() > 1024,
            Code::InvalidArgument,
            "client_ref over 1024 bytes",
        );
        oracle
    }
}

#[test]
fn fuzz_enroll_and_enqueue_batch_requests() {
    let h = Harness::start();
    runner(FUZZ_CASES)
        .run(&enrol_case(&h.manifest), |case| {
            let request = pb::EnrollRequest {
                subject_id: case.subject.clone(),
                image: case.image.image(&h, case.source.clone()),
                labels: case.labels.clone(),
                model: case.model.clone(),
                wait: false,
            };
            let outcome = h
                .runtime
                .block_on(h.enrollment().enroll(Request::new(request)));
            if let Some(answer) = case.oracle(&h, false).check(&h, "Enroll", outcome)? {
                let job = answer.job.expect("a job");
                prop_assert!(!job.job_id.is_empty());
                prop_assert_eq!(&job.subject_id, &case.subject);
                prop_assert_eq!(job.status, pb::JobStatus::Queued as i32);
            }
            Ok(())
        })
        .unwrap_or_else(|failure| panic!("{failure}"));

    // The client-streaming call, over gRPC.
    let client = h.runtime.block_on(async {
        EnrollmentClient::new(twin_tests::channel(&h.url).await)
            .max_encoding_message_size(64 * 1024 * 1024)
    });
    // Streams of up to five items: a quarter of the cases covers as many items.
    runner(FUZZ_CASES / 4)
        .run(
            &proptest::collection::vec(enrol_case(&h.manifest), 0..6),
            |cases| {
                let items: Vec<pb::EnqueueItem> = cases
                    .iter()
                    .map(|c| pb::EnqueueItem {
                        client_ref: c.client_ref.clone(),
                        subject_id: c.subject.clone(),
                        image: c.image.image(&h, c.source.clone()),
                        labels: c.labels.clone(),
                        model: c.model.clone(),
                    })
                    .collect();
                let mut request = Request::new(tokio_stream::iter(items));
                request.set_timeout(Duration::from_secs(60));
                let answer = h
                    .runtime
                    .block_on(client.clone().enqueue_batch(request))
                    .map_err(|status| {
                        TestCaseError::fail(format!("EnqueueBatch failed as a whole: {status:?}"))
                    })?
                    .into_inner();
                prop_assert_eq!(answer.results.len(), cases.len());
                prop_assert_eq!(
                    answer.accepted + answer.rejected + answer.already_stored,
                    cases.len() as u64
                );
                for (i, (case, result)) in cases.iter().zip(&answer.results).enumerate() {
                    h.count("EnqueueBatch item", result.accepted);
                    prop_assert_eq!(result.index, i as u64);
                    prop_assert_eq!(&result.client_ref, &case.client_ref);
                    let oracle = case.oracle(&h, true);
                    if result.accepted {
                        prop_assert!(
                            oracle.must_fail.is_empty(),
                            "item {} accepted but must fail ({:?})",
                            i,
                            oracle.why
                        );
                        prop_assert!(!result.job_id.is_empty());
                    } else if !result.already_stored {
                        prop_assert!(!result.reason.trim().is_empty(), "item {i}: no reason");
                        prop_assert!(
                            !oracle.must_fail.is_empty() || !oracle.may_fail.is_empty(),
                            "item {} rejected but valid: {}",
                            i,
                            result.reason
                        );
                    }
                }
                Ok(())
            },
        )
        .unwrap_or_else(|failure| panic!("{failure}"));
    h.assert_exercised(&["Enroll", "EnqueueBatch item"], 10);
}

#[test]
fn fuzz_subject_job_and_model_requests() {
    let h = Harness::start();
    let strategy = (subject(), model(&h.manifest), ".{0,40}");
    runner(FUZZ_CASES)
        .run(&strategy, |(subject_id, model, job_id)| {
            let mut oracle = Oracle::default();
            oracle.fail_if(
                !subject_ok(&subject_id),
                Code::InvalidArgument,
                "bad subject",
            );
            oracle.fail_if(!h.model_known(&model), Code::NotFound, "unknown model");
            let enrollment = h.enrollment();

            let mut get = Oracle::default();
            get.must_fail.clone_from(&oracle.must_fail);
            // Nothing but ENROLLED is stored, and the strategy never names it.
            get.fail_if(subject_ok(&subject_id), Code::NotFound, "not enrolled");
            let outcome =
                h.runtime
                    .block_on(enrollment.get_subject(Request::new(pb::GetSubjectRequest {
                        subject_id: subject_id.clone(),
                        model: model.clone(),
                        thumbnails: false,
                    })));
            get.check(&h, "GetSubject", outcome)?;

            let outcome = h.runtime.block_on(enrollment.delete_subject(Request::new(
                pb::DeleteSubjectRequest {
                    subject_id,
                    model: model.clone(),
                },
            )));
            if let Some(answer) = oracle.check(&h, "DeleteSubject", outcome)? {
                prop_assert_eq!(answer.deleted_points, 0);
            }

            let mut job = Oracle::default();
            job.fail_if(true, Code::NotFound, "unknown job");
            let outcome = h
                .runtime
                .block_on(enrollment.get_job(Request::new(pb::GetJobRequest { job_id })));
            job.check(&h, "GetJob", outcome)?;

            let mut get_model = Oracle::default();
            get_model.fail_if(!h.model_known(&model), Code::NotFound, "unknown model");
            let models = ModelsService {
                state: h.state.clone(),
            };
            let outcome = h
                .runtime
                .block_on(models.get_model(Request::new(pb::GetModelRequest { model })));
            if let Some(answer) = get_model.check(&h, "GetModel", outcome)? {
                prop_assert_eq!(&answer.id, &h.manifest.id);
            }
            Ok(())
        })
        .unwrap_or_else(|failure| panic!("{failure}"));
    h.assert_exercised(&["DeleteSubject", "GetModel"], 10);

    // The enrolled subject is still there: nothing above touched it.
    let subject = h
        .runtime
        .block_on(
            h.enrollment()
                .get_subject(Request::new(pb::GetSubjectRequest {
                    subject_id: ENROLLED.to_owned(),
                    model: String::new(),
                    thumbnails: true,
                })),
        )
        .expect("enrolled subject")
        .into_inner();
    assert_eq!(subject.references.len(), 1);
}
