//! Online experiments: the experiment file and the stable assignment of users to arms, the
//! engagement log the service writes (in the format training reads), and the statistics of
//! A/B reports and side-by-side rater studies.
//!
//! The crate knows nothing of HTTP or models: the service uses it to assign, log and store
//! ratings, the CLI to report.
#![deny(missing_docs)]

pub mod config;
mod error;
pub mod raters;
pub mod report;
pub mod stats;
pub mod study;

pub use config::{Assignment, ExperimentConfig};
pub use error::{Error, Result};
pub use raters::{add_rater, RaterTokens};
pub use report::{experiment_report, ExperimentReport};
pub use study::{study_report, Rating, RatingsFile, StudyReport};
