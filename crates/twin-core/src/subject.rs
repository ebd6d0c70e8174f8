//! Validation of the identifiers and labels that clients choose.

use crate::error::CoreError;

/// Longest subject id, in bytes.
pub const MAX_SUBJECT_BYTES: usize = 128;

/// Checks a subject id: 1..=128 UTF-8 bytes, no control characters.
pub fn validate_subject_id(subject_id: &str) -> Result<(), CoreError> {
    if subject_id.is_empty() {
        return Err(CoreError::InvalidSubject(
            "subject id is empty: give the identity this image belongs to".to_owned(),
        ));
    }
    if subject_id.len() > MAX_SUBJECT_BYTES {
        return Err(CoreError::InvalidSubject(format!(
            "subject id is {} bytes, at most {MAX_SUBJECT_BYTES} allowed",
            subject_id.len()
        )));
    }
    if subject_id.chars().any(char::is_control) {
        return Err(CoreError::InvalidSubject(
            "subject id contains control characters".to_owned(),
        ));
    }
    Ok(())
}

/// Longest tenant name, in bytes.
pub const MAX_TENANT_BYTES: usize = 64;

/// Checks a tenant name: empty (the default tenant, what keys bound to no tenant use)
/// or 1..=64 characters of `[A-Za-z0-9_.-]`, not starting with `.` or `-`. The narrow
/// alphabet keeps names safe inside keys files, audit indexes and point ids.
pub fn validate_tenant(tenant: &str) -> Result<(), CoreError> {
    let ok = tenant.len() <= MAX_TENANT_BYTES
        && tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && !tenant.starts_with('.')
        && !tenant.starts_with('-');
    if !ok {
        return Err(CoreError::InvalidSubject(format!(
            "tenant {tenant:?} is invalid: use 1..={MAX_TENANT_BYTES} characters of \
             [A-Za-z0-9_.-], not starting with '.' or '-'"
        )));
    }
    Ok(())
}

/// How a tenant is named in messages: the default tenant has no name of its own.
pub fn tenant_label(tenant: &str) -> &str {
    if tenant.is_empty() {
        "(default)"
    } else {
        tenant
    }
}
