//! API keys: bearer tokens with a scope and, optionally, a tenant, loaded from a file,
//! compared in constant time, and re-read when the file changes.
//!
//! Read keys may verify, search, embed and read jobs, subjects, models and the audit trail;
//! write keys may also enrol and delete; admin keys may also manage keys
//! (`twin.v1.ApiKeys`) and read any tenant's audit trail. A key bound to a tenant sees only
//! that tenant's subjects, points, jobs and decisions; a key bound to none sees the default
//! tenant's. The tenant comes from the key alone, never from the request.
//!
//! The file has one key per line, `#` starting a comment:
//!
//! ```text
//! <read|write|admin> <key | sha256:<64 hex digits>> [tenant=<name>] [name=<label>]
//! ```
//!
//! Keys created through the API are written as their sha256, so the file never holds them.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use twin_core::subject::validate_tenant;

/// How often the keys file is checked for changes.
pub const RELOAD_EVERY: Duration = Duration::from_secs(1);
/// Longest key name, in bytes.
const MAX_NAME_BYTES: usize = 64;

/// What a key may do. Each scope includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    Read,
    Write,
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }

    fn parse(word: &str) -> Option<Self> {
        match word {
            "read" => Some(Scope::Read),
            "write" => Some(Scope::Write),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }
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
        ("twin.v1.ApiKeys", _) => Some(Scope::Admin),
        ("twin.v1.Enrollment", "Enroll" | "EnqueueBatch" | "DeleteSubject") => Some(Scope::Write),
        _ => Some(Scope::Read),
    }
}

/// Who sent a request, as the admission layer established it from the api key; put into
/// the request's extensions for the services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// "key:" and 12 hex digits of the key's sha256; empty without a key.
    pub key_id: String,
    pub scope: Scope,
    /// Empty for the default tenant.
    pub tenant: String,
}

impl Caller {
    /// The caller when authentication is off: the default tenant, every scope.
    pub fn anonymous(key_id: String) -> Self {
        Self {
            key_id,
            scope: Scope::Admin,
            tenant: String::new(),
        }
    }
}

/// One key as the file declares it (its digest, never the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub key_id: String,
    pub scope: Scope,
    pub tenant: String,
    pub name: String,
}

#[derive(Clone)]
struct KeyEntry {
    /// sha256 of the key, so that comparisons have a fixed length and keys are not kept in
    /// memory in the clear longer than loading takes.
    digest: [u8; 32],
    info: KeyInfo,
}

/// The keys of one version of the file.
#[derive(Clone, Default)]
pub struct ApiKeys {
    /// False when no keys file is configured: authentication is off.
    enabled: bool,
    keys: Vec<KeyEntry>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeys")
            .field("enabled", &self.enabled)
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
    #[error("this api key's scope is {have}; {method} needs a {need} key")]
    Scope {
        have: &'static str,
        need: &'static str,
        method: String,
    },
    #[error("api keys file {path}: {message}")]
    File { path: String, message: String },
    #[error("{0}")]
    Request(String),
    #[error("no api key {0:?} in the keys file")]
    UnknownKey(String),
    #[error("api keys are not configured on this gateway (gateway.api_keys_file): there is no file to keep keys in")]
    NoKeysFile,
}

/// The id the audit trail and `ListKeys` show for a key digest.
fn key_id_of(digest: &[u8; 32]) -> String {
    format!("key:{}", &hex::encode(digest)[..12])
}

/// The id of the key in an `authorization` header value; empty without one.
pub fn key_id_of_header(authorization: Option<&str>) -> String {
    match bearer(authorization) {
        Some(token) if !token.is_empty() => key_id_of(&Sha256::digest(token.as_bytes()).into()),
        _ => String::new(),
    }
}

fn bearer(authorization: Option<&str>) -> Option<&str> {
    authorization
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
}

fn check_name(name: &str) -> Result<(), String> {
    if name.len() > MAX_NAME_BYTES
        || name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '#')
    {
        return Err(format!(
            "key name {name:?} is invalid: at most {MAX_NAME_BYTES} bytes, no spaces or '#'"
        ));
    }
    Ok(())
}

/// The digest a key field stands for: `sha256:<hex>` as written, else the key hashed.
fn parse_key(key: &str) -> Result<[u8; 32], String> {
    if let Some(hex_digest) = key.strip_prefix("sha256:") {
        let mut digest = [0u8; 32];
        hex::decode_to_slice(hex_digest, &mut digest)
            .map_err(|_| "sha256: must be followed by 64 hex digits".to_owned())?;
        return Ok(digest);
    }
    if key.len() < 16 {
        return Err("key shorter than 16 characters".to_owned());
    }
    Ok(Sha256::digest(key.as_bytes()).into())
}

/// One line of the file, or `None` for a blank or comment line.
fn parse_line(line: &str) -> Result<Option<KeyEntry>, String> {
    let line = line.split('#').next().unwrap_or("").trim();
    if line.is_empty() {
        return Ok(None);
    }
    let mut words = line.split_whitespace();
    let usage = "expected `<read|write|admin> <key> [tenant=<name>] [name=<label>]`";
    let (Some(scope), Some(key)) = (words.next(), words.next()) else {
        return Err(usage.to_owned());
    };
    let scope = Scope::parse(scope)
        .ok_or_else(|| format!("unknown scope {scope:?}, use read, write or admin"))?;
    let digest = parse_key(key)?;
    let (mut tenant, mut name) = (String::new(), String::new());
    for word in words {
        match word.split_once('=') {
            Some(("tenant", value)) => {
                validate_tenant(value).map_err(|e| e.to_string())?;
                value.clone_into(&mut tenant);
            }
            Some(("name", value)) => {
                check_name(value)?;
                value.clone_into(&mut name);
            }
            _ => return Err(format!("unexpected {word:?}: {usage}")),
        }
    }
    if scope == Scope::Admin && !tenant.is_empty() {
        return Err("admin keys manage every tenant and cannot be bound to one".to_owned());
    }
    Ok(Some(KeyEntry {
        digest,
        info: KeyInfo {
            key_id: key_id_of(&digest),
            scope,
            tenant,
            name,
        },
    }))
}

impl ApiKeys {
    /// Parses a keys file. Keys must be at least 16 characters (short keys are
    /// guessable); a key listed twice is refused (which scope would it have?).
    pub fn parse(text: &str, origin: &str) -> Result<Self, AuthError> {
        let mut keys: Vec<KeyEntry> = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let error = |message: String| AuthError::File {
                path: origin.to_owned(),
                message: format!("line {}: {message}", number + 1),
            };
            let Some(entry) = parse_line(line).map_err(error)? else {
                continue;
            };
            if keys.iter().any(|k| k.digest == entry.digest) {
                return Err(error(format!("key {} is listed twice", entry.info.key_id)));
            }
            keys.push(entry);
        }
        Ok(Self {
            enabled: true,
            keys,
        })
    }

    pub fn load(path: &Path) -> Result<Self, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|e| AuthError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// False when no keys file is configured (everyone may do everything). A configured
    /// file without keys refuses every call.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Every key, in file order.
    pub fn list(&self) -> Vec<KeyInfo> {
        self.keys.iter().map(|k| k.info.clone()).collect()
    }

    /// Checks an `authorization` header value against the scope `path` needs; says who
    /// the caller is.
    pub fn authorize(&self, path: &str, authorization: Option<&str>) -> Result<Caller, AuthError> {
        let needed = required_scope(path).filter(|_| self.enabled);
        let Some(needed) = needed else {
            return Ok(Caller::anonymous(key_id_of_header(authorization)));
        };
        let token = bearer(authorization).ok_or(AuthError::Missing)?;
        // One digest serves the comparison and the key's id.
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let key_id = key_id_of(&digest);
        // Compare against every key without stopping early, so timing does not tell
        // which key (or how much of one) matched.
        let mut granted: Option<&KeyInfo> = None;
        for key in &self.keys {
            if bool::from(key.digest.ct_eq(&digest)) {
                granted = Some(&key.info);
            }
        }
        match granted {
            None => Err(AuthError::Invalid),
            Some(info) if info.scope >= needed => Ok(Caller {
                key_id,
                scope: info.scope,
                tenant: info.tenant.clone(),
            }),
            Some(info) => Err(AuthError::Scope {
                have: info.scope.as_str(),
                need: needed.as_str(),
                method: path.to_owned(),
            }),
        }
    }
}

/// The keys in force and the file they come from: re-read when the file changes, written
/// when an admin creates or revokes a key. Cheap to share (`Arc`).
#[derive(Debug, Default)]
pub struct KeyRing {
    path: Option<PathBuf>,
    current: RwLock<Arc<ApiKeys>>,
    /// (modified, length) of the file as last read.
    stamp: Mutex<Option<(SystemTime, u64)>>,
    /// Serialises writers of the file (CreateKey, RevokeKey) inside this process.
    writing: Mutex<()>,
}

fn file_stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

impl KeyRing {
    /// Authentication off: no file, everyone may do everything.
    pub fn disabled() -> Self {
        Self::default()
    }

    /// The keys of `path`, which must exist and parse.
    pub fn open(path: &Path) -> Result<Self, AuthError> {
        let stamp = file_stamp(path);
        let keys = ApiKeys::load(path)?;
        Ok(Self {
            path: Some(path.to_owned()),
            current: RwLock::new(Arc::new(keys)),
            stamp: Mutex::new(stamp),
            writing: Mutex::new(()),
        })
    }

    /// The keys in force now.
    pub fn current(&self) -> Arc<ApiKeys> {
        self.current.read().map_or_else(
            |poisoned| poisoned.into_inner().clone(),
            |keys| keys.clone(),
        )
    }

    fn install(&self, keys: ApiKeys, stamp: Option<(SystemTime, u64)>) {
        match self.current.write() {
            Ok(mut current) => *current = Arc::new(keys),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(keys),
        }
        match self.stamp.lock() {
            Ok(mut s) => *s = stamp,
            Err(poisoned) => *poisoned.into_inner() = stamp,
        }
    }

    /// Re-reads the file if it changed since it was last read. A file that no longer
    /// parses (or is gone) leaves the keys in force as they were: a typo must not lock
    /// everyone out, nor let everyone in. Blocking (reads the file).
    pub fn reload_if_changed(&self) -> Result<bool, AuthError> {
        let Some(path) = &self.path else {
            return Ok(false);
        };
        let stamp = file_stamp(path);
        let last = self.stamp.lock().map_or(None, |s| *s);
        if stamp == last {
            return Ok(false);
        }
        let keys = ApiKeys::load(path)?;
        let count = keys.keys.len();
        self.install(keys, stamp);
        tracing::info!(path = %path.display(), keys = count, "api keys reloaded");
        Ok(true)
    }

    /// Checks the file every [`RELOAD_EVERY`] until the ring is dropped elsewhere.
    pub fn watch(self: &Arc<Self>) {
        if self.path.is_none() {
            return;
        }
        let ring = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut failing = false;
            loop {
                tokio::time::sleep(RELOAD_EVERY).await;
                let Some(ring) = ring.upgrade() else { return };
                let outcome = tokio::task::spawn_blocking(move || ring.reload_if_changed()).await;
                match outcome {
                    Ok(Err(error)) if !failing => {
                        failing = true;
                        tracing::error!(%error, "api keys file not reloaded; the keys in force are unchanged");
                    }
                    Ok(Ok(_)) => failing = false,
                    _ => {}
                }
            }
        });
    }

    fn path(&self) -> Result<&Path, AuthError> {
        self.path.as_deref().ok_or(AuthError::NoKeysFile)
    }

    /// Replaces the file with `edit(text)`, atomically (a temporary file renamed over
    /// it, both synced), then puts the new keys in force. Blocking.
    fn rewrite(
        &self,
        edit: impl FnOnce(&str) -> Result<String, AuthError>,
    ) -> Result<(), AuthError> {
        let path = self.path()?;
        let _writing = self
            .writing
            .lock()
            .map_err(|_| AuthError::Request("keys file writer panicked".into()))?;
        let file_error = |e: std::io::Error| AuthError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let text = std::fs::read_to_string(path).map_err(file_error)?;
        let text = edit(&text)?;
        let keys = ApiKeys::parse(&text, &path.display().to_string())?;
        let temporary = path.with_extension("tmp");
        {
            use std::io::Write;
            let mut file = std::fs::File::create(&temporary).map_err(file_error)?;
            file.write_all(text.as_bytes()).map_err(file_error)?;
            file.sync_all().map_err(file_error)?;
        }
        std::fs::rename(&temporary, path).map_err(file_error)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(dir) = std::fs::File::open(dir) {
                let _ = dir.sync_all();
            }
        }
        self.install(keys, file_stamp(path));
        Ok(())
    }

    /// A new random key of `scope` for `tenant`, appended to the file as its sha256.
    /// Returns it with the secret, which nothing keeps. Blocking.
    pub fn create(
        &self,
        scope: Scope,
        tenant: &str,
        name: &str,
    ) -> Result<(KeyInfo, String), AuthError> {
        validate_tenant(tenant).map_err(|e| AuthError::Request(e.to_string()))?;
        check_name(name).map_err(AuthError::Request)?;
        if scope == Scope::Admin && !tenant.is_empty() {
            return Err(AuthError::Request(
                "admin keys manage every tenant and cannot be bound to one".into(),
            ));
        }
        // 244 random bits from the operating system (two UUIDv4s).
        let secret = format!(
            "twin_{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let mut line = format!("{} sha256:{}", scope.as_str(), hex::encode(digest));
        if !tenant.is_empty() {
            line.push_str(&format!(" tenant={tenant}"));
        }
        if !name.is_empty() {
            line.push_str(&format!(" name={name}"));
        }
        self.rewrite(|text| {
            let mut text = text.to_owned();
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&line);
            text.push('\n');
            Ok(text)
        })?;
        let info = KeyInfo {
            key_id: key_id_of(&digest),
            scope,
            tenant: tenant.to_owned(),
            name: name.to_owned(),
        };
        tracing::info!(key_id = %info.key_id, scope = scope.as_str(), tenant = %info.tenant, "api key created");
        Ok((info, secret))
    }

    /// Removes every line holding the key `key_id`; returns how many. Blocking.
    pub fn revoke(&self, key_id: &str) -> Result<u32, AuthError> {
        let mut removed = 0;
        self.rewrite(|text| {
            let mut kept = String::with_capacity(text.len());
            for line in text.lines() {
                let matches =
                    matches!(parse_line(line), Ok(Some(entry)) if entry.info.key_id == key_id);
                if matches {
                    removed += 1;
                } else {
                    kept.push_str(line);
                    kept.push('\n');
                }
            }
            if removed == 0 {
                return Err(AuthError::UnknownKey(key_id.to_owned()));
            }
            Ok(kept)
        })?;
        tracing::info!(key_id, lines = removed, "api key revoked");
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: &str = "# keys\nread  reader-key-0123456789\nwrite writer-key-0123456789 name=ci\n\
                        write acme-writer-0123456789 tenant=acme\nadmin admin-key-0123456789\n";

    fn bearer_of(key: &str) -> String {
        format!("Bearer {key}")
    }

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
        assert_eq!(
            required_scope("/twin.v1.ApiKeys/ListKeys"),
            Some(Scope::Admin)
        );
        assert_eq!(required_scope("/grpc.health.v1.Health/Check"), None);
    }

    #[test]
    fn keys_grant_their_scope_and_tenant_only() {
        let keys = ApiKeys::parse(KEYS, "test").expect("valid");
        let verify = "/twin.v1.Verification/Verify";
        let enroll = "/twin.v1.Enrollment/Enroll";
        let list_keys = "/twin.v1.ApiKeys/ListKeys";
        let reader = keys
            .authorize(verify, Some(&bearer_of("reader-key-0123456789")))
            .expect("read may verify");
        assert_eq!((reader.scope, reader.tenant.as_str()), (Scope::Read, ""));
        assert!(reader.key_id.starts_with("key:") && reader.key_id.len() == 16);
        assert!(matches!(
            keys.authorize(enroll, Some(&bearer_of("reader-key-0123456789"))),
            Err(AuthError::Scope { .. })
        ));
        let acme = keys
            .authorize(enroll, Some(&bearer_of("acme-writer-0123456789")))
            .expect("write may enrol");
        assert_eq!(acme.tenant, "acme");
        let refused = keys
            .authorize(list_keys, Some(&bearer_of("writer-key-0123456789")))
            .expect_err("write may not manage keys");
        assert!(
            refused.to_string().contains("needs a admin key"),
            "{refused}"
        );
        assert!(keys
            .authorize(list_keys, Some(&bearer_of("admin-key-0123456789")))
            .is_ok());
        assert!(matches!(
            keys.authorize(verify, Some(&bearer_of("wrong-key-0123456789"))),
            Err(AuthError::Invalid)
        ));
        assert!(matches!(
            keys.authorize(verify, None),
            Err(AuthError::Missing)
        ));
        assert!(keys.authorize("/grpc.health.v1.Health/Check", None).is_ok());
        // A configured file without keys refuses everything; no file lets everything in.
        let empty = ApiKeys::parse("# none yet\n", "f").expect("empty");
        assert!(matches!(
            empty.authorize(verify, Some(&bearer_of("reader-key-0123456789"))),
            Err(AuthError::Invalid)
        ));
        assert!(ApiKeys::default().authorize(enroll, None).is_ok());
    }

    #[test]
    fn bad_files_are_rejected_with_the_line() {
        for (text, says) in [
            ("owner some-key-0123456789", "line 1: unknown scope"),
            ("read short", "shorter than 16"),
            ("# keys\n\nwrite k-0123456789abcdef tenant=a/b", "line 3"),
            ("admin k-0123456789abcdef tenant=acme", "cannot be bound"),
            (
                "read k-0123456789abcdef\nwrite k-0123456789abcdef",
                "listed twice",
            ),
            ("read sha256:abcd", "64 hex digits"),
            ("read k-0123456789abcdef color=red", "unexpected"),
        ] {
            let err = ApiKeys::parse(text, "f").expect_err(text);
            assert!(err.to_string().contains(says), "{text:?}: {err}");
        }
    }

    #[test]
    fn created_keys_work_at_once_are_stored_hashed_and_revoke_cleanly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys");
        std::fs::write(&path, "admin admin-key-0123456789 # the operator\n").expect("write");
        let ring = KeyRing::open(&path).expect("open");
        let (info, secret) = ring.create(Scope::Write, "acme", "mobile").expect("create");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(
            !text.contains(&secret),
            "the file must not hold the key: {text}"
        );
        assert!(text.contains("# the operator"), "comments are kept: {text}");
        let caller = ring
            .current()
            .authorize("/twin.v1.Enrollment/Enroll", Some(&bearer_of(&secret)))
            .expect("the new key works without a reload");
        assert_eq!(
            (caller.tenant.as_str(), caller.key_id.as_str()),
            ("acme", info.key_id.as_str())
        );
        assert_eq!(ring.current().list().len(), 2);
        assert!(ring.create(Scope::Admin, "acme", "").is_err());
        assert!(ring.create(Scope::Read, "no such/tenant", "").is_err());
        assert!(ring.create(Scope::Read, "", "two words").is_err());

        assert_eq!(ring.revoke(&info.key_id).expect("revoke"), 1);
        assert!(matches!(
            ring.current()
                .authorize("/twin.v1.Verification/Verify", Some(&bearer_of(&secret))),
            Err(AuthError::Invalid)
        ));
        assert!(matches!(
            ring.revoke(&info.key_id),
            Err(AuthError::UnknownKey(_))
        ));
        assert!(matches!(
            KeyRing::disabled().create(Scope::Read, "", ""),
            Err(AuthError::NoKeysFile)
        ));
    }

    #[test]
    fn an_edited_file_is_reloaded_and_a_broken_one_keeps_the_keys_in_force() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys");
        std::fs::write(&path, "read first-key-0123456789\n").expect("write");
        let ring = KeyRing::open(&path).expect("open");
        assert!(!ring.reload_if_changed().expect("unchanged"));
        std::fs::write(&path, "read second-key-0123456789 tenant=acme\n").expect("edit");
        assert!(ring.reload_if_changed().expect("reloads"));
        let verify = "/twin.v1.Verification/Verify";
        let keys = ring.current();
        assert!(keys
            .authorize(verify, Some(&bearer_of("first-key-0123456789")))
            .is_err());
        assert_eq!(
            keys.authorize(verify, Some(&bearer_of("second-key-0123456789")))
                .expect("new key")
                .tenant,
            "acme"
        );
        std::fs::write(&path, "reed typo-key-0123456789\n").expect("break");
        assert!(ring.reload_if_changed().is_err());
        assert!(ring
            .current()
            .authorize(verify, Some(&bearer_of("second-key-0123456789")))
            .is_ok());
    }
}
