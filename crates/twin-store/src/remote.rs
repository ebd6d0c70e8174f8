//! The remote backend: a Qdrant server (or cluster) over gRPC, through the service
//! clients generated in `qdrant-client`. The channel is ours (timeouts, TLS with an
//! optional private CA, the `api-key` header), so that alias swaps can be sent as one
//! atomic request and every failure maps to a [`StoreError`] the caller can act on.
//! Transient failures are retried with backoff ([`RetryPolicy`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use qdrant_client::qdrant::{
    alias_operations, collections_client::CollectionsClient, condition::ConditionOneOf,
    payload_index_params, point_id::PointIdOptions, points_client::PointsClient,
    points_selector::PointsSelectorOneOf, qdrant_client::QdrantClient, query, r#match::MatchValue,
    vector_output, vectors_config, vectors_output, AliasOperations, ChangeAliases, Condition,
    CountPoints, CreateAlias, CreateCollection, CreateFieldIndexCollection, DeleteAlias,
    DeleteCollection, DeletePoints, FieldCondition, FieldType, Filter, GetCollectionInfoRequest,
    GetPoints, HealthCheckRequest, KeywordIndexParams, ListAliasesRequest, Match,
    PayloadIndexParams, PointId, PointStruct, PointsIdsList, PointsSelector, Query, QueryPoints,
    RepeatedStrings, ScrollPoints, UpsertPoints, Value, VectorInput, VectorParams, Vectors,
    VectorsConfig, VectorsOutput,
};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Status};
use twin_core::config::StoreConfig;
use uuid::Uuid;

use crate::contract::{
    apply_threshold, subject_filter, validate_name, validate_points, Alias, CollectionInfo,
    CollectionSpec, Hit, Point, PointFilter, SearchRequest, StoredPoint, VectorStore,
};
use crate::distance::IndexDistance;
use crate::error::StoreError;
use crate::payload::{self, Term};
use crate::retry::RetryPolicy;

/// Points per upsert request (a batch is split; each part is idempotent).
const UPSERT_CHUNK: usize = 256;
/// Points per scroll page when listing a subject.
const SCROLL_PAGE: u32 = 256;
/// Largest response accepted.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// How long a collection's distance is trusted before it is read again (an alias may
/// be switched by another process to a collection of another metric).
const DISTANCE_TTL: Duration = Duration::from_secs(10);

/// Adds the `api-key` header Qdrant checks to every call.
#[derive(Clone)]
struct ApiKey(Option<MetadataValue<Ascii>>);

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "ApiKey(***)"
        } else {
            "ApiKey(none)"
        })
    }
}

impl Interceptor for ApiKey {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(key) = &self.0 {
            request.metadata_mut().insert("api-key", key.clone());
        }
        Ok(request)
    }
}

type Transport = InterceptedService<Channel, ApiKey>;

/// A Qdrant server reached over gRPC.
#[derive(Debug)]
pub struct RemoteStore {
    url: String,
    points: PointsClient<Transport>,
    collections: CollectionsClient<Transport>,
    service: QdrantClient<Transport>,
    retry: RetryPolicy,
    distances: Mutex<HashMap<String, (IndexDistance, Instant)>>,
}

impl RemoteStore {
    /// Prepares a client for `config.url` (e.g. `http://qdrant:6334`; `https://` turns
    /// TLS on, verified against the system roots or `config.tls_ca_cert`). Connects
    /// lazily: nothing is sent until the first call ([`VectorStore::health`] to check).
    pub async fn connect(config: &StoreConfig) -> Result<Self, StoreError> {
        let url = config.url.trim().to_owned();
        let mut endpoint = Endpoint::from_shared(url.clone())
            .map_err(|e| {
                StoreError::InvalidArgument(format!(
                    "store.url {url:?} is not a valid URL ({e}): give e.g. http://qdrant:6334"
                ))
            })?
            .timeout(Duration::from_millis(config.timeout_ms.max(1)))
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms.max(1)))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true);
        let https = url.starts_with("https://");
        if https {
            let mut tls = ClientTlsConfig::new().with_native_roots();
            if !config.tls_ca_cert.is_empty() {
                let pem = std::fs::read(&config.tls_ca_cert).map_err(|e| {
                    StoreError::InvalidArgument(format!(
                        "cannot read store.tls_ca_cert {}: {e}",
                        config.tls_ca_cert
                    ))
                })?;
                tls = tls.ca_certificate(Certificate::from_pem(pem));
            }
            endpoint = endpoint.tls_config(tls).map_err(|e| {
                StoreError::InvalidArgument(format!("cannot set up TLS for {url}: {e}"))
            })?;
        } else if !config.tls_ca_cert.is_empty() {
            return Err(StoreError::InvalidArgument(format!(
                "store.tls_ca_cert is set but store.url {url} is not https://"
            )));
        }
        let api_key = if config.api_key.is_empty() {
            None
        } else {
            if !https && !is_loopback(&url) {
                tracing::warn!(url = %url, "qdrant api key is sent over plaintext http; use https://");
            }
            Some(
                config
                    .api_key
                    .parse::<MetadataValue<Ascii>>()
                    .map_err(|_| {
                        StoreError::InvalidArgument(
                            "store.api_key holds characters not allowed in a header".to_owned(),
                        )
                    })?,
            )
        };
        let channel = endpoint.connect_lazy();
        let interceptor = ApiKey(api_key);
        let transport = InterceptedService::new(channel, interceptor);
        Ok(Self {
            points: PointsClient::new(transport.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            collections: CollectionsClient::new(transport.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            service: QdrantClient::new(transport),
            url,
            retry: RetryPolicy {
                retries: config.retries,
                base_delay: Duration::from_millis(config.retry_backoff_ms.max(1)),
                ..RetryPolicy::default()
            },
            distances: Mutex::new(HashMap::new()),
        })
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn error(&self, what: &str, status: Status) -> StoreError {
        status_error(&self.url, what, status)
    }

    /// The distance of a collection (or alias), cached for [`DISTANCE_TTL`].
    /// One Qdrant call with retries: every attempt gets a clone of `client` and of the
    /// request; a failed call becomes a [`StoreError`] naming `what`.
    async fn rpc<C, Req, Resp, F, Fut>(
        &self,
        what: &'static str,
        client: &C,
        request: Req,
        call: F,
    ) -> Result<Resp, StoreError>
    where
        C: Clone,
        Req: Clone,
        F: Fn(C, Req) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<Resp>, Status>>,
    {
        self.retry
            .run(what, || {
                let attempt = call(client.clone(), request.clone());
                async move {
                    attempt
                        .await
                        .map(tonic::Response::into_inner)
                        .map_err(|s| self.error(what, s))
                }
            })
            .await
    }

    async fn distance(&self, collection: &str) -> Result<IndexDistance, StoreError> {
        if let Some((distance, at)) = self.cached_distance(collection) {
            if at.elapsed() < DISTANCE_TTL {
                return Ok(distance);
            }
        }
        let (_, distance, _) = self.read_collection(collection).await?;
        Ok(distance)
    }

    fn cached_distance(&self, collection: &str) -> Option<(IndexDistance, Instant)> {
        self.distances
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(collection)
            .copied()
    }

    fn forget_distance(&self, name: &str) {
        self.distances
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(name);
    }

    /// Size, distance and counts of a collection (or alias), as the server has it.
    async fn read_collection(
        &self,
        collection: &str,
    ) -> Result<(usize, IndexDistance, (u64, u64)), StoreError> {
        let request = GetCollectionInfoRequest {
            collection_name: collection.to_owned(),
        };
        let info = self
            .rpc(
                "collection info",
                &self.collections,
                request,
                |mut client, request| async move { client.get(request).await },
            )
            .await?
            .result
            .ok_or_else(|| {
                StoreError::Internal(format!("qdrant sent no info for collection {collection}"))
            })?;
        let params = info
            .config
            .as_ref()
            .and_then(|c| c.params.as_ref())
            .and_then(|p| p.vectors_config.as_ref())
            .and_then(|v| v.config.as_ref());
        let Some(vectors_config::Config::Params(params)) = params else {
            return Err(StoreError::Conflict(format!(
                "collection {collection} has named vectors (or none): twin uses collections \
                 with one unnamed vector; use another collection name"
            )));
        };
        let distance = IndexDistance::from_grpc(params.distance).ok_or_else(|| {
            StoreError::Internal(format!(
                "collection {collection} has an unknown distance ({})",
                params.distance
            ))
        })?;
        self.distances
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(collection.to_owned(), (distance, Instant::now()));
        Ok((
            params.size as usize,
            distance,
            (
                info.points_count.unwrap_or(0),
                info.indexed_vectors_count.unwrap_or(0),
            ),
        ))
    }

    async fn aliases(&self) -> Result<Vec<Alias>, StoreError> {
        let response = self
            .rpc(
                "list aliases",
                &self.collections,
                ListAliasesRequest {},
                |mut client, request| async move { client.list_aliases(request).await },
            )
            .await?;
        let mut aliases: Vec<Alias> = response
            .aliases
            .into_iter()
            .map(|a| Alias {
                alias: a.alias_name,
                collection: a.collection_name,
            })
            .collect();
        aliases.sort();
        Ok(aliases)
    }

    async fn change_aliases(
        &self,
        actions: Vec<alias_operations::Action>,
    ) -> Result<(), StoreError> {
        let request = ChangeAliases {
            actions: actions
                .into_iter()
                .map(|action| AliasOperations {
                    action: Some(action),
                })
                .collect(),
            timeout: None,
        };
        self.rpc(
            "update aliases",
            &self.collections,
            request,
            |mut client, request| async move { client.update_aliases(request).await },
        )
        .await
        .map(|_| ())
    }

    async fn create_keyword_index(&self, collection: &str, field: &str) -> Result<(), StoreError> {
        let request = CreateFieldIndexCollection {
            collection_name: collection.to_owned(),
            wait: Some(true),
            field_name: field.to_owned(),
            field_type: Some(FieldType::Keyword as i32),
            // The tenant field tells Qdrant to keep each tenant's points together
            // (its multitenancy optimisation): every twin query filters on it.
            field_index_params: (field == payload::TENANT).then(|| PayloadIndexParams {
                index_params: Some(payload_index_params::IndexParams::KeywordIndexParams(
                    KeywordIndexParams {
                        is_tenant: Some(true),
                        ..Default::default()
                    },
                )),
            }),
            ..Default::default()
        };
        self.rpc(
            "create payload index",
            &self.points,
            request,
            |mut client, request| async move { client.create_field_index(request).await },
        )
        .await
        .map(|_| ())
    }

    async fn count_filtered(
        &self,
        collection: &str,
        filter: Option<Filter>,
    ) -> Result<u64, StoreError> {
        let request = CountPoints {
            collection_name: collection.to_owned(),
            filter,
            exact: Some(true),
            ..Default::default()
        };
        let response = self
            .rpc(
                "count",
                &self.points,
                request,
                |mut client, request| async move { client.count(request).await },
            )
            .await?;
        Ok(response.result.map(|r| r.count).unwrap_or(0))
    }

    async fn delete_selected(
        &self,
        collection: &str,
        selector: PointsSelectorOneOf,
    ) -> Result<(), StoreError> {
        let request = DeletePoints {
            collection_name: collection.to_owned(),
            wait: Some(true),
            points: Some(PointsSelector {
                points_selector_one_of: Some(selector),
            }),
            ..Default::default()
        };
        self.rpc(
            "delete points",
            &self.points,
            request,
            |mut client, request| async move { client.delete(request).await },
        )
        .await
        .map(|_| ())
    }

    async fn retrieve(
        &self,
        collection: &str,
        ids: &[Uuid],
        with_payload: bool,
        with_vector: bool,
    ) -> Result<Vec<qdrant_client::qdrant::RetrievedPoint>, StoreError> {
        let request = GetPoints {
            collection_name: collection.to_owned(),
            ids: ids.iter().map(|id| PointId::from(id.to_string())).collect(),
            with_payload: Some(with_payload.into()),
            with_vectors: Some(with_vector.into()),
            ..Default::default()
        };
        let response = self
            .rpc(
                "get points",
                &self.points,
                request,
                |mut client, request| async move { client.get(request).await },
            )
            .await?;
        Ok(response.result)
    }
}

fn is_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.starts_with("localhost") || rest.starts_with("127.") || rest.starts_with("[::1]")
}

/// Maps a gRPC status from Qdrant to what a caller can do about it.
fn status_error(url: &str, what: &str, status: Status) -> StoreError {
    let message = format!("qdrant at {url}, {what}: {}", status.message());
    match status.code() {
        Code::NotFound => StoreError::NotFound(message),
        Code::InvalidArgument | Code::OutOfRange => StoreError::InvalidArgument(message),
        Code::AlreadyExists | Code::FailedPrecondition | Code::Aborted => {
            StoreError::Conflict(message)
        }
        // Connection failures surface as Unavailable (or Unknown for broken
        // transports), timeouts as Cancelled or DeadlineExceeded.
        Code::Unavailable
        | Code::DeadlineExceeded
        | Code::ResourceExhausted
        | Code::Cancelled
        | Code::Unknown => StoreError::Unavailable(message),
        Code::Unauthenticated | Code::PermissionDenied => StoreError::Internal(format!(
            "{message}: qdrant refused the api key; set store.api_key (TWIN_STORE__API_KEY)"
        )),
        _ => StoreError::Internal(message),
    }
}

fn grpc_filter(filter: &PointFilter) -> Filter {
    let must = payload::filter_terms(filter)
        .into_iter()
        .map(|term| {
            let (key, value) = match term {
                Term::Equals(field, value) => (field, MatchValue::Keyword(value)),
                Term::AnyOf(field, values) => (
                    field,
                    MatchValue::Keywords(RepeatedStrings { strings: values }),
                ),
                Term::Missing(field) => return Condition::is_empty(field),
            };
            Condition {
                condition_one_of: Some(ConditionOneOf::Field(FieldCondition {
                    key: key.to_owned(),
                    r#match: Some(Match {
                        match_value: Some(value),
                    }),
                    ..Default::default()
                })),
            }
        })
        .collect();
    Filter {
        must,
        ..Default::default()
    }
}

fn grpc_payload(point: &Point) -> HashMap<String, Value> {
    payload::encode(&point.payload)
        .into_iter()
        .map(|(k, v)| (k, Value::from(v)))
        .collect()
}

fn twin_payload(
    id: &Uuid,
    fields: HashMap<String, Value>,
) -> Result<crate::contract::PointPayload, StoreError> {
    let map = fields
        .into_iter()
        .map(|(k, v)| (k, serde_json::Value::from(v)))
        .collect();
    payload::decode(&id.to_string(), map)
}

fn uuid_of(id: Option<PointId>) -> Result<Uuid, StoreError> {
    match id.and_then(|id| id.point_id_options) {
        Some(PointIdOptions::Uuid(s)) => Uuid::parse_str(&s)
            .map_err(|e| StoreError::Internal(format!("qdrant sent a bad point id {s:?}: {e}"))),
        Some(PointIdOptions::Num(n)) => Err(StoreError::Internal(format!(
            "point {n} has a numeric id: twin writes UUIDs only; was the collection filled by \
             another program?"
        ))),
        None => Err(StoreError::Internal(
            "qdrant sent a point without id".to_owned(),
        )),
    }
}

#[allow(deprecated)] // `data` is the pre-1.13 place of dense values; older servers fill it.
fn dense_of(vectors: Option<VectorsOutput>) -> Option<Vec<f32>> {
    match vectors?.vectors_options? {
        vectors_output::VectorsOptions::Vector(output) => match output.vector {
            Some(vector_output::Vector::Dense(dense)) => Some(dense.data),
            Some(_) => None,
            None => Some(output.data),
        },
        vectors_output::VectorsOptions::Vectors(mut named) => {
            let output = named.vectors.remove("")?;
            match output.vector {
                Some(vector_output::Vector::Dense(dense)) => Some(dense.data),
                Some(_) => None,
                None => Some(output.data),
            }
        }
    }
}

fn stored_point(point: qdrant_client::qdrant::RetrievedPoint) -> Result<StoredPoint, StoreError> {
    let id = uuid_of(point.id)?;
    Ok(StoredPoint {
        payload: twin_payload(&id, point.payload)?,
        vector: dense_of(point.vectors),
        id,
    })
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_what_callers_can_do() {
        let map = |code| status_error("http://q:6334", "upsert", Status::new(code, "boom"));
        assert!(matches!(map(Code::NotFound), StoreError::NotFound(_)));
        assert!(matches!(
            map(Code::InvalidArgument),
            StoreError::InvalidArgument(_)
        ));
        assert!(matches!(map(Code::Unavailable), StoreError::Unavailable(_)));
        assert!(matches!(
            map(Code::DeadlineExceeded),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(map(Code::AlreadyExists), StoreError::Conflict(_)));
        assert!(matches!(map(Code::Internal), StoreError::Internal(_)));
        let denied = map(Code::PermissionDenied).to_string();
        assert!(denied.contains("store.api_key"), "{denied}");
        assert!(denied.contains("http://q:6334"), "{denied}");
    }

    #[test]
    fn loopback_urls_are_recognised() {
        assert!(is_loopback("http://localhost:6334"));
        assert!(is_loopback("http://127.0.0.1:6334"));
        assert!(!is_loopback("http://qdrant:6334"));
    }
}
