//! The writer lock: an exclusive advisory lock on `LOCK`, so that one process at a time
//! changes an index (readers take none: committed files never change).

use std::fs::{File, OpenOptions};
use std::path::Path;

use crate::{Error, Result};

const LOCK: &str = "LOCK";

/// Takes the writer lock of the index in `dir`; it is held until the returned file is dropped.
///
/// # Errors
/// [`Error::Locked`] when another writer holds it; I/O errors.
pub(crate) fn take_lock(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    // A process that forks (another thread spawning a child, say) gives the child a copy of
    // every descriptor until it execs, and the copy holds the lock: a lock released a moment ago
    // can look held for that moment. So a held lock is tried again for a short while before
    // another writer is reported.
    let deadline = std::time::Instant::now() + LOCK_PATIENCE;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(std::fs::TryLockError::WouldBlock) => return Err(Error::Locked { path }),
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
    }
}

/// How long a held lock is tried again before another writer is reported.
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_millis(250);
