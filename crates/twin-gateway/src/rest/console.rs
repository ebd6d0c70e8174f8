//! The web console's static files, compiled into the binary (no separate server, no
//! CDN): `crates/twin-gateway/console/`.

use http::{header, HeaderValue};
use http_body_util::Full;
use tonic::body::Body;

/// (file, content type, bytes).
const ASSETS: [(&str, &str, &str); 3] = [
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../../console/index.html"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/console.js"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("../../console/console.css"),
    ),
];

/// The console file at `file` ("" is index.html); `None` when there is none.
pub fn asset(file: &str) -> Option<http::Response<Body>> {
    let file = if file.is_empty() { "index.html" } else { file };
    let (_, content_type, text) = ASSETS.iter().find(|(name, _, _)| *name == file)?;
    let mut response = http::Response::new(Body::new(Full::new(bytes::Bytes::from_static(
        text.as_bytes(),
    ))));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // The page sends keys; keep other origins from framing it.
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self'",
        ),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Some(response)
}
