//! What can go wrong in a backend, by what the caller does about it: fix the request
//! (`InvalidInput`, `DuplicateKey`), retry later (`Unavailable`, `Busy`), fix the configuration
//! (`Incompatible`, `ReadOnly`), or look at the store (`Index`, `Server`).

/// A backend's error.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request does not fit the backend (code width, float dimension, re-ranking).
    #[error("{0}")]
    InvalidInput(String),
    /// A key that is already stored, or given twice in one add.
    #[error("key {0:?} is already in the index")]
    DuplicateKey(String),
    /// Another process holds the embedded index's writer lock.
    #[error("another process is writing the index")]
    Busy,
    /// The backend was opened for reading only.
    #[error("this index was opened read-only")]
    ReadOnly,
    /// The store cannot be reached now (a server down or restarting, a deadline passed):
    /// retrying later may work.
    #[error("the index is unavailable: {0}")]
    Unavailable(String),
    /// The store is not what this backend was asked to serve (wrong server version, a
    /// collection of another code width, metric or schema).
    #[error("incompatible index: {0}")]
    Incompatible(String),
    /// The embedded index failed (I/O, corruption).
    #[error(transparent)]
    Index(unisight_index::Error),
    /// The server refused or failed a request.
    #[error("the index server failed: {0}")]
    Server(String),
}

impl From<unisight_index::Error> for Error {
    fn from(e: unisight_index::Error) -> Self {
        use unisight_index::Error as E;
        match e {
            E::InvalidInput(what) => Error::InvalidInput(what),
            E::DuplicateKey(key) => Error::DuplicateKey(key),
            E::Locked { .. } => Error::Busy,
            e => Error::Index(e),
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
