use std::path::PathBuf;

/// Errors of loading, saving and exporting models.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// Pretrained weights are not where they were looked for.
    #[error("{what} not found (looked in {}); fetch them with `scripts/fetch-assets.sh` or set UNISIGHT_ASSETS", dir.display())]
    MissingAsset {
        /// What was looked for.
        what: String,
        /// Where.
        dir: PathBuf,
    },
    /// A weights or model file is unreadable or lacks a tensor.
    #[error("{}: {what}", path.display())]
    BadWeights {
        /// The file.
        path: PathBuf,
        /// What is wrong (names the tensor key).
        what: String,
    },
    /// A model file written by an unsupported format version.
    #[error("{}: unsupported model format version {found} (this build reads {supported})", path.display())]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// Version found.
        found: u32,
        /// Version supported.
        supported: u32,
    },
    /// A setting that cannot work (e.g. D larger than the trunk width).
    #[error("{0}")]
    InvalidConfig(String),
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
