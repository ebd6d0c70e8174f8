//! The twin.v1 gateway as a library: gRPC services over shared state, the REST/JSON
//! edge and console that transcode to them (`rest`), admission
//! control, the error → status mapping and the server builder. The `twin-gateway`
//! binary and `twin serve` only wire it up.

pub mod auth;
pub mod convert;
pub mod layers;
pub mod metrics;
pub mod rest;
pub mod server;
pub mod service;
pub mod state;
pub mod status;

pub use metrics::GatewayMetrics;
pub use server::{BoundGateway, ServeError};
pub use state::AppState;
