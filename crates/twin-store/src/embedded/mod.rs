//! The embedded backend: Qdrant's own engine (qdrant-edge) in-process, persisting
//! under one data directory. Used by `twin serve` so a single machine needs no
//! Qdrant server. Edge calls block, so each runs on tokio's blocking pool.

mod lock;
pub mod registry;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use qdrant_edge::{
    Condition, CountRequest, FieldCondition, Filter, IsEmptyCondition, JsonPath, Match, NamedQuery,
    Payload, PointId as EdgePointId, PointOperations, PointStructPersisted, QueryEnum, Record,
    ScrollRequest, SearchRequest as EdgeSearchRequest, UpdateOperation, VectorInternal,
    VectorStructInternal, VectorStructPersisted, WithPayloadInterface, WithVector,
    DEFAULT_VECTOR_NAME,
};
use uuid::Uuid;

pub use lock::LOCK_FILE;
pub use registry::{AliasChange, EdgeCollection, EdgeRegistry};

use crate::contract::{
    apply_threshold, subject_filter, validate_name, validate_points, Alias, CollectionInfo,
    CollectionSpec, Hit, Point, PointFilter, SearchRequest, StoredPoint, VectorStore,
};
use crate::distance::IndexDistance;
use crate::error::StoreError;
use crate::payload::{self, Term};

/// Points read per page when listing a subject.
const SCROLL_PAGE: usize = 256;

/// The embedded store. Cheap to clone; the data directory stays locked until the last
/// clone is dropped (or [`EmbeddedStore::close`] returns).
#[derive(Debug, Clone)]
pub struct EmbeddedStore {
    registry: EdgeRegistry,
}

/// Runs blocking engine work off the async executor.
async fn blocking<T, F>(f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Internal(format!("embedded store task failed: {e}")))?
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `dir`, blocking. `Locked` when another process
    /// has it open. `optimize_after_points`: see [`registry`] (0 = never by itself).
    pub fn open_blocking(dir: &Path, optimize_after_points: u64) -> Result<Self, StoreError> {
        Ok(Self {
            registry: EdgeRegistry::open(dir, optimize_after_points)?,
        })
    }

    /// [`Self::open_blocking`] on the blocking pool.
    pub async fn open(dir: &Path, optimize_after_points: u64) -> Result<Self, StoreError> {
        let dir = dir.to_owned();
        blocking(move || Self::open_blocking(&dir, optimize_after_points)).await
    }

    /// The engine layer underneath (collections as edge shards, aliases).
    pub fn registry(&self) -> &EdgeRegistry {
        &self.registry
    }

    /// Builds the HNSW index of a collection now and waits for it; returns whether
    /// anything changed. Normally this happens in the background (see [`registry`]).
    pub async fn optimize(&self, collection: &str) -> Result<bool, StoreError> {
        let collection = self.registry.collection(collection)?;
        blocking(move || collection.optimize()).await
    }

    /// Waits for background index builds, flushes, and releases the directory (once no
    /// other clone is alive).
    pub async fn close(self) -> Result<(), StoreError> {
        let registry = self.registry;
        blocking(move || {
            registry.close();
            Ok(())
        })
        .await
    }

    fn collection(&self, name: &str) -> Result<Arc<EdgeCollection>, StoreError> {
        self.registry.collection(name)
    }
}

fn info_of(collection: &EdgeCollection) -> CollectionInfo {
    let info = collection.shard().info();
    CollectionInfo {
        name: collection.name().to_owned(),
        dim: collection.dim(),
        metric: IndexDistance::from_edge(collection.distance()).metric(),
        points: info.points_count as u64,
        indexed_vectors: info.indexed_vectors_count as u64,
    }
}

fn edge_filter(filter: &PointFilter) -> Result<Filter, StoreError> {
    let terms = payload::filter_terms(filter);
    let mut conditions = Vec::with_capacity(terms.len());
    for term in terms {
        let path = |field: &str| {
            JsonPath::try_from(field)
                .map_err(|()| StoreError::Internal(format!("bad payload path {field}")))
        };
        conditions.push(match term {
            Term::Equals(field, value) => {
                Condition::Field(FieldCondition::new_match(path(field)?, Match::from(value)))
            }
            Term::AnyOf(field, values) => {
                Condition::Field(FieldCondition::new_match(path(field)?, Match::from(values)))
            }
            Term::Missing(field) => Condition::IsEmpty(IsEmptyCondition::from(path(field)?)),
        });
    }
    Ok(Filter {
        should: None,
        min_should: None,
        must: Some(conditions),
        must_not: None,
    })
}

fn edge_point(point: &Point) -> PointStructPersisted {
    PointStructPersisted {
        id: EdgePointId::Uuid(point.id),
        vector: VectorStructPersisted::Single(point.vector.clone()),
        payload: Some(Payload(payload::encode(&point.payload))),
    }
}

fn uuid_of(id: EdgePointId) -> Result<Uuid, StoreError> {
    match id {
        EdgePointId::Uuid(uuid) => Ok(uuid),
        EdgePointId::NumId(n) => Err(StoreError::Internal(format!(
            "point {n} has a numeric id: twin writes UUIDs only; was the collection filled by \
             another program?"
        ))),
    }
}

fn dense_of(vector: Option<VectorStructInternal>) -> Option<Vec<f32>> {
    match vector? {
        VectorStructInternal::Single(v) => Some(v),
        VectorStructInternal::Named(mut named) => match named.remove(DEFAULT_VECTOR_NAME)? {
            VectorInternal::Dense(v) => Some(v),
            _ => None,
        },
        VectorStructInternal::MultiDense(_) => None,
    }
}

fn stored_point(record: Record) -> Result<StoredPoint, StoreError> {
    let id = uuid_of(record.id)?;
    let map = record.payload.map(|p| p.0).unwrap_or_default();
    Ok(StoredPoint {
        id,
        payload: payload::decode(&id.to_string(), map)?,
        vector: dense_of(record.vector),
    })
}

fn check_dim(collection: &EdgeCollection, vector: &[f32]) -> Result<(), StoreError> {
    if vector.len() != collection.dim() {
        return Err(StoreError::InvalidArgument(format!(
            "vector has {} dimensions, collection {} holds {}",
            vector.len(),
            collection.name(),
            collection.dim()
        )));
    }
    Ok(())
}

#[async_trait]
impl VectorStore for EmbeddedStore {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    async fn health(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn ensure_collection(&self, spec: &CollectionSpec) -> Result<CollectionInfo, StoreError> {
        let distance = spec.validate()?;
        let registry = self.registry.clone();
        let spec = spec.clone();
        blocking(move || {
            if registry
                .aliases()
                .iter()
                .any(|(alias, _)| *alias == spec.name)
            {
                return Err(StoreError::Conflict(format!(
                    "{} is an alias, not a collection: give the collection its own name",
                    spec.name
                )));
            }
            let collection = match registry.collection(&spec.name) {
                Ok(existing) => existing,
                Err(StoreError::NotFound(_)) => {
                    match registry.create_collection(&spec.name, spec.dim, distance.to_edge()) {
                        Ok(created) => created,
                        // Created meanwhile by another task of this process.
                        Err(StoreError::Conflict(_)) => registry.collection(&spec.name)?,
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            };
            let info = info_of(&collection);
            if info.dim != spec.dim || info.metric != spec.metric {
                return Err(StoreError::Conflict(format!(
                    "collection {} exists with {} dimensions and metric {}, but {} dimensions \
                     and metric {} were asked for: use a new collection name (model version) \
                     or delete the old collection",
                    spec.name, info.dim, info.metric, spec.dim, spec.metric
                )));
            }
            Ok(info)
        })
        .await
    }

    async fn collection_info(&self, collection: &str) -> Result<CollectionInfo, StoreError> {
        let collection = self.collection(collection)?;
        blocking(move || Ok(info_of(&collection))).await
    }

    async fn delete_collection(&self, collection: &str) -> Result<bool, StoreError> {
        validate_name("collection", collection)?;
        let registry = self.registry.clone();
        let name = collection.to_owned();
        blocking(move || registry.delete_collection(&name)).await
    }

    async fn upsert(&self, collection: &str, points: &[Point]) -> Result<(), StoreError> {
        validate_points(points)?;
        if points.is_empty() {
            return Ok(());
        }
        let collection = self.collection(collection)?;
        for point in points {
            check_dim(&collection, &point.vector)?;
        }
        let points: Vec<_> = points.iter().map(edge_point).collect();
        blocking(move || collection.upsert(points)).await
    }

    async fn search(
        &self,
        collection: &str,
        request: &SearchRequest,
    ) -> Result<Vec<Hit>, StoreError> {
        request.validate()?;
        let collection = self.collection(collection)?;
        check_dim(&collection, &request.vector)?;
        let distance = IndexDistance::from_edge(collection.distance());
        let edge_request = EdgeSearchRequest {
            query: QueryEnum::Nearest(NamedQuery {
                query: VectorInternal::from(request.vector.clone()),
                using: None,
            }),
            filter: Some(edge_filter(&request.filter)?),
            params: None,
            limit: request.top_k,
            offset: 0,
            with_payload: Some(WithPayloadInterface::Bool(true)),
            with_vector: Some(WithVector::Bool(false)),
            score_threshold: request
                .score_threshold
                .map(|t| distance.qdrant_threshold(t)),
        };
        let threshold = request.score_threshold;
        blocking(move || {
            let found = collection
                .shard()
                .search(edge_request)
                .map_err(|e| registry::edge_error("search", e))?;
            let mut hits = Vec::with_capacity(found.len());
            for point in found {
                let id = uuid_of(point.id)?;
                let map = point.payload.map(|p| p.0).unwrap_or_default();
                hits.push(Hit {
                    id,
                    score: distance.twin_score(point.score),
                    payload: payload::decode(&id.to_string(), map)?,
                });
            }
            apply_threshold(&mut hits, threshold);
            Ok(hits)
        })
        .await
    }

    async fn get(
        &self,
        collection: &str,
        ids: &[Uuid],
        with_vector: bool,
    ) -> Result<Vec<StoredPoint>, StoreError> {
        let collection = self.collection(collection)?;
        let ids: Vec<_> = ids.iter().map(|id| EdgePointId::Uuid(*id)).collect();
        blocking(move || {
            collection
                .shard()
                .retrieve(
                    &ids,
                    Some(WithPayloadInterface::Bool(true)),
                    Some(WithVector::Bool(with_vector)),
                )
                .map_err(|e| registry::edge_error("retrieve", e))?
                .into_iter()
                .map(stored_point)
                .collect()
        })
        .await
    }

    async fn list_subject(
        &self,
        collection: &str,
        tenant: &str,
        subject_id: &str,
        with_vector: bool,
    ) -> Result<Vec<StoredPoint>, StoreError> {
        let collection = self.collection(collection)?;
        let filter = Some(edge_filter(&subject_filter(tenant, subject_id)?)?);
        blocking(move || {
            let mut points = Vec::new();
            let mut offset = None;
            loop {
                let (records, next) = collection
                    .shard()
                    .scroll(ScrollRequest {
                        offset,
                        limit: Some(SCROLL_PAGE),
                        filter: filter.clone(),
                        with_payload: Some(WithPayloadInterface::Bool(true)),
                        with_vector: WithVector::Bool(with_vector),
                        order_by: None,
                    })
                    .map_err(|e| registry::edge_error("scroll", e))?;
                for record in records {
                    points.push(stored_point(record)?);
                }
                match next {
                    Some(next) => offset = Some(next),
                    None => return Ok(points),
                }
            }
        })
        .await
    }

    async fn count(&self, collection: &str, filter: &PointFilter) -> Result<u64, StoreError> {
        filter.validate()?;
        let collection = self.collection(collection)?;
        let filter = Some(edge_filter(filter)?);
        blocking(move || {
            collection
                .shard()
                .count(CountRequest {
                    filter,
                    exact: true,
                })
                .map(|n| n as u64)
                .map_err(|e| registry::edge_error("count", e))
        })
        .await
    }

    async fn delete_subject(
        &self,
        collection: &str,
        tenant: &str,
        subject_id: &str,
    ) -> Result<u64, StoreError> {
        let collection = self.collection(collection)?;
        let filter = edge_filter(&subject_filter(tenant, subject_id)?)?;
        blocking(move || {
            // Counted and deleted under the write gate: the count is exact.
            collection.write_with(|shard| {
                let count = shard.count(CountRequest {
                    filter: Some(filter.clone()),
                    exact: true,
                })?;
                if count > 0 {
                    shard.update(UpdateOperation::PointOperation(
                        PointOperations::DeletePointsByFilter(filter),
                    ))?;
                }
                Ok(count as u64)
            })
        })
        .await
    }

    async fn delete_points(&self, collection: &str, ids: &[Uuid]) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let collection = self.collection(collection)?;
        let ids: Vec<_> = ids.iter().map(|id| EdgePointId::Uuid(*id)).collect();
        blocking(move || {
            collection.write_with(|shard| {
                let existing = shard
                    .retrieve(
                        &ids,
                        Some(WithPayloadInterface::Bool(false)),
                        Some(WithVector::Bool(false)),
                    )?
                    .len();
                if existing > 0 {
                    shard.update(UpdateOperation::PointOperation(
                        PointOperations::DeletePoints { ids },
                    ))?;
                }
                Ok(existing as u64)
            })
        })
        .await
    }

    async fn set_alias(&self, alias: &str, collection: &str) -> Result<(), StoreError> {
        let registry = self.registry.clone();
        let change = AliasChange::Create {
            alias: alias.to_owned(),
            collection: collection.to_owned(),
        };
        blocking(move || registry.change_aliases(&[change])).await
    }

    async fn delete_alias(&self, alias: &str) -> Result<bool, StoreError> {
        let registry = self.registry.clone();
        let change = AliasChange::Delete {
            alias: alias.to_owned(),
        };
        blocking(move || match registry.change_aliases(&[change]) {
            Ok(()) => Ok(true),
            Err(StoreError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        })
        .await
    }

    async fn list_aliases(&self) -> Result<Vec<Alias>, StoreError> {
        Ok(self
            .registry
            .aliases()
            .into_iter()
            .map(|(alias, collection)| Alias { alias, collection })
            .collect())
    }
}
