//! What every service shares: the served models, the store, the queue and the limits.

use std::sync::Arc;
use std::time::Duration;

use twin_core::input::Input;
use twin_embed::{Embedder, EncodedError, ModelRegistry};
use twin_proto::v1::image::Content;
use twin_queue::JobQueue;
use twin_store::{CollectionSpec, VectorStore};

use crate::status::ApiError;

/// Shared by all services; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub models: ModelRegistry,
    pub store: Arc<dyn VectorStore>,
    pub queue: JobQueue,
    /// How long a synchronous enrolment (`wait = true`) may wait for its point when the
    /// client sets no deadline.
    pub enroll_wait: Duration,
    /// The audit trail every decision is appended to (`audit.enabled`).
    pub audit: Option<twin_audit::AuditLog>,
    /// The api keys in force (`gateway.api_keys_file`), re-read when the file changes.
    pub keys: Arc<crate::auth::KeyRing>,
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("audit trail: {0}")]
    Audit(String),
    #[error(transparent)]
    Keys(#[from] crate::auth::AuthError),
    #[error("loading models: {0}")]
    Models(#[from] twin_embed::EmbedError),
    #[error("opening the store: {0}")]
    Store(#[from] twin_store::StoreError),
    #[error("opening the queue: {0}")]
    Queue(#[from] twin_queue::QueueError),
    #[error("{0}")]
    Api(#[from] ApiError),
}

impl AppState {
    /// Loads the models (blocking work, off the executor), opens the store and the
    /// queue with its job-status store, and creates the models' collections.
    /// The returned feed keeps job statuses flowing; keep it alive.
    pub async fn open(
        config: &twin_core::config::TwinConfig,
    ) -> Result<(Self, twin_queue::StatusFeed), StartError> {
        let (dirs, default, embed) = (
            config.models.dirs.clone(),
            config.models.default.clone(),
            config.embed.clone(),
        );
        let models =
            tokio::task::spawn_blocking(move || ModelRegistry::load(&dirs, &default, &embed))
                .await
                .map_err(|e| {
                    twin_embed::EmbedError::Session(format!("model loading task failed: {e}"))
                })??;
        let store = twin_store::open_store(&config.store).await?;
        let queue = JobQueue::connect(&config.queue).await?;
        let jobs_dir = config.queue.jobs_dir.clone();
        let retention = twin_queue::retention(&config.queue);
        let jobs =
            tokio::task::spawn_blocking(move || twin_queue::JobStore::open(&jobs_dir, retention))
                .await
                .map_err(|e| {
                    twin_queue::QueueError::Config(format!("job store task failed: {e}"))
                })??;
        let feed = queue.attach_status_store(jobs).await?;
        let audit = if config.audit.enabled {
            let (dir, days) = (config.audit.dir.clone(), config.audit.retention_days);
            let retention = (days > 0).then(|| Duration::from_secs(days * 24 * 3600));
            Some(
                tokio::task::spawn_blocking(move || twin_audit::AuditLog::open(&dir, retention))
                    .await
                    .map_err(|e| StartError::Audit(format!("audit log task failed: {e}")))?
                    .map_err(|e| StartError::Audit(e.to_string()))?,
            )
        } else {
            None
        };
        let keys = if config.gateway.api_keys_file.is_empty() {
            tracing::warn!(
                "no api keys configured (gateway.api_keys_file): every caller may read and write"
            );
            crate::auth::KeyRing::disabled()
        } else {
            let path = std::path::PathBuf::from(&config.gateway.api_keys_file);
            tokio::task::spawn_blocking(move || crate::auth::KeyRing::open(&path))
                .await
                .map_err(|e| {
                    crate::auth::AuthError::Request(format!("keys loading task failed: {e}"))
                })??
        };
        let state = Self {
            models,
            store,
            queue,
            enroll_wait: Duration::from_millis(config.gateway.request_timeout_ms),
            audit,
            keys: Arc::new(keys),
        };
        state.ensure_collections().await?;
        Ok((state, feed))
    }

    /// The model a request names, or NOT_FOUND listing the served ones.
    pub fn model(&self, requested: &str) -> Result<&Embedder, ApiError> {
        self.models.resolve(requested).ok_or_else(|| {
            ApiError::NotFound(format!(
                "model {requested:?} is not served here; served: {}",
                self.models.names().join(", ")
            ))
        })
    }

    /// The collection holding a model's points.
    pub fn collection(model: &Embedder) -> CollectionSpec {
        CollectionSpec::for_model(model.manifest())
    }

    /// Creates every served model's collection if missing (at start).
    pub async fn ensure_collections(&self) -> Result<(), ApiError> {
        for model in self.models.all() {
            self.store
                .ensure_collection(&Self::collection(model))
                .await?;
        }
        Ok(())
    }
}

/// The request id the admission layer put into the metadata.
pub fn request_id<T>(request: &tonic::Request<T>) -> String {
    request
        .metadata()
        .get(crate::layers::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Who sent `request`, as the admission layer established it from the api key. A
/// request that did not pass the layer (no extension) is the default tenant's.
pub fn caller<T>(request: &tonic::Request<T>) -> crate::auth::Caller {
    request
        .extensions()
        .get::<crate::auth::Caller>()
        .cloned()
        .unwrap_or_else(|| {
            let authorization = request
                .metadata()
                .get("authorization")
                .and_then(|v| v.to_str().ok());
            let mut caller =
                crate::auth::Caller::anonymous(crate::auth::key_id_of_header(authorization));
            caller.scope = crate::auth::Scope::Read;
            caller
        })
}

/// The sample a request's `Image` message carries: its image bytes or its text. Neither
/// set reads as an empty image, as it did before `text` existed (proto3 sends no empty
/// field), so old clients keep their "image is empty" answer.
pub fn input_of(image: twin_proto::v1::Image) -> Input {
    match image.content {
        Some(Content::Data(bytes)) => Input::Image(bytes),
        Some(Content::Text(text)) => Input::Text(text),
        None => Input::Image(Vec::new()),
    }
}

/// The sample's bytes, whichever its kind (empty when it carries none).
pub fn sample_bytes(image: &twin_proto::v1::Image) -> &[u8] {
    match &image.content {
        Some(Content::Data(bytes)) => bytes,
        Some(Content::Text(text)) => text.as_bytes(),
        None => &[],
    }
}

/// sha256 of an optional request sample (empty when missing), for the audit trail: of
/// the image's bytes, or of the text's UTF-8 bytes.
pub fn image_sha256(image: Option<&twin_proto::v1::Image>) -> String {
    image.map_or_else(String::new, |i| twin_core::ids::sha256_hex(sample_bytes(i)))
}

/// Embeddings of a request's samples, and what the answer must say about them (texts
/// cut at the model's `max_tokens`).
pub struct Embedded<T> {
    pub vectors: T,
    pub warnings: Vec<String>,
}

/// Embeds the samples of request fields `(name, image)` as one job (one ONNX run, in
/// order), labelling a missing or bad sample with its field.
pub async fn embed_fields<const N: usize>(
    model: &Embedder,
    fields: [(&str, Option<twin_proto::v1::Image>); N],
) -> Result<Embedded<[Vec<f32>; N]>, ApiError> {
    let names = fields.each_ref().map(|(which, _)| *which);
    let mut inputs = Vec::with_capacity(N);
    for (which, image) in fields {
        let image =
            image.ok_or_else(|| ApiError::InvalidArgument(format!("{which} is required")))?;
        inputs.push(input_of(image));
    }
    let warnings = names
        .iter()
        .zip(&inputs)
        .filter_map(|(which, input)| model.truncation_warning(which, input))
        .collect();
    let embedded = model.embed_inputs(inputs).await.map_err(|e| match e {
        EncodedError::Input { index, source } => ApiError::BadInput {
            which: names[index].to_owned(),
            source,
        },
        EncodedError::Embed(e) => ApiError::Embed(e),
    })?;
    let vectors = <[Vec<f32>; N]>::try_from(embedded).map_err(|got| {
        ApiError::Embed(twin_embed::EmbedError::Inference(format!(
            "{} embeddings came back for {N} samples",
            got.len()
        )))
    })?;
    Ok(Embedded { vectors, warnings })
}

/// Embeds the sample from request field `which`, labelling a bad one with the field.
pub async fn embed_field(
    model: &Embedder,
    which: &str,
    image: Option<twin_proto::v1::Image>,
) -> Result<Embedded<Vec<f32>>, ApiError> {
    let Embedded {
        vectors: [vector],
        warnings,
    } = embed_fields(model, [(which, image)]).await?;
    Ok(Embedded {
        vectors: vector,
        warnings,
    })
}
