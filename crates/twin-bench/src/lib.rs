//! twin's benchmarks, each behind `twin bench <name>`: a readable table, then one JSON
//! line of figures, every figure a ratio against a baseline measured in the same run.
//! They live here, not in the crates they measure, so that those libraries carry no
//! benchmark-only code or dependencies.

pub mod embed;
pub mod ingest;
pub mod store;
pub mod verify;
