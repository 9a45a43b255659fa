//! One line of the log: a search's shown result or a user's action on it.

use serde::{Deserialize, Serialize};

/// What a user did with a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Shown, no action.
    Impression,
    /// Clicked.
    Click,
    /// Saved (a stronger signal than a click).
    Save,
    /// Time spent on a clicked result (`dwell_ms`).
    Dwell,
}

/// One log line (aggregated by `count`, or one event of the service's log).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngagementEvent {
    /// Query image (path relative to the dataset root).
    pub query: String,
    /// Result image.
    pub result: String,
    /// Action.
    pub action: Action,
    /// How many times.
    #[serde(default = "one")]
    pub count: u32,
    /// Rank at which the result was shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<u32>,
    /// True for events made by a simulator rather than people.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub simulated: bool,
    /// The search request the line belongs to (service logs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    /// Experiment arm that served the search.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arm: Option<String>,
    /// Opaque user id (a hash; never what the client sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Score of a shown result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
    /// Time on a clicked result, for `dwell` lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dwell_ms: Option<u64>,
    /// Server time, Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_ms: Option<u64>,
    /// The query item's key in the index the service searched ("more like this" searches;
    /// absent for uploads and in logs written before keys were logged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_key: Option<String>,
    /// The result's key in the index the service searched (absent in older logs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_key: Option<String>,
    /// A whole search's impressions in one line: every shown result in rank order (`result`,
    /// `result_key`, `score` and `position` are then per entry). Readers expand such a line
    /// into one `impression` event per result ([`EngagementEvent::expand`]), so it reads as the
    /// one-line-per-result logs written before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shown: Option<Vec<ShownResult>>,
}

/// One shown result of a compact impression line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShownResult {
    /// The result's key in the index.
    pub key: String,
    /// The result's path.
    pub path: String,
    /// Its score.
    pub score: f32,
}

impl EngagementEvent {
    /// The events a line stands for: itself, or for a compact impression line one
    /// `impression` per shown result, positioned by rank.
    pub fn expand(self) -> Vec<EngagementEvent> {
        let Some(shown) = self.shown.clone() else {
            return vec![self];
        };
        let base = EngagementEvent {
            shown: None,
            ..self
        };
        shown
            .into_iter()
            .enumerate()
            .map(|(position, s)| EngagementEvent {
                result: s.path,
                result_key: Some(s.key),
                score: Some(s.score),
                position: Some(position as u32),
                ..base.clone()
            })
            .collect()
    }
}

impl Default for EngagementEvent {
    fn default() -> Self {
        EngagementEvent {
            query: String::new(),
            result: String::new(),
            action: Action::Impression,
            count: 1,
            position: None,
            simulated: false,
            request: None,
            arm: None,
            user: None,
            score: None,
            dwell_ms: None,
            time_ms: None,
            query_key: None,
            result_key: None,
            shown: None,
        }
    }
}

/// The stem of the stream that holds a log's impressions, beside the actions' `stem`: the two
/// rotate and expire apart, so a flood of searches never pushes a click out of retention.
pub fn impressions_stem(stem: &str) -> String {
    format!("{stem}.impressions")
}

/// Prefix of queries that were uploaded images (named by a hash, not a path).
pub const UPLOAD_PREFIX: &str = "upload:";

fn one() -> u32 {
    1
}
