use std::path::PathBuf;

/// What can go wrong reading, writing or labelling an engagement log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or folder could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A line of a log is not an event.
    #[error("{}: line {line}: {what}", path.display())]
    Malformed {
        /// The log file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// Why.
        what: String,
    },
    /// The log's items cannot be joined to images: a path leaves the dataset root, or no
    /// logged item resolves to an image.
    #[error("{}: {what}", path.display())]
    Unresolved {
        /// The log (or its folder).
        path: PathBuf,
        /// What failed to resolve, and what to do.
        what: String,
    },
    /// The catalog named to resolve item keys cannot be read.
    #[error("catalog {}: {what}", path.display())]
    Catalog {
        /// The index or embedding folder.
        path: PathBuf,
        /// Why.
        what: String,
    },
    /// The writer's state is broken (a poisoned lock, an event that does not serialise).
    #[error("engagement log: {0}")]
    Writer(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
