//! `twin.v1.Verification`: image vs image, and probe vs a subject's references.

use tonic::{Request, Response, Status};
use twin_core::decision::{
    aggregate, decide, pairs_among, resolve_subject_threshold, resolve_threshold, wanted,
};
use twin_core::metric::score;
use twin_core::subject::validate_subject_id;
use twin_core::Metric;
use twin_embed::Embedder;
use twin_proto::v1 as pb;
use twin_proto::v1::verification_server::Verification;

use crate::convert::{
    aggregation, audit, metric_from_proto, rbf_sigma, threshold_choice, AuditInput,
};
use crate::service::audit::{record, Decision};
use crate::state::{
    caller, embed_field, embed_fields, image_sha256, request_id, AppState, Embedded,
};
use crate::status::ApiError;

/// References compared by default, and at most.
const DEFAULT_MAX_REFERENCES: usize = 64;
const MAX_REFERENCES: usize = 1024;

#[derive(Debug, Clone)]
pub struct VerificationService {
    pub state: AppState,
}

#[tonic::async_trait]
impl Verification for VerificationService {
    async fn verify(
        &self,
        request: Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::VerifyResponse>, Status> {
        let request_id = request_id(&request);
        let caller = caller(&request);
        let r = request.into_inner();
        let model = self.state.model(&r.model)?;
        let manifest = model.manifest();
        let metric = metric_from_proto(r.metric, manifest.native_metric)?;
        let sigma = rbf_sigma(r.rbf_sigma, metric)?;
        check_learned(model, metric)?;
        let images_sha256 = vec![image_sha256(r.a.as_ref()), image_sha256(r.b.as_ref())];
        let threshold = resolve_threshold(
            &manifest.operating_points,
            metric,
            threshold_choice(r.policy.as_ref()),
            manifest.default_target_far,
        )
        .map_err(ApiError::from)?;
        // Both images in one job: one ONNX run per pair, no wait for a batch-mate.
        let Embedded {
            vectors: [a, b],
            warnings,
        } = embed_fields(model, [("a", r.a), ("b", r.b)]).await?;
        let score = score_pairs(model, metric, sigma, &[(&a, &b)]).await?[0];
        let matched = decide(score, threshold.threshold);
        tracing::debug!(request_id, model = %manifest.name, metric = %metric, score, threshold = threshold.threshold, matched, "verify");
        let audit = audit(AuditInput {
            manifest,
            metric,
            score,
            threshold: &threshold,
            matched_point_id: String::new(),
            request_id,
        });
        record(
            &self.state,
            Decision {
                method: "Verify",
                subject_id: "",
                matched,
                caller: &caller,
                images_sha256,
            },
            &audit,
        );
        Ok(Response::new(pb::VerifyResponse {
            r#match: matched,
            score,
            audit: Some(audit),
            warnings,
        }))
    }

    async fn verify_subject(
        &self,
        request: Request<pb::VerifySubjectRequest>,
    ) -> Result<Response<pb::VerifySubjectResponse>, Status> {
        let request_id = request_id(&request);
        let caller = caller(&request);
        let mut r = request.into_inner();
        validate_subject_id(&r.subject_id).map_err(ApiError::from)?;
        let images_sha256 = vec![image_sha256(r.probe.as_ref())];
        let model = self.state.model(&r.model)?;
        let manifest = model.manifest();
        let metric = metric_from_proto(r.metric, manifest.native_metric)?;
        let sigma = rbf_sigma(r.rbf_sigma, metric)?;
        check_learned(model, metric)?;
        let aggregation = aggregation(r.aggregation, r.k)?;
        let choice = threshold_choice(r.policy.as_ref());
        // A bad policy is refused before any embedding; the point itself depends on the
        // subject's reference count, known once the references are read.
        wanted(choice, manifest.default_target_far).map_err(ApiError::from)?;
        let max_references = match r.max_references as usize {
            0 => DEFAULT_MAX_REFERENCES,
            n if n > MAX_REFERENCES => {
                return Err(ApiError::InvalidArgument(format!(
                    "max_references is {n}, at most {MAX_REFERENCES} allowed"
                ))
                .into())
            }
            n => n,
        };
        let collection = AppState::collection(model);
        let (probe, references) = tokio::join!(
            embed_field(model, "probe", r.probe.take()),
            self.state
                .store
                .list_subject(&collection.name, &caller.tenant, &r.subject_id, true)
        );
        let Embedded {
            vectors: probe,
            warnings,
        } = probe?;
        let mut references = references.map_err(ApiError::from)?;
        if references.is_empty() {
            return Err(ApiError::NotFound(format!(
                "subject {:?} has no enrolled reference under model {}; enrol one first",
                r.subject_id, manifest.name
            ))
            .into());
        }
        // Most recent first, then cut to the limit, then to the count the operating point
        // was calibrated for, so that the decision runs where its point was measured.
        references.sort_by_key(|r| std::cmp::Reverse(r.payload.enrolled_at_ms));
        references.truncate(max_references);
        let subject_threshold = resolve_subject_threshold(
            &manifest.subject_operating_points,
            metric,
            aggregation,
            references.len(),
            choice,
            manifest.default_target_far,
        )
        .map_err(ApiError::from)?;
        references.truncate(subject_threshold.references);
        let threshold = subject_threshold.resolved;
        let vectors = references
            .iter()
            .map(|reference| {
                reference.vector.as_deref().ok_or_else(|| {
                    ApiError::Store(twin_store::StoreError::Internal(format!(
                        "reference {} came back without its vector",
                        reference.id
                    )))
                })
            })
            .collect::<Result<Vec<&[f32]>, ApiError>>()?;
        let among = if aggregation.needs_scores_among_references() {
            let pairs: Vec<(&[f32], &[f32])> = pairs_among(vectors.len())
                .map(|(i, j)| (vectors[i], vectors[j]))
                .collect();
            score_pairs(model, metric, sigma, &pairs).await?
        } else {
            Vec::new()
        };
        let probe_pairs: Vec<(&[f32], &[f32])> = vectors.iter().map(|v| (&probe[..], *v)).collect();
        let probe_scores = score_pairs(model, metric, sigma, &probe_pairs).await?;
        let mut per_reference = Vec::with_capacity(references.len());
        for (reference, s) in references.iter().zip(probe_scores) {
            per_reference.push(pb::ReferenceScore {
                point_id: reference.id.to_string(),
                score: s,
                source: reference.payload.source.clone(),
            });
        }
        let scores: Vec<f64> = per_reference.iter().map(|p| p.score).collect();
        let (score, decider) = aggregate(&scores, &among, aggregation).map_err(ApiError::from)?;
        let matched_point_id = per_reference[decider].point_id.clone();
        per_reference.sort_by(|x, y| y.score.total_cmp(&x.score));
        let matched = decide(score, threshold.threshold);
        tracing::debug!(request_id, subject = %r.subject_id, references = scores.len(), score, matched, "verify subject");
        let audit = audit(AuditInput {
            manifest,
            metric,
            score,
            threshold: &threshold,
            matched_point_id,
            request_id,
        });
        record(
            &self.state,
            Decision {
                method: "VerifySubject",
                subject_id: &r.subject_id,
                matched,
                caller: &caller,
                images_sha256,
            },
            &audit,
        );
        Ok(Response::new(pb::VerifySubjectResponse {
            r#match: matched,
            score,
            references: scores.len() as u32,
            per_reference,
            audit: Some(audit),
            warnings,
        }))
    }
}

/// Refuses the learned metric, before any work, for a model without a joint head.
fn check_learned(model: &Embedder, metric: Metric) -> Result<(), ApiError> {
    if metric == Metric::Learned && model.joint().is_none() {
        return Err(ApiError::InvalidArgument(format!(
            "metric learned needs the model's joint head, and model {} declares none ([joint] \
             in its manifest); use a vector metric such as {}",
            model.manifest().name,
            model.manifest().native_metric
        )));
    }
    Ok(())
}

/// The scores of `pairs` under `metric`: the model's joint head in one run for `Learned`,
/// the vector formula otherwise.
async fn score_pairs(
    model: &Embedder,
    metric: Metric,
    sigma: f64,
    pairs: &[(&[f32], &[f32])],
) -> Result<Vec<f64>, ApiError> {
    if metric == Metric::Learned {
        let (a, b) = pairs.iter().map(|(a, b)| (a.to_vec(), b.to_vec())).unzip();
        return model.joint_scores(a, b).await.map_err(ApiError::Embed);
    }
    pairs
        .iter()
        .map(|(a, b)| score(metric, a, b, sigma).map_err(ApiError::from))
        .collect()
}
