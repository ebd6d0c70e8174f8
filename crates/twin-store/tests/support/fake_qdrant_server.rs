//! TEST-ONLY. A Qdrant gRPC server for the remote backend's tests, built from the
//! server traits `qdrant-client` generates from Qdrant's own protos, on top of Qdrant's
//! engine (qdrant-edge, through twin-store's `EdgeRegistry`). No Qdrant server binary
//! can be installed on the build machines; this lets the remote backend be tested over
//! the real gRPC protocol anyway. It implements only the calls twin's remote backend
//! makes (the rest answer UNIMPLEMENTED) and is never part of a production path: it
//! lives under `tests/` and nothing in `src/` can reach it.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;

use qdrant_client::qdrant::{
    self as grpc, alias_operations, collections_server::Collections,
    collections_server::CollectionsServer, condition::ConditionOneOf, point_id::PointIdOptions,
    points_selector::PointsSelectorOneOf, points_server::Points, points_server::PointsServer,
    qdrant_server::Qdrant, qdrant_server::QdrantServer, r#match::MatchValue, vector_input,
    vectors::VectorsOptions, vectors_config, with_payload_selector, with_vectors_selector,
};
use qdrant_edge::{
    Condition, CountRequest, FieldCondition, Filter, IsEmptyCondition, JsonPath, Match, NamedQuery,
    Payload, PointId as EdgePointId, PointOperations, PointStructPersisted, QueryEnum,
    ScrollRequest, SearchRequest, UpdateOperation, ValueVariants, VectorInternal,
    VectorStructInternal, VectorStructPersisted, WithPayloadInterface, WithVector,
};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};
use twin_store::embedded::{AliasChange, EdgeRegistry};
use twin_store::StoreError;

type RpcResult<T> = Result<Response<T>, Status>;

/// The engine behind the test server (cheap to clone: the registry is shared).
#[derive(Debug, Clone)]
struct Engine {
    registry: EdgeRegistry,
}

/// A running test server; stops when dropped.
#[derive(Debug)]
pub struct FakeQdrant {
    pub url: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl FakeQdrant {
    /// Serves a store in `dir` on an ephemeral 127.0.0.1 port.
    pub async fn start(dir: &Path, api_key: Option<&str>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind an ephemeral port");
        Self::serve(listener, dir, api_key)
    }

    /// Serves a store in `dir` on `addr` (for tests that reserve the port first).
    pub async fn start_on(addr: SocketAddr, dir: &Path, api_key: Option<&str>) -> Self {
        let listener = TcpListener::bind(addr)
            .await
            .expect("bind the reserved port");
        Self::serve(listener, dir, api_key)
    }

    fn serve(listener: TcpListener, dir: &Path, api_key: Option<&str>) -> Self {
        let addr = listener.local_addr().expect("listener address");
        let engine = Engine {
            registry: EdgeRegistry::open(dir, 0).expect("open the test server's store"),
        };
        let key = api_key.map(str::to_owned);
        let check_key = move |request: Request<()>| -> Result<Request<()>, Status> {
            let Some(expected) = &key else {
                return Ok(request);
            };
            match request
                .metadata()
                .get("api-key")
                .and_then(|v| v.to_str().ok())
            {
                Some(given) if given == expected => Ok(request),
                _ => Err(Status::permission_denied("Invalid api-key")),
            }
        };
        let limit = 64 * 1024 * 1024;
        let router = tonic::transport::Server::builder()
            .add_service(tonic::service::interceptor::InterceptedService::new(
                QdrantServer::new(engine.clone()),
                check_key.clone(),
            ))
            .add_service(tonic::service::interceptor::InterceptedService::new(
                CollectionsServer::new(engine.clone()).max_decoding_message_size(limit),
                check_key.clone(),
            ))
            .add_service(tonic::service::interceptor::InterceptedService::new(
                PointsServer::new(engine)
                    .max_decoding_message_size(limit)
                    .max_encoding_message_size(limit),
                check_key,
            ));
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let incoming = TcpListenerStream::new(listener);
            if let Err(err) = router
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                })
                .await
            {
                eprintln!("test qdrant server stopped: {err}");
            }
        });
        Self {
            url: format!("http://{addr}"),
            shutdown: Some(shutdown),
            task: Some(task),
        }
    }

    /// Stops serving and waits until the engine is closed (its directory unlocked).
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for FakeQdrant {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

fn status(err: StoreError) -> Status {
    match err {
        StoreError::NotFound(m) => Status::not_found(m),
        StoreError::InvalidArgument(m) => Status::invalid_argument(m),
        StoreError::Conflict(m) => Status::already_exists(m),
        StoreError::Unavailable(m) | StoreError::Locked(m) => Status::unavailable(m),
        StoreError::Internal(m) => Status::internal(m),
    }
}

/// Runs engine work (blocking) off the executor.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("engine task failed: {e}")))?
        .map_err(status)
}

fn completed() -> grpc::PointsOperationResponse {
    grpc::PointsOperationResponse {
        result: Some(grpc::UpdateResult {
            operation_id: None,
            status: grpc::UpdateStatus::Completed as i32,
        }),
        time: 0.0,
        usage: None,
    }
}

fn unsupported(what: &str) -> Status {
    Status::unimplemented(format!("the test qdrant server does not support {what}"))
}

// ---- conversions: gRPC → engine ---------------------------------------------------

fn edge_id(id: Option<grpc::PointId>) -> Result<EdgePointId, Status> {
    match id.and_then(|id| id.point_id_options) {
        Some(PointIdOptions::Uuid(s)) => s
            .parse()
            .map(EdgePointId::Uuid)
            .map_err(|e| Status::invalid_argument(format!("bad point id {s:?}: {e}"))),
        Some(PointIdOptions::Num(n)) => Ok(EdgePointId::NumId(n)),
        None => Err(Status::invalid_argument("point without id")),
    }
}

#[allow(deprecated)] // older clients send dense values in `data`
fn edge_vector(vectors: Option<grpc::Vectors>) -> Result<Vec<f32>, Status> {
    match vectors.and_then(|v| v.vectors_options) {
        Some(VectorsOptions::Vector(vector)) => match vector.vector {
            Some(grpc::vector::Vector::Dense(dense)) => Ok(dense.data),
            Some(_) => Err(unsupported("non-dense vectors")),
            None => Ok(vector.data),
        },
        Some(VectorsOptions::Vectors(_)) => Err(unsupported("named vectors")),
        None => Err(Status::invalid_argument("point without vector")),
    }
}

fn edge_payload(payload: HashMap<String, grpc::Value>) -> Payload {
    Payload(
        payload
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::from(v)))
            .collect(),
    )
}

fn edge_condition(condition: grpc::Condition) -> Result<Condition, Status> {
    match condition.condition_one_of {
        Some(ConditionOneOf::Field(field)) => {
            let key = JsonPath::try_from(field.key.as_str())
                .map_err(|()| Status::invalid_argument(format!("bad key {:?}", field.key)))?;
            let matcher = match field.r#match.and_then(|m| m.match_value) {
                Some(MatchValue::Keyword(value)) => Match::from(value),
                Some(MatchValue::Keywords(values)) => Match::from(values.strings),
                Some(MatchValue::Integer(value)) => Match::from(value),
                Some(MatchValue::Boolean(value)) => Match::new_value(ValueVariants::Bool(value)),
                _ => return Err(unsupported("this field condition")),
            };
            Ok(Condition::Field(FieldCondition::new_match(key, matcher)))
        }
        Some(ConditionOneOf::Filter(filter)) => Ok(Condition::Filter(edge_filter(filter)?)),
        Some(ConditionOneOf::IsEmpty(field)) => {
            let key = JsonPath::try_from(field.key.as_str())
                .map_err(|()| Status::invalid_argument(format!("bad key {:?}", field.key)))?;
            Ok(Condition::IsEmpty(IsEmptyCondition::from(key)))
        }
        _ => Err(unsupported("this condition")),
    }
}

fn edge_conditions(conditions: Vec<grpc::Condition>) -> Result<Option<Vec<Condition>>, Status> {
    if conditions.is_empty() {
        return Ok(None);
    }
    conditions
        .into_iter()
        .map(edge_condition)
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn edge_filter(filter: grpc::Filter) -> Result<Filter, Status> {
    if filter.min_should.is_some() {
        return Err(unsupported("min_should"));
    }
    Ok(Filter {
        should: edge_conditions(filter.should)?,
        min_should: None,
        must: edge_conditions(filter.must)?,
        must_not: edge_conditions(filter.must_not)?,
    })
}

fn optional_filter(filter: Option<grpc::Filter>) -> Result<Option<Filter>, Status> {
    filter.map(edge_filter).transpose()
}

fn wants_payload(selector: Option<grpc::WithPayloadSelector>) -> Result<bool, Status> {
    match selector.and_then(|s| s.selector_options) {
        None => Ok(false),
        Some(with_payload_selector::SelectorOptions::Enable(on)) => Ok(on),
        Some(_) => Err(unsupported("payload selectors")),
    }
}

fn wants_vector(selector: Option<grpc::WithVectorsSelector>) -> Result<bool, Status> {
    match selector.and_then(|s| s.selector_options) {
        None => Ok(false),
        Some(with_vectors_selector::SelectorOptions::Enable(on)) => Ok(on),
        Some(_) => Err(unsupported("vector selectors")),
    }
}

// ---- conversions: engine → gRPC ---------------------------------------------------

fn grpc_id(id: EdgePointId) -> grpc::PointId {
    match id {
        EdgePointId::Uuid(uuid) => grpc::PointId::from(uuid.to_string()),
        EdgePointId::NumId(n) => grpc::PointId::from(n),
    }
}

fn grpc_payload(payload: Option<Payload>) -> HashMap<String, grpc::Value> {
    payload
        .map(|p| {
            p.0.into_iter()
                .map(|(k, v)| (k, grpc::Value::from(v)))
                .collect()
        })
        .unwrap_or_default()
}

fn grpc_vectors(vector: Option<VectorStructInternal>) -> Option<grpc::VectorsOutput> {
    let dense = match vector? {
        VectorStructInternal::Single(v) => v,
        VectorStructInternal::Named(mut named) => match named.remove("")? {
            VectorInternal::Dense(v) => v,
            _ => return None,
        },
        VectorStructInternal::MultiDense(_) => return None,
    };
    #[allow(deprecated)]
    let output = grpc::VectorOutput {
        data: Vec::new(),
        indices: None,
        vectors_count: None,
        vector: Some(grpc::vector_output::Vector::Dense(grpc::DenseVector {
            data: dense,
        })),
    };
    Some(grpc::VectorsOutput {
        vectors_options: Some(grpc::vectors_output::VectorsOptions::Vector(output)),
    })
}

fn retrieved(record: qdrant_edge::Record) -> grpc::RetrievedPoint {
    grpc::RetrievedPoint {
        id: Some(grpc_id(record.id)),
        payload: grpc_payload(record.payload),
        vectors: grpc_vectors(record.vector),
        shard_key: None,
        order_value: None,
    }
}

fn distance_grpc(distance: qdrant_edge::Distance) -> grpc::Distance {
    match distance {
        qdrant_edge::Distance::Cosine => grpc::Distance::Cosine,
        qdrant_edge::Distance::Dot => grpc::Distance::Dot,
        qdrant_edge::Distance::Euclid => grpc::Distance::Euclid,
        qdrant_edge::Distance::Manhattan => grpc::Distance::Manhattan,
    }
}

fn distance_edge(value: i32) -> Result<qdrant_edge::Distance, Status> {
    match grpc::Distance::try_from(value) {
        Ok(grpc::Distance::Cosine) => Ok(qdrant_edge::Distance::Cosine),
        Ok(grpc::Distance::Dot) => Ok(qdrant_edge::Distance::Dot),
        Ok(grpc::Distance::Euclid) => Ok(qdrant_edge::Distance::Euclid),
        Ok(grpc::Distance::Manhattan) => Ok(qdrant_edge::Distance::Manhattan),
        _ => Err(Status::invalid_argument(format!(
            "unknown distance {value}"
        ))),
    }
}

// ---- the services -----------------------------------------------------------------

/// Generates the RPCs twin does not call: each answers UNIMPLEMENTED. The signature is
/// what `#[async_trait]` makes of `async fn name(&self, Request<Req>) -> RpcResult<Resp>`.
macro_rules! unimplemented_rpcs {
    ($($name:ident($req:ident) -> $resp:ident;)*) => {
        $(
            fn $name<'life0, 'async_trait>(
                &'life0 self,
                _request: Request<grpc::$req>,
            ) -> Pin<Box<dyn Future<Output = RpcResult<grpc::$resp>> + Send + 'async_trait>>
            where
                'life0: 'async_trait,
                Self: 'async_trait,
            {
                Box::pin(async { Err(unsupported(stringify!($name))) })
            }
        )*
    };
}

#[tonic::async_trait]
impl Qdrant for Engine {
    async fn health_check(
        &self,
        _request: Request<grpc::HealthCheckRequest>,
    ) -> RpcResult<grpc::HealthCheckReply> {
        Ok(Response::new(grpc::HealthCheckReply {
            title: "twin test qdrant (qdrant-edge)".to_owned(),
            version: "1.20.0-test".to_owned(),
            commit: None,
        }))
    }
}

fn collection_info(collection: &twin_store::embedded::EdgeCollection) -> grpc::CollectionInfo {
    let info = collection.shard().info();
    grpc::CollectionInfo {
        status: grpc::CollectionStatus::Green as i32,
        segments_count: info.segments_count as u64,
        config: Some(grpc::CollectionConfig {
            params: Some(grpc::CollectionParams {
                shard_number: 1,
                vectors_config: Some(grpc::VectorsConfig {
                    config: Some(vectors_config::Config::Params(grpc::VectorParams {
                        size: collection.dim() as u64,
                        distance: distance_grpc(collection.distance()) as i32,
                        ..Default::default()
                    })),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        points_count: Some(info.points_count as u64),
        indexed_vectors_count: Some(info.indexed_vectors_count as u64),
        ..Default::default()
    }
}

#[tonic::async_trait]
impl Collections for Engine {
    async fn get(
        &self,
        request: Request<grpc::GetCollectionInfoRequest>,
    ) -> RpcResult<grpc::GetCollectionInfoResponse> {
        let name = request.into_inner().collection_name;
        let registry = self.registry.clone();
        let info = blocking(move || {
            let collection = registry.collection(&name)?;
            Ok(collection_info(&collection))
        })
        .await?;
        Ok(Response::new(grpc::GetCollectionInfoResponse {
            result: Some(info),
            time: 0.0,
        }))
    }

    async fn list(
        &self,
        _request: Request<grpc::ListCollectionsRequest>,
    ) -> RpcResult<grpc::ListCollectionsResponse> {
        Ok(Response::new(grpc::ListCollectionsResponse {
            collections: self
                .registry
                .collection_names()
                .into_iter()
                .map(|name| grpc::CollectionDescription { name })
                .collect(),
            time: 0.0,
        }))
    }

    async fn create(
        &self,
        request: Request<grpc::CreateCollection>,
    ) -> RpcResult<grpc::CollectionOperationResponse> {
        let request = request.into_inner();
        let Some(vectors_config::Config::Params(params)) =
            request.vectors_config.and_then(|v| v.config)
        else {
            return Err(unsupported("collections without one unnamed vector"));
        };
        let distance = distance_edge(params.distance)?;
        let registry = self.registry.clone();
        let name = request.collection_name;
        blocking(move || {
            registry
                .create_collection(&name, params.size as usize, distance)
                .map(|_| ())
        })
        .await?;
        Ok(Response::new(grpc::CollectionOperationResponse {
            result: true,
            time: 0.0,
        }))
    }

    async fn delete(
        &self,
        request: Request<grpc::DeleteCollection>,
    ) -> RpcResult<grpc::CollectionOperationResponse> {
        let name = request.into_inner().collection_name;
        let registry = self.registry.clone();
        let deleted = blocking(move || registry.delete_collection(&name)).await?;
        Ok(Response::new(grpc::CollectionOperationResponse {
            result: deleted,
            time: 0.0,
        }))
    }

    async fn update_aliases(
        &self,
        request: Request<grpc::ChangeAliases>,
    ) -> RpcResult<grpc::CollectionOperationResponse> {
        let mut changes = Vec::new();
        for operation in request.into_inner().actions {
            changes.push(match operation.action {
                Some(alias_operations::Action::CreateAlias(c)) => AliasChange::Create {
                    alias: c.alias_name,
                    collection: c.collection_name,
                },
                Some(alias_operations::Action::DeleteAlias(d)) => AliasChange::Delete {
                    alias: d.alias_name,
                },
                Some(alias_operations::Action::RenameAlias(r)) => AliasChange::Rename {
                    old: r.old_alias_name,
                    new: r.new_alias_name,
                },
                None => return Err(Status::invalid_argument("alias operation without action")),
            });
        }
        let registry = self.registry.clone();
        blocking(move || registry.change_aliases(&changes)).await?;
        Ok(Response::new(grpc::CollectionOperationResponse {
            result: true,
            time: 0.0,
        }))
    }

    async fn list_collection_aliases(
        &self,
        request: Request<grpc::ListCollectionAliasesRequest>,
    ) -> RpcResult<grpc::ListAliasesResponse> {
        let collection = request.into_inner().collection_name;
        Ok(Response::new(grpc::ListAliasesResponse {
            aliases: self
                .registry
                .aliases()
                .into_iter()
                .filter(|(_, target)| *target == collection)
                .map(|(alias_name, collection_name)| grpc::AliasDescription {
                    alias_name,
                    collection_name,
                })
                .collect(),
            time: 0.0,
        }))
    }

    async fn list_aliases(
        &self,
        _request: Request<grpc::ListAliasesRequest>,
    ) -> RpcResult<grpc::ListAliasesResponse> {
        Ok(Response::new(grpc::ListAliasesResponse {
            aliases: self
                .registry
                .aliases()
                .into_iter()
                .map(|(alias_name, collection_name)| grpc::AliasDescription {
                    alias_name,
                    collection_name,
                })
                .collect(),
            time: 0.0,
        }))
    }

    async fn collection_exists(
        &self,
        request: Request<grpc::CollectionExistsRequest>,
    ) -> RpcResult<grpc::CollectionExistsResponse> {
        let name = request.into_inner().collection_name;
        let exists = self.registry.collection(&name).is_ok();
        Ok(Response::new(grpc::CollectionExistsResponse {
            result: Some(grpc::CollectionExists { exists }),
            time: 0.0,
        }))
    }

    unimplemented_rpcs! {
        update(UpdateCollection) -> CollectionOperationResponse;
        collection_cluster_info(CollectionClusterInfoRequest) -> CollectionClusterInfoResponse;
        update_collection_cluster_setup(UpdateCollectionClusterSetupRequest) -> UpdateCollectionClusterSetupResponse;
        create_shard_key(CreateShardKeyRequest) -> CreateShardKeyResponse;
        delete_shard_key(DeleteShardKeyRequest) -> DeleteShardKeyResponse;
        list_shard_keys(ListShardKeysRequest) -> ListShardKeysResponse;
    }
}

#[tonic::async_trait]
impl Points for Engine {
    async fn upsert(
        &self,
        request: Request<grpc::UpsertPoints>,
    ) -> RpcResult<grpc::PointsOperationResponse> {
        let request = request.into_inner();
        if request.update_filter.is_some() || request.shard_key_selector.is_some() {
            return Err(unsupported("conditional or sharded upserts"));
        }
        let points = request
            .points
            .into_iter()
            .map(|point| {
                Ok(PointStructPersisted {
                    id: edge_id(point.id)?,
                    vector: VectorStructPersisted::Single(edge_vector(point.vectors)?),
                    payload: Some(edge_payload(point.payload)),
                })
            })
            .collect::<Result<Vec<_>, Status>>()?;
        let collection = self
            .registry
            .collection(&request.collection_name)
            .map_err(status)?;
        // Every write is durable before it is acknowledged (wait or not).
        blocking(move || collection.upsert(points)).await?;
        Ok(Response::new(completed()))
    }

    async fn delete(
        &self,
        request: Request<grpc::DeletePoints>,
    ) -> RpcResult<grpc::PointsOperationResponse> {
        let request = request.into_inner();
        let operation = match request.points.and_then(|p| p.points_selector_one_of) {
            Some(PointsSelectorOneOf::Points(list)) => PointOperations::DeletePoints {
                ids: list
                    .ids
                    .into_iter()
                    .map(|id| edge_id(Some(id)))
                    .collect::<Result<_, _>>()?,
            },
            Some(PointsSelectorOneOf::Filter(filter)) => {
                PointOperations::DeletePointsByFilter(edge_filter(filter)?)
            }
            None => return Err(Status::invalid_argument("delete without a points selector")),
        };
        let collection = self
            .registry
            .collection(&request.collection_name)
            .map_err(status)?;
        blocking(move || collection.write(UpdateOperation::PointOperation(operation))).await?;
        Ok(Response::new(completed()))
    }

    async fn get(&self, request: Request<grpc::GetPoints>) -> RpcResult<grpc::GetResponse> {
        let request = request.into_inner();
        let ids = request
            .ids
            .into_iter()
            .map(|id| edge_id(Some(id)))
            .collect::<Result<Vec<_>, _>>()?;
        let with_payload = wants_payload(request.with_payload)?;
        let with_vector = wants_vector(request.with_vectors)?;
        let collection = self
            .registry
            .collection(&request.collection_name)
            .map_err(status)?;
        let records = blocking(move || {
            collection
                .shard()
                .retrieve(
                    &ids,
                    Some(WithPayloadInterface::Bool(with_payload)),
                    Some(WithVector::Bool(with_vector)),
                )
                .map_err(|e| twin_store::embedded::registry::edge_error("retrieve", e))
        })
        .await?;
        Ok(Response::new(grpc::GetResponse {
            result: records.into_iter().map(retrieved).collect(),
            time: 0.0,
            usage: None,
        }))
    }

    async fn create_field_index(
        &self,
        request: Request<grpc::CreateFieldIndexCollection>,
    ) -> RpcResult<grpc::PointsOperationResponse> {
        let request = request.into_inner();
        if request.field_type != Some(grpc::FieldType::Keyword as i32) {
            return Err(unsupported("payload indexes other than keyword"));
        }
        let collection = self
            .registry
            .collection(&request.collection_name)
            .map_err(status)?;
        let field = request.field_name;
        blocking(move || collection.create_keyword_index(&field)).await?;
        Ok(Response::new(completed()))
    }

    async fn scroll(
        &self,
        request: Request<grpc::ScrollPoints>,
    ) -> RpcResult<grpc::ScrollResponse> {
        let request = request.into_inner();
        if request.order_by.is_some() {
            return Err(unsupported("ordered scrolls"));
        }
        let scroll = ScrollRequest {
            offset: request.offset.map(|id| edge_id(Some(id))).transpose()?,
            limit: Some(request.limit.unwrap_or(10) as usize),
            filter: optional_filter(request.filter)?,
            with_payload: Some(WithPayloadInterface::Bool(wants_payload(
                request.with_payload,
            )?)),
            with_vector: WithVector::Bool(wants_vector(request.with_vectors)?),
            order_by: None,
        };
        let collection = self
            .registry
            .collection(&request.collection_name)
            .map_err(status)?;
        let (records, next) = blocking(move || {
            collection
                .shard()
                .scroll(scroll)
                .map_err(|e| twin_store::embedded::registry::edge_error("scroll", e))
        })
        .await?;
        Ok(Response::new(grpc::ScrollResponse {
            next_page_offset: next.map(grpc_id),
            result: records.into_iter().map(retrieved).collect(),
            time: 0.0,
            usage: None,
        }))
    }

    async fn count(&self, request: Request<grpc::CountPoints>) -> RpcResult<grpc::CountResponse> {
        let request = request.into_inner();
        let count = CountRequest {
            filter: optional_filter(request.filter)?,
            exact: request.exact.unwrap_or(true),
        };
        let collection = self
            .registry
            .collection(&request.collection_name)
            .map_err(status)?;
        let n = blocking(move || {
            collection
                .shard()
                .count(count)
                .map_err(|e| twin_store::embedded::registry::edge_error("count", e))
        })
        .await?;
        Ok(Response::new(grpc::CountResponse {
            result: Some(grpc::CountResult { count: n as u64 }),
            time: 0.0,
            usage: None,
        }))
    }

    async fn query(&self, request: Request<grpc::QueryPoints>) -> RpcResult<grpc::QueryResponse> {
        let request = request.into_inner();
        if !request.prefetch.is_empty() || request.using.is_some() || request.lookup_from.is_some()
        {
            return Err(unsupported("prefetch, named vectors or lookups"));
        }
        let vector = match request.query.and_then(|q| q.variant) {
            Some(grpc::query::Variant::Nearest(input)) => match input.variant {
                Some(vector_input::Variant::Dense(dense)) => dense.data,
                _ => return Err(unsupported("nearest queries other than a dense vector")),
            },
            _ => return Err(unsupported("queries other than nearest")),
        };
        let search = SearchRequest {
            query: QueryEnum::Nearest(NamedQuery {
                query: VectorInternal::from(vector),
                using: None,
            }),
            filter: optional_filter(request.filter)?,
            params: None,
            limit: request.limit.unwrap_or(10) as usize,
            offset: request.offset.unwrap_or(0) as usize,
            with_payload: Some(WithPayloadInterface::Bool(wants_payload(
                request.with_payload,
            )?)),
            with_vector: Some(WithVector::Bool(wants_vector(request.with_vectors)?)),
            score_threshold: request.score_threshold,
        };
        let collection = self
            .registry
            .collection(&request.collection_name)
            .map_err(status)?;
        let points = blocking(move || {
            collection
                .shard()
                .search(search)
                .map_err(|e| twin_store::embedded::registry::edge_error("search", e))
        })
        .await?;
        Ok(Response::new(grpc::QueryResponse {
            result: points
                .into_iter()
                .map(|p| grpc::ScoredPoint {
                    id: Some(grpc_id(p.id)),
                    payload: grpc_payload(p.payload),
                    score: p.score,
                    version: p.version,
                    vectors: grpc_vectors(p.vector),
                    shard_key: None,
                    order_value: None,
                })
                .collect(),
            time: 0.0,
            usage: None,
        }))
    }

    unimplemented_rpcs! {
        update_vectors(UpdatePointVectors) -> PointsOperationResponse;
        delete_vectors(DeletePointVectors) -> PointsOperationResponse;
        set_payload(SetPayloadPoints) -> PointsOperationResponse;
        overwrite_payload(SetPayloadPoints) -> PointsOperationResponse;
        delete_payload(DeletePayloadPoints) -> PointsOperationResponse;
        clear_payload(ClearPayloadPoints) -> PointsOperationResponse;
        delete_field_index(DeleteFieldIndexCollection) -> PointsOperationResponse;
        create_vector_name(CreateVectorNameRequest) -> PointsOperationResponse;
        delete_vector_name(DeleteVectorNameRequest) -> PointsOperationResponse;
        search(SearchPoints) -> SearchResponse;
        search_batch(SearchBatchPoints) -> SearchBatchResponse;
        search_groups(SearchPointGroups) -> SearchGroupsResponse;
        recommend(RecommendPoints) -> RecommendResponse;
        recommend_batch(RecommendBatchPoints) -> RecommendBatchResponse;
        recommend_groups(RecommendPointGroups) -> RecommendGroupsResponse;
        discover(DiscoverPoints) -> DiscoverResponse;
        discover_batch(DiscoverBatchPoints) -> DiscoverBatchResponse;
        update_batch(UpdateBatchPoints) -> UpdateBatchResponse;
        query_batch(QueryBatchPoints) -> QueryBatchResponse;
        query_groups(QueryPointGroups) -> QueryGroupsResponse;
        facet(FacetCounts) -> FacetResponse;
        search_matrix_pairs(SearchMatrixPoints) -> SearchMatrixPairsResponse;
        search_matrix_offsets(SearchMatrixPoints) -> SearchMatrixOffsetsResponse;
    }
}
