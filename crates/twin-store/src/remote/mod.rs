//! The remote backend: a Qdrant server (or cluster) over gRPC, through the service
//! clients generated in `qdrant-client`. The channel is ours (timeouts, TLS with an
//! optional private CA, the `api-key` header), so that alias swaps can be sent as one
//! atomic request and every failure maps to a [`StoreError`] the caller can act on.
//! Transient failures are retried with backoff ([`RetryPolicy`]).

use std::collections::HashMap;

use async_trait::async_trait;
use qdrant_client::qdrant::{
    alias_operations, points_selector::PointsSelectorOneOf, query, vectors_config, CreateAlias,
    CreateCollection, DeleteAlias, DeleteCollection, HealthCheckRequest, PointId, PointStruct,
    PointsIdsList, Query, QueryPoints, ScrollPoints, UpsertPoints, VectorInput, VectorParams,
    Vectors, VectorsConfig,
};
use uuid::Uuid;

use crate::contract::{
    apply_threshold, subject_filter, validate_name, validate_points, Alias, CollectionInfo,
    CollectionSpec, Hit, Point, PointFilter, SearchRequest, StoredPoint, VectorStore,
};
use crate::error::StoreError;
use crate::payload;
pub use client::RemoteStore;
use wire::{grpc_filter, grpc_payload, stored_point, twin_payload, uuid_of};

mod client;
mod wire;

/// Points per upsert request (a batch is split; each part is idempotent).
const UPSERT_CHUNK: usize = 256;
/// Points per scroll page when listing a subject.
const SCROLL_PAGE: u32 = 256;

#[async_trait]
impl VectorStore for RemoteStore {
    fn backend(&self) -> &'static str {
        "qdrant"
    }

    async fn health(&self) -> Result<(), StoreError> {
        self.rpc(
            "health check",
            &self.service,
            HealthCheckRequest {},
            |mut client, request| async move { client.health_check(request).await },
        )
        .await
        .map(|_| ())
    }

    async fn ensure_collection(&self, spec: &CollectionSpec) -> Result<CollectionInfo, StoreError> {
        let distance = spec.validate()?;
        if self.aliases().await?.iter().any(|a| a.alias == spec.name) {
            return Err(StoreError::Conflict(format!(
                "{} is an alias, not a collection: give the collection its own name",
                spec.name
            )));
        }
        match self.read_collection(&spec.name).await {
            Ok(_) => {}
            Err(StoreError::NotFound(_)) => {
                let request = CreateCollection {
                    collection_name: spec.name.clone(),
                    vectors_config: Some(VectorsConfig {
                        config: Some(vectors_config::Config::Params(VectorParams {
                            size: spec.dim as u64,
                            distance: distance.to_grpc() as i32,
                            ..Default::default()
                        })),
                    }),
                    ..Default::default()
                };
                let created = self
                    .rpc(
                        "create collection",
                        &self.collections,
                        request,
                        |mut client, request| async move { client.create(request).await },
                    )
                    .await
                    .map(|_| ());
                match created {
                    // Created meanwhile by another process: checked below like any other.
                    Ok(()) | Err(StoreError::Conflict(_)) => {}
                    Err(e) => return Err(e),
                }
                tracing::info!(collection = %spec.name, dim = spec.dim, metric = %spec.metric, "collection created");
            }
            Err(e) => return Err(e),
        }
        for field in payload::INDEXED_FIELDS {
            self.create_keyword_index(&spec.name, field).await?;
        }
        let (dim, distance_found, (points, indexed)) = self.read_collection(&spec.name).await?;
        if dim != spec.dim || distance_found != distance {
            return Err(StoreError::Conflict(format!(
                "collection {} exists with {dim} dimensions and metric {}, but {} dimensions \
                 and metric {} were asked for: use a new collection name (model version) or \
                 delete the old collection",
                spec.name,
                distance_found.metric(),
                spec.dim,
                spec.metric
            )));
        }
        Ok(CollectionInfo {
            name: spec.name.clone(),
            dim,
            metric: distance_found.metric(),
            points,
            indexed_vectors: indexed,
        })
    }

    async fn collection_info(&self, collection: &str) -> Result<CollectionInfo, StoreError> {
        let (dim, distance, (points, indexed)) = self.read_collection(collection).await?;
        let name = self
            .aliases()
            .await?
            .into_iter()
            .find(|a| a.alias == collection)
            .map_or_else(|| collection.to_owned(), |a| a.collection);
        Ok(CollectionInfo {
            name,
            dim,
            metric: distance.metric(),
            points,
            indexed_vectors: indexed,
        })
    }

    async fn delete_collection(&self, collection: &str) -> Result<bool, StoreError> {
        validate_name("collection", collection)?;
        let request = DeleteCollection {
            collection_name: collection.to_owned(),
            timeout: None,
        };
        let result = self
            .rpc(
                "delete collection",
                &self.collections,
                request,
                |mut client, request| async move { client.delete(request).await },
            )
            .await
            .map(|r| r.result);
        self.forget_distance(collection);
        match result {
            Ok(deleted) => Ok(deleted),
            Err(StoreError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn upsert(&self, collection: &str, points: &[Point]) -> Result<(), StoreError> {
        validate_points(points)?;
        for chunk in points.chunks(UPSERT_CHUNK) {
            let request = UpsertPoints {
                collection_name: collection.to_owned(),
                wait: Some(true),
                points: chunk
                    .iter()
                    .map(|point| PointStruct {
                        id: Some(PointId::from(point.id.to_string())),
                        payload: grpc_payload(point),
                        vectors: Some(Vectors::from(point.vector.clone())),
                    })
                    .collect(),
                ..Default::default()
            };
            self.rpc(
                "upsert",
                &self.points,
                request,
                |mut client, request| async move { client.upsert(request).await },
            )
            .await
            .map(|_| ())?;
        }
        Ok(())
    }

    async fn search(
        &self,
        collection: &str,
        request: &SearchRequest,
    ) -> Result<Vec<Hit>, StoreError> {
        request.validate()?;
        let distance = self.distance(collection).await?;
        let query = QueryPoints {
            collection_name: collection.to_owned(),
            query: Some(Query {
                variant: Some(query::Variant::Nearest(VectorInput::new_dense(
                    request.vector.clone(),
                ))),
            }),
            filter: Some(grpc_filter(&request.filter)),
            score_threshold: request
                .score_threshold
                .map(|t| distance.qdrant_threshold(t)),
            limit: Some(request.top_k as u64),
            with_payload: Some(true.into()),
            with_vectors: Some(false.into()),
            ..Default::default()
        };
        let response = self
            .retry
            .run("search", || {
                let mut client = self.points.clone();
                let query = query.clone();
                async move {
                    client
                        .query(query)
                        .await
                        .map(tonic::Response::into_inner)
                        .map_err(|s| self.error("search", s))
                }
            })
            .await?;
        let mut hits = Vec::with_capacity(response.result.len());
        for point in response.result {
            let id = uuid_of(point.id)?;
            hits.push(Hit {
                payload: twin_payload(&id, point.payload)?,
                score: distance.twin_score(point.score),
                id,
            });
        }
        apply_threshold(&mut hits, request.score_threshold);
        Ok(hits)
    }

    async fn get(
        &self,
        collection: &str,
        ids: &[Uuid],
        with_vector: bool,
    ) -> Result<Vec<StoredPoint>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut found: HashMap<Uuid, StoredPoint> = HashMap::new();
        for point in self.retrieve(collection, ids, true, with_vector).await? {
            let point = stored_point(point)?;
            found.insert(point.id, point);
        }
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }

    async fn list_subject(
        &self,
        collection: &str,
        tenant: &str,
        subject_id: &str,
        with_vector: bool,
    ) -> Result<Vec<StoredPoint>, StoreError> {
        let filter = Some(grpc_filter(&subject_filter(tenant, subject_id)?));
        let mut points = Vec::new();
        let mut offset = None;
        loop {
            let request = ScrollPoints {
                collection_name: collection.to_owned(),
                filter: filter.clone(),
                offset: offset.clone(),
                limit: Some(SCROLL_PAGE),
                with_payload: Some(true.into()),
                with_vectors: Some(with_vector.into()),
                ..Default::default()
            };
            let page = self
                .rpc(
                    "scroll",
                    &self.points,
                    request,
                    |mut client, request| async move { client.scroll(request).await },
                )
                .await?;
            for point in page.result {
                points.push(stored_point(point)?);
            }
            match page.next_page_offset {
                Some(next) => offset = Some(next),
                None => return Ok(points),
            }
        }
    }

    async fn count(&self, collection: &str, filter: &PointFilter) -> Result<u64, StoreError> {
        filter.validate()?;
        self.count_filtered(collection, Some(grpc_filter(filter)))
            .await
    }

    async fn delete_subject(
        &self,
        collection: &str,
        tenant: &str,
        subject_id: &str,
    ) -> Result<u64, StoreError> {
        let filter = grpc_filter(&subject_filter(tenant, subject_id)?);
        // Qdrant does not say how many points a filtered delete removed: count first.
        // A point enrolled between the two calls is deleted without being counted.
        let count = self
            .count_filtered(collection, Some(filter.clone()))
            .await?;
        if count > 0 {
            self.delete_selected(collection, PointsSelectorOneOf::Filter(filter))
                .await?;
        }
        Ok(count)
    }

    async fn delete_points(&self, collection: &str, ids: &[Uuid]) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let existing = self.retrieve(collection, ids, false, false).await?.len() as u64;
        if existing > 0 {
            let list = PointsIdsList {
                ids: ids.iter().map(|id| PointId::from(id.to_string())).collect(),
            };
            self.delete_selected(collection, PointsSelectorOneOf::Points(list))
                .await?;
        }
        Ok(existing)
    }

    async fn set_alias(&self, alias: &str, collection: &str) -> Result<(), StoreError> {
        validate_name("alias", alias)?;
        validate_name("collection", collection)?;
        let exists = self.aliases().await?.iter().any(|a| a.alias == alias);
        let mut actions = Vec::with_capacity(2);
        if exists {
            actions.push(alias_operations::Action::DeleteAlias(DeleteAlias {
                alias_name: alias.to_owned(),
            }));
        }
        actions.push(alias_operations::Action::CreateAlias(CreateAlias {
            collection_name: collection.to_owned(),
            alias_name: alias.to_owned(),
        }));
        // Both actions in one request: Qdrant applies them atomically.
        self.change_aliases(actions).await?;
        self.forget_distance(alias);
        Ok(())
    }

    async fn delete_alias(&self, alias: &str) -> Result<bool, StoreError> {
        if !self.aliases().await?.iter().any(|a| a.alias == alias) {
            return Ok(false);
        }
        let result = self
            .change_aliases(vec![alias_operations::Action::DeleteAlias(DeleteAlias {
                alias_name: alias.to_owned(),
            })])
            .await;
        self.forget_distance(alias);
        match result {
            Ok(()) => Ok(true),
            Err(StoreError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn list_aliases(&self) -> Result<Vec<Alias>, StoreError> {
        self.aliases().await
    }
}
