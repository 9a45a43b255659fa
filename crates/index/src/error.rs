use std::path::PathBuf;

/// Everything that can go wrong opening, searching or changing an index.
///
/// Corruption, version and bad-input errors are separate variants because callers react to each
/// differently (restore from backup, upgrade the tool, fix the request).
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// File or directory involved.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The file is shorter than its own header says it must be.
    #[error("{}: truncated: expected at least {expected} bytes, found {actual}", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes the structure needs.
        expected: u64,
        /// Bytes present.
        actual: u64,
    },
    /// A checksum does not match the content.
    #[error("{}: checksum mismatch (stored {stored:#010x}, computed {computed:#010x})", path.display())]
    ChecksumMismatch {
        /// The file.
        path: PathBuf,
        /// Checksum in the file.
        stored: u32,
        /// Checksum of the bytes read.
        computed: u32,
    },
    /// The file was written by a format version this build cannot read.
    #[error("{}: unsupported format version {found} (this build reads {oldest}..={newest})", path.display())]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// Version found.
        found: u32,
        /// Oldest version supported.
        oldest: u32,
        /// Newest version supported.
        newest: u32,
    },
    /// The content is structurally invalid (bad magic, inconsistent lengths, ...).
    #[error("{}: corrupt: {what}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The directory holds no index.
    #[error("{}: no index here (MANIFEST.json missing); create one with `unisight index build`", path.display())]
    NotAnIndex {
        /// The directory.
        path: PathBuf,
    },
    /// Another process holds the writer lock.
    #[error("{}: locked by another writer", path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// The caller passed something inconsistent with the index.
    #[error("{0}")]
    InvalidInput(String),
    /// A key that is already in the index (keys are unique).
    #[error("key {0:?} is already in the index")]
    DuplicateKey(String),
    /// An id or key not present in the index.
    #[error("unknown item {0}")]
    UnknownItem(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, what: impl Into<String>) -> Self {
        Error::Corrupt {
            path: path.into(),
            what: what.into(),
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
