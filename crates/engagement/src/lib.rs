//! The engagement log: one owner for what the service writes, what reports read and what
//! training learns from.
//!
//! - [`record`]: one event ([`EngagementEvent`]); [`read`]: the files of a log, in order;
//!   [`write`]: the append-only, rotated writer ([`EventLog`]); [`rule`]: the rule that turns
//!   engagement into classes and the labelled images of a log; [`catalog`](crate::rule::list_split):
//!   item keys resolved to images through the index or embedding folder the service searched;
//!   [`user`]: the simulated user ([`UserModel`]), the one click model of every simulation.
//! - The format is specified in `docs/formats/engagement-log.md`.
//!
//! # The log
//!
//! A log is JSON Lines, one aggregated event per line:
//!
//! ```json
//! {"query": "photos/a.jpg", "result": "photos/b.jpg", "action": "click", "count": 3}
//! ```
//!
//! `query` and `result` are image paths relative to the dataset root; `action` is `click`,
//! `save` or `impression` (impressions carry no positive signal and are ignored here);
//! `count` defaults to 1; `position` (0-based rank shown) and `simulated` are optional and
//! informational. The service's log (`unisight serve --experiment`) writes this same format,
//! one line per action, with the optional `request`, `arm`, `user` (an opaque id), `score`,
//! `dwell_ms`, `time_ms`, `query_key` and `result_key` fields, and one compact line per search
//! (`impression` with `shown`: every result in rank order) in a stream of its own
//! ([`impressions_stem`]); a query made by uploading an image is named `upload:<hash>` (the
//! image itself is not kept). A log is a folder of `<stem>.jsonl` (written now) and
//! `<stem>-NNNNNN.jsonl` (rotated) files, read oldest first; logs written before the streams
//! were split (one impression line per result, among the actions) read the same.
//!
//! # The rule that turns engagement into classes
//!
//! Every (query, result) pair gets a score `clicks + save_weight * saves`; pairs scoring at
//! least `min_score` are edges. Classes are the connected components of this graph, built
//! greedily from the strongest edge down, and an edge is skipped when joining its two
//! components would make one larger than `max_class_size`. Images in no edge are left out.
//!
//! Why: the normalized-softmax loss needs exactly one class per image, which rules out "one
//! class per query with its engaged results" (an image engaged from two queries would sit in
//! two classes). Components give one class per image and connect what users treated as the
//! same thing, across queries; processing the strongest evidence first and capping the size
//! keeps a few noisy or popular-item clicks from chaining everything into one giant class.
//! `upload:` queries take part in the graph (two results engaged from the same uploaded photo
//! join one class through it) but are not training images themselves. `dwell` lines carry no
//! weight here.
#![deny(missing_docs)]

mod catalog;
mod error;
pub mod read;
pub mod record;
pub mod rule;
pub mod user;
pub mod write;

pub use error::{Error, Result};
pub use read::{log_files, read_log, read_logs};
pub use record::{impressions_stem, Action, EngagementEvent, ShownResult, UPLOAD_PREFIX};
pub use rule::{engagement_classes, labeled_from_events, list_split, LabelRule};
pub use user::{Reaction, Shown, UserModel};
pub use write::{EventLog, LogOptions, Opened};
