//! Compiles `proto/twin/v1/*.proto` with protox (a pure-Rust protobuf compiler), so a
//! fresh machine needs no `protoc`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let dir = root.join("twin/v1");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "proto"))
        .collect();
    files.sort();
    println!("cargo:rerun-if-changed={}", dir.display());
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }

    let descriptors = protox::compile(&files, [&root])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    // Kept for server reflection, so that `grpcurl` works without the proto files.
    std::fs::write(
        out_dir.join("twin_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    let encoded = prost::Message::encode_to_vec(&descriptors);
    // Well-known types from pbjson-types: prost-types' have no serde.
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_well_known_types(true)
        .extern_path(".google.protobuf", "::pbjson_types")
        .compile_fds(descriptors)?;
    // serde impls in the proto3 JSON mapping (lowerCamelCase names, base64 bytes, enum
    // names), for the gateway's REST/JSON edge.
    pbjson_build::Builder::new()
        .register_descriptors(&encoded)?
        .build(&[".twin.v1"])?;
    Ok(())
}
