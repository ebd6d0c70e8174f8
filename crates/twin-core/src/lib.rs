//! twin's domain: metrics, decisions, operating points, evaluation figures, deterministic
//! point ids, validation of identifiers, and the domain error type. No network, no async runtime.

pub mod clock;
pub mod config;
pub mod decision;
pub mod error;
pub mod evaluation;
pub mod face;
pub mod ids;
pub mod input;
pub mod job;
pub mod manifest;
pub mod metric;
pub mod npy;
pub mod preprocess;
pub mod subject;
pub mod thumbnail;

pub use error::CoreError;
pub use metric::Metric;
