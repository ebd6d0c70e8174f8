//! Generated code for the `twin.v1` API (gRPC services and the `EmbedJob` queue
//! message). Hand-written here: re-exports and the two constructors of a sample.

/// The `twin.v1` package: messages, clients and servers.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("twin.v1");
}

/// The encoded `FileDescriptorSet` of `proto/twin/v1`, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("twin_descriptor");

pub use prost_types::Timestamp;

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
