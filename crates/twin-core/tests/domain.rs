//! Decisions, point ids, manifests and configuration.

use twin_core::config::{redact_url_password, TwinConfig};
use twin_core::decision::{
    aggregate, decide, far_name, resolve_threshold, Aggregation, OperatingPoint, ThresholdChoice,
};
use twin_core::ids::{point_id, sha256_hex};
use twin_core::manifest::{InputKind, ModelManifest};
use twin_core::Metric;

fn points() -> Vec<OperatingPoint> {
    [(0.1, 0.5), (0.01, 0.7), (0.001, 0.85)]
        .into_iter()
        .map(|(far, threshold)| OperatingPoint {
            name: far_name(far),
            metric: Metric::Cosine,
            target_far: far,
            threshold,
            measured_far: far,
            measured_frr: 0.1,
            calibrated_on: "validation".into(),
        })
        .collect()
}

#[test]
fn far_names_read_as_percent() {
    assert_eq!(far_name(0.01), "FAR 1 %");
    assert_eq!(far_name(0.1), "FAR 10 %");
    assert_eq!(far_name(0.001), "FAR 0.1 %");
}

#[test]
fn threshold_comes_from_the_requested_operating_point() {
    let p = points();
    let r = resolve_threshold(&p, Metric::Cosine, ThresholdChoice::TargetFar(0.001), 0.01)
        .expect("calibrated");
    assert_eq!(r.threshold, 0.85);
    assert_eq!(r.operating_point, "FAR 0.1 %");
    let d = resolve_threshold(&p, Metric::Cosine, ThresholdChoice::Default, 0.01).expect("default");
    assert_eq!(d.threshold, 0.7);
    let e =
        resolve_threshold(&p, Metric::L2, ThresholdChoice::Explicit(-0.4), 0.01).expect("explicit");
    assert_eq!(
        (e.threshold, e.operating_point.as_str()),
        (-0.4, "explicit")
    );
}

#[test]
fn an_uncalibrated_target_lists_what_is_available() {
    let err = resolve_threshold(
        &points(),
        Metric::Cosine,
        ThresholdChoice::TargetFar(0.05),
        0.01,
    )
    .expect_err("0.05 is not calibrated");
    let message = err.to_string();
    assert!(
        message.contains("0.05") && message.contains("FAR 1 %"),
        "{message}"
    );
    let err = resolve_threshold(&points(), Metric::L1, ThresholdChoice::Default, 0.01)
        .expect_err("no l1 points");
    assert!(err.to_string().contains("explicit threshold"), "{err}");
}

#[test]
fn decision_is_score_at_least_threshold() {
    assert!(decide(0.7, 0.7));
    assert!(decide(0.71, 0.7));
    assert!(!decide(0.69, 0.7));
    assert!(decide(-0.2, -0.3));
}

#[test]
fn aggregation_best_mean_and_k_of_n() {
    let scores = [0.2, 0.9, 0.5, 0.7];
    assert_eq!(
        aggregate(&scores, &[], Aggregation::Best).expect("best"),
        (0.9, 1)
    );
    let (mean, _) = aggregate(&scores, &[], Aggregation::Mean).expect("mean");
    assert!((mean - 0.575).abs() < 1e-12);
    assert_eq!(
        aggregate(&scores, &[], Aggregation::KOfN(2)).expect("2-of-n"),
        (0.7, 3)
    );
    assert_eq!(
        aggregate(&scores, &[], Aggregation::KOfN(4)).expect("4-of-n"),
        (0.2, 0)
    );
    assert!(aggregate(&scores, &[], Aggregation::KOfN(5)).is_err());
    assert!(aggregate(&scores, &[], Aggregation::KOfN(0)).is_err());
    assert!(aggregate(&[], &[], Aggregation::Best).is_err());
}

#[test]
fn point_ids_are_deterministic_and_distinguish_every_part() {
    let sha = sha256_hex(b"image bytes");
    assert_eq!(sha.len(), 64);
    let a = point_id("m1", "", "alice", &sha);
    assert_eq!(a, point_id("m1", "", "alice", &sha));
    assert_eq!(a.get_version_num(), 5);
    assert_ne!(a, point_id("m2", "", "alice", &sha));
    assert_ne!(a, point_id("m1", "", "bob", &sha));
    assert_ne!(a, point_id("m1", "", "alice", &sha256_hex(b"other")));
    // Two tenants' subjects of the same name are two points.
    assert_ne!(a, point_id("m1", "acme", "alice", &sha));
    assert_ne!(
        point_id("m1", "acme", "alice", &sha),
        point_id("m1", "globex", "alice", &sha)
    );
    // Joining must not be ambiguous: ("ab", "c") and ("a", "bc") differ.
    assert_ne!(point_id("m", "", "ab", "c"), point_id("m", "", "a", "bc"));
    assert_ne!(point_id("m", "t", "ab", "c"), point_id("m", "ta", "b", "c"));
}

#[test]
fn points_stored_before_tenants_keep_their_ids() {
    // The default tenant's ids are those of every earlier release: UUIDv5 over
    // "model\0subject\0sha" (a stored collection must not change its ids).
    let name = "m1\0alice\0ab";
    assert_eq!(
        point_id("m1", "", "alice", "ab"),
        uuid::Uuid::new_v5(&twin_core::ids::POINT_NAMESPACE, name.as_bytes())
    );
}

#[test]
fn tenant_names_are_checked() {
    use twin_core::subject::validate_tenant;
    assert!(validate_tenant("").is_ok());
    assert!(validate_tenant("acme-bank_2.eu").is_ok());
    for bad in [
        "acme bank",
        "a/b",
        ".hidden",
        "-x",
        "\u{0}",
        &"t".repeat(65),
    ] {
        assert!(validate_tenant(bad).is_err(), "{bad:?} must be refused");
    }
}

#[test]
fn sha256_matches_a_known_vector() {
    assert_eq!(
        sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

const MANIFEST: &str = r#"
name = "demo"
version = "1"
id = "0000000000000000000000000000000000000000000000000000000000000000"
trained = false
native_metric = "cosine"
default_target_far = 0.01

[input]
name = "image"
channels = 1
height = 80
width = 160

[preprocess]

[output]
name = "embedding"
embedding_size = 128
l2_normalized = true

[[operating_points]]
name = "FAR 1 %"
metric = "cosine"
target_far = 0.01
threshold = 0.8
"#;

#[test]
fn manifest_loads_and_rejects_what_is_wrong() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = ModelManifest::load(dir.path()).expect_err("no manifest yet");
    assert!(
        err.to_string().contains("manifest.toml is missing"),
        "{err}"
    );

    std::fs::write(dir.path().join("manifest.toml"), MANIFEST).expect("write");
    let m = ModelManifest::load(dir.path()).expect("valid manifest");
    let (input, preprocess) = m.image().expect("an image model");
    assert_eq!(input.height, 80);
    assert!(preprocess.binarize && preprocess.crop_to_ink);
    assert_eq!(preprocess.std, 1.0);
    assert_eq!(m.operating_points[0].metric, Metric::Cosine);
    assert_eq!(m.input_kind(), InputKind::Image);
    // An image manifest written back reads as before: no `kind` key appears.
    assert!(!m.to_toml().contains("kind"), "{}", m.to_toml());
    assert_eq!(
        toml::from_str::<ModelManifest>(&m.to_toml()).expect("round trip"),
        m
    );

    let no_preprocess = MANIFEST.replace("[preprocess]\n", "");
    std::fs::write(dir.path().join("manifest.toml"), no_preprocess).expect("write");
    let err = ModelManifest::load(dir.path()).expect_err("image without preprocess");
    assert!(err.to_string().contains("[preprocess]"), "{err}");

    let bad = MANIFEST.replace("embedding_size = 128", "embedding_size = 0");
    std::fs::write(dir.path().join("manifest.toml"), bad).expect("write");
    let err = ModelManifest::load(dir.path()).expect_err("zero embedding size");
    assert!(err.to_string().contains("embedding_size"), "{err}");

    let bad = MANIFEST.replace("id = \"0000", "id = \"zz00");
    std::fs::write(dir.path().join("manifest.toml"), bad).expect("write");
    assert!(ModelManifest::load(dir.path()).is_err());
}

const TEXT_MANIFEST: &str = r#"
name = "paraphrase"
version = "1"
id = "0000000000000000000000000000000000000000000000000000000000000000"
trained = true
native_metric = "cosine"
default_target_far = 0.01

[input]
kind = "text"
tokenizer = "tokenizer.json"
max_tokens = 256
input_ids = "input_ids"
attention_mask = "attention_mask"
token_type_ids = "token_type_ids"

[output]
name = "embedding"
embedding_size = 384
l2_normalized = true
"#;

#[test]
fn a_text_manifest_declares_its_tokenizer_and_refuses_image_fields() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |text: &str| std::fs::write(dir.path().join("manifest.toml"), text).expect("write");
    write(TEXT_MANIFEST);
    let m = ModelManifest::load(dir.path()).expect("valid text manifest");
    assert_eq!(m.input_kind(), InputKind::Text);
    assert!(m.image().is_none());
    let text = m.text().expect("a text model");
    assert_eq!(text.max_tokens, 256);
    assert_eq!(text.token_type_ids.as_deref(), Some("token_type_ids"));
    assert_eq!(
        toml::from_str::<ModelManifest>(&m.to_toml()).expect("round trip"),
        m
    );

    // (change, what the error must name)
    let refused = [
        (
            TEXT_MANIFEST.replace("kind = \"text\"", "kind = \"audio\""),
            "input.kind",
        ),
        (
            TEXT_MANIFEST.replace("tokenizer = \"tokenizer.json\"\n", ""),
            "tokenizer",
        ),
        (
            TEXT_MANIFEST.replace("tokenizer.json", "../tokenizer.json"),
            "input.tokenizer",
        ),
        (
            TEXT_MANIFEST.replace("max_tokens = 256", "max_tokens = 1"),
            "max_tokens",
        ),
        (
            TEXT_MANIFEST.replace("kind = \"text\"", "kind = \"text\"\nheight = 3"),
            "height",
        ),
        (format!("{TEXT_MANIFEST}\n[preprocess]\n"), "[preprocess]"),
        (
            TEXT_MANIFEST.replace(
                "attention_mask = \"attention_mask\"",
                "attention_mask = \"input_ids\"",
            ),
            "distinct",
        ),
    ];
    for (bad, names) in refused {
        write(&bad);
        let err = ModelManifest::load(dir.path()).expect_err(names);
        assert!(err.to_string().contains(names), "{names}: {err}");
    }
}

#[test]
fn config_layers_defaults_file_and_env() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("twin.toml");
    std::fs::write(
        &file,
        "[queue]\nbackend = \"rabbitmq\"\n[worker]\nbatch_size = 8\n",
    )
    .expect("write");
    let env = vec![
        ("TWIN_WORKER__BATCH_SIZE".to_owned(), "16".to_owned()),
        ("TWIN_STORE__API_KEY".to_owned(), "s3cret".to_owned()),
        ("UNRELATED".to_owned(), "x".to_owned()),
    ];
    let config = TwinConfig::load(Some(&file), env).expect("valid");
    assert_eq!(config.queue.backend, "rabbitmq");
    assert_eq!(config.worker.batch_size, 16, "env wins over the file");
    assert_eq!(config.gateway, TwinConfig::default().gateway);
    let shown = config.redacted_toml();
    assert!(
        !shown.contains("s3cret") && !shown.contains("guest:guest"),
        "{shown}"
    );

    // (variable, value, why it is refused, what the error must name)
    let refused = [
        (
            "TWIN_WORKER__BATCH_SIZE",
            "many",
            "not a number",
            "TWIN_WORKER__BATCH_SIZE",
        ),
        ("TWIN_WORKER__NOPE", "1", "unknown key", "nope"),
        (
            "TWIN_STORE__BACKEND",
            "qdrant",
            "qdrant needs a url",
            "store.url",
        ),
        (
            "TWIN_EMBED__EXPRESS_LINGER_US",
            "5000000",
            "a 5 s linger",
            "express_linger_us",
        ),
        (
            "TWIN_EMBED__MAX_BATCH",
            "1",
            "a pair would not fit one job",
            "embed.max_batch",
        ),
    ];
    for (var, value, why, named) in refused {
        let err = TwinConfig::load(None, vec![(var.into(), value.into())]).expect_err(why);
        assert!(err.to_string().contains(named), "{why}: {err}");
    }
    for fits in ["0", "2"] {
        TwinConfig::load(None, vec![("TWIN_EMBED__MAX_BATCH".into(), fits.into())])
            .unwrap_or_else(|e| panic!("max_batch {fits}: {e}"));
    }
}

#[test]
fn url_passwords_are_redacted() {
    assert_eq!(
        redact_url_password("amqp://user:pw@host:5672/%2f"),
        "amqp://user:***@host:5672/%2f"
    );
    assert_eq!(
        redact_url_password("http://qdrant:6334"),
        "http://qdrant:6334"
    );
}
