use std::path::PathBuf;

/// Errors of the embedding job.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// ONNX Runtime could not be loaded or failed.
    #[error("onnxruntime: {0}")]
    Runtime(String),
    /// A file could not be written or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// An artefact error from the core crate.
    #[error(transparent)]
    Core(#[from] unisight_core::Error),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
