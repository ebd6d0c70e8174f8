//! twin's vector storage: one contract ([`VectorStore`]) and two Qdrant backends —
//! a Qdrant server over gRPC ([`RemoteStore`]) and Qdrant's engine embedded in the
//! process ([`EmbeddedStore`]). [`open_store`] picks one from the configuration.
//!
//! Scores follow twin's convention (higher = more similar; distances negated), point
//! ids are the deterministic UUIDs of `twin_core::ids::point_id`, and every write
//! returns only once it is applied and durable.

mod contract;
mod distance;
pub mod embedded;
mod error;
mod payload;
pub mod remote;
pub mod retry;

use std::sync::Arc;

use twin_core::config::StoreConfig;

pub use contract::{
    collection_name, model_alias, validate_label, validate_name, Alias, CollectionInfo,
    CollectionSpec, Hit, Point, PointFilter, PointPayload, SearchRequest, StoredPoint, VectorStore,
    MAX_LABELS, MAX_TOP_K,
};
pub use embedded::EmbeddedStore;
pub use error::StoreError;
pub use remote::RemoteStore;
pub use retry::RetryPolicy;

/// Opens the store the configuration names: `"embedded"` (Qdrant Edge under
/// `data_dir`, locked for this process) or `"qdrant"` (a server at `url`, connected
/// lazily).
pub async fn open_store(config: &StoreConfig) -> Result<Arc<dyn VectorStore>, StoreError> {
    match config.backend.as_str() {
        "embedded" => Ok(Arc::new(
            EmbeddedStore::open(&config.data_dir, config.optimize_after_points).await?,
        )),
        "qdrant" => Ok(Arc::new(RemoteStore::connect(config).await?)),
        other => Err(StoreError::InvalidArgument(format!(
            "store.backend must be \"embedded\" or \"qdrant\", got {other:?}"
        ))),
    }
}
