//! Offline retrieval evaluation.
//!
//! - [`search`]: exact top-k by cosine over float embeddings (blocked, never an N x N matrix)
//!   and by Hamming distance over packed codes (the index library's scan), with leave-one-out;
//! - [`metrics`]: Recall@k (the deep-metric-learning definition), Precision@k, MAP@R.
#![deny(missing_docs)]

pub mod metrics;
pub mod search;
