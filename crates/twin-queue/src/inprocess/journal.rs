//! The in-process queue's journal: every accepted job stays on disk until it is settled, so
//! that `twin serve` resumes a batch after a crash, a `kill -9` or a power loss instead of
//! losing it. The store is redb (an embedded, crash-safe B-tree with copy-on-write commits),
//! not a hand-made log.
//!
//! fsync policy: a publish returns only after the transaction holding its job committed with
//! `Durability::Immediate` (fsync). Commits are grouped: one writer thread takes every
//! command waiting and commits them together, so a burst of publishes costs one fsync, not
//! one each. Settling (ack, dead-letter) and attempt counts are written the same way but not
//! awaited: a settlement lost in a crash only means the job is delivered once more
//! (at-least-once), and a lost attempt count one delivery more before the limit.

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use redb::{Database, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

use crate::error::QueueError;

/// Job id and encoded job, written once per job.
const JOBS: TableDefinition<u64, (&str, &[u8])> = TableDefinition::new("jobs");
/// (returns, deliveries) of a job, rewritten as it is delivered and given back.
const ATTEMPTS: TableDefinition<u64, (u32, u32)> = TableDefinition::new("attempts");

/// File name of the journal in its directory.
pub const JOURNAL_FILE: &str = "queue.redb";

/// Commands one commit takes at most.
const MAX_GROUP: usize = 4096;

/// A journalled job, as read back at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored {
    pub seq: u64,
    pub job_id: String,
    pub body: Vec<u8>,
    pub returns: u32,
    pub deliveries: u32,
}

enum Command {
    Put {
        seq: u64,
        job_id: String,
        body: Vec<u8>,
        done: oneshot::Sender<Result<(), String>>,
    },
    Attempts {
        seq: u64,
        returns: u32,
        deliveries: u32,
    },
    Remove {
        seq: u64,
    },
}

/// Handle to the journal's writer thread. Dropping it lets the thread commit what is
/// pending and close the file, and waits for that (so the directory can be opened again).
#[derive(Debug)]
pub(crate) struct Journal {
    commands: Option<mpsc::Sender<Command>>,
    writer: Option<std::thread::JoinHandle<()>>,
    path: PathBuf,
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.commands.take();
        if let Some(writer) = self.writer.take() {
            if writer.join().is_err() {
                tracing::error!(path = %self.path.display(), "the queue journal's writer panicked");
            }
        }
    }
}

impl Journal {
    /// Opens (or creates) `dir/queue.redb` and returns the jobs it holds, in acceptance
    /// order. Blocking: call it at start, off the async executor.
    pub(crate) fn open(dir: &Path) -> Result<(Self, Vec<Stored>), QueueError> {
        let path = dir.join(JOURNAL_FILE);
        let error = |what: &str, e: &dyn std::fmt::Display| QueueError::Store {
            path: path.clone(),
            source: std::io::Error::other(format!("{what}: {e}")),
        };
        std::fs::create_dir_all(dir).map_err(|source| QueueError::Store {
            path: dir.to_owned(),
            source,
        })?;
        let db = Database::create(&path).map_err(|e| {
            error(
                "cannot open the queue journal (is another twin serve using this data \
                 directory?)",
                &e,
            )
        })?;
        let stored = read_all(&db).map_err(|e| error("cannot read the queue journal", &e))?;
        let (commands, receiver) = mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("twin-queue-journal".into())
            .spawn(move || write_loop(db, receiver))
            .map_err(|e| error("cannot start the journal's writer", &e))?;
        Ok((
            Self {
                commands: Some(commands),
                writer: Some(writer),
                path,
            },
            stored,
        ))
    }

    /// Writes a new job and waits until it is on disk.
    pub(crate) async fn put(&self, seq: u64, job_id: &str, body: &[u8]) -> Result<(), QueueError> {
        let (done, committed) = oneshot::channel();
        self.send(Command::Put {
            seq,
            job_id: job_id.to_owned(),
            body: body.to_vec(),
            done,
        })?;
        match committed.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(self.failed(&message)),
            Err(_) => Err(self.failed("the journal's writer stopped")),
        }
    }

    /// Records a job's attempt counts (not awaited).
    pub(crate) fn attempts(&self, seq: u64, returns: u32, deliveries: u32) {
        let _ = self.send(Command::Attempts {
            seq,
            returns,
            deliveries,
        });
    }

    /// Forgets a settled job (not awaited).
    pub(crate) fn remove(&self, seq: u64) {
        let _ = self.send(Command::Remove { seq });
    }

    fn send(&self, command: Command) -> Result<(), QueueError> {
        self.commands
            .as_ref()
            .ok_or_else(|| self.failed("the journal is closed"))?
            .send(command)
            .map_err(|_| self.failed("the journal's writer stopped"))
    }

    fn failed(&self, message: &str) -> QueueError {
        QueueError::Store {
            path: self.path.clone(),
            source: std::io::Error::other(format!(
                "the job was not accepted: the queue journal could not be written: {message}"
            )),
        }
    }
}

fn read_all(db: &Database) -> Result<Vec<Stored>, Box<dyn std::error::Error>> {
    let txn = db.begin_write()?;
    let mut out = Vec::new();
    {
        let jobs = txn.open_table(JOBS)?;
        let attempts = txn.open_table(ATTEMPTS)?;
        for entry in jobs.iter()? {
            let (seq, value) = entry?;
            let (job_id, body) = value.value();
            let (returns, deliveries) = attempts
                .get(seq.value())?
                .map_or((0, 0), |counts| counts.value());
            out.push(Stored {
                seq: seq.value(),
                job_id: job_id.to_owned(),
                body: body.to_vec(),
                returns,
                deliveries,
            });
        }
    }
    txn.commit()?;
    Ok(out)
}

/// The writer thread: takes every waiting command, applies them in one transaction,
/// commits with fsync, then answers the publishes. Ends when every handle is dropped.
fn write_loop(db: Database, commands: mpsc::Receiver<Command>) {
    while let Ok(first) = commands.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match commands.try_recv() {
                Ok(command) => group.push(command),
                Err(_) => break,
            }
        }
        let outcome = apply(&db, &group).map_err(|e| e.to_string());
        if let Err(message) = &outcome {
            tracing::error!(error = %message, commands = group.len(), "queue journal commit failed");
        }
        for command in group {
            if let Command::Put { done, .. } = command {
                let _ = done.send(outcome.clone());
            }
        }
    }
}

fn apply(db: &Database, group: &[Command]) -> Result<(), Box<dyn std::error::Error>> {
    let txn = db.begin_write()?;
    {
        let mut jobs = txn.open_table(JOBS)?;
        let mut attempts = txn.open_table(ATTEMPTS)?;
        for command in group {
            match command {
                Command::Put {
                    seq, job_id, body, ..
                } => {
                    jobs.insert(*seq, (job_id.as_str(), body.as_slice()))?;
                }
                Command::Attempts {
                    seq,
                    returns,
                    deliveries,
                } => {
                    // Only for jobs still journalled (a late count must not revive one).
                    if jobs.get(*seq)?.is_some() {
                        attempts.insert(*seq, (*returns, *deliveries))?;
                    }
                }
                Command::Remove { seq } => {
                    jobs.remove(*seq)?;
                    attempts.remove(*seq)?;
                }
            }
        }
    }
    txn.commit()?;
    Ok(())
}
