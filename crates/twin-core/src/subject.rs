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
