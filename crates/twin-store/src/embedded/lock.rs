//! One process per data directory: the embedded engine keeps state in memory that
//! two writers would corrupt, so the directory is claimed with an exclusive file lock
//! (`<dir>/.lock`, holding the owner's pid) and a second opener is told who owns it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::StoreError;

/// Name of the lock file inside the data directory.
pub const LOCK_FILE: &str = ".lock";

/// An exclusive claim on a data directory, released when dropped (or when the process
/// dies: the kernel drops the lock with the file descriptor).
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
    path: PathBuf,
}

impl DirLock {
    pub(crate) fn acquire(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Internal(format!(
                "cannot create store directory {}: {e}",
                dir.display()
            ))
        })?;
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| {
                StoreError::Internal(format!("cannot open lock file {}: {e}", path.display()))
            })?;
        match fs4::FileExt::try_lock(&file) {
            Ok(()) => {}
            Err(fs4::TryLockError::WouldBlock) => {
                let owner = std::fs::read_to_string(&path)
                    .ok()
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "unknown".to_owned());
                return Err(StoreError::Locked(format!(
                    "store directory {} is in use by another process (pid {owner}); stop it or \
                     use another data_dir",
                    dir.display()
                )));
            }
            Err(fs4::TryLockError::Error(e)) => {
                return Err(StoreError::Internal(format!(
                    "cannot lock {}: {e}",
                    path.display()
                )));
            }
        }
        // The pid is informational (for the message above); failing to write it does
        // not weaken the lock.
        let _ = file
            .set_len(0)
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .and_then(|()| file.sync_data());
        Ok(Self { _file: file, path })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}
