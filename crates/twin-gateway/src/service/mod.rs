//! The twin.v1 services, one module each.

pub mod audit;
pub mod enrollment;
pub mod keys;
pub mod models;
pub mod similarity;
pub mod verification;
