//! A REST request body as one JSON value: `application/json` as it is, or
//! `multipart/form-data` where a part `request` carries the JSON and every other part
//! sets one field by its dotted path (`probe`, `items.0.image`): a file becomes an Image
//! `{"data": <base64>, "source": <file name>}`, a text a string ("true"/"false" a bool).

use base64::Engine;
use http::{header, HeaderMap};
use http_body_util::{BodyExt, Limited};
use serde_json::{Map, Value};
use tonic::body::Body;

/// Reads at most `limit` bytes of `body` and makes them one JSON value; the error
/// says what was wrong, for an INVALID_ARGUMENT.
pub async fn request_json(headers: &HeaderMap, body: Body, limit: usize) -> Result<Value, String> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_owned();
    let bytes = Limited::new(body, limit)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                format!("request body over {limit} bytes")
            } else {
                format!("reading the request body: {e}")
            }
        })?
        .to_bytes();
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "multipart/form-data" => multipart(&content_type, bytes).await,
        // `curl -d '{...}'` labels JSON as a form: read it as JSON all the same.
        "application/json" | "application/x-www-form-urlencoded" | "" => {
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(Value::Object(Map::new()));
            }
            serde_json::from_slice(&bytes).map_err(|e| {
                format!("the body is not JSON ({e}); send the request as application/json or multipart/form-data")
            })
        }
        other => Err(format!(
            "unsupported content type {other:?}: send application/json or multipart/form-data"
        )),
    }
}

async fn multipart(content_type: &str, bytes: bytes::Bytes) -> Result<Value, String> {
    let boundary =
        multer::parse_boundary(content_type).map_err(|e| format!("multipart/form-data: {e}"))?;
    let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(bytes) });
    let mut form = multer::Multipart::new(stream, boundary);
    let mut request = Value::Object(Map::new());
    let mut fields = Vec::new();
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| format!("multipart/form-data: {e}"))?
    {
        let Some(name) = field.name().map(str::to_owned) else {
            return Err("multipart/form-data: a part has no name".to_owned());
        };
        let file_name = field.file_name().map(str::to_owned);
        let data = field
            .bytes()
            .await
            .map_err(|e| format!("multipart/form-data part {name:?}: {e}"))?;
        if name == "request" {
            request = serde_json::from_slice(&data)
                .map_err(|e| format!("part \"request\" is not JSON: {e}"))?;
            if !request.is_object() {
                return Err("part \"request\" must be a JSON object".to_owned());
            }
            continue;
        }
        let value = match file_name {
            Some(file_name) => serde_json::json!({
                "data": base64::engine::general_purpose::STANDARD.encode(&data),
                "source": file_name,
            }),
            None => {
                let text = String::from_utf8(data.to_vec())
                    .map_err(|_| format!("part {name:?} is not UTF-8 text"))?;
                match text.as_str() {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    _ => Value::String(text),
                }
            }
        };
        fields.push((name, value));
    }
    // Parts after `request`, whatever their order in the form.
    for (name, value) in fields {
        set_path(&mut request, &name, value)?;
    }
    Ok(request)
}

/// Sets `root.<path>` (dot-separated; numbers index arrays) to `value`, creating
/// objects and array slots on the way.
fn set_path(root: &mut Value, path: &str, value: Value) -> Result<(), String> {
    let segments: Vec<&str> = path.split('.').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err(format!("part name {path:?} is not a field path"));
    }
    let mut node = root;
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        let next_is_index = segments
            .get(i + 1)
            .is_some_and(|s| s.parse::<usize>().is_ok());
        let empty = || {
            if next_is_index {
                Value::Array(Vec::new())
            } else {
                Value::Object(Map::new())
            }
        };
        node = match (node, segment.parse::<usize>()) {
            (Value::Array(items), Ok(index)) => {
                if index > items.len() || index > 100_000 {
                    return Err(format!(
                        "part {path:?}: index {index} skips items (next is {})",
                        items.len()
                    ));
                }
                if last {
                    if index == items.len() {
                        items.push(value);
                    } else {
                        items[index] = value;
                    }
                    return Ok(());
                }
                if index == items.len() {
                    items.push(empty());
                }
                &mut items[index]
            }
            (Value::Object(object), _) => {
                if last {
                    object.insert((*segment).to_owned(), value);
                    return Ok(());
                }
                object.entry((*segment).to_owned()).or_insert_with(empty)
            }
            _ => return Err(format!("part {path:?} does not fit the request's shape")),
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_build_nested_fields_and_items() {
        let mut root = serde_json::json!({"model": "m"});
        set_path(&mut root, "items.0.subjectId", Value::String("a".into())).expect("set");
        set_path(
            &mut root,
            "items.0.image",
            serde_json::json!({"data": "AA=="}),
        )
        .expect("set");
        set_path(&mut root, "items.1.subjectId", Value::String("b".into())).expect("set");
        set_path(&mut root, "wait", Value::Bool(true)).expect("set");
        assert_eq!(
            root,
            serde_json::json!({
                "model": "m",
                "wait": true,
                "items": [{"subjectId": "a", "image": {"data": "AA=="}}, {"subjectId": "b"}],
            })
        );
        let error = set_path(&mut root, "items.5.subjectId", Value::Null).expect_err("gap");
        assert!(error.contains("skips"), "{error}");
        let error = set_path(&mut root, "model.x", Value::Null).expect_err("shape");
        assert!(error.contains("shape"), "{error}");
        assert!(set_path(&mut root, "a..b", Value::Null).is_err());
    }

    #[tokio::test]
    async fn multipart_files_become_images() {
        let boundary = "XyZ";
        let body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"subjectId\"\r\n\r\nalice\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\
             Content-Type: image/png\r\n\r\n\x01\x02\x03\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"request\"\r\n\r\n{{\"model\": \"m\"}}\r\n\
             --{boundary}--\r\n"
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}")
                .parse()
                .expect("header"),
        );
        let value = request_json(&headers, Body::new(body), 1 << 20)
            .await
            .expect("parsed");
        assert_eq!(
            value,
            serde_json::json!({
                "model": "m",
                "subjectId": "alice",
                "image": {"data": "AQID", "source": "a.png"},
            })
        );
        let error = request_json(&headers, Body::new("x".repeat(100)), 10)
            .await
            .expect_err("too big");
        assert!(error.contains("over 10 bytes"), "{error}");
    }
}
