//! The job-status store: an append-only JSON-lines log under `queue.jobs_dir`, with
//! every job's merged record held in memory. Writes are group-committed by one
//! dedicated thread (one `fsync` for everything that queued up meanwhile), so many
//! concurrent enqueues cost few syncs, and a write returns only once it is durable.
//!
//! On open the log is replayed (a torn last line from a crash is dropped) and, when it
//! holds superseded lines or expired records, rewritten compactly (temp file, fsync,
//! rename). One process owns a directory at a time (an advisory lock on `jobs.lock`).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::oneshot;

use twin_core::clock::now_ms;

use crate::error::QueueError;
use crate::status::record::{JobRecord, JobState};

const LOG_FILE: &str = "jobs.jsonl";
const LOCK_FILE: &str = "jobs.lock";

type WriteDone = oneshot::Sender<Result<(), String>>;

struct WriteRequest {
    records: Vec<JobRecord>,
    done: Option<WriteDone>,
}

struct Shared {
    dir: PathBuf,
    records: RwLock<HashMap<String, JobRecord>>,
    writer: Mutex<mpsc::Sender<WriteRequest>>,
    _lock: File,
}

/// Durable job statuses, shared by the enqueuing side (which records `Queued`) and
/// whoever learns the outcome (the worker in embedded mode, the status feed of the
/// RabbitMQ backend otherwise). Cheap to clone.
///
/// ```no_run
/// # async fn demo(job: twin_core::job::EmbedJob) -> Result<(), twin_queue::QueueError> {
/// use twin_queue::{JobRecord, JobStore};
/// let store = JobStore::open(".twin/jobs".as_ref(), None)?;
/// store.record(vec![JobRecord::queued(&job)]).await?;
/// assert!(store.get(&job.job_id).is_some());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct JobStore {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for JobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobStore")
            .field("dir", &self.shared.dir)
            .field("jobs", &self.len())
            .finish()
    }
}

impl JobStore {
    /// Opens (creating) the store in `dir`; terminal records last updated longer ago
    /// than `retention` are dropped while compacting (`None` keeps them forever).
    ///
    /// Blocking file IO: call it at start-up or from `spawn_blocking`.
    pub fn open(dir: &Path, retention: Option<Duration>) -> Result<Self, QueueError> {
        let io_err = |path: &Path| {
            let path = path.to_owned();
            move |source| QueueError::Store { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        lock.try_lock().map_err(|e| QueueError::Store {
            path: lock_path.clone(),
            source: std::io::Error::other(format!(
                "another process uses this job store ({e}); give each process its own \
                 queue.jobs_dir"
            )),
        })?;
        let log_path = dir.join(LOG_FILE);
        let (records, lines, valid_len) = replay(&log_path).map_err(io_err(&log_path))?;
        let mut records = records;
        let cutoff = retention.map(|r| now_ms().saturating_sub(duration_ms(r)));
        let before = records.len();
        if let Some(cutoff) = cutoff {
            records.retain(|_, r| !(r.state.is_terminal() && r.updated_at_ms < cutoff));
        }
        let file = if lines > records.len() || records.len() < before {
            compact(&log_path, &records).map_err(io_err(&log_path))?
        } else {
            let mut file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .map_err(io_err(&log_path))?;
            // Drop a torn last line left by a crash, so the next record starts clean.
            if file.metadata().map_err(io_err(&log_path))?.len() != valid_len {
                file.set_len(valid_len).map_err(io_err(&log_path))?;
                file.seek(SeekFrom::End(0)).map_err(io_err(&log_path))?;
            }
            file
        };
        tracing::info!(dir = %dir.display(), jobs = records.len(), "job store opened");
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            dir: dir.to_owned(),
            records: RwLock::new(records),
            writer: Mutex::new(tx),
            _lock: lock,
        });
        let weak = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name("twin-jobstore".into())
            .spawn(move || write_loop(file, rx, weak))
            .map_err(io_err(dir))?;
        Ok(Self { shared })
    }

    /// Folds `records` into the store; returns once they are on disk.
    pub async fn record(&self, records: Vec<JobRecord>) -> Result<(), QueueError> {
        if records.is_empty() {
            return Ok(());
        }
        let (done, wait) = oneshot::channel();
        self.send(WriteRequest {
            records,
            done: Some(done),
        })?;
        let result = wait.await.map_err(|_| self.closed_error())?;
        result.map_err(|message| QueueError::Store {
            path: self.log_path(),
            source: std::io::Error::other(message),
        })
    }

    /// Like [`JobStore::record`] without waiting (for `Drop` paths); a failure is logged.
    pub fn record_detached(&self, records: Vec<JobRecord>) {
        if let Err(e) = self.send(WriteRequest {
            records,
            done: None,
        }) {
            tracing::warn!(error = %e, "job status not recorded");
        }
    }

    /// The merged record of a job, if known.
    pub fn get(&self, job_id: &str) -> Option<JobRecord> {
        self.read().get(job_id).cloned()
    }

    /// Number of jobs known.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// True when no job is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Marks failed, with `reason`, every job still listed as queued whose id is not in
    /// `alive` (the jobs a restarted queue still holds); returns how many.
    pub async fn fail_queued_except(
        &self,
        alive: &std::collections::HashSet<String>,
        reason: &str,
    ) -> Result<usize, QueueError> {
        let stale: Vec<JobRecord> = self
            .read()
            .values()
            .filter(|r| r.state == JobState::Queued && !alive.contains(&r.job_id))
            .map(|r| {
                let mut failed = JobRecord::failed_unread(&r.job_id, reason, r.attempts);
                failed.merge(r);
                failed
            })
            .collect();
        let count = stale.len();
        self.record(stale).await?;
        Ok(count)
    }

    /// The directory of the store.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, JobRecord>> {
        self.shared
            .records
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn send(&self, request: WriteRequest) -> Result<(), QueueError> {
        self.shared
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send(request)
            .map_err(|_| self.closed_error())
    }

    fn log_path(&self) -> PathBuf {
        self.shared.dir.join(LOG_FILE)
    }

    fn closed_error(&self) -> QueueError {
        QueueError::Store {
            path: self.log_path(),
            source: std::io::Error::other("the job store's writer thread stopped"),
        }
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Reads the log: merged records, number of valid lines, byte length of the valid part.
fn replay(path: &Path) -> std::io::Result<(HashMap<String, JobRecord>, usize, u64)> {
    let mut records: HashMap<String, JobRecord> = HashMap::new();
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((records, 0, 0)),
        Err(e) => return Err(e),
    };
    let mut reader = BufReader::new(file);
    let (mut lines, mut valid_len, mut line) = (0usize, 0u64, Vec::new());
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        if line.last() != Some(&b'\n') {
            tracing::warn!(path = %path.display(), bytes = n, "dropping torn last line of the job log");
            break;
        }
        match serde_json::from_slice::<JobRecord>(&line) {
            Ok(record) => merge_into(&mut records, record),
            Err(e) => {
                tracing::warn!(path = %path.display(), line = lines + 1, error = %e, "skipping unreadable job log line");
            }
        }
        lines += 1;
        valid_len += n as u64;
    }
    Ok((records, lines, valid_len))
}

fn merge_into(records: &mut HashMap<String, JobRecord>, record: JobRecord) {
    match records.get_mut(&record.job_id) {
        Some(existing) => existing.merge(&record),
        None => {
            records.insert(record.job_id.clone(), record);
        }
    }
}

/// Rewrites the log with one line per record; returns the new file, open for append.
fn compact(path: &Path, records: &HashMap<String, JobRecord>) -> std::io::Result<File> {
    let tmp = path.with_extension("jsonl.tmp");
    {
        let mut out = BufWriter::new(File::create(&tmp)?);
        for record in records.values() {
            serde_json::to_writer(&mut out, record)?;
            out.write_all(b"\n")?;
        }
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    OpenOptions::new().append(true).open(path)
}

fn write_loop(file: File, rx: mpsc::Receiver<WriteRequest>, shared: std::sync::Weak<Shared>) {
    let mut out = BufWriter::new(file);
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        let result = write_batch(&mut out, &batch);
        if let Err(e) = &result {
            tracing::error!(error = %e, "job store write failed");
        }
        if result.is_ok() {
            if let Some(shared) = shared.upgrade() {
                let mut records = shared
                    .records
                    .write()
                    .unwrap_or_else(PoisonError::into_inner);
                for record in batch.iter().flat_map(|r| r.records.iter()) {
                    merge_into(&mut records, record.clone());
                }
            }
        }
        for request in batch {
            if let Some(done) = request.done {
                let _ = done.send(result.as_ref().map(|_| ()).map_err(|e| e.to_string()));
            }
        }
    }
}

fn write_batch(out: &mut BufWriter<File>, batch: &[WriteRequest]) -> std::io::Result<()> {
    for record in batch.iter().flat_map(|r| r.records.iter()) {
        serde_json::to_writer(&mut *out, record)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    out.get_ref().sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;
    use twin_core::job::EmbedJob;

    fn job(n: u32) -> EmbedJob {
        EmbedJob {
            job_id: uuid::Uuid::new_v4().to_string(),
            subject_id: format!("s{n}"),
            image_sha256: "cd".repeat(32),
            model_id: "m".into(),
            ..EmbedJob::default()
        }
    }

    #[tokio::test]
    async fn survives_reopen_and_compacts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let jobs: Vec<EmbedJob> = (0..20).map(job).collect();
        {
            let store = JobStore::open(dir.path(), None).expect("open");
            store
                .record(jobs.iter().map(JobRecord::queued).collect())
                .await
                .expect("queued");
            store
                .record(vec![
                    JobRecord::done(&jobs[0], 1),
                    JobRecord::failed(&jobs[1], "bad image: truncated", 2),
                ])
                .await
                .expect("outcomes");
            assert_eq!(store.len(), 20);
        }
        let store = JobStore::open(dir.path(), None).expect("reopen");
        assert_eq!(store.len(), 20);
        let done = store.get(&jobs[0].job_id).expect("job 0");
        assert_eq!((done.state, done.attempts), (JobState::Done, 1));
        let failed = store.get(&jobs[1].job_id).expect("job 1");
        assert_eq!(failed.state, JobState::Failed);
        assert_eq!(failed.error, "bad image: truncated");
        assert_eq!(failed.subject_id, "s1");
        let text = std::fs::read_to_string(dir.path().join(LOG_FILE)).expect("log");
        assert_eq!(
            text.lines().count(),
            20,
            "superseded lines were compacted away"
        );
    }

    #[tokio::test]
    async fn torn_last_line_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let job = job(1);
        {
            let store = JobStore::open(dir.path(), None).expect("open");
            store
                .record(vec![JobRecord::queued(&job)])
                .await
                .expect("queued");
        }
        let log = dir.path().join(LOG_FILE);
        let mut file = OpenOptions::new().append(true).open(&log).expect("log");
        file.write_all(b"{\"job_id\":\"torn").expect("write");
        drop(file);
        let store = JobStore::open(dir.path(), None).expect("reopen");
        store
            .record(vec![JobRecord::done(&job, 1)])
            .await
            .expect("done");
        drop(store);
        let store = JobStore::open(dir.path(), None).expect("reopen twice");
        assert_eq!(
            store.get(&job.job_id).map(|r| r.state),
            Some(JobState::Done)
        );
        assert_eq!(store.len(), 1);
    }

    #[tokio::test]
    async fn retention_drops_old_terminal_records_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (old, queued) = (job(1), job(2));
        {
            let store = JobStore::open(dir.path(), None).expect("open");
            let mut done = JobRecord::done(&old, 1);
            done.updated_at_ms = 1_000;
            let mut waiting = JobRecord::queued(&queued);
            waiting.updated_at_ms = 1_000;
            store.record(vec![done, waiting]).await.expect("record");
        }
        let store = JobStore::open(dir.path(), Some(Duration::from_secs(3600))).expect("reopen");
        assert!(store.get(&old.job_id).is_none());
        assert!(store.get(&queued.job_id).is_some());
    }

    #[tokio::test]
    async fn second_opener_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let _store = JobStore::open(dir.path(), None).expect("open");
        let err = JobStore::open(dir.path(), None).expect_err("second open");
        assert!(err.to_string().contains("another process"), "{err}");
    }

    #[tokio::test]
    async fn fail_queued_marks_only_waiting_jobs_the_queue_no_longer_holds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = JobStore::open(dir.path(), None).expect("open");
        let (a, b) = (job(1), job(2));
        store
            .record(vec![JobRecord::queued(&a), JobRecord::done(&b, 1)])
            .await
            .expect("record");
        let late = job(3);
        store
            .record(vec![JobRecord::queued(&late)])
            .await
            .expect("late");
        let alive = std::collections::HashSet::from([late.job_id.clone()]);
        let failed = store
            .fail_queued_except(&alive, "lost at restart")
            .await
            .expect("fail");
        assert_eq!(failed, 1);
        assert_eq!(
            store.get(&late.job_id).map(|r| r.state),
            Some(JobState::Queued)
        );
        let a = store.get(&a.job_id).expect("a");
        assert_eq!(
            (a.state, a.error.as_str()),
            (JobState::Failed, "lost at restart")
        );
        assert_eq!(a.subject_id, "s1");
        assert_eq!(store.get(&b.job_id).map(|r| r.state), Some(JobState::Done));
    }
}
