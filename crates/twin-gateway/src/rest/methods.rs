//! The table of RPCs the REST edge transcodes: each method's gRPC path and the JSON ↔
//! protobuf codecs of its request and response types. A test holds the table to the
//! API's descriptor, so an RPC added to `proto/` without a REST entry fails it.

use prost::Message;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use twin_proto::v1 as pb;

/// JSON request → the protobuf messages to send (one, or one per item of a client
/// stream); failures are the reason.
type Encode = fn(Value) -> Result<Vec<Vec<u8>>, String>;
/// A protobuf response → its JSON.
type Decode = fn(&[u8]) -> Result<Vec<u8>, String>;

#[derive(Debug)]
pub struct RestMethod {
    /// `/twin.v1.Service/Method`.
    pub grpc_path: &'static str,
    /// The request message's full name, for errors and the OpenAPI document.
    pub request_type: &'static str,
    /// True for a client stream: the JSON body is `{"items": [ ... ]}`.
    pub client_streaming: bool,
    pub encode: Encode,
    pub decode: Decode,
}

impl RestMethod {
    /// The method name in kebab case: `VerifySubject` → `verify-subject`.
    pub fn rest_name(&self) -> String {
        rest_name(self.grpc_path.rsplit('/').next().unwrap_or_default())
    }

    pub fn rest_path(&self) -> String {
        rest_path(self.grpc_path.rsplit('/').next().unwrap_or_default())
    }

    /// The request message's name in `twin.v1` ("VerifyRequest").
    pub fn request_name(&self) -> &'static str {
        self.request_type
            .rsplit(':')
            .next()
            .unwrap_or_default()
            .trim()
    }
}

fn rest_name(method: &str) -> String {
    let mut name = String::with_capacity(method.len() + 4);
    for (i, c) in method.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                name.push('-');
            }
            name.push(c.to_ascii_lowercase());
        } else {
            name.push(c);
        }
    }
    name
}

/// The REST path of an RPC by its method name: `VerifySubject` → `/v1/verify-subject`.
pub fn rest_path(method: &str) -> String {
    format!("/v1/{}", rest_name(method))
}

fn unary<T: DeserializeOwned + Message>(value: Value) -> Result<Vec<Vec<u8>>, String> {
    let message: T = serde_json::from_value(value).map_err(|e| e.to_string())?;
    Ok(vec![message.encode_to_vec()])
}

fn stream<T: DeserializeOwned + Message>(value: Value) -> Result<Vec<Vec<u8>>, String> {
    let Value::Object(mut object) = value else {
        return Err("expected an object {\"items\": [ ... ]}".to_owned());
    };
    let items = match object.remove("items") {
        Some(Value::Array(items)) => items,
        Some(_) => return Err("`items` must be an array".to_owned()),
        None => Vec::new(),
    };
    if let Some(other) = object.keys().next() {
        return Err(format!("unknown field `{other}`; expected only `items`"));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let message: T =
                serde_json::from_value(item).map_err(|e| format!("items[{i}]: {e}"))?;
            Ok(message.encode_to_vec())
        })
        .collect()
}

fn decode<T: Serialize + Message + Default>(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let message = T::decode(bytes).map_err(|e| e.to_string())?;
    serde_json::to_vec(&message).map_err(|e| e.to_string())
}

macro_rules! rest_methods {
    ($($kind:ident $service:literal $method:literal : $req:ty => $resp:ty;)*) => {
        &[$(RestMethod {
            grpc_path: concat!("/twin.v1.", $service, "/", $method),
            request_type: stringify!($req),
            client_streaming: rest_methods!(@streaming $kind),
            encode: $kind::<$req>,
            decode: decode::<$resp>,
        }),*]
    };
    (@streaming unary) => { false };
    (@streaming stream) => { true };
}

/// Every RPC of `twin.v1`.
pub static METHODS: &[RestMethod] = rest_methods! {
    unary "Verification" "Verify": pb::VerifyRequest => pb::VerifyResponse;
    unary "Verification" "VerifySubject": pb::VerifySubjectRequest => pb::VerifySubjectResponse;
    unary "Similarity" "Search": pb::SearchRequest => pb::SearchResponse;
    unary "Similarity" "Embed": pb::EmbedRequest => pb::EmbedResponse;
    unary "Enrollment" "Enroll": pb::EnrollRequest => pb::EnrollResponse;
    stream "Enrollment" "EnqueueBatch": pb::EnqueueItem => pb::EnqueueBatchResponse;
    unary "Enrollment" "GetJob": pb::GetJobRequest => pb::Job;
    unary "Enrollment" "DeleteSubject": pb::DeleteSubjectRequest => pb::DeleteSubjectResponse;
    unary "Enrollment" "GetSubject": pb::GetSubjectRequest => pb::Subject;
    unary "Models" "ListModels": pb::ListModelsRequest => pb::ListModelsResponse;
    unary "Models" "GetModel": pb::GetModelRequest => pb::Model;
    unary "Models" "GetModelCard": pb::GetModelRequest => pb::ModelCard;
    unary "AuditTrail" "QueryAudit": pb::QueryAuditRequest => pb::QueryAuditResponse;
    unary "ApiKeys" "ListKeys": pb::ListKeysRequest => pb::ListKeysResponse;
    unary "ApiKeys" "CreateKey": pb::CreateKeyRequest => pb::CreateKeyResponse;
    unary "ApiKeys" "RevokeKey": pb::RevokeKeyRequest => pb::RevokeKeyResponse;
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_exactly_the_apis_methods() {
        let descriptors =
            prost_types::FileDescriptorSet::decode(twin_proto::FILE_DESCRIPTOR_SET).expect("fds");
        let mut api = Vec::new();
        for file in descriptors.file.iter().filter(|f| f.package() == "twin.v1") {
            for service in &file.service {
                for method in &service.method {
                    api.push((
                        format!("/twin.v1.{}/{}", service.name(), method.name()),
                        method
                            .input_type()
                            .trim_start_matches(".twin.v1.")
                            .to_owned(),
                        method.client_streaming(),
                    ));
                }
            }
        }
        api.sort();
        let mut table: Vec<_> = METHODS
            .iter()
            .map(|m| {
                (
                    m.grpc_path.to_owned(),
                    m.request_name().to_owned(),
                    m.client_streaming,
                )
            })
            .collect();
        table.sort();
        assert_eq!(table, api);
    }

    #[test]
    fn rest_names_are_kebab_case() {
        assert_eq!(rest_path("VerifySubject"), "/v1/verify-subject");
        assert_eq!(rest_path("Verify"), "/v1/verify");
        assert_eq!(rest_path("GetModelCard"), "/v1/get-model-card");
    }

    #[test]
    fn json_follows_the_proto3_mapping() {
        let encoded = unary::<pb::VerifySubjectRequest>(serde_json::json!({
            "subjectId": "alice",
            "probe": {"data": "AAEC", "source": "p.png"},
            "aggregation": "AGGREGATION_MEAN",
            "max_references": 5,
        }))
        .expect("valid");
        let request = pb::VerifySubjectRequest::decode(encoded[0].as_slice()).expect("decode");
        assert_eq!(request.subject_id, "alice");
        assert_eq!(request.aggregation, pb::Aggregation::Mean as i32);
        assert_eq!(request.max_references, 5);
        let probe = request.probe.expect("probe");
        assert_eq!(probe.content, Some(pb::image::Content::Data(vec![0, 1, 2])));

        let error = unary::<pb::VerifyRequest>(serde_json::json!({"c": 1})).expect_err("unknown");
        assert!(error.contains("unknown field `c`"), "{error}");
        let error = stream::<pb::EnqueueItem>(serde_json::json!({"items": [{}, {"subjectId": 3}]}))
            .expect_err("bad item");
        assert!(error.starts_with("items[1]"), "{error}");
    }
}
