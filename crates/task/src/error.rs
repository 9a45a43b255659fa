use std::path::PathBuf;

/// Errors of reading a task file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A task file that cannot be used; `what` names the key or line.
    #[error("{}: {what}", path.display())]
    Config {
        /// The task file.
        path: PathBuf,
        /// What is wrong, naming the key.
        what: String,
    },
    /// A dataset that cannot be listed; `what` names the file and line.
    #[error("{0}")]
    Data(String),
    /// An engagement log cannot be read or joined to images.
    #[error(transparent)]
    Engagement(#[from] unisight_engagement::Error),
    /// I/O on a named file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
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
