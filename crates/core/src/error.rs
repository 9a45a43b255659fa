use std::path::PathBuf;

/// Errors of the shared artefact and file helpers.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file's content is not what its format says it must be.
    #[error("{}: {what}", path.display())]
    Malformed {
        /// The file involved.
        path: PathBuf,
        /// What is wrong, with the line or key where there is one.
        what: String,
    },
    /// An inference backend failed.
    #[error("inference failed: {0}")]
    Inference(String),
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A malformed-file error naming the path.
    pub fn malformed(path: impl Into<PathBuf>, what: impl Into<String>) -> Self {
        Error::Malformed {
            path: path.into(),
            what: what.into(),
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
