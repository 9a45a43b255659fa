use std::path::{Path, PathBuf};

/// Errors of the experiment crate; each names the file (and line or key) it is about.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The experiment file is malformed.
    #[error("{path}: {what}")]
    Config {
        /// The file.
        path: PathBuf,
        /// The key and the reason.
        what: String,
    },
    /// A line of a ratings file is malformed.
    #[error("{path}, line {line}: {what}")]
    Manifest {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The reason.
        what: String,
    },
    /// Reading the engagement log failed.
    #[error(transparent)]
    Data(#[from] unisight_data::Error),
    /// Anything else a caller passed in.
    #[error("{0}")]
    Input(String),
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
