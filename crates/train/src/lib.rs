//! Multi-task deep metric learning for the unified embedding (Zhai et al., KDD 2019; Zhai & Wu,
//! BMVC 2019).
//!
//! - [`network`]: the trainable part of the model (trunk tail with folded batch norm, head,
//!   one proxy bank per task);
//! - [`loss`]: the normalized-softmax loss with proxy subsampling; [`sparse`]: proxy banks
//!   updated row by row when they are too large for a dense optimizer;
//! - [`config`]: the task file (its own crate, `unisight-task`, so that tools and fuzzers read
//!   it without the ML stack); [`plan`]: training images, tasks and the multi-task sampler;
//! - [`cache`]: trunk maps of the frozen front, computed once by ONNX Runtime;
//! - [`trainer`]: the run itself (checkpoints, resume, validation, the model file);
//!   [`plot`]: its charts;
//! - [`simulate`]: a simulated engagement log from labelled data (clearly marked as such);
//! - [`summary`]: the table over finished runs (mean and spread over seeds);
//! - [`sweep`]: a grid over recipe settings, ranked by validation score.
#![deny(missing_docs)]

pub mod cache;
pub use unisight_task as config;
mod error;
pub mod loss;
pub mod network;
pub mod plan;
pub mod plot;
pub mod simulate;
pub mod sparse;
pub mod summary;
pub mod sweep;
pub mod trainer;

pub use error::{Error, Result};
