use std::path::PathBuf;

/// Errors of the training library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A task config that cannot be used; `what` names the key or line.
    #[error("{}: {what}", path.display())]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong, naming the key.
        what: String,
    },
    /// A dataset that cannot be read; `what` names the file and line.
    #[error("{0}")]
    Data(String),
    /// A task file that cannot be read or a dataset it names that cannot be listed.
    #[error(transparent)]
    Task(#[from] unisight_task::Error),
    /// Model weights or files.
    #[error(transparent)]
    Model(#[from] unisight_model::Error),
    /// ONNX Runtime.
    #[error(transparent)]
    Runtime(#[from] unisight_embed::Error),
    /// Files and artifacts.
    #[error(transparent)]
    Core(#[from] unisight_core::Error),
    /// Evaluation and charts.
    #[error(transparent)]
    Eval(#[from] unisight_eval::Error),
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
    /// A loss or weight became NaN or infinite; the last checkpoint is the last good state.
    #[error(
        "training diverged at step {step}: {what}; the last checkpoint is kept; lower `train.lr` \
         or check the data"
    )]
    Diverged {
        /// The step (0-based).
        step: usize,
        /// What became non-finite.
        what: String,
    },
    /// A checkpoint or cache that does not belong to this run or is damaged.
    #[error("{}: {what}", path.display())]
    Resume {
        /// The file.
        path: PathBuf,
        /// What does not match.
        what: String,
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
