//! Generated code for the `twin.v1` API (gRPC services and the `EmbedJob` queue
//! message). Hand-written here: re-exports and the two constructors of a sample.

/// The `twin.v1` package: messages, clients and servers.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("twin.v1");
    include!(concat!(env!("OUT_DIR"), "/twin.v1.serde.rs"));
}

/// The encoded `FileDescriptorSet` of `proto/twin/v1`, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("twin_descriptor");

pub use pbjson_types::Timestamp;

impl v1::Image {
    /// An image sample: encoded bytes (PNG, JPEG, TIFF, BMP).
    pub fn from_bytes(data: Vec<u8>, source: impl Into<String>) -> Self {
        Self {
            content: Some(v1::image::Content::Data(data)),
            source: source.into(),
        }
    }

    /// A text sample, for a text model.
    pub fn from_text(text: impl Into<String>, source: impl Into<String>) -> Self {
        Self {
            content: Some(v1::image::Content::Text(text.into())),
            source: source.into(),
        }
    }
}

/// A protobuf timestamp of a system time (times before the epoch count back from it).
pub fn timestamp(time: std::time::SystemTime) -> Timestamp {
    let (seconds, nanos) = match time.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_nanos() as i32),
        Err(e) => {
            let d = e.duration();
            let (s, n) = (-(d.as_secs() as i64), d.subsec_nanos() as i32);
            if n == 0 {
                (s, 0)
            } else {
                (s - 1, 1_000_000_000 - n)
            }
        }
    };
    Timestamp { seconds, nanos }
}

/// A timestamp in RFC 3339 (UTC), e.g. `2026-12-03T14:00:00Z`.
pub fn rfc3339(t: &Timestamp) -> String {
    prost_types::Timestamp {
        seconds: t.seconds,
        nanos: t.nanos,
    }
    .to_string()
}

/// Reads an RFC 3339 instant; the error says why it is not one.
pub fn parse_rfc3339(text: &str) -> Result<Timestamp, prost_types::TimestampError> {
    let t: prost_types::Timestamp = text.parse()?;
    Ok(Timestamp {
        seconds: t.seconds,
        nanos: t.nanos,
    })
}
