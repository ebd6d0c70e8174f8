//! `twin.v1.Enrollment`: validates images, queues embedding jobs (accepted only once
//! the broker confirmed them), tracks jobs, and manages subjects.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tonic::{Request, Response, Status, Streaming};
use twin_core::clock::now_ms;
use twin_core::ids::new_job_id;
use twin_core::input::Input;
use twin_core::job::EmbedJob;
use twin_core::subject::validate_subject_id;
use twin_embed::Embedder;
use twin_proto::v1 as pb;
use twin_proto::v1::enrollment_server::Enrollment;
use twin_queue::{JobRecord, JobState};
use uuid::Uuid;

use crate::convert::{job_to_proto, labels_from_proto, labels_to_proto, timestamp_ms};
use crate::state::{caller, input_of, AppState};
use crate::status::ApiError;

/// Items validated and published together in a streaming enrolment.
const PUBLISH_CHUNK: usize = 64;
/// How often a synchronous enrolment looks for its point.
const WAIT_POLL: Duration = Duration::from_millis(25);
/// Longest `client_ref` of a streamed item, in bytes.
const MAX_CLIENT_REF_BYTES: usize = 1024;

#[derive(Debug, Clone)]
pub struct EnrollmentService {
    pub state: AppState,
}

/// A stream item after its checks: the job and its collection's name, or why not.
type Checked = Result<(ValidJob, String), ApiError>;

/// A job ready to publish, with the point it will produce.
struct ValidJob {
    job: EmbedJob,
    point_id: Uuid,
    /// Said in the answer: the text is cut at the model's `max_tokens`.
    warning: Option<String>,
}

/// Checks subject, labels and sample (an image decoded and preprocessed, a text
/// tokenized, exactly as the worker will), and builds the job.
async fn validate(
    model: &Embedder,
    tenant: &str,
    subject_id: String,
    image: Option<pb::Image>,
    labels: Vec<pb::Label>,
) -> Result<ValidJob, ApiError> {
    validate_subject_id(&subject_id)?;
    if labels.len() > twin_store::MAX_LABELS {
        return Err(ApiError::InvalidArgument(format!(
            "{} labels given, at most {} allowed",
            labels.len(),
            twin_store::MAX_LABELS
        )));
    }
    let labels = labels_from_proto(&labels)?;
    let image = image.ok_or_else(|| ApiError::InvalidArgument("image is required".into()))?;
    if image.source.len() > 256 {
        return Err(ApiError::InvalidArgument(format!(
            "image.source is {} bytes, at most 256 allowed",
            image.source.len()
        )));
    }
    let source = image.source.clone();
    let input = input_of(image);
    let checker = model.clone();
    let (input, checked, warning) = tokio::task::spawn_blocking(move || {
        let checked = checker.prepare(&input).map(|_| ());
        let warning = checker.truncation_warning("image", &input);
        (input, checked, warning)
    })
    .await
    .map_err(|e| ApiError::InvalidArgument(format!("image check failed: {e}")))?;
    checked.map_err(|source| ApiError::BadInput {
        which: "image".into(),
        source,
    })?;
    let image_sha256 = input.sha256();
    let (image, text) = match input {
        Input::Image(bytes) => (bytes, String::new()),
        Input::Text(text) => (Vec::new(), text),
    };
    let job = EmbedJob {
        job_id: new_job_id().to_string(),
        tenant: tenant.to_owned(),
        subject_id,
        model_id: model.manifest().id.clone(),
        image,
        text,
        image_sha256,
        labels,
        source,
        enqueued_at_ms: now_ms(),
        traceparent: String::new(),
    };
    Ok(ValidJob {
        point_id: job.point_id(),
        job,
        warning,
    })
}

impl EnrollmentService {
    /// The job's record: from the job store when it has one, else as just queued.
    fn record(&self, job: &EmbedJob) -> JobRecord {
        self.state
            .queue
            .status_store()
            .and_then(|s| s.get(&job.job_id))
            .unwrap_or_else(|| JobRecord::queued(job))
    }

    /// Waits until the job's point is stored or the job failed, until `deadline`.
    async fn wait_for(
        &self,
        job: &EmbedJob,
        point: Uuid,
        collection: &str,
        deadline: Instant,
    ) -> Result<JobRecord, ApiError> {
        loop {
            let record = self.record(job);
            if record.state == JobState::Failed {
                return Ok(record);
            }
            let stored = self.state.store.get(collection, &[point], false).await?;
            if !stored.is_empty() {
                let mut record = record;
                record.state = JobState::Done;
                return Ok(record);
            }
            if Instant::now() + WAIT_POLL > deadline {
                return Err(ApiError::DeadlineExceeded(format!(
                    "job {} is queued but its point was not stored in time; poll GetJob",
                    job.job_id
                )));
            }
            tokio::time::sleep(WAIT_POLL).await;
        }
    }
}

/// The client's deadline (grpc-timeout) or the configured default.
fn deadline_of<T>(request: &Request<T>, default: Duration) -> Instant {
    let timeout = request
        .metadata()
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout)
        .unwrap_or(default);
    Instant::now() + timeout.saturating_sub(Duration::from_millis(50))
}

/// `grpc-timeout` is an integer and a unit letter: H M S m u n.
fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[tonic::async_trait]
impl Enrollment for EnrollmentService {
    async fn enroll(
        &self,
        request: Request<pb::EnrollRequest>,
    ) -> Result<Response<pb::EnrollResponse>, Status> {
        let deadline = deadline_of(&request, self.state.enroll_wait);
        let tenant = caller(&request).tenant;
        let r = request.into_inner();
        let model = self.state.model(&r.model)?;
        let valid = validate(model, &tenant, r.subject_id, r.image, r.labels).await?;
        self.state
            .queue
            .publish(&valid.job)
            .await
            .map_err(ApiError::from)?;
        tracing::info!(job_id = %valid.job.job_id, subject = %valid.job.subject_id, point_id = %valid.point_id, "enrolment queued");
        let record = if r.wait {
            let collection = AppState::collection(model);
            self.wait_for(&valid.job, valid.point_id, &collection.name, deadline)
                .await?
        } else {
            self.record(&valid.job)
        };
        Ok(Response::new(pb::EnrollResponse {
            job: Some(job_to_proto(&record)),
            warnings: valid.warning.into_iter().collect(),
        }))
    }

    async fn enqueue_batch(
        &self,
        request: Request<Streaming<pb::EnqueueItem>>,
    ) -> Result<Response<pb::EnqueueBatchResponse>, Status> {
        let tenant = caller(&request).tenant;
        let mut stream = request.into_inner();
        let mut response = pb::EnqueueBatchResponse::default();
        let mut index = 0u64;
        let mut chunk = Vec::with_capacity(PUBLISH_CHUNK);
        loop {
            let next = stream.next().await;
            let end = next.is_none();
            if let Some(item) = next {
                chunk.push((index, item?));
                index += 1;
            }
            if chunk.len() == PUBLISH_CHUNK || (end && !chunk.is_empty()) {
                let results = self
                    .enqueue_chunk(&tenant, std::mem::take(&mut chunk))
                    .await;
                for result in &results {
                    match (result.accepted, result.already_stored) {
                        (true, _) => response.accepted += 1,
                        (false, true) => response.already_stored += 1,
                        (false, false) => response.rejected += 1,
                    }
                }
                response.results.extend(results);
            }
            if end {
                break;
            }
        }
        tracing::info!(
            accepted = response.accepted,
            rejected = response.rejected,
            already_stored = response.already_stored,
            "batch enrolment"
        );
        Ok(Response::new(response))
    }

    async fn get_job(
        &self,
        request: Request<pb::GetJobRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        let tenant = caller(&request).tenant;
        let job_id = request.into_inner().job_id;
        let store = self.state.queue.status_store().ok_or_else(|| {
            ApiError::NotFound("this gateway keeps no job statuses (queue.jobs_dir)".into())
        })?;
        // Another tenant's job reads as unknown: a job id tells nothing across tenants.
        let record = store
            .get(&job_id)
            .filter(|record| record.tenant == tenant)
            .ok_or_else(|| ApiError::NotFound(format!("job {job_id:?} is not known")))?;
        Ok(Response::new(job_to_proto(&record)))
    }

    async fn delete_subject(
        &self,
        request: Request<pb::DeleteSubjectRequest>,
    ) -> Result<Response<pb::DeleteSubjectResponse>, Status> {
        let tenant = caller(&request).tenant;
        let r = request.into_inner();
        validate_subject_id(&r.subject_id).map_err(ApiError::from)?;
        let model = self.state.model(&r.model)?;
        let collection = AppState::collection(model);
        let deleted = self
            .state
            .store
            .delete_subject(&collection.name, &tenant, &r.subject_id)
            .await
            .map_err(ApiError::from)?;
        tracing::info!(subject = %r.subject_id, deleted, "subject deleted");
        Ok(Response::new(pb::DeleteSubjectResponse {
            deleted_points: deleted,
        }))
    }

    async fn get_subject(
        &self,
        request: Request<pb::GetSubjectRequest>,
    ) -> Result<Response<pb::Subject>, Status> {
        let tenant = caller(&request).tenant;
        let r = request.into_inner();
        validate_subject_id(&r.subject_id).map_err(ApiError::from)?;
        let model = self.state.model(&r.model)?;
        let collection = AppState::collection(model);
        let points = self
            .state
            .store
            .list_subject(&collection.name, &tenant, &r.subject_id, false)
            .await
            .map_err(ApiError::from)?;
        if points.is_empty() {
            return Err(ApiError::NotFound(format!(
                "subject {:?} has no enrolled reference under model {}",
                r.subject_id,
                model.manifest().name
            ))
            .into());
        }
        Ok(Response::new(pb::Subject {
            subject_id: r.subject_id,
            model_id: model.manifest().id.clone(),
            references: points
                .into_iter()
                .map(|p| pb::Reference {
                    point_id: p.id.to_string(),
                    image_sha256: p.payload.image_sha256,
                    source: p.payload.source,
                    labels: labels_to_proto(&p.payload.labels),
                    enrolled_at: Some(timestamp_ms(p.payload.enrolled_at_ms)),
                    thumbnail: if r.thumbnails {
                        p.payload.thumbnail
                    } else {
                        Vec::new()
                    },
                })
                .collect(),
        }))
    }
}

impl EnrollmentService {
    /// Validates a chunk of stream items, skips images already stored, publishes the
    /// rest together; one result per item, in order.
    async fn enqueue_chunk(
        &self,
        tenant: &str,
        items: Vec<(u64, pb::EnqueueItem)>,
    ) -> Vec<pb::ItemResult> {
        let checks = items.into_iter().map(|(index, item)| async move {
            let result = pb::ItemResult {
                client_ref: item.client_ref.clone(),
                index,
                ..Default::default()
            };
            let valid = match self.state.model(&item.model) {
                Ok(_) if item.client_ref.len() > MAX_CLIENT_REF_BYTES => {
                    Err(ApiError::InvalidArgument(format!(
                        "client_ref is {} bytes, at most {MAX_CLIENT_REF_BYTES} allowed",
                        item.client_ref.len()
                    )))
                }
                Ok(model) => validate(model, tenant, item.subject_id, item.image, item.labels)
                    .await
                    .map(|v| (v, AppState::collection(model).name)),
                Err(e) => Err(e),
            };
            (result, valid)
        });
        let checked = futures::future::join_all(checks).await;
        let stored = self.already_stored(&checked).await;

        let mut results = Vec::with_capacity(checked.len());
        let mut positions = Vec::new();
        let mut jobs = Vec::new();
        for (mut result, valid) in checked {
            match valid {
                Err(error) => result.reason = error.to_string(),
                Ok((valid, _)) => {
                    result.point_id = valid.point_id.to_string();
                    result.warnings = valid.warning.into_iter().collect();
                    if stored.contains(&valid.point_id) {
                        result.already_stored = true;
                        result.reason = "already stored: nothing to do".into();
                    } else {
                        result.job_id = valid.job.job_id.clone();
                        positions.push(results.len());
                        jobs.push(valid.job);
                    }
                }
            }
            results.push(result);
        }
        let published = self.state.queue.publish_many(&jobs).await;
        for (position, outcome) in positions.iter().zip(published) {
            let result = &mut results[*position];
            match outcome {
                Ok(()) => result.accepted = true,
                Err(error) => {
                    result.reason = ApiError::from(error).to_string();
                    result.job_id.clear();
                }
            }
        }
        results
    }

    /// The points of a chunk's valid items that are stored already: one store call per
    /// collection. A store that cannot answer does not block enrolment (the upsert is
    /// idempotent, so queueing again is harmless): then none count as stored.
    async fn already_stored(&self, checked: &[(pb::ItemResult, Checked)]) -> HashSet<Uuid> {
        let mut by_collection: BTreeMap<&str, Vec<Uuid>> = BTreeMap::new();
        for (_, valid) in checked {
            if let Ok((valid, collection)) = valid {
                by_collection
                    .entry(collection.as_str())
                    .or_default()
                    .push(valid.point_id);
            }
        }
        let mut stored = HashSet::new();
        for (collection, ids) in by_collection {
            match self.state.store.get(collection, &ids, false).await {
                Ok(found) => stored.extend(found.into_iter().map(|point| point.id)),
                Err(error) => {
                    tracing::warn!(collection, error = %error, "store lookup failed; queueing the chunk anyway")
                }
            }
        }
        stored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse() {
        assert_eq!(parse_grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("x"), None);
        assert_eq!(parse_grpc_timeout(""), None);
    }
}
