//! The twin.v1 gRPC gateway as a library: services over shared state, admission
//! control, the error → status mapping and the server builder. The `twin-gateway`
//! binary and `twin serve` only wire it up.

pub mod auth;
pub mod bench;
pub mod convert;
pub mod layers;
pub mod metrics;
pub mod server;
pub mod service;
pub mod state;
pub mod status;

pub use metrics::GatewayMetrics;
pub use server::{BoundGateway, ServeError};
pub use state::AppState;
