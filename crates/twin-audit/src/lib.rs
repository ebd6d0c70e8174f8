//! The audit trail: every decision twin makes (`Verify`, `VerifySubject`, `Search` with a
//! threshold) appended to a durable log with its audit record, the request id, the api
//! key's id (never the key) and a sha256 of each input image, so that "why was this
//! signature accepted last Tuesday?" has an answer.
//!
//! Storage: redb (an embedded, crash-safe B-tree), one record per decision keyed by
//! (time, sequence), with indexes by subject and by request id. Appending never makes a
//! decision wait: one writer thread commits the records of every 20 ms at once, and fsyncs at
//! most every 200 ms (an fsync per decision cost Verify a quarter of its p99 at concurrency 1 on
//! the 2-core machine). A killed process loses nothing committed (the operating system holds
//! the pages) and at most the last 20 ms of appends; a power loss can take the decisions of
//! the last 200 ms. Records older than
//! the retention are dropped at start and then once a day.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

/// (decided_at_ms, seq) → the record as JSON.
const RECORDS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("records");
/// (tenant's subject, decided_at_ms, seq) → (); see [`scoped`].
const BY_SUBJECT: TableDefinition<(&str, u64, u64), ()> = TableDefinition::new("by_subject");
/// tenant's request id → (decided_at_ms, seq); see [`scoped`].
const BY_REQUEST: TableDefinition<&str, (u64, u64)> = TableDefinition::new("by_request");

/// An index key inside a tenant: the name alone for the default tenant (as logs written
/// before tenants were), else tenant, NUL, name. Two tenants' subjects (or request ids)
/// of one name are two keys, so one cannot shadow the other's records.
fn scoped(tenant: &str, name: &str) -> String {
    if tenant.is_empty() {
        name.to_owned()
    } else {
        format!("{tenant}\0{name}")
    }
}

/// File name of the log in its directory.
pub const AUDIT_FILE: &str = "audit.redb";
/// Records one query returns at most.
pub const MAX_QUERY: usize = 1000;
/// Records one commit takes at most.
const MAX_GROUP: usize = 4096;
const DAY: Duration = Duration::from_secs(24 * 3600);
/// How long the writer gathers records into one commit.
const GROUP_WINDOW: Duration = Duration::from_millis(20);
/// Longest a committed record waits for its fsync (what a power loss can take).
const SYNC_EVERY: Duration = Duration::from_millis(200);

/// One decision on record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct AuditRecord {
    /// When it was decided (server clock), ms since the epoch.
    pub decided_at_ms: u64,
    pub request_id: String,
    /// Which api key asked: a digest of it, never the key; empty without authentication.
    pub key_id: String,
    /// The tenant of that key; empty for the default tenant. A query reads one tenant.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tenant: String,
    /// "Verify", "VerifySubject" or "Search".
    pub method: String,
    /// The subject asked about (VerifySubject) or found (Search); empty otherwise.
    pub subject_id: String,
    pub model_id: String,
    pub model_name: String,
    pub metric: String,
    #[serde(with = "exact")]
    pub score: f64,
    #[serde(with = "exact")]
    pub threshold: f64,
    /// "FAR 1 %", "FAR 1 %, best of 5", "explicit".
    pub operating_point: String,
    #[serde(with = "exact")]
    pub target_far: f64,
    pub calibrated_on: String,
    /// The decision: a match (Verify, VerifySubject) or a subject found (Search).
    pub matched: bool,
    /// The reference that decided it (VerifySubject) or the best hit (Search).
    pub matched_point_id: String,
    /// sha256 of each input image, in request order.
    pub images_sha256: Vec<String>,
}

/// Numbers on record are kept to the bit (as their IEEE 754 bits): a threshold read back
/// from the trail must equal the one the decision used, and decimal text does not always
/// round-trip through serde_json's parser.
mod exact {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(value.to_bits())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        u64::deserialize(deserializer).map(f64::from_bits)
    }
}

/// Which records a query wants: always one tenant's; every other field narrows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditQuery {
    /// The tenant whose decisions are read (empty: the default tenant).
    pub tenant: String,
    pub subject_id: Option<String>,
    pub request_id: Option<String>,
    /// Decided at or after, ms since the epoch.
    pub from_ms: Option<u64>,
    /// Decided before, ms since the epoch.
    pub to_ms: Option<u64>,
    /// At most this many, newest first (0: 100; at most [`MAX_QUERY`]).
    pub limit: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log {path}: {message}")]
    Storage { path: PathBuf, message: String },
    #[error("invalid audit query: {0}")]
    Query(String),
}

enum Message {
    Record(Box<AuditRecord>),
    /// Answered once everything sent before it is committed.
    Sync(mpsc::Sender<()>),
}

/// The log. Cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    inner: Arc<Inner>,
}

struct Inner {
    /// Off only to measure what recording costs (`twin bench verify`).
    recording: std::sync::atomic::AtomicBool,
    db: Arc<Database>,
    path: PathBuf,
    retention: Option<Duration>,
    records: Option<mpsc::Sender<Message>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The writer commits what is waiting, then stops; wait for it.
        self.records.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl AuditLog {
    /// Opens (or creates) `dir/audit.redb`, dropping records older than `retention`.
    /// Blocking: call it at start.
    pub fn open(dir: &Path, retention: Option<Duration>) -> Result<Self, AuditError> {
        let path = dir.join(AUDIT_FILE);
        let storage = |message: String| AuditError::Storage {
            path: path.clone(),
            message,
        };
        std::fs::create_dir_all(dir)
            .map_err(|e| storage(format!("cannot create its folder: {e}")))?;
        let db = Database::create(&path).map_err(|e| {
            storage(format!(
                "cannot open it (is another twin gateway using this folder?): {e}"
            ))
        })?;
        let db = Arc::new(db);
        let pruned = prune(&db, retention).map_err(|e| storage(e.to_string()))?;
        if pruned > 0 {
            tracing::info!(
                records = pruned,
                "audit records past their retention dropped"
            );
        }
        let (records, receiver) = mpsc::channel();
        let writer_db = Arc::clone(&db);
        let writer = std::thread::Builder::new()
            .name("twin-audit".into())
            .spawn(move || write_loop(&writer_db, &receiver, retention))
            .map_err(|e| storage(format!("cannot start its writer: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                recording: std::sync::atomic::AtomicBool::new(true),
                db,
                path,
                retention,
                records: Some(records),
                writer: Some(writer),
            }),
        })
    }

    /// Appends a decision. Never waits for the disk; a record that cannot be written is
    /// logged as an error.
    pub fn append(&self, mut record: AuditRecord) {
        if !self
            .inner
            .recording
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return;
        }
        if record.decided_at_ms == 0 {
            record.decided_at_ms = now_ms();
        }
        if let Some(records) = &self.inner.records {
            if records.send(Message::Record(Box::new(record))).is_err() {
                tracing::error!(path = %self.inner.path.display(), "audit writer stopped; a decision was not recorded");
            }
        }
    }

    /// The records `query` selects, newest first. Blocking (reads the file): call it off
    /// the async executor. Records appended a moment ago may not be visible yet.
    pub fn query(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, AuditError> {
        let limit = match query.limit {
            0 => 100,
            n if n > MAX_QUERY => {
                return Err(AuditError::Query(format!(
                    "limit is {n}, at most {MAX_QUERY} records per query"
                )))
            }
            n => n,
        };
        let (from, to) = (query.from_ms.unwrap_or(0), query.to_ms.unwrap_or(u64::MAX));
        if from >= to {
            return Err(AuditError::Query(format!(
                "the time range is empty (from {from} ms is not before to {to} ms)"
            )));
        }
        read(&self.inner.db, query, from, to, limit).map_err(|e| AuditError::Storage {
            path: self.inner.path.clone(),
            message: e.to_string(),
        })
    }

    /// Waits until every record appended so far is committed (tests, shutdown).
    pub fn sync(&self) {
        let (done, committed) = mpsc::channel();
        if let Some(records) = &self.inner.records {
            if records.send(Message::Sync(done)).is_ok() {
                let _ = committed.recv();
            }
        }
    }

    /// Stops or resumes recording. Only for measuring what recording costs: a gateway
    /// never turns it off (the trail is on or off by configuration, at start).
    pub fn set_recording(&self, on: bool) {
        self.inner
            .recording
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// How long records are kept (`None`: forever).
    pub fn retention(&self) -> Option<Duration> {
        self.inner.retention
    }
}

/// The current time, ms since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

type Failure = Box<dyn std::error::Error>;

fn write_loop(db: &Database, messages: &mpsc::Receiver<Message>, retention: Option<Duration>) {
    let mut seq = last_seq(db).unwrap_or(0);
    let mut last_prune = std::time::Instant::now();
    let mut last_sync = std::time::Instant::now();
    // Records committed without fsync since the last one that had it.
    let mut unsynced = false;
    loop {
        let first = match messages.recv_timeout(SYNC_EVERY) {
            Ok(message) => message,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if unsynced {
                    match sync_to_disk(db) {
                        Ok(()) => unsynced = false,
                        Err(error) => tracing::error!(error = %error, "audit log not synced"),
                    }
                    last_sync = std::time::Instant::now();
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                if unsynced {
                    if let Err(error) = sync_to_disk(db) {
                        tracing::error!(error = %error, "audit log not synced at shutdown");
                    }
                }
                return;
            }
        };
        // Gather what arrives within GROUP_WINDOW into one commit (a sync request ends the
        // wait): a lone caller's records cost a commit every 20 ms, not one each.
        let window_ends = std::time::Instant::now() + GROUP_WINDOW;
        let mut syncing = matches!(first, Message::Sync(_));
        let mut group = vec![first];
        while group.len() < MAX_GROUP && !syncing {
            let left = window_ends.saturating_duration_since(std::time::Instant::now());
            match messages.recv_timeout(left) {
                Ok(message) => {
                    syncing = matches!(message, Message::Sync(_));
                    group.push(message);
                }
                Err(_) => break,
            }
        }
        let mut records = Vec::with_capacity(group.len());
        let mut waiting = Vec::new();
        for message in group {
            match message {
                Message::Record(record) => records.push(*record),
                Message::Sync(done) => waiting.push(done),
            }
        }
        // fsync at most every SYNC_EVERY, or now when someone waits for the disk.
        let durable = !waiting.is_empty() || last_sync.elapsed() >= SYNC_EVERY;
        if !records.is_empty() || (durable && unsynced) {
            match commit(db, &records, &mut seq, durable) {
                Ok(()) => unsynced = !durable,
                Err(error) => {
                    tracing::error!(error = %error, records = records.len(), "audit records not written");
                }
            }
            if durable {
                last_sync = std::time::Instant::now();
            }
        }
        for done in waiting {
            let _ = done.send(());
        }
        if last_prune.elapsed() >= DAY {
            last_prune = std::time::Instant::now();
            if let Err(error) = prune(db, retention) {
                tracing::error!(error = %error, "audit retention not applied");
            }
        }
    }
}

/// An empty commit with fsync: makes the commits before it durable.
fn sync_to_disk(db: &Database) -> Result<(), Failure> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    txn.commit()?;
    Ok(())
}

fn commit(
    db: &Database,
    group: &[AuditRecord],
    seq: &mut u64,
    durable: bool,
) -> Result<(), Failure> {
    let mut txn = db.begin_write()?;
    txn.set_durability(if durable {
        Durability::Immediate
    } else {
        Durability::None
    })?;
    {
        let mut records = txn.open_table(RECORDS)?;
        let mut by_subject = txn.open_table(BY_SUBJECT)?;
        let mut by_request = txn.open_table(BY_REQUEST)?;
        for record in group {
            *seq += 1;
            let key = (record.decided_at_ms, *seq);
            let json = serde_json::to_vec(record)?;
            records.insert(key, json.as_slice())?;
            if !record.subject_id.is_empty() {
                let subject = scoped(&record.tenant, &record.subject_id);
                by_subject.insert((subject.as_str(), key.0, key.1), ())?;
            }
            if !record.request_id.is_empty() {
                by_request.insert(scoped(&record.tenant, &record.request_id).as_str(), key)?;
            }
        }
    }
    txn.commit()?;
    Ok(())
}

fn last_seq(db: &Database) -> Result<u64, Failure> {
    let txn = db.begin_write()?;
    let last = {
        let records = txn.open_table(RECORDS)?;
        let mut last = 0;
        for entry in records.iter()? {
            last = last.max(entry?.0.value().1);
        }
        last
    };
    txn.commit()?;
    Ok(last)
}

/// Drops records decided before now − `retention`; returns how many.
fn prune(db: &Database, retention: Option<Duration>) -> Result<usize, Failure> {
    let txn = db.begin_write()?;
    let mut dropped = 0;
    {
        let mut records = txn.open_table(RECORDS)?;
        let mut by_subject = txn.open_table(BY_SUBJECT)?;
        let mut by_request = txn.open_table(BY_REQUEST)?;
        if let Some(retention) = retention {
            let cutoff = now_ms().saturating_sub(retention.as_millis() as u64);
            let old: Vec<((u64, u64), AuditRecord)> = records
                .range((0, 0)..(cutoff, 0))?
                .map(|entry| {
                    let (key, value) = entry?;
                    Ok((key.value(), serde_json::from_slice(value.value())?))
                })
                .collect::<Result<_, Failure>>()?;
            for (key, record) in old {
                records.remove(key)?;
                let subject = scoped(&record.tenant, &record.subject_id);
                by_subject.remove((subject.as_str(), key.0, key.1))?;
                by_request.remove(scoped(&record.tenant, &record.request_id).as_str())?;
                dropped += 1;
            }
        }
    }
    txn.commit()?;
    Ok(dropped)
}

fn read(
    db: &Database,
    query: &AuditQuery,
    from: u64,
    to: u64,
    limit: usize,
) -> Result<Vec<AuditRecord>, Failure> {
    let txn = db.begin_read()?;
    let records = match txn.open_table(RECORDS) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let decode =
        |bytes: &[u8]| -> Result<AuditRecord, Failure> { Ok(serde_json::from_slice(bytes)?) };
    let keep = |r: &AuditRecord| {
        r.tenant == query.tenant
            && r.decided_at_ms >= from
            && r.decided_at_ms < to
            && query.subject_id.as_ref().is_none_or(|s| &r.subject_id == s)
            && query
                .request_id
                .as_ref()
                .is_none_or(|id| &r.request_id == id)
    };
    let mut out = Vec::new();
    if let Some(request_id) = &query.request_id {
        let by_request = txn.open_table(BY_REQUEST)?;
        if let Some(key) = by_request.get(scoped(&query.tenant, request_id).as_str())? {
            if let Some(value) = records.get(key.value())? {
                let record = decode(value.value())?;
                if keep(&record) {
                    out.push(record);
                }
            }
        }
        return Ok(out);
    }
    if let Some(subject) = &query.subject_id {
        let by_subject = txn.open_table(BY_SUBJECT)?;
        let subject = scoped(&query.tenant, subject);
        for entry in by_subject
            .range((subject.as_str(), from, 0)..(subject.as_str(), to, 0))?
            .rev()
        {
            let (key, _) = entry?;
            let (_, at, seq) = key.value();
            if let Some(value) = records.get((at, seq))? {
                let record = decode(value.value())?;
                if keep(&record) {
                    out.push(record);
                    if out.len() == limit {
                        break;
                    }
                }
            }
        }
        return Ok(out);
    }
    for entry in records.range((from, 0)..(to, 0))?.rev() {
        let (_, value) = entry?;
        let record = decode(value.value())?;
        if keep(&record) {
            out.push(record);
            if out.len() == limit {
                break;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(subject: &str, request: &str, at: u64) -> AuditRecord {
        AuditRecord {
            decided_at_ms: at,
            request_id: request.to_owned(),
            key_id: "key:abc".to_owned(),
            method: "VerifySubject".to_owned(),
            subject_id: subject.to_owned(),
            score: 0.9,
            threshold: 0.999_497_392_460_237_9,
            operating_point: "FAR 1 %, best of 5".to_owned(),
            matched: true,
            images_sha256: vec!["00".repeat(32)],
            ..AuditRecord::default()
        }
    }

    #[test]
    fn records_are_found_by_subject_time_and_request_newest_first_and_survive_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let now = now_ms();
        {
            let log = AuditLog::open(dir.path(), None).expect("open");
            log.append(record("alice", "r1", now - 3000));
            log.append(record("bob", "r2", now - 2000));
            log.append(record("alice", "r3", now - 1000));
            log.sync();
        }
        let log = AuditLog::open(dir.path(), None).expect("reopen");
        let all = log.query(&AuditQuery::default()).expect("all");
        let ids: Vec<&str> = all.iter().map(|r| r.request_id.as_str()).collect();
        assert_eq!(ids, ["r3", "r2", "r1"]);
        let alice = log
            .query(&AuditQuery {
                subject_id: Some("alice".into()),
                ..AuditQuery::default()
            })
            .expect("alice");
        assert_eq!(
            alice
                .iter()
                .map(|r| r.request_id.as_str())
                .collect::<Vec<_>>(),
            ["r3", "r1"]
        );
        let recent = log
            .query(&AuditQuery {
                subject_id: Some("alice".into()),
                from_ms: Some(now - 1500),
                ..AuditQuery::default()
            })
            .expect("recent");
        assert_eq!(recent.len(), 1);
        assert_eq!(recent[0], record("alice", "r3", now - 1000));
        let one = log
            .query(&AuditQuery {
                request_id: Some("r2".into()),
                ..AuditQuery::default()
            })
            .expect("by request");
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].subject_id, "bob");
        let limited = log
            .query(&AuditQuery {
                limit: 2,
                ..AuditQuery::default()
            })
            .expect("limit");
        assert_eq!(limited.len(), 2);
        assert!(log
            .query(&AuditQuery {
                limit: MAX_QUERY + 1,
                ..AuditQuery::default()
            })
            .is_err());
        assert!(log
            .query(&AuditQuery {
                from_ms: Some(5),
                to_ms: Some(5),
                ..AuditQuery::default()
            })
            .is_err());
    }

    #[test]
    fn records_past_the_retention_are_dropped_at_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let now = now_ms();
        {
            let log = AuditLog::open(dir.path(), None).expect("open");
            log.append(record("old", "r-old", now - 10 * DAY.as_millis() as u64));
            log.append(record("new", "r-new", now));
            log.sync();
        }
        let log = AuditLog::open(dir.path(), Some(7 * DAY)).expect("reopen");
        let all = log.query(&AuditQuery::default()).expect("all");
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].request_id, "r-new");
        let gone = log
            .query(&AuditQuery {
                request_id: Some("r-old".into()),
                ..AuditQuery::default()
            })
            .expect("query");
        assert!(gone.is_empty());
    }

    #[test]
    fn each_tenant_reads_only_its_own_decisions_even_with_shared_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let now = now_ms();
        let log = AuditLog::open(dir.path(), None).expect("open");
        let in_tenant = |tenant: &str, at: u64| AuditRecord {
            tenant: tenant.to_owned(),
            ..record("alice", "same-request-id", at)
        };
        log.append(in_tenant("", now - 3000));
        log.append(in_tenant("acme", now - 2000));
        log.append(in_tenant("globex", now - 1000));
        log.sync();
        for tenant in ["", "acme", "globex"] {
            let query = |subject: Option<&str>, request: Option<&str>| AuditQuery {
                tenant: tenant.to_owned(),
                subject_id: subject.map(str::to_owned),
                request_id: request.map(str::to_owned),
                ..AuditQuery::default()
            };
            for q in [
                query(None, None),
                query(Some("alice"), None),
                query(None, Some("same-request-id")),
            ] {
                let found = log.query(&q).expect("query");
                assert_eq!(found.len(), 1, "{q:?}: {found:?}");
                assert_eq!(found[0].tenant, tenant);
            }
        }
        let nobody = log
            .query(&AuditQuery {
                tenant: "initech".into(),
                ..AuditQuery::default()
            })
            .expect("query");
        assert!(nobody.is_empty());
    }
}
