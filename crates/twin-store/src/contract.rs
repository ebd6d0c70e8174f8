//! The storage contract: what twin asks of a vector store, whichever engine runs it.
//! The gateway and the worker hold an `Arc<dyn VectorStore>` and never learn whether
//! it is a Qdrant server or the embedded engine.

use std::collections::BTreeMap;

use async_trait::async_trait;
use twin_core::manifest::ModelManifest;
use twin_core::metric::Metric;
use uuid::Uuid;

use crate::distance::IndexDistance;
use crate::error::StoreError;

/// Largest `top_k` a search takes.
pub const MAX_TOP_K: usize = 10_000;

/// Longest collection or alias name, in bytes.
pub const MAX_NAME_BYTES: usize = 255;

/// A collection that holds the embeddings of one model version.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionSpec {
    /// Collection name: 1..=255 bytes of `[A-Za-z0-9_.-]`, not starting with `.` or `-`.
    pub name: String,
    /// Vector size (the model's embedding size).
    pub dim: usize,
    /// The metric the index is built for (the model's native metric). Only metrics
    /// Qdrant can index are accepted: cosine, dot, l2, l1.
    pub metric: Metric,
}

impl CollectionSpec {
    /// The collection of a model version: named by [`collection_name`], sized and
    /// measured as the manifest says.
    pub fn for_model(manifest: &ModelManifest) -> Self {
        Self {
            name: collection_name(&manifest.name, &manifest.id),
            dim: manifest.output.embedding_size as usize,
            metric: manifest.native_metric,
        }
    }

    /// Checks the spec; returns the Qdrant distance it maps to.
    pub(crate) fn validate(&self) -> Result<IndexDistance, StoreError> {
        validate_name("collection", &self.name)?;
        if self.dim == 0 || self.dim > 65_536 {
            return Err(StoreError::InvalidArgument(format!(
                "collection {}: vector size must be 1..=65536, got {}",
                self.name, self.dim
            )));
        }
        IndexDistance::for_metric(self.metric)
    }
}

/// The collection name of a model version: `twin-<name>-<first 12 hex digits of id>`.
/// Characters of the name outside `[A-Za-z0-9_.-]` become `_`.
///
/// ```
/// use twin_store::collection_name;
/// assert_eq!(collection_name("signature-v1", "ab12cd34ef56aa00"), "twin-signature-v1-ab12cd34ef56");
/// ```
pub fn collection_name(model_name: &str, model_id: &str) -> String {
    let id: String = model_id.chars().take(12).collect();
    format!("twin-{}-{}", sanitize(model_name), sanitize(&id))
}

/// The alias that serves a model name: `twin-<name>`. Point it at a new version's
/// collection once that collection is filled ([`VectorStore::set_alias`]).
///
/// ```
/// assert_eq!(twin_store::model_alias("signature-v1"), "twin-signature-v1");
/// ```
pub fn model_alias(model_name: &str) -> String {
    format!("twin-{}", sanitize(model_name))
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Checks a collection or alias name (`kind` names which, for the message).
pub fn validate_name(kind: &str, name: &str) -> Result<(), StoreError> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if name.is_empty()
        || name.len() > MAX_NAME_BYTES
        || !ok_chars
        || name.starts_with('.')
        || name.starts_with('-')
    {
        return Err(StoreError::InvalidArgument(format!(
            "{kind} name {name:?} is invalid: use 1..={MAX_NAME_BYTES} characters of \
             [A-Za-z0-9_.-], not starting with '.' or '-'"
        )));
    }
    Ok(())
}

/// What the store knows about a collection.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionInfo {
    /// The collection's own name (an alias is resolved).
    pub name: String,
    pub dim: usize,
    pub metric: Metric,
    /// Number of points (approximate on a Qdrant server while it indexes).
    pub points: u64,
    /// Points already in an HNSW index; the rest are searched exhaustively.
    pub indexed_vectors: u64,
}

/// An alias and the collection it points at.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Alias {
    pub alias: String,
    pub collection: String,
}

/// What twin stores next to each vector.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PointPayload {
    /// The tenant the point belongs to; empty for the default tenant. Every read and
    /// delete is confined to one tenant ([`PointFilter::tenant`]).
    pub tenant: String,
    pub subject_id: String,
    /// sha256 of the enrolled image's bytes, lowercase hex.
    pub image_sha256: String,
    /// Key/value labels; keys 1..=64 bytes of `[A-Za-z0-9_.-]`, values at most 256 bytes.
    pub labels: BTreeMap<String, String>,
    /// The client's name for the image (file name, scan id); at most 256 bytes.
    pub source: String,
    /// When the image was enrolled, milliseconds since the Unix epoch (UTC).
    pub enrolled_at_ms: i64,
    /// The model that produced the vector (sha256 of its ONNX file).
    pub model_id: String,
    /// A small PNG of the enrolled image for people to look at; empty for texts and
    /// for points stored before thumbnails existed.
    pub thumbnail: Vec<u8>,
}

/// Most labels a point carries.
pub const MAX_LABELS: usize = 16;

impl PointPayload {
    /// The deterministic point id of this payload: UUIDv5 of model id, tenant, subject
    /// id and image sha256 (see [`twin_core::ids::point_id`]).
    pub fn point_id(&self) -> Uuid {
        twin_core::ids::point_id(
            &self.model_id,
            &self.tenant,
            &self.subject_id,
            &self.image_sha256,
        )
    }

    fn validate(&self) -> Result<(), StoreError> {
        validate_tenant(&self.tenant)?;
        twin_core::subject::validate_subject_id(&self.subject_id)
            .map_err(|e| StoreError::InvalidArgument(e.to_string()))?;
        if self.labels.len() > MAX_LABELS {
            return Err(StoreError::InvalidArgument(format!(
                "{} labels given, at most {MAX_LABELS} allowed",
                self.labels.len()
            )));
        }
        for (key, value) in &self.labels {
            validate_label(key, value)?;
        }
        if self.source.len() > 256 {
            return Err(StoreError::InvalidArgument(format!(
                "source is {} bytes, at most 256 allowed",
                self.source.len()
            )));
        }
        Ok(())
    }
}

/// A tenant name as the store accepts it ([`twin_core::subject::validate_tenant`]).
pub(crate) fn validate_tenant(tenant: &str) -> Result<(), StoreError> {
    twin_core::subject::validate_tenant(tenant)
        .map_err(|e| StoreError::InvalidArgument(e.to_string()))
}

/// One label as the API allows it: key 1..=64 bytes of `[A-Za-z0-9_.-]`, value at most
/// 256 bytes. The gateway checks labels with this before it queues an enrolment.
pub fn validate_label(key: &str, value: &str) -> Result<(), StoreError> {
    let key_ok = !key.is_empty()
        && key.len() <= 64
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if !key_ok {
        return Err(StoreError::InvalidArgument(format!(
            "label key {key:?} is invalid: use 1..=64 characters of [A-Za-z0-9_.-]"
        )));
    }
    if value.len() > 256 {
        return Err(StoreError::InvalidArgument(format!(
            "label {key:?}: value is {} bytes, at most 256 allowed",
            value.len()
        )));
    }
    Ok(())
}

/// A vector and its payload, ready to upsert.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Must equal `payload.point_id()`: the store refuses other ids, so that the same
    /// image enrolled twice is the same point.
    pub id: Uuid,
    pub vector: Vec<f32>,
    pub payload: PointPayload,
}

impl Point {
    /// A point whose id is derived from its payload.
    pub fn new(vector: Vec<f32>, payload: PointPayload) -> Self {
        Self {
            id: payload.point_id(),
            vector,
            payload,
        }
    }
}

/// A stored point as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPoint {
    pub id: Uuid,
    pub payload: PointPayload,
    /// Present when asked for. Under the cosine metric Qdrant stores (and returns) the
    /// vector scaled to unit length.
    pub vector: Option<Vec<f32>>,
}

/// A search result.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub id: Uuid,
    /// Higher = more similar, in the collection metric's units (distances negated).
    pub score: f64,
    pub payload: PointPayload,
}

/// Which points an operation considers: always those of one tenant; empty subject ids
/// and labels do not restrict further.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PointFilter {
    /// The tenant whose points are considered (empty: the default tenant). There is no
    /// filter across tenants, so no request can reach another tenant's points.
    pub tenant: String,
    /// Points of any of these subjects.
    pub subject_ids: Vec<String>,
    /// Points carrying all of these labels (exact key and value).
    pub labels: BTreeMap<String, String>,
}

impl PointFilter {
    /// Every point of the default tenant.
    pub fn all() -> Self {
        Self::default()
    }

    /// The points of one subject of the default tenant.
    pub fn subject(subject_id: impl Into<String>) -> Self {
        Self {
            subject_ids: vec![subject_id.into()],
            ..Self::default()
        }
    }

    /// The same filter, confined to `tenant`'s points instead.
    pub fn in_tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = tenant.into();
        self
    }

    /// True when the filter lets every point of its tenant through.
    pub fn is_empty(&self) -> bool {
        self.subject_ids.is_empty() && self.labels.is_empty()
    }

    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        validate_tenant(&self.tenant)?;
        for (key, value) in &self.labels {
            validate_label(key, value)?;
        }
        Ok(())
    }
}

/// The points of one tenant's subject, with both names checked.
pub(crate) fn subject_filter(tenant: &str, subject_id: &str) -> Result<PointFilter, StoreError> {
    let filter = PointFilter::subject(subject_id).in_tenant(tenant);
    filter.validate()?;
    Ok(filter)
}

/// A nearest-neighbour query.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    pub vector: Vec<f32>,
    /// Number of hits wanted, 1..=[`MAX_TOP_K`].
    pub top_k: usize,
    pub filter: PointFilter,
    /// Hits scoring below this (twin's higher-is-similar convention: `score >=
    /// threshold` passes) are left out.
    pub score_threshold: Option<f64>,
}

impl SearchRequest {
    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        if self.top_k == 0 || self.top_k > MAX_TOP_K {
            return Err(StoreError::InvalidArgument(format!(
                "top_k must be 1..={MAX_TOP_K}, got {}",
                self.top_k
            )));
        }
        if let Some(t) = self.score_threshold {
            if !t.is_finite() {
                return Err(StoreError::InvalidArgument(format!(
                    "score threshold must be a finite number, got {t}"
                )));
            }
        }
        validate_vector(&self.vector)?;
        self.filter.validate()
    }
}

pub(crate) fn validate_vector(vector: &[f32]) -> Result<(), StoreError> {
    if vector.is_empty() {
        return Err(StoreError::InvalidArgument("vector is empty".to_owned()));
    }
    if let Some(i) = vector.iter().position(|v| !v.is_finite()) {
        return Err(StoreError::InvalidArgument(format!(
            "vector element {i} is {}, every element must be finite",
            vector[i]
        )));
    }
    Ok(())
}

/// Checks a batch before it is written: finite vectors, valid payloads, ids derived
/// from the payloads.
pub(crate) fn validate_points(points: &[Point]) -> Result<(), StoreError> {
    for point in points {
        validate_vector(&point.vector)?;
        point.payload.validate()?;
        let expected = point.payload.point_id();
        if point.id != expected {
            return Err(StoreError::InvalidArgument(format!(
                "point id {} does not match its payload (expected {expected} from model id, \
                 subject id and image sha256): build points with Point::new",
                point.id
            )));
        }
    }
    Ok(())
}

/// Keeps the hits that pass `threshold` (Qdrant compares strictly and in f32; this
/// applies twin's `score >= threshold` exactly).
pub(crate) fn apply_threshold(hits: &mut Vec<Hit>, threshold: Option<f64>) {
    if let Some(t) = threshold {
        hits.retain(|hit| hit.score >= t);
    }
}

/// The storage contract shared by the Qdrant server and the embedded engine.
///
/// Every method is idempotent and safe to retry. Collection arguments may name a
/// collection or an alias. Writes return once applied and durable: a crash after
/// `upsert` returned loses nothing.
///
/// ```no_run
/// # async fn demo(store: std::sync::Arc<dyn twin_store::VectorStore>) -> Result<(), twin_store::StoreError> {
/// use twin_store::{CollectionSpec, Point, PointFilter, PointPayload, SearchRequest};
/// let spec = CollectionSpec { name: "twin-demo-0".into(), dim: 2, metric: twin_core::Metric::Cosine };
/// store.ensure_collection(&spec).await?;
/// let payload = PointPayload { subject_id: "alice".into(), image_sha256: "ab".into(), model_id: "m".into(), ..Default::default() };
/// store.upsert(&spec.name, &[Point::new(vec![1.0, 0.0], payload)]).await?;
/// let hits = store
///     .search(&spec.name, &SearchRequest { vector: vec![1.0, 0.1], top_k: 5, filter: PointFilter::subject("alice"), score_threshold: Some(0.9) })
///     .await?;
/// # Ok(()) }
/// ```
#[async_trait]
pub trait VectorStore: Send + Sync + std::fmt::Debug {
    /// `"embedded"` or `"qdrant"`.
    fn backend(&self) -> &'static str;

    /// Checks that the store answers.
    async fn health(&self) -> Result<(), StoreError>;

    /// Creates the collection if it does not exist, with payload indexes on the tenant,
    /// the subject id and the labels; `Conflict` when it exists with another size or metric.
    async fn ensure_collection(&self, spec: &CollectionSpec) -> Result<CollectionInfo, StoreError>;

    /// The collection behind `collection` (a name or an alias); `NotFound` when none.
    async fn collection_info(&self, collection: &str) -> Result<CollectionInfo, StoreError>;

    /// Deletes a collection and the aliases pointing at it; false when there was none.
    async fn delete_collection(&self, collection: &str) -> Result<bool, StoreError>;

    /// Inserts or replaces points (same id = same point) and waits until they are
    /// applied and durable. Ids must be derived from the payloads ([`Point::new`]).
    async fn upsert(&self, collection: &str, points: &[Point]) -> Result<(), StoreError>;

    /// The `top_k` nearest points passing the filter and threshold, best first.
    async fn search(
        &self,
        collection: &str,
        request: &SearchRequest,
    ) -> Result<Vec<Hit>, StoreError>;

    /// The points with these ids that exist, in the order asked.
    async fn get(
        &self,
        collection: &str,
        ids: &[Uuid],
        with_vector: bool,
    ) -> Result<Vec<StoredPoint>, StoreError>;

    /// Every point of a tenant's subject, ordered by id.
    async fn list_subject(
        &self,
        collection: &str,
        tenant: &str,
        subject_id: &str,
        with_vector: bool,
    ) -> Result<Vec<StoredPoint>, StoreError>;

    /// Number of points passing the filter (exact).
    async fn count(&self, collection: &str, filter: &PointFilter) -> Result<u64, StoreError>;

    /// Deletes every point of a tenant's subject; returns how many there were.
    async fn delete_subject(
        &self,
        collection: &str,
        tenant: &str,
        subject_id: &str,
    ) -> Result<u64, StoreError>;

    /// Deletes points by id; returns how many of them existed.
    async fn delete_points(&self, collection: &str, ids: &[Uuid]) -> Result<u64, StoreError>;

    /// Points `alias` at `collection`, creating the alias or switching it atomically:
    /// readers see the old collection or the new one, never neither.
    async fn set_alias(&self, alias: &str, collection: &str) -> Result<(), StoreError>;

    /// Removes an alias; false when there was none.
    async fn delete_alias(&self, alias: &str) -> Result<bool, StoreError>;

    /// Every alias, sorted by name.
    async fn list_aliases(&self) -> Result<Vec<Alias>, StoreError>;
}
