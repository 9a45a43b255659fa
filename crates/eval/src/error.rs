use std::path::PathBuf;

/// Errors of the evaluation library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Inputs that cannot be evaluated as given (empty query set, k beyond the gallery, sets
    /// that do not line up); the message says which.
    #[error("{0}")]
    Input(String),
    /// A file that cannot be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A report file that is not what this version writes.
    #[error("{}: {what}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key.
        what: String,
    },
    /// Files written through the shared helpers.
    #[error(transparent)]
    Core(#[from] unisight_core::Error),
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
