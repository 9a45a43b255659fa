use std::path::PathBuf;

/// Errors of reading inputs.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// A manifest line is malformed.
    #[error("{}: line {line}: {what}", path.display())]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        what: String,
    },
    /// An image cannot be used; the batch goes on without it.
    #[error("{}: {reason}", path.display())]
    BadImage {
        /// The image.
        path: PathBuf,
        /// Why, in one line.
        reason: String,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
