//! `twin api`: lists the services and methods of the twin.v1 API from the compiled
//! descriptor, so what is printed is exactly what the server speaks, each with its REST
//! path (the OpenAPI document is at `/openapi.json`).

use prost::Message;

#[derive(Debug, clap::Args)]
pub struct ApiArgs {}

pub fn run(_args: ApiArgs) -> anyhow::Result<()> {
    let descriptors = prost_types::FileDescriptorSet::decode(twin_proto::FILE_DESCRIPTOR_SET)?;
    for file in descriptors.file.iter().filter(|f| f.package() == "twin.v1") {
        for service in &file.service {
            println!("twin.v1.{}", service.name());
            for method in &service.method {
                let streaming = if method.client_streaming() {
                    "stream "
                } else {
                    ""
                };
                let rpc = format!(
                    "rpc {}({}{}) returns ({})",
                    method.name(),
                    streaming,
                    method.input_type().trim_start_matches(".twin.v1."),
                    method.output_type().trim_start_matches(".twin.v1.")
                );
                println!(
                    "  {rpc:<72} POST {}",
                    twin_gateway::rest::rest_path(method.name())
                );
            }
        }
    }
    Ok(())
}
