//! The Milvus backend of unisight: a catalog's binary codes in a collection of a Milvus 2.3 (or
//! later 2.x) server, searched by HAMMING distance over gRPC, behind the same
//! [`unisight_backend::Backend`] trait as the embedded index. Addressed as
//! `milvus://HOST:PORT/COLLECTION` ([`MilvusUrl`]); the collection's layout is in
//! [`collection`]. The client is `milvus-sdk-rust` 2.6.2; every request runs within the URL's
//! deadline, and a server that is down or restarting is [`unisight_backend::Error::Unavailable`]
//! (a 503 from the service), never a hang.
#![deny(missing_docs)]

mod backend;
mod bridge;
pub mod collection;
pub mod local_server;
mod shortlist;
mod url;

pub use backend::Milvus;
pub use collection::ServerIndex;
pub use url::{valid_collection_name, BadUrl, MilvusUrl, DEFAULT_TIMEOUT};
