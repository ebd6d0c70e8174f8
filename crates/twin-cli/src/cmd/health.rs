//! `twin health`: the standard gRPC health check, exit status 0 only when the server
//! answers SERVING (used by the compose health checks).

use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use super::client::{self, ClientArgs};

#[derive(Debug, clap::Args)]
pub struct HealthArgs {
    /// Service to check; empty = the whole server.
    #[arg(long, default_value = "")]
    pub service: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub fn run(args: HealthArgs) -> anyhow::Result<()> {
    client::block_on(health(args))
}

async fn health(args: HealthArgs) -> anyhow::Result<()> {
    let connection = args.client.connect().await?;
    let response = HealthClient::new(connection.channel.clone())
        .check(HealthCheckRequest {
            service: args.service.clone(),
        })
        .await
        .map_err(|status| connection.error("health check", status))?
        .into_inner();
    let status = ServingStatus::try_from(response.status).unwrap_or(ServingStatus::Unknown);
    let name = status.as_str_name().to_ascii_lowercase();
    if args.client.json {
        client::print_json(&serde_json::json!({"addr": args.client.addr, "status": name}));
    } else {
        println!("{}: {name}", args.client.addr);
    }
    if status == ServingStatus::Serving {
        Ok(())
    } else {
        anyhow::bail!("{} is not serving (status {name})", args.client.addr)
    }
}
