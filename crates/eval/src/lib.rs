//! Offline retrieval evaluation.
//!
//! - [`search`]: exact top-k by cosine over float embeddings (blocked matrix products) and by
//!   Hamming distance over packed codes (the index library's scan), streaming: never an N x N
//!   matrix; leave-one-out and same-group exclusion;
//! - [`metrics`]: Recall@k (the deep-metric-learning definition), Precision@k, MAP@R over
//!   result lists; [`cluster`]: k-means and NMI;
//! - [`evaluate`]: one task, float and bits, every metric from one pass per mode;
//! - [`bootstrap`]: paired bootstrap confidence intervals of differences between models;
//! - [`report`]: JSON and Markdown reports, comparisons of several models over seeds;
//!   [`chart`]: PNG curves; [`html`]: example queries with their results as thumbnails.
#![deny(missing_docs)]

pub mod bootstrap;
pub mod chart;
pub mod cluster;
pub mod compare;
mod error;
pub mod evaluate;
pub mod html;
pub mod labelled;
pub mod metrics;
pub mod report;
pub mod search;
pub mod seeds;

pub use error::{Error, Result};
