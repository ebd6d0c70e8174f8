//! API keys: bearer tokens with a read or a write scope, loaded from a file, compared
//! in constant time. Read keys may verify, search, embed and read jobs and models;
//! write keys may also enrol and delete.

use std::path::Path;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a key may do. `Write` includes `Read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    Read,
    Write,
}

/// The scope a gRPC method needs, from its path (`/twin.v1.Enrollment/Enroll`).
/// `None` for methods open to everyone (health checks, reflection).
pub fn required_scope(path: &str) -> Option<Scope> {
    let service = path.trim_start_matches('/').split('/').next().unwrap_or("");
    let method = path.rsplit('/').next().unwrap_or("");
    if !service.starts_with("twin.") {
        return None;
    }
    match (service, method) {
        ("twin.v1.Enrollment", "Enroll" | "EnqueueBatch" | "DeleteSubject") => Some(Scope::Write),
        _ => Some(Scope::Read),
    }
}

/// The configured keys; an empty set means authentication is off.
#[derive(Clone, Default)]
pub struct ApiKeys {
    /// sha256 of each key, so that comparisons have a fixed length and keys are not
    /// kept in memory in the clear longer than loading takes.
    keys: Vec<([u8; 32], Scope)>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeys")
            .field("keys", &self.keys.len())
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing credentials: send `authorization: Bearer <api key>` metadata")]
    Missing,
    #[error("invalid api key")]
    Invalid,
    #[error("this api key is read-only; {0} needs a write key")]
    ReadOnly(String),
    #[error("api keys file {path}: {message}")]
    File { path: String, message: String },
}

impl ApiKeys {
    /// Parses lines `<read|write> <key>`; `#` starts a comment. Keys must be at least
    /// 16 characters: short keys are guessable.
    pub fn parse(text: &str, origin: &str) -> Result<Self, AuthError> {
        let mut keys = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let error = |message: String| AuthError::File {
                path: origin.to_owned(),
                message: format!("line {}: {message}", number + 1),
            };
            let (scope, key) = line
                .split_once(char::is_whitespace)
                .ok_or_else(|| error("expected `<read|write> <key>`".to_owned()))?;
            let scope = match scope {
                "read" => Scope::Read,
                "write" => Scope::Write,
                other => return Err(error(format!("unknown scope {other:?}, use read or write"))),
            };
            let key = key.trim();
            if key.len() < 16 {
                return Err(error("key shorter than 16 characters".to_owned()));
            }
            keys.push((Sha256::digest(key.as_bytes()).into(), scope));
        }
        Ok(Self { keys })
    }

    pub fn load(path: &Path) -> Result<Self, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|e| AuthError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn is_enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Checks an `authorization` header value against the scope `path` needs.
    pub fn authorize(&self, path: &str, authorization: Option<&str>) -> Result<(), AuthError> {
        let Some(needed) = required_scope(path) else {
            return Ok(());
        };
        if !self.is_enabled() {
            return Ok(());
        }
        let token = authorization
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or(AuthError::Missing)?;
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        // Compare against every key without stopping early, so timing does not tell
        // which key (or how much of one) matched.
        let mut granted: Option<Scope> = None;
        for (key, scope) in &self.keys {
            if bool::from(key.ct_eq(&digest)) {
                granted = granted.max(Some(*scope));
            }
        }
        match granted {
            None => Err(AuthError::Invalid),
            Some(scope) if scope >= needed => Ok(()),
            Some(_) => Err(AuthError::ReadOnly(path.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: &str = "# keys\nread  reader-key-0123456789\nwrite writer-key-0123456789\n";

    #[test]
    fn scopes_follow_the_method() {
        assert_eq!(
            required_scope("/twin.v1.Enrollment/Enroll"),
            Some(Scope::Write)
        );
        assert_eq!(
            required_scope("/twin.v1.Enrollment/GetJob"),
            Some(Scope::Read)
        );
        assert_eq!(
            required_scope("/twin.v1.Verification/Verify"),
            Some(Scope::Read)
        );
        assert_eq!(required_scope("/grpc.health.v1.Health/Check"), None);
    }

    #[test]
    fn keys_grant_their_scope_only() {
        let keys = ApiKeys::parse(KEYS, "test").expect("valid");
        let verify = "/twin.v1.Verification/Verify";
        let enroll = "/twin.v1.Enrollment/Enroll";
        assert!(keys
            .authorize(verify, Some("Bearer reader-key-0123456789"))
            .is_ok());
        assert!(matches!(
            keys.authorize(enroll, Some("Bearer reader-key-0123456789")),
            Err(AuthError::ReadOnly(_))
        ));
        assert!(keys
            .authorize(enroll, Some("Bearer writer-key-0123456789"))
            .is_ok());
        assert!(matches!(
            keys.authorize(verify, Some("Bearer wrong-key-0123456789")),
            Err(AuthError::Invalid)
        ));
        assert!(matches!(
            keys.authorize(verify, None),
            Err(AuthError::Missing)
        ));
        assert!(keys.authorize("/grpc.health.v1.Health/Check", None).is_ok());
    }

    #[test]
    fn bad_files_are_rejected_with_the_line() {
        let err = ApiKeys::parse("admin some-key-0123456789", "f").expect_err("bad scope");
        assert!(err.to_string().contains("line 1"), "{err}");
        assert!(ApiKeys::parse("read short", "f").is_err());
        assert!(!ApiKeys::parse("", "f").expect("empty").is_enabled());
    }
}
