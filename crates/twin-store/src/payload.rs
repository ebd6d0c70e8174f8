//! How twin's payload looks inside Qdrant, shared by both backends so that a
//! collection written by one reads the same through the other.
//!
//! Labels are stored as one keyword array of `key=value` terms (label keys cannot
//! contain `=`), so a single keyword index serves every label filter.

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::contract::{PointFilter, PointPayload};
use crate::error::StoreError;

pub(crate) const TENANT: &str = "tenant";
pub(crate) const SUBJECT_ID: &str = "subject_id";
pub(crate) const LABELS: &str = "labels";

/// Payload fields with a keyword index.
pub(crate) const INDEXED_FIELDS: [&str; 3] = [TENANT, SUBJECT_ID, LABELS];

/// The payload document as stored. The default tenant's points carry no `tenant`
/// field (as every point did before tenants existed), so a filter on "no tenant"
/// finds them, old and new alike.
#[derive(Debug, Serialize, Deserialize)]
struct PayloadDoc {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    tenant: String,
    subject_id: String,
    image_sha256: String,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    source: String,
    enrolled_at_ms: i64,
    model_id: String,
    /// The thumbnail PNG, base64.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    thumbnail: String,
}

/// The stored form of one label.
pub(crate) fn label_term(key: &str, value: &str) -> String {
    format!("{key}={value}")
}

pub(crate) fn encode(payload: &PointPayload) -> Map<String, Value> {
    let doc = PayloadDoc {
        tenant: payload.tenant.clone(),
        subject_id: payload.subject_id.clone(),
        image_sha256: payload.image_sha256.clone(),
        labels: payload
            .labels
            .iter()
            .map(|(k, v)| label_term(k, v))
            .collect(),
        source: payload.source.clone(),
        enrolled_at_ms: payload.enrolled_at_ms,
        model_id: payload.model_id.clone(),
        thumbnail: if payload.thumbnail.is_empty() {
            String::new()
        } else {
            base64::engine::general_purpose::STANDARD.encode(&payload.thumbnail)
        },
    };
    match serde_json::to_value(doc) {
        Ok(Value::Object(map)) => map,
        // A struct of strings and integers always serializes to an object.
        _ => Map::new(),
    }
}

pub(crate) fn decode(point: &str, map: Map<String, Value>) -> Result<PointPayload, StoreError> {
    let doc: PayloadDoc = serde_json::from_value(Value::Object(map)).map_err(|e| {
        StoreError::Internal(format!(
            "point {point} has a payload twin did not write ({e}): was the collection filled \
             by another program?"
        ))
    })?;
    let mut labels = std::collections::BTreeMap::new();
    for term in doc.labels {
        let (key, value) = term.split_once('=').ok_or_else(|| {
            StoreError::Internal(format!("point {point} has a malformed label {term:?}"))
        })?;
        labels.insert(key.to_owned(), value.to_owned());
    }
    let thumbnail = base64::engine::general_purpose::STANDARD
        .decode(doc.thumbnail.as_bytes())
        .map_err(|e| {
            StoreError::Internal(format!("point {point} has a malformed thumbnail: {e}"))
        })?;
    Ok(PointPayload {
        thumbnail,
        tenant: doc.tenant,
        subject_id: doc.subject_id,
        image_sha256: doc.image_sha256,
        labels,
        source: doc.source,
        enrolled_at_ms: doc.enrolled_at_ms,
        model_id: doc.model_id,
    })
}

/// One condition of a filter; all of a filter's terms must hold.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Term {
    /// The keyword field equals one of the values.
    AnyOf(&'static str, Vec<String>),
    /// The keyword field (or one element of the keyword array) equals the value.
    Equals(&'static str, String),
    /// The field is absent.
    Missing(&'static str),
}

/// The conditions a [`PointFilter`] stands for, its tenant's first: never empty.
pub(crate) fn filter_terms(filter: &PointFilter) -> Vec<Term> {
    let mut terms = vec![if filter.tenant.is_empty() {
        Term::Missing(TENANT)
    } else {
        Term::Equals(TENANT, filter.tenant.clone())
    }];
    match filter.subject_ids.as_slice() {
        [] => {}
        [one] => terms.push(Term::Equals(SUBJECT_ID, one.clone())),
        many => terms.push(Term::AnyOf(SUBJECT_ID, many.to_vec())),
    }
    for (key, value) in &filter.labels {
        terms.push(Term::Equals(LABELS, label_term(key, value)));
    }
    terms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trips_through_its_stored_form() {
        let payload = PointPayload {
            tenant: "acme".into(),
            subject_id: "alice".into(),
            image_sha256: "ab".repeat(32),
            labels: [("session".to_owned(), "2024=05".to_owned())].into(),
            source: "scan-1.png".into(),
            enrolled_at_ms: 1_700_000_000_123,
            model_id: "cd".repeat(32),
            thumbnail: vec![137, 80, 78, 71],
        };
        let stored = encode(&payload);
        assert_eq!(stored["labels"], serde_json::json!(["session=2024=05"]));
        assert_eq!(stored["thumbnail"], "iVBORw==");
        assert_eq!(decode("p", stored).expect("decodes"), payload);
    }

    #[test]
    fn the_default_tenant_is_stored_without_a_tenant_field_as_before() {
        let payload = PointPayload {
            subject_id: "alice".into(),
            ..PointPayload::default()
        };
        let stored = encode(&payload);
        assert!(!stored.contains_key(TENANT), "{stored:?}");
        assert!(!stored.contains_key("thumbnail"), "{stored:?}");
        assert_eq!(decode("p", stored).expect("decodes"), payload);
    }

    #[test]
    fn foreign_payloads_are_reported_not_guessed() {
        let mut map = Map::new();
        map.insert("title".into(), Value::String("x".into()));
        let err = decode("p1", map).expect_err("not twin's");
        assert!(err.to_string().contains("point p1"), "{err}");
    }

    #[test]
    fn filters_become_terms() {
        assert_eq!(
            filter_terms(&PointFilter::all()),
            vec![Term::Missing(TENANT)]
        );
        let mut filter = PointFilter {
            subject_ids: vec!["a".into(), "b".into()],
            ..PointFilter::default()
        }
        .in_tenant("acme");
        filter.labels.insert("k".into(), "v".into());
        assert_eq!(
            filter_terms(&filter),
            vec![
                Term::Equals(TENANT, "acme".into()),
                Term::AnyOf(SUBJECT_ID, vec!["a".into(), "b".into()]),
                Term::Equals(LABELS, "k=v".into())
            ]
        );
    }
}
