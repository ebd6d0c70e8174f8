//! One `twin serve` process serving the two shipped, unrelated models side by side
//! (signatures and Omniglot characters): requests pick a model by name, each answer is
//! made by that model under its own calibrated threshold.

use std::path::PathBuf;
use std::time::Duration;

use tonic::Request;
use twin_core::manifest::ModelManifest;
use twin_proto::v1 as pb;
use twin_proto::v1::models_client::ModelsClient;
use twin_proto::v1::verification_client::VerificationClient;
use twin_tests::{channel, genuine, repo_root, TwinProcess};

fn request<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.set_timeout(Duration::from_secs(60));
    request
}

fn verify(model: &str, a: &[u8], b: &[u8]) -> pb::VerifyRequest {
    let image = |data: &[u8]| Some(pb::Image::from_bytes(data.to_vec(), String::new()));
    pb::VerifyRequest {
        a: image(a),
        b: image(b),
        model: model.to_owned(),
        ..Default::default()
    }
}

#[tokio::test]
async fn requests_choose_between_the_shipped_signature_and_omniglot_models() {
    let dir = tempfile::tempdir().expect("temp dir");
    let models = ["signature-v1", "omniglot-v1"].map(|name| repo_root().join("models").join(name));
    let manifests = models
        .clone()
        .map(|dir| ModelManifest::load(&dir).expect("shipped manifest"));
    let serve = TwinProcess::serve(dir.path(), &models.each_ref().map(PathBuf::as_path), &[]).await;
    let channel = channel(&serve.url()).await;

    let listed = ModelsClient::new(channel.clone())
        .list_models(request(pb::ListModelsRequest {}))
        .await
        .expect("list models")
        .into_inner();
    assert_eq!(listed.default_model, "signature-v1", "the first --model");
    for manifest in &manifests {
        let model = listed
            .models
            .iter()
            .find(|m| m.name == manifest.name)
            .unwrap_or_else(|| panic!("{} is not listed: {listed:?}", manifest.name));
        assert_eq!(model.id, manifest.id);
        let (input, _) = manifest.image().expect("image models");
        let shape = [
            -1,
            i64::from(input.channels),
            i64::from(input.height),
            i64::from(input.width),
        ];
        assert_eq!(model.input_shape, shape, "{}", manifest.name);
    }

    let mut verification = VerificationClient::new(channel);
    let (a, b) = (genuine(1, 1), genuine(2, 1));
    for manifest in &manifests {
        let default_threshold = manifest
            .operating_points
            .iter()
            .find(|p| p.target_far == manifest.default_target_far)
            .expect("a calibrated default operating point")
            .threshold;
        let same = verification
            .verify(request(verify(&manifest.name, &a, &a)))
            .await
            .expect("verify an image with itself")
            .into_inner();
        let audit = same.audit.as_ref().expect("audit record");
        assert_eq!(
            audit.model_name,
            format!("{}-{}", manifest.name, manifest.version)
        );
        assert_eq!(audit.model_id, manifest.id);
        assert!(
            (audit.threshold - default_threshold).abs() < 1e-6,
            "{}: threshold {} is not the model's own {default_threshold}",
            manifest.name,
            audit.threshold
        );
        assert!(same.r#match && same.score > 0.999, "{same:?}");

        let different = verification
            .verify(request(verify(&manifest.name, &a, &b)))
            .await
            .expect("verify two writers")
            .into_inner();
        assert!(
            different.score < same.score,
            "{}: two writers score {} vs {} for one image with itself",
            manifest.name,
            different.score,
            same.score
        );
    }

    let unknown = verification
        .verify(request(verify("no-such-model", &a, &b)))
        .await
        .expect_err("unknown model");
    assert_eq!(unknown.code(), tonic::Code::NotFound, "{unknown:?}");
}

/// The seed's joint layers through the real server: `METRIC_LEARNED` scores with
/// signature-v2's joint head at its own calibrated point; a model without one refuses it.
#[tokio::test]
async fn the_learned_metric_scores_with_the_joint_head_of_the_model_that_has_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let models = ["signature-v2", "omniglot-v1"].map(|name| repo_root().join("models").join(name));
    let v2 = ModelManifest::load(&models[0]).expect("signature-v2 manifest");
    let serve = TwinProcess::serve(dir.path(), &models.each_ref().map(PathBuf::as_path), &[]).await;
    let channel = channel(&serve.url()).await;
    let listed = ModelsClient::new(channel.clone())
        .list_models(request(pb::ListModelsRequest {}))
        .await
        .expect("list models")
        .into_inner();
    let described = |name: &str| {
        listed
            .models
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.joint_head.clone())
            .unwrap_or_default()
    };
    assert!(
        described("signature-v2").starts_with("joint.onnx"),
        "{listed:?}"
    );
    assert!(described("omniglot-v1").is_empty());

    let learned_point = v2
        .operating_points
        .iter()
        .find(|p| p.metric == twin_core::Metric::Learned && p.target_far == v2.default_target_far)
        .expect("signature-v2 has a calibrated learned point");
    let mut verification = VerificationClient::new(channel);
    let (a, b) = (genuine(1, 1), genuine(2, 1));
    let learned = |model: &str, x: &[u8], y: &[u8]| pb::VerifyRequest {
        metric: pb::Metric::Learned as i32,
        ..verify(model, x, y)
    };
    let same = verification
        .verify(request(learned("signature-v2", &a, &a)))
        .await
        .expect("learned verify")
        .into_inner();
    let audit = same.audit.expect("audit");
    assert_eq!(audit.metric, pb::Metric::Learned as i32);
    assert_eq!(audit.threshold, learned_point.threshold);
    assert_eq!(audit.operating_point, "FAR 1 %");
    let different = verification
        .verify(request(learned("signature-v2", &a, &b)))
        .await
        .expect("learned verify")
        .into_inner();
    assert!(
        (0.0..=1.0).contains(&same.score) && different.score < same.score,
        "same {} different {}",
        same.score,
        different.score
    );
    let refused = verification
        .verify(request(learned("omniglot-v1", &a, &b)))
        .await
        .expect_err("omniglot-v1 has no joint head");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(
        refused.message().contains("declares none"),
        "{}",
        refused.message()
    );
}
