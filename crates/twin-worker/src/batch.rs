//! One micro-batch: sort out poison, preprocess in parallel, embed per model, store
//! with retries on transient failures, then acknowledge and report.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use twin_core::clock::now_ms;
use twin_core::ids::sha256_hex;
use twin_core::input::Input;
use twin_core::job::EmbedJob;
use twin_core::subject::{validate_subject_id, validate_tenant};
use twin_core::thumbnail::{thumbnail_png, THUMBNAIL_MAX_SIDE};
use twin_embed::{Embedder, Prepared};
use twin_queue::{DeliveryHandle, JobRecord};
use twin_store::{CollectionSpec, Point, PointPayload, StoreError};

use crate::{Worker, WorkerSummary};

/// Backoff while the store is unavailable.
const STORE_BACKOFF_MIN: Duration = Duration::from_millis(100);
const STORE_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// A job that passed the checks, waiting for its vector.
struct Pending {
    job: EmbedJob,
    handle: DeliveryHandle,
    /// Moved out (left empty) when the batch goes to the embedder.
    sample: Prepared,
    /// PNG for the point's payload; empty for texts.
    thumbnail: Vec<u8>,
}

impl Worker {
    pub(crate) async fn process(
        &self,
        deliveries: Vec<twin_queue::Delivery>,
        summary: &mut WorkerSummary,
    ) {
        summary.batches += 1;
        self.metrics.consumed.inc_by(deliveries.len() as u64);
        self.metrics.batch_size.observe(deliveries.len() as f64);

        // 1. Decode and check each job; poison is dead-lettered at once.
        let mut by_model: BTreeMap<String, (Embedder, Vec<(EmbedJob, DeliveryHandle)>)> =
            BTreeMap::new();
        for delivery in deliveries {
            let (job, handle) = delivery.into_parts();
            let checked = job
                .map_err(|e| ("not_a_job", e.to_string()))
                .and_then(|job| self.check(job));
            match checked {
                Ok((job, model)) => by_model
                    .entry(model.manifest().id.clone())
                    .or_insert_with(|| (model, Vec::new()))
                    .1
                    .push((job, handle)),
                Err((kind, reason)) => self.dead_letter(handle, kind, &reason, summary).await,
            }
        }

        for (_, (model, jobs)) in by_model {
            let started = Instant::now();
            // 2. Preprocess in parallel on the blocking pool; a bad image fails alone.
            let (mut pending, bad) = preprocess_all(&model, jobs).await;
            for (handle, reason) in bad {
                self.dead_letter(handle, "bad_image", &reason, summary)
                    .await;
            }
            if pending.is_empty() {
                continue;
            }
            // 3. Embed the batch off the executor.
            // Moved, not copied: the jobs' handles are all that is needed from here on.
            let tensors: Vec<Prepared> = pending
                .iter_mut()
                .map(|p| std::mem::replace(&mut p.sample, Prepared::Text(Vec::new())))
                .collect();
            let embedder = model.clone();
            let embedded =
                tokio::task::spawn_blocking(move || embedder.embed_batch(&tensors)).await;
            let vectors = match embedded {
                Ok(Ok(vectors)) => vectors,
                Ok(Err(error)) => {
                    tracing::error!(error = %error, jobs = pending.len(), "embedding failed; jobs go back for another attempt");
                    self.give_back(pending, "embed").await;
                    continue;
                }
                Err(join) => {
                    tracing::error!(error = %join, "embedding task failed; jobs go back");
                    self.give_back(pending, "embed").await;
                    continue;
                }
            };
            self.metrics
                .embed_seconds
                .observe(started.elapsed().as_secs_f64());

            // 4. Store, waiting until applied; 5. then acknowledge.
            let spec = CollectionSpec::for_model(model.manifest());
            let enrolled_at_ms = i64::try_from(now_ms()).unwrap_or(i64::MAX);
            let points: Vec<Point> = pending
                .iter()
                .zip(vectors)
                .map(|(p, vector)| Point::new(vector, payload(p, enrolled_at_ms)))
                .collect();
            self.store_and_ack(&spec, pending, points, summary).await;
        }
    }

    /// The checks a job must pass before any work is spent on it.
    fn check(&self, job: EmbedJob) -> Result<(EmbedJob, Embedder), (&'static str, String)> {
        if job.model_id.is_empty() {
            return Err(("unknown_model", "job names no model id".to_owned()));
        }
        let model = self.models.resolve(&job.model_id).cloned().ok_or_else(|| {
            (
                "unknown_model",
                format!(
                    "unknown model id {}: this worker serves {}",
                    job.model_id,
                    self.models.names().join(", ")
                ),
            )
        })?;
        validate_subject_id(&job.subject_id).map_err(|e| ("bad_job", e.to_string()))?;
        validate_tenant(&job.tenant).map_err(|e| ("bad_job", e.to_string()))?;
        if job.has_two_samples() {
            return Err((
                "bad_job",
                "the job carries both an image and a text; a job is one sample".to_owned(),
            ));
        }
        let actual = sha256_hex(job.sample_bytes());
        if actual != job.image_sha256 {
            return Err((
                "bad_job",
                format!(
                    "sample sha256 is {actual} but the job says {}: the sample was altered in \
                     transit",
                    job.image_sha256
                ),
            ));
        }
        Ok((job, model))
    }

    async fn dead_letter(
        &self,
        handle: DeliveryHandle,
        kind: &'static str,
        reason: &str,
        summary: &mut WorkerSummary,
    ) {
        let job_id = handle.job_id().to_owned();
        tracing::warn!(job_id, kind, reason, "job dead-lettered");
        self.metrics.failed.with_label_values(&[kind]).inc();
        match handle.dead_letter(reason).await {
            Ok(()) => summary.dead_lettered += 1,
            Err(error) => {
                tracing::warn!(job_id, error = %error, "dead-lettering failed; the job goes back to the queue")
            }
        }
    }

    async fn give_back(&self, pending: Vec<Pending>, cause: &str) {
        for p in pending {
            self.metrics.retried.with_label_values(&[cause]).inc();
            if let Err(error) = p.handle.retry().await {
                tracing::warn!(job_id = %p.job.job_id, error = %error, "could not give the job back; the broker redelivers it");
            }
        }
    }

    /// Upserts the batch, retrying while the store is unavailable. A batch the store
    /// refuses as invalid is split into single points so that only the bad ones are
    /// dead-lettered.
    async fn store_and_ack(
        &self,
        spec: &CollectionSpec,
        pending: Vec<Pending>,
        points: Vec<Point>,
        summary: &mut WorkerSummary,
    ) {
        match self.upsert_with_retry(spec, &points).await {
            Ok(()) => self.ack_all(pending, summary).await,
            Err(error) if points.len() > 1 && !error.is_transient() => {
                tracing::warn!(error = %error, "batch refused by the store; storing point by point");
                for (p, point) in pending.into_iter().zip(points) {
                    match self
                        .upsert_with_retry(spec, std::slice::from_ref(&point))
                        .await
                    {
                        Ok(()) => self.ack_all(vec![p], summary).await,
                        Err(error) => {
                            let reason = format!("store refused the point: {error}");
                            self.dead_letter(p.handle, "store_refused", &reason, summary)
                                .await
                        }
                    }
                }
            }
            Err(error) => {
                for p in pending {
                    let reason = format!("store refused the point: {error}");
                    self.dead_letter(p.handle, "store_refused", &reason, summary)
                        .await;
                }
            }
        }
    }

    /// Retries transient failures with backoff, for as long as it takes: the jobs stay
    /// unacknowledged meanwhile, so nothing is lost and no delivery is spent. Shutdown
    /// interrupts it by dropping the future (the jobs then go back to the queue).
    async fn upsert_with_retry(
        &self,
        spec: &CollectionSpec,
        points: &[Point],
    ) -> Result<(), StoreError> {
        let mut delay = STORE_BACKOFF_MIN;
        loop {
            let started = Instant::now();
            match self.store.upsert(&spec.name, points).await {
                Ok(()) => {
                    self.metrics
                        .store_seconds
                        .observe(started.elapsed().as_secs_f64());
                    return Ok(());
                }
                Err(error) if error.is_transient() => {
                    self.metrics.retried.with_label_values(&["store"]).inc();
                    tracing::warn!(error = %error, retry_in_ms = delay.as_millis() as u64, points = points.len(), "store unavailable; holding the batch and retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(STORE_BACKOFF_MAX);
                }
                Err(StoreError::NotFound(message)) => {
                    // The collection vanished (deleted by an operator): recreate it once.
                    tracing::warn!(message, "collection missing; creating it again");
                    self.store.ensure_collection(spec).await?;
                }
                Err(error) => return Err(error),
            }
        }
    }

    async fn ack_all(&self, pending: Vec<Pending>, summary: &mut WorkerSummary) {
        let now = now_ms();
        let mut done = Vec::with_capacity(pending.len());
        for p in pending {
            let attempts = p.handle.attempt();
            match p.handle.ack().await {
                Ok(()) => {
                    summary.stored += 1;
                    self.metrics.embedded.inc();
                    let enqueued = match p.job.enqueued_at_ms {
                        0 => now,
                        ms => ms,
                    };
                    self.metrics
                        .lag_seconds
                        .observe(now.saturating_sub(enqueued) as f64 / 1000.0);
                    done.push(JobRecord::done(&p.job, attempts));
                }
                // Stored but not acknowledged: the job comes back and is stored again
                // under the same point id, harmlessly.
                Err(error) => {
                    tracing::warn!(job_id = %p.job.job_id, error = %error, "ack failed after storing")
                }
            }
        }
        if let Err(error) = self.queue.report(done).await {
            tracing::warn!(error = %error, "job outcomes not reported; GetJob may show them queued");
        }
    }
}

/// Preprocesses the jobs on the machine's cores, off the executor, keeping the order;
/// returns the good ones and the bad ones with their reasons.
async fn preprocess_all(
    model: &Embedder,
    jobs: Vec<(EmbedJob, DeliveryHandle)>,
) -> (Vec<Pending>, Vec<(DeliveryHandle, String)>) {
    let model = model.clone();
    let done = tokio::task::spawn_blocking(move || {
        let mut jobs = jobs;
        // The bytes move into the inputs: past this point a job needs only its metadata.
        let inputs: Vec<Input> = jobs.iter_mut().map(|(job, _)| job.take_input()).collect();
        let results = model.prepare_many(&inputs);
        // Thumbnails of the good images, for people looking at the references later;
        // on the preprocessing cores, not this one thread.
        let good: Vec<(&Input, bool)> = inputs
            .iter()
            .zip(&results)
            .map(|(input, result)| (input, result.is_ok()))
            .collect();
        let thumbnails = model.map_on_helpers(&good, |(input, ok)| match input {
            Input::Image(bytes) if *ok => {
                thumbnail_png(bytes, THUMBNAIL_MAX_SIDE).unwrap_or_else(|error| {
                    tracing::warn!(%error, "no thumbnail for an image that preprocessed");
                    Vec::new()
                })
            }
            _ => Vec::new(),
        });
        (jobs, results, thumbnails)
    })
    .await;
    let (jobs, results, thumbnails) = match done {
        Ok(done) => done,
        // A panic in preprocessing is a bug; its jobs were dropped unsettled and go back
        // to the queue (and end in the dead-letter queue by the delivery limit).
        Err(join) => {
            tracing::error!(error = %join, "preprocessing task failed");
            return (Vec::new(), Vec::new());
        }
    };
    let mut pending = Vec::new();
    let mut bad = Vec::new();
    for (((job, handle), result), thumbnail) in jobs.into_iter().zip(results).zip(thumbnails) {
        match result {
            Ok(sample) => pending.push(Pending {
                job,
                handle,
                sample,
                thumbnail,
            }),
            Err(error) => bad.push((handle, format!("bad sample: {error}"))),
        }
    }
    (pending, bad)
}

fn payload(pending: &Pending, enrolled_at_ms: i64) -> PointPayload {
    let job = &pending.job;
    PointPayload {
        thumbnail: pending.thumbnail.clone(),
        tenant: job.tenant.clone(),
        subject_id: job.subject_id.clone(),
        image_sha256: job.image_sha256.clone(),
        labels: job.labels.clone(),
        source: job.source.clone(),
        enrolled_at_ms,
        model_id: job.model_id.clone(),
    }
}
