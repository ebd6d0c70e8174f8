//! Generated code for the `twin.v1` API (gRPC services and the `EmbedJob` queue
//! message). Nothing hand-written lives here but re-exports.

/// The `twin.v1` package: messages, clients and servers.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("twin.v1");
}

/// The encoded `FileDescriptorSet` of `proto/twin/v1`, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("twin_descriptor");

pub use prost_types::Timestamp;
