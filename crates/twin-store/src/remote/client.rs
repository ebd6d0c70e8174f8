//! The connection to a Qdrant server: the channel (timeouts, TLS with an optional private CA,
//! the `api-key` header), retried calls, and the reads and writes the store's methods share.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use qdrant_client::qdrant::{
    alias_operations, collections_client::CollectionsClient, payload_index_params,
    points_client::PointsClient, points_selector::PointsSelectorOneOf, qdrant_client::QdrantClient,
    vectors_config, AliasOperations, ChangeAliases, CountPoints, CreateFieldIndexCollection,
    DeletePoints, FieldType, Filter, GetCollectionInfoRequest, GetPoints, KeywordIndexParams,
    ListAliasesRequest, PayloadIndexParams, PointId, PointsSelector,
};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::Status;
use twin_core::config::StoreConfig;
use uuid::Uuid;

use super::wire::{is_loopback, status_error};
use crate::contract::Alias;
use crate::distance::IndexDistance;
use crate::error::StoreError;
use crate::payload;
use crate::retry::RetryPolicy;

/// Largest response accepted.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// How long a collection's distance is trusted before it is read again (an alias may
/// be switched by another process to a collection of another metric).
const DISTANCE_TTL: Duration = Duration::from_secs(10);

/// Adds the `api-key` header Qdrant checks to every call.
#[derive(Clone)]
pub(super) struct ApiKey(Option<MetadataValue<Ascii>>);

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

pub(super) type Transport = InterceptedService<Channel, ApiKey>;

/// A Qdrant server reached over gRPC.
#[derive(Debug)]
pub struct RemoteStore {
    pub(super) url: String,
    pub(super) points: PointsClient<Transport>,
    pub(super) collections: CollectionsClient<Transport>,
    pub(super) service: QdrantClient<Transport>,
    pub(super) retry: RetryPolicy,
    pub(super) distances: Mutex<HashMap<String, (IndexDistance, Instant)>>,
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

    pub(super) fn error(&self, what: &str, status: Status) -> StoreError {
        status_error(&self.url, what, status)
    }

    /// The distance of a collection (or alias), cached for [`DISTANCE_TTL`].
    /// One Qdrant call with retries: every attempt gets a clone of `client` and of the
    /// request; a failed call becomes a [`StoreError`] naming `what`.
    pub(super) async fn rpc<C, Req, Resp, F, Fut>(
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

    pub(super) async fn distance(&self, collection: &str) -> Result<IndexDistance, StoreError> {
        if let Some((distance, at)) = self.cached_distance(collection) {
            if at.elapsed() < DISTANCE_TTL {
                return Ok(distance);
            }
        }
        let (_, distance, _) = self.read_collection(collection).await?;
        Ok(distance)
    }

    pub(super) fn cached_distance(&self, collection: &str) -> Option<(IndexDistance, Instant)> {
        self.distances
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(collection)
            .copied()
    }

    pub(super) fn forget_distance(&self, name: &str) {
        self.distances
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(name);
    }

    /// Size, distance and counts of a collection (or alias), as the server has it.
    pub(super) async fn read_collection(
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

    pub(super) async fn aliases(&self) -> Result<Vec<Alias>, StoreError> {
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

    pub(super) async fn change_aliases(
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

    pub(super) async fn create_keyword_index(
        &self,
        collection: &str,
        field: &str,
    ) -> Result<(), StoreError> {
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

    pub(super) async fn count_filtered(
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

    pub(super) async fn delete_selected(
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

    pub(super) async fn retrieve(
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
