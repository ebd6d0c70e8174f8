//! `twin.v1.Similarity`: 1:N search with an "unknown" answer, and raw embeddings.

use tonic::{Request, Response, Status};
use twin_core::decision::resolve_threshold;
use twin_proto::v1 as pb;
use twin_proto::v1::similarity_server::Similarity;
use twin_store::{PointFilter, SearchRequest};

use crate::convert::{audit, labels_from_proto, labels_to_proto, threshold_choice, AuditInput};
use crate::service::audit::{record, Decision};
use crate::state::{caller, embed_field, image_sha256, request_id, AppState};
use crate::status::ApiError;

const DEFAULT_TOP_K: usize = 10;
const MAX_TOP_K: usize = 1000;
/// With grouping by subject, this many candidates per wanted hit are fetched, so that
/// several points of one subject do not crowd the others out.
const GROUP_OVERFETCH: usize = 8;

#[derive(Debug, Clone)]
pub struct SimilarityService {
    pub state: AppState,
}

#[tonic::async_trait]
impl Similarity for SimilarityService {
    async fn search(
        &self,
        request: Request<pb::SearchRequest>,
    ) -> Result<Response<pb::SearchResponse>, Status> {
        let request_id = request_id(&request);
        let caller = caller(&request);
        let mut r = request.into_inner();
        let model = self.state.model(&r.model)?;
        let manifest = model.manifest();
        let collection = AppState::collection(model);
        let top_k = match r.top_k as usize {
            0 => DEFAULT_TOP_K,
            k if k > MAX_TOP_K => {
                return Err(ApiError::InvalidArgument(format!(
                    "top_k is {k}, at most {MAX_TOP_K} allowed"
                ))
                .into())
            }
            k => k,
        };
        // The index is built for the native metric, so search always uses it.
        let metric = manifest.native_metric;
        let threshold = resolve_threshold(
            &manifest.operating_points,
            metric,
            threshold_choice(r.policy.as_ref()),
            manifest.default_target_far,
        )
        .map_err(ApiError::from)?;
        let mut images_sha256 = Vec::new();
        let mut warnings = Vec::new();
        let vector = match r.query.take() {
            None => {
                return Err(ApiError::InvalidArgument(
                    "query is required: set image, vector or point_id".into(),
                )
                .into())
            }
            Some(pb::search_request::Query::Image(image)) => {
                images_sha256.push(image_sha256(Some(&image)));
                let embedded = embed_field(model, "image", Some(image)).await?;
                warnings = embedded.warnings;
                embedded.vectors
            }
            Some(pb::search_request::Query::Vector(vector)) => {
                let size = manifest.output.embedding_size as usize;
                if vector.values.len() != size {
                    return Err(ApiError::InvalidArgument(format!(
                        "vector has {} values, model {} embeds to {size}",
                        vector.values.len(),
                        manifest.name
                    ))
                    .into());
                }
                vector.values
            }
            Some(pb::search_request::Query::PointId(id)) => {
                let id = uuid::Uuid::parse_str(&id).map_err(|_| {
                    ApiError::InvalidArgument(format!("point_id {id:?} is not a UUID"))
                })?;
                let found = self
                    .state
                    .store
                    .get(&collection.name, &[id], true)
                    .await
                    .map_err(ApiError::from)?;
                // Another tenant's point is not there for this caller: the same answer
                // as a point that does not exist, so ids tell nothing across tenants.
                found
                    .into_iter()
                    .find(|p| p.payload.tenant == caller.tenant)
                    .and_then(|p| p.vector)
                    .ok_or_else(|| ApiError::NotFound(format!("point {id} is not stored")))?
            }
        };
        let filter = PointFilter {
            tenant: caller.tenant.clone(),
            subject_ids: r.subject_ids.clone(),
            labels: labels_from_proto(&r.labels)?,
        };
        let fetch = if r.group_by_subject {
            (top_k * GROUP_OVERFETCH).min(twin_store::MAX_TOP_K)
        } else {
            top_k
        };
        let mut hits = self
            .state
            .store
            .search(
                &collection.name,
                &SearchRequest {
                    vector: vector.clone(),
                    top_k: fetch,
                    filter: filter.clone(),
                    score_threshold: Some(threshold.threshold),
                },
            )
            .await
            .map_err(ApiError::from)?;
        if r.group_by_subject {
            let mut seen = std::collections::HashSet::new();
            hits.retain(|hit| seen.insert(hit.payload.subject_id.clone()));
        }
        hits.truncate(top_k);
        let unknown = hits.is_empty();
        // For an unknown probe the audit still says how close the nearest stranger was.
        let best_score = match hits.first() {
            Some(hit) => hit.score,
            None => self
                .state
                .store
                .search(
                    &collection.name,
                    &SearchRequest {
                        vector,
                        top_k: 1,
                        filter,
                        score_threshold: None,
                    },
                )
                .await
                .map_err(ApiError::from)?
                .first()
                .map_or(f64::NEG_INFINITY, |hit| hit.score),
        };
        tracing::debug!(request_id, model = %manifest.name, hits = hits.len(), unknown, best_score, "search");
        let matched_point_id = hits.first().map(|h| h.id.to_string()).unwrap_or_default();
        let best_subject = hits
            .first()
            .map(|h| h.payload.subject_id.clone())
            .unwrap_or_default();
        let audit = audit(AuditInput {
            manifest,
            metric,
            score: best_score,
            threshold: &threshold,
            matched_point_id,
            request_id,
        });
        record(
            &self.state,
            Decision {
                method: "Search",
                subject_id: &best_subject,
                matched: !unknown,
                caller: &caller,
                images_sha256,
            },
            &audit,
        );
        Ok(Response::new(pb::SearchResponse {
            hits: hits
                .into_iter()
                .map(|hit| pb::SearchHit {
                    point_id: hit.id.to_string(),
                    subject_id: hit.payload.subject_id,
                    score: hit.score,
                    source: hit.payload.source,
                    labels: labels_to_proto(&hit.payload.labels),
                })
                .collect(),
            unknown,
            audit: Some(audit),
            warnings,
        }))
    }

    async fn embed(
        &self,
        request: Request<pb::EmbedRequest>,
    ) -> Result<Response<pb::EmbedResponse>, Status> {
        let r = request.into_inner();
        let model = self.state.model(&r.model)?;
        let image_sha256 = image_sha256(r.image.as_ref());
        let embedded = embed_field(model, "image", r.image).await?;
        Ok(Response::new(pb::EmbedResponse {
            vector: embedded.vectors,
            model_id: model.manifest().id.clone(),
            image_sha256,
            warnings: embedded.warnings,
        }))
    }
}
