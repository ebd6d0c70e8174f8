//! Deterministic identifiers: the same image enrolled twice for the same subject
//! under the same model is the same point, so retries and re-runs are idempotent.

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Namespace for twin's point ids (a fixed random UUID; never change it, or every
/// stored point id changes).
pub const POINT_NAMESPACE: Uuid = Uuid::from_u128(0x6f0c_2f4e_8a1b_4c7d_9e3f_5a6b_7c8d_9e0f);

/// sha256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The point id of an image: UUIDv5 over model id, tenant, subject id and image sha256.
///
/// The parts are joined with a NUL byte, which cannot occur in any of them, so
/// different tuples never produce the same name. The default tenant (empty) leaves its
/// part out, so the ids of points stored before tenants existed do not change; two
/// tenants enrolling the same image for the same subject name get two points.
///
/// ```
/// use twin_core::ids::point_id;
/// let a = point_id("model", "", "alice", "ab12");
/// assert_eq!(a, point_id("model", "", "alice", "ab12"));
/// assert_ne!(a, point_id("model", "", "bob", "ab12"));
/// assert_ne!(a, point_id("model", "acme", "alice", "ab12"));
/// ```
pub fn point_id(model_id: &str, tenant: &str, subject_id: &str, image_sha256: &str) -> Uuid {
    let name = if tenant.is_empty() {
        [model_id, subject_id, image_sha256].join("\0")
    } else {
        [model_id, tenant, subject_id, image_sha256].join("\0")
    };
    Uuid::new_v5(&POINT_NAMESPACE, name.as_bytes())
}

/// A fresh random job id.
pub fn new_job_id() -> Uuid {
    Uuid::new_v4()
}
