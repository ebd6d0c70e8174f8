//! The OpenAPI 3 document of the REST edge, generated from the API's own descriptor
//! (`proto/twin/v1`, with its comments) and the REST method table: nothing in it is
//! written by hand, so it cannot drift from what the server speaks.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use bytes::Bytes;
use prost::Message;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{
    DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorProto,
    FileDescriptorSet, SourceCodeInfo,
};
use serde_json::{json, Map, Value};

use super::methods::{rest_path, METHODS};
use crate::status::http_statuses;

/// The document, built once.
pub fn document() -> &'static Bytes {
    static DOCUMENT: LazyLock<Bytes> = LazyLock::new(|| {
        let document = build(twin_proto::FILE_DESCRIPTOR_SET);
        Bytes::from(serde_json::to_vec_pretty(&document).unwrap_or_default())
    });
    &DOCUMENT
}

/// Comments of a descriptor element by its source path.
struct Comments(BTreeMap<Vec<i32>, String>);

impl Comments {
    fn of(info: Option<&SourceCodeInfo>) -> Self {
        let mut map = BTreeMap::new();
        for location in info.map(|i| i.location.as_slice()).unwrap_or_default() {
            let text = location.leading_comments().trim();
            if !text.is_empty() {
                let text = text.lines().map(str::trim).collect::<Vec<_>>().join("\n");
                map.insert(location.path.clone(), text);
            }
        }
        Self(map)
    }

    fn get(&self, path: &[i32]) -> Option<&str> {
        self.0.get(path).map(String::as_str)
    }
}

// Field numbers of FileDescriptorProto / DescriptorProto / ServiceDescriptorProto in
// source paths (descriptor.proto).
const FILE_MESSAGE: i32 = 4;
const FILE_ENUM: i32 = 5;
const FILE_SERVICE: i32 = 6;
const MESSAGE_FIELD: i32 = 2;
const MESSAGE_NESTED: i32 = 3;
const MESSAGE_ENUM: i32 = 4;
const SERVICE_METHOD: i32 = 2;

/// The schema name of a proto type name: `.twin.v1.Image` → `Image`,
/// `.twin.v1.Image.Kind` → `Image.Kind`, `.google.protobuf.Timestamp` → `Timestamp`.
fn schema_name(type_name: &str) -> String {
    type_name
        .trim_start_matches(".twin.v1.")
        .trim_start_matches(".google.protobuf.")
        .to_owned()
}

fn reference(type_name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{}", schema_name(type_name))})
}

fn with_description(mut schema: Value, description: Option<&str>) -> Value {
    if let (Some(text), Value::Object(object)) = (description, &mut schema) {
        if object.contains_key("$ref") {
            // A $ref may not have siblings in OpenAPI 3.0: wrap it.
            return json!({"allOf": [schema], "description": text});
        }
        object.insert("description".to_owned(), Value::String(text.to_owned()));
    }
    schema
}

struct Builder {
    schemas: Map<String, Value>,
    /// Map-entry messages (`map<K, V>` fields) by full name: (key, value) fields.
    map_entries: BTreeMap<String, FieldDescriptorProto>,
}

impl Builder {
    /// The proto3 JSON mapping of one field's type.
    fn field_type(&self, field: &FieldDescriptorProto) -> Value {
        match field.r#type() {
            Type::Double | Type::Float => {
                json!({"type": "number", "format": if field.r#type() == Type::Double { "double" } else { "float" }})
            }
            Type::Int32 | Type::Sint32 | Type::Sfixed32 => {
                json!({"type": "integer", "format": "int32"})
            }
            Type::Uint32 | Type::Fixed32 => {
                json!({"type": "integer", "format": "int32", "minimum": 0})
            }
            // 64-bit integers are strings in proto3 JSON (numbers are accepted too).
            Type::Int64 | Type::Sint64 | Type::Sfixed64 | Type::Uint64 | Type::Fixed64 => {
                json!({"type": "string", "format": "int64"})
            }
            Type::Bool => json!({"type": "boolean"}),
            Type::String => json!({"type": "string"}),
            Type::Bytes => json!({"type": "string", "format": "byte"}),
            Type::Enum => reference(field.type_name()),
            Type::Message | Type::Group => {
                if let Some(value) = self.map_entries.get(field.type_name()) {
                    return json!({"type": "object", "additionalProperties": self.field_type(value)});
                }
                reference(field.type_name())
            }
        }
    }

    fn field_schema(&self, field: &FieldDescriptorProto) -> Value {
        let item = self.field_type(field);
        let is_map = self.map_entries.contains_key(field.type_name());
        if field.label() == Label::Repeated && !is_map {
            json!({"type": "array", "items": item})
        } else {
            item
        }
    }

    fn message(
        &mut self,
        scope: &str,
        message: &DescriptorProto,
        path: &[i32],
        comments: &Comments,
    ) {
        let full = format!("{scope}.{}", message.name());
        if message.options.as_ref().is_some_and(|o| o.map_entry()) {
            return;
        }
        let mut properties = Map::new();
        for (i, field) in message.field.iter().enumerate() {
            let mut field_path = path.to_vec();
            field_path.extend([MESSAGE_FIELD, i as i32]);
            let mut description = comments.get(&field_path).map(str::to_owned);
            if let Some(oneof) = field
                .oneof_index
                .and_then(|i| message.oneof_decl.get(i as usize))
            {
                if !field.proto3_optional() {
                    let note = format!("One of `{}`: set at most one of its fields.", oneof.name());
                    description = Some(match description {
                        Some(text) => format!("{text}\n\n{note}"),
                        None => note,
                    });
                }
            }
            properties.insert(
                field.json_name().to_owned(),
                with_description(self.field_schema(field), description.as_deref()),
            );
        }
        let schema = with_description(
            json!({"type": "object", "properties": properties}),
            comments.get(path),
        );
        self.schemas.insert(schema_name(&full), schema);
        for (i, nested) in message.nested_type.iter().enumerate() {
            let mut nested_path = path.to_vec();
            nested_path.extend([MESSAGE_NESTED, i as i32]);
            self.message(&full, nested, &nested_path, comments);
        }
        for (i, nested) in message.enum_type.iter().enumerate() {
            let mut nested_path = path.to_vec();
            nested_path.extend([MESSAGE_ENUM, i as i32]);
            self.enumeration(&full, nested, &nested_path, comments);
        }
    }

    fn enumeration(
        &mut self,
        scope: &str,
        enumeration: &EnumDescriptorProto,
        path: &[i32],
        comments: &Comments,
    ) {
        let full = format!("{scope}.{}", enumeration.name());
        let values: Vec<Value> = enumeration
            .value
            .iter()
            .map(|v| Value::String(v.name().to_owned()))
            .collect();
        self.schemas.insert(
            schema_name(&full),
            with_description(
                json!({"type": "string", "enum": values}),
                comments.get(path),
            ),
        );
    }

    fn collect_map_entries(&mut self, scope: &str, message: &DescriptorProto) {
        let full = format!("{scope}.{}", message.name());
        if message.options.as_ref().is_some_and(|o| o.map_entry()) {
            if let Some(value) = message.field.iter().find(|f| f.name() == "value") {
                self.map_entries.insert(full.clone(), value.clone());
            }
        }
        for nested in &message.nested_type {
            self.collect_map_entries(&full, nested);
        }
    }
}

fn scope(file: &FileDescriptorProto) -> String {
    format!(".{}", file.package())
}

/// Whether a message (by full name) holds an Image, directly or in a repeated or
/// nested field: such requests also take multipart/form-data.
fn has_image(files: &[FileDescriptorProto], type_name: &str, depth: usize) -> bool {
    if type_name == ".twin.v1.Image" {
        return true;
    }
    if depth > 4 {
        return false;
    }
    files
        .iter()
        .flat_map(|f| f.message_type.iter().map(move |m| (scope(f), m)))
        .find(|(scope, m)| format!("{scope}.{}", m.name()) == type_name)
        .is_some_and(|(_, m)| {
            m.field
                .iter()
                .filter(|f| f.r#type() == Type::Message)
                .any(|f| has_image(files, f.type_name(), depth + 1))
        })
}

fn build(encoded: &[u8]) -> Value {
    let Ok(set) = FileDescriptorSet::decode(encoded) else {
        return json!({"error": "the API descriptor does not decode"});
    };
    let mut builder = Builder {
        schemas: Map::new(),
        map_entries: BTreeMap::new(),
    };
    let wanted = |f: &&FileDescriptorProto| {
        f.package() == "twin.v1" || f.name() == "google/protobuf/timestamp.proto"
    };
    for file in set.file.iter().filter(wanted) {
        for message in &file.message_type {
            builder.collect_map_entries(&scope(file), message);
        }
    }
    let mut paths = Map::new();
    for file in set.file.iter().filter(wanted) {
        let comments = Comments::of(file.source_code_info.as_ref());
        if file.package() == "google.protobuf" {
            builder.schemas.insert(
                "Timestamp".to_owned(),
                json!({"type": "string", "format": "date-time",
                       "description": "RFC 3339 time in UTC, e.g. \"2026-12-03T14:00:00Z\" (proto3 JSON of google.protobuf.Timestamp)."}),
            );
            continue;
        }
        for (i, message) in file.message_type.iter().enumerate() {
            builder.message(&scope(file), message, &[FILE_MESSAGE, i as i32], &comments);
        }
        for (i, enumeration) in file.enum_type.iter().enumerate() {
            builder.enumeration(&scope(file), enumeration, &[FILE_ENUM, i as i32], &comments);
        }
        for (s, service) in file.service.iter().enumerate() {
            for (m, method) in service.method.iter().enumerate() {
                let grpc_path = format!("/twin.v1.{}/{}", service.name(), method.name());
                let streaming = METHODS
                    .iter()
                    .find(|r| r.grpc_path == grpc_path)
                    .is_some_and(|r| r.client_streaming);
                let request_schema = if streaming {
                    json!({"type": "object", "description": "The client stream as an array.",
                           "properties": {"items": {"type": "array", "items": reference(method.input_type())}}})
                } else {
                    reference(method.input_type())
                };
                let mut content = Map::new();
                content.insert(
                    "application/json".to_owned(),
                    json!({"schema": request_schema}),
                );
                if has_image(&set.file, method.input_type(), 0) {
                    content.insert(
                        "multipart/form-data".to_owned(),
                        json!({"schema": {
                            "type": "object",
                            "description": "Part `request`: the JSON request. Every other part sets the field at its dotted path (`probe`, `items.0.image`): a file becomes an Image (its bytes and file name), a text part a string (\"true\"/\"false\": a bool).",
                            "properties": {"request": {"type": "string", "description": "The request as JSON."}},
                            "additionalProperties": {"type": "string", "format": "binary"},
                        }}),
                    );
                }
                let mut responses = Map::new();
                responses.insert(
                    "200".to_owned(),
                    json!({"description": "The answer.", "content": {"application/json": {"schema": reference(method.output_type())}}}),
                );
                let mut errors: Vec<(u16, Vec<&str>)> = Vec::new();
                for (name, status) in http_statuses().filter(|(_, s)| *s != 200) {
                    match errors.iter_mut().find(|(s, _)| *s == status) {
                        Some((_, names)) => names.push(name),
                        None => errors.push((status, vec![name])),
                    }
                }
                for (status, names) in errors {
                    responses.insert(
                        status.to_string(),
                        json!({"description": format!("gRPC status {}.", names.join(" or ")),
                               "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}),
                    );
                }
                let description = comments
                    .get(&[FILE_SERVICE, s as i32, SERVICE_METHOD, m as i32])
                    .unwrap_or_default();
                paths.insert(
                    rest_path(method.name()),
                    json!({"post": {
                        "operationId": method.name(),
                        "tags": [service.name()],
                        "summary": format!("{}.{}", service.name(), method.name()),
                        "description": format!("{description}\n\ngRPC: `{grpc_path}`."),
                        "requestBody": {"required": false, "content": content},
                        "responses": responses,
                    }}),
                );
            }
        }
    }
    builder.schemas.insert(
        "Error".to_owned(),
        json!({"type": "object", "required": ["code", "message"], "properties": {
            "code": {"type": "string", "description": "The gRPC status code's name, e.g. INVALID_ARGUMENT.",
                     "enum": http_statuses().map(|(name, _)| name).collect::<Vec<_>>()},
            "message": {"type": "string", "description": "What was wrong and what to do."},
            "requestId": {"type": "string", "description": "The request id (also the x-request-id header), as the audit trail records it."},
        }}),
    );
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "twin REST/JSON API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Every twin.v1 RPC as POST /v1/<method>, with the request and answer in proto3's JSON mapping (lowerCamelCase names, bytes as base64, enums by name, 64-bit integers as strings; fields at their default value are left out of answers). Generated from proto/twin/v1.",
        },
        "servers": [{"url": "/"}],
        "security": [{"apiKey": []}],
        "paths": paths,
        "components": {
            "schemas": builder.schemas,
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer", "description": "An API key: `authorization: Bearer <key>` (needed when the gateway has a keys file)."}},
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_and_referenced_schema_is_in_the_document() {
        let document: Value = serde_json::from_slice(document()).expect("json");
        let paths = document["paths"].as_object().expect("paths");
        assert_eq!(paths.len(), METHODS.len());
        for method in METHODS {
            assert!(
                paths.contains_key(&method.rest_path()),
                "{}",
                method.rest_path()
            );
        }
        // Every $ref resolves.
        let text = serde_json::to_string(&document).expect("text");
        let schemas = document["components"]["schemas"]
            .as_object()
            .expect("schemas");
        for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = piece.split('"').next().expect("name");
            assert!(schemas.contains_key(name), "unresolved $ref {name}");
        }
        let verify = &schemas["VerifySubjectRequest"]["properties"];
        assert!(verify.get("subjectId").is_some(), "{verify}");
        assert!(verify["maxReferences"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("most recent first")));
        let enroll = &paths["/v1/enroll"]["post"]["requestBody"]["content"];
        assert!(enroll.get("multipart/form-data").is_some());
        let models = &paths["/v1/list-models"]["post"]["requestBody"]["content"];
        assert!(models.get("multipart/form-data").is_none());
        assert_eq!(schemas["Metric"]["enum"][0], "METRIC_UNSPECIFIED");
    }
}
