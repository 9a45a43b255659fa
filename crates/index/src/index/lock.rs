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
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked { path }),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&path, e)),
    }
}
