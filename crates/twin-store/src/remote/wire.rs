//! Between twin's types and Qdrant's gRPC messages: filters, payloads, point ids and
//! vectors, and a Qdrant status as the [`StoreError`] a caller can act on.

use std::collections::HashMap;

use qdrant_client::qdrant::{
    condition::ConditionOneOf, point_id::PointIdOptions, r#match::MatchValue, vector_output,
    vectors_output, Condition, FieldCondition, Filter, Match, PointId, RepeatedStrings, Value,
    VectorsOutput,
};
use tonic::{Code, Status};
use uuid::Uuid;

use crate::contract::{Point, PointFilter, StoredPoint};
use crate::error::StoreError;
use crate::payload::{self, Term};

pub(super) fn is_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.starts_with("localhost") || rest.starts_with("127.") || rest.starts_with("[::1]")
}

/// Maps a gRPC status from Qdrant to what a caller can do about it.
pub(super) fn status_error(url: &str, what: &str, status: Status) -> StoreError {
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

pub(super) fn grpc_filter(filter: &PointFilter) -> Filter {
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

pub(super) fn grpc_payload(point: &Point) -> HashMap<String, Value> {
    payload::encode(&point.payload)
        .into_iter()
        .map(|(k, v)| (k, Value::from(v)))
        .collect()
}

pub(super) fn twin_payload(
    id: &Uuid,
    fields: HashMap<String, Value>,
) -> Result<crate::contract::PointPayload, StoreError> {
    let map = fields
        .into_iter()
        .map(|(k, v)| (k, serde_json::Value::from(v)))
        .collect();
    payload::decode(&id.to_string(), map)
}

pub(super) fn uuid_of(id: Option<PointId>) -> Result<Uuid, StoreError> {
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
pub(super) fn dense_of(vectors: Option<VectorsOutput>) -> Option<Vec<f32>> {
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

pub(super) fn stored_point(
    point: qdrant_client::qdrant::RetrievedPoint,
) -> Result<StoredPoint, StoreError> {
    let id = uuid_of(point.id)?;
    Ok(StoredPoint {
        payload: twin_payload(&id, point.payload)?,
        vector: dense_of(point.vectors),
        id,
    })
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
