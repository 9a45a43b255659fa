//! The one place where files are mapped into memory.
//!
//! # Safety
//! A memory map is only sound while nobody changes the file underneath it. unisight never
//! modifies a committed file: segments and tombstone files are written once (`create_new`),
//! fsynced, and only ever deleted after a newer manifest stops listing them (deleting a mapped
//! file on Unix keeps its pages alive for existing maps). Another program writing into the index
//! directory breaks that contract; the checksum verified on open catches damage done before
//! opening, not during.

use std::fs::File;
use std::path::Path;

use memmap2::Mmap;

use crate::{Error, Result};

/// Maps a committed, read-only index file.
pub(crate) fn map_file(path: &Path) -> Result<Mmap> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    // SAFETY: see the module docs: committed index files are never modified in place.
    unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))
}
