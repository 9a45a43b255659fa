//! Engagement logging: every search's shown results (impressions, one compact line per search)
//! and every user action on a result (`POST /v1/events`: click, save, dwell) go to the
//! experiment's append-only log, in two streams that rotate and expire apart: a flood of
//! searches rotates impressions away, never the clicks and saves training learns from.
//!
//! The searches kept for checking actions are bounded by count and by bytes (their shown
//! results' keys and paths), oldest forgotten first, so a client asking for `k = 1000` again
//! and again cannot grow the service's memory past the budget.
//!
//! Actions are checked against the searches of the last hour kept in memory: an action for an
//! unknown or expired request, on a result that was not shown, or repeated (same request,
//! result and action: a replay or a double click) is refused and counted; the client's clock is
//! never trusted (a skewed client time is counted, the server's time is logged).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use unisight_engagement::EventLog;
use unisight_engagement::{Action, EngagementEvent, ShownResult};

/// How long a search accepts actions.
const ACTION_WINDOW: Duration = Duration::from_secs(3600);
/// Most searches remembered for actions (oldest forgotten first).
const REMEMBERED: usize = 100_000;
/// Default bytes of remembered searches.
pub const DEFAULT_REMEMBER_BYTES: usize = 64 << 20;
/// A client clock further off than this is counted as skewed.
const SKEW_LIMIT_MS: u64 = 5 * 60 * 1000;

/// What the log needs to know of one answered search.
pub struct SearchRecord {
    /// Arm that answered.
    pub arm: String,
    /// Query name: the item's path, or `upload:<hash>`.
    pub query: String,
    /// The query item's key ("more like this"; `None` for uploads).
    pub query_key: Option<String>,
    /// Opaque user id.
    pub user: Option<String>,
    /// From a simulated user (`X-Unisight-Simulated: 1`).
    pub simulated: bool,
    /// Shown results: key, path, score.
    pub results: Vec<(String, String, f32)>,
}

struct Remembered {
    record: SearchRecord,
    at: Instant,
    actions: HashSet<(usize, Action)>,
    bytes: usize,
}

impl SearchRecord {
    /// Approximate heap and inline bytes of a remembered search with request id `request`.
    fn footprint(&self, request: &str) -> usize {
        let result = std::mem::size_of::<(String, String, f32)>();
        let strings: usize = self.results.iter().map(|(k, p, _)| k.len() + p.len()).sum();
        std::mem::size_of::<Remembered>()
            + 2 * request.len()
            + self.arm.len()
            + self.query.len()
            + self.query_key.as_ref().map_or(0, String::len)
            + self.user.as_ref().map_or(0, String::len)
            + self.results.len() * result
            + strings
            + 64
    }
}

/// The remembered searches, oldest first in `order`, and their bytes.
#[derive(Default)]
struct Recent {
    map: HashMap<String, Remembered>,
    order: VecDeque<String>,
    bytes: usize,
}

/// Why an action was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No search with this id in the last hour.
    UnknownRequest,
    /// The result was not among the search's results.
    NotShown,
    /// The same action on the same result of the same search was logged already.
    Duplicate,
}

/// Counters of refused and odd events, for /metrics and reports.
#[derive(Debug, Default, Serialize)]
pub struct EventCounters {
    /// Actions logged.
    pub logged: AtomicU64,
    /// Actions for unknown or expired requests.
    pub unknown_request: AtomicU64,
    /// Actions on results not shown.
    pub not_shown: AtomicU64,
    /// Repeated actions (replays, double clicks).
    pub duplicate: AtomicU64,
    /// Actions whose client time was more than 5 minutes off.
    pub clock_skew: AtomicU64,
    /// Log writes that failed (the request still succeeded).
    pub write_errors: AtomicU64,
}

/// The log's two streams with the searches that actions may refer to.
pub struct Engagement {
    actions: EventLog,
    impressions: EventLog,
    recent: Mutex<Recent>,
    remember_bytes: usize,
    /// Counters.
    pub counters: EventCounters,
}

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Engagement {
    /// Wraps the open streams of a log: `actions` (`<stem>`) and `impressions`
    /// (`<stem>.impressions`), remembering searches up to `remember_bytes`.
    pub fn new(actions: EventLog, impressions: EventLog, remember_bytes: usize) -> Self {
        Engagement {
            actions,
            impressions,
            recent: Mutex::new(Recent::default()),
            remember_bytes,
            counters: EventCounters::default(),
        }
    }

    fn write(&self, log: &EventLog, events: &[EngagementEvent]) {
        if let Err(e) = log.append(events) {
            self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!("engagement log: {e}");
        }
    }

    /// Logs the impressions of a search (one line) and remembers it for actions.
    pub fn searched(&self, request: &str, record: SearchRecord) {
        let line = EngagementEvent {
            query: record.query.clone(),
            query_key: record.query_key.clone(),
            action: Action::Impression,
            simulated: record.simulated,
            request: Some(request.to_string()),
            arm: Some(record.arm.clone()),
            user: record.user.clone(),
            time_ms: Some(now_ms()),
            shown: Some(
                record
                    .results
                    .iter()
                    .map(|(key, path, score)| ShownResult {
                        key: key.clone(),
                        path: path.clone(),
                        score: *score,
                    })
                    .collect(),
            ),
            ..EngagementEvent::default()
        };
        self.write(&self.impressions, std::slice::from_ref(&line));
        let Ok(mut recent) = self.recent.lock() else {
            return;
        };
        let bytes = record.footprint(request);
        let recent = &mut *recent;
        while !recent.order.is_empty()
            && (recent.order.len() >= REMEMBERED || recent.bytes + bytes > self.remember_bytes)
        {
            if let Some(old) = recent.order.pop_front() {
                if let Some(gone) = recent.map.remove(&old) {
                    recent.bytes -= gone.bytes;
                }
            }
        }
        recent.order.push_back(request.to_string());
        recent.bytes += bytes;
        if let Some(replaced) = recent.map.insert(
            request.to_string(),
            Remembered {
                record,
                at: Instant::now(),
                actions: HashSet::new(),
                bytes,
            },
        ) {
            recent.bytes -= replaced.bytes;
        }
    }

    /// Bytes and count of the searches remembered now.
    pub fn remembered(&self) -> (usize, usize) {
        self.recent
            .lock()
            .map_or((0, 0), |r| (r.bytes, r.map.len()))
    }

    /// Checks and logs one action; returns the arm of the search.
    ///
    /// # Errors
    /// The [`Refusal`] (also counted).
    pub fn act(
        &self,
        request: &str,
        key: &str,
        action: Action,
        dwell_ms: Option<u64>,
        client_time_ms: Option<u64>,
    ) -> Result<String, Refusal> {
        let time_ms = now_ms();
        if client_time_ms.is_some_and(|c| c.abs_diff(time_ms) > SKEW_LIMIT_MS) {
            self.counters.clock_skew.fetch_add(1, Ordering::Relaxed);
        }
        let line = {
            let Ok(mut recent) = self.recent.lock() else {
                return Err(Refusal::UnknownRequest);
            };
            let refuse = |r: Refusal, counter: &AtomicU64| {
                counter.fetch_add(1, Ordering::Relaxed);
                Err(r)
            };
            let Some(search) = recent
                .map
                .get_mut(request)
                .filter(|s| s.at.elapsed() <= ACTION_WINDOW)
            else {
                return refuse(Refusal::UnknownRequest, &self.counters.unknown_request);
            };
            let Some(position) = search.record.results.iter().position(|r| r.0 == key) else {
                return refuse(Refusal::NotShown, &self.counters.not_shown);
            };
            if !search.actions.insert((position, action)) {
                return refuse(Refusal::Duplicate, &self.counters.duplicate);
            }
            let r = &search.record;
            EngagementEvent {
                query: r.query.clone(),
                result: r.results[position].1.clone(),
                query_key: r.query_key.clone(),
                result_key: Some(r.results[position].0.clone()),
                action,
                position: Some(position as u32),
                simulated: r.simulated,
                request: Some(request.to_string()),
                arm: Some(r.arm.clone()),
                user: r.user.clone(),
                dwell_ms: if action == Action::Dwell {
                    dwell_ms
                } else {
                    None
                },
                time_ms: Some(time_ms),
                ..EngagementEvent::default()
            }
        };
        let arm = line.arm.clone().unwrap_or_default();
        self.write(&self.actions, std::slice::from_ref(&line));
        self.counters.logged.fetch_add(1, Ordering::Relaxed);
        Ok(arm)
    }

    /// Syncs both streams (at shutdown).
    pub fn sync(&self) {
        let _ = self.actions.sync();
        let _ = self.impressions.sync();
    }

    /// Prometheus lines of the counters.
    pub fn render(&self) -> String {
        let c = &self.counters;
        let mut out = String::from("# TYPE unisight_events_total counter\n");
        for (what, n) in [
            ("logged", &c.logged),
            ("unknown_request", &c.unknown_request),
            ("not_shown", &c.not_shown),
            ("duplicate", &c.duplicate),
            ("clock_skew", &c.clock_skew),
            ("write_error", &c.write_errors),
        ] {
            out.push_str(&format!(
                "unisight_events_total{{outcome=\"{what}\"}} {}\n",
                n.load(Ordering::Relaxed)
            ));
        }
        let (bytes, searches) = self.remembered();
        out.push_str(&format!(
            "# TYPE unisight_remembered_searches gauge\nunisight_remembered_searches {searches}\n\
             # TYPE unisight_remembered_search_bytes gauge\nunisight_remembered_search_bytes {bytes}\n"
        ));
        out
    }
}
