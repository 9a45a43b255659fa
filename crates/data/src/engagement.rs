//! Engagement logs as a label source.
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
//! one line per shown result (`impression`) and per action, with the optional `request`, `arm`,
//! `user` (an opaque id), `score`, `dwell_ms` and `time_ms` fields; a query made by uploading
//! an image is named `upload:<hash>` (the image itself is not kept). A log is a folder of
//! `<stem>.jsonl` (written now) and `<stem>-NNNNNN.jsonl` (rotated) files, read oldest first.
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

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::sources::resolve_inside;
use crate::{Error, Result};

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
        }
    }
}

/// Prefix of queries that were uploaded images (named by a hash, not a path).
pub const UPLOAD_PREFIX: &str = "upload:";

fn one() -> u32 {
    1
}

/// Parameters of the labelling rule (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LabelRule {
    /// A save counts this many clicks.
    pub save_weight: f64,
    /// Least score for a pair to be an edge.
    pub min_score: f64,
    /// Largest class.
    pub max_class_size: usize,
}

impl Default for LabelRule {
    fn default() -> Self {
        LabelRule {
            save_weight: 3.0,
            min_score: 1.0,
            max_class_size: 50,
        }
    }
}

/// Reads a log file. A last line without its newline that does not parse (a writer killed
/// mid-line) is skipped; a malformed line anywhere else is an error.
///
/// # Errors
/// [`Error::Io`]; [`Error::Manifest`] naming the line of a malformed event.
pub fn read_log(path: &Path) -> Result<Vec<EngagementEvent>> {
    Ok(read_logs(std::slice::from_ref(&path.to_path_buf()))?.0)
}

/// Reads log files in order; also returns how many torn last lines were skipped.
///
/// # Errors
/// As [`read_log`].
pub fn read_logs(paths: &[PathBuf]) -> Result<(Vec<EngagementEvent>, usize)> {
    let mut events = Vec::new();
    let mut torn = 0;
    for path in paths {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let whole = text.is_empty() || text.ends_with('\n');
        let lines: Vec<&str> = text.lines().collect();
        for (n, l) in lines.iter().enumerate() {
            if l.trim().is_empty() {
                continue;
            }
            match serde_json::from_str(l) {
                Ok(e) => events.push(e),
                Err(_) if !whole && n + 1 == lines.len() => torn += 1,
                Err(e) => {
                    return Err(Error::Manifest {
                        path: path.clone(),
                        line: n + 1,
                        what: e.to_string(),
                    })
                }
            }
        }
    }
    Ok((events, torn))
}

/// The files of log `stem` in `dir`: rotated `<stem>-NNNNNN.jsonl` oldest first, then the
/// current `<stem>.jsonl` (each only if present).
///
/// # Errors
/// [`Error::Io`] when the folder cannot be listed.
pub fn log_files(dir: &Path, stem: &str) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Io {
        path: dir.into(),
        source,
    })?;
    let mut rotated: Vec<(u64, PathBuf)> = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(n) = name
            .strip_prefix(stem)
            .and_then(|r| r.strip_prefix('-'))
            .and_then(|r| r.strip_suffix(".jsonl"))
            .and_then(|r| r.parse::<u64>().ok())
        {
            rotated.push((n, entry.path()));
        }
    }
    rotated.sort();
    let mut files: Vec<PathBuf> = rotated.into_iter().map(|(_, p)| p).collect();
    let current = dir.join(format!("{stem}.jsonl"));
    if current.exists() {
        files.push(current);
    }
    Ok(files)
}

/// Classes from a log per `rule`: image path -> class number, classes numbered by their
/// smallest path so the result does not depend on log order.
pub fn engagement_classes(events: &[EngagementEvent], rule: &LabelRule) -> BTreeMap<String, usize> {
    let mut scores: HashMap<(&str, &str), f64> = HashMap::new();
    for e in events {
        let w = match e.action {
            Action::Impression | Action::Dwell => continue,
            Action::Click => 1.0,
            Action::Save => rule.save_weight,
        };
        if e.query == e.result {
            continue;
        }
        let key = if e.query < e.result {
            (e.query.as_str(), e.result.as_str())
        } else {
            (e.result.as_str(), e.query.as_str())
        };
        *scores.entry(key).or_default() += w * f64::from(e.count);
    }
    let mut edges: Vec<((&str, &str), f64)> = scores
        .into_iter()
        .filter(|(_, s)| *s >= rule.min_score)
        .collect();
    edges.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut ids: HashMap<&str, usize> = HashMap::new();
    let mut names: Vec<&str> = Vec::new();
    let mut parent: Vec<usize> = Vec::new();
    let mut size: Vec<usize> = Vec::new();
    fn find(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    for ((a, b), _) in edges {
        let ia = *ids.entry(a).or_insert_with(|| {
            names.push(a);
            parent.push(parent.len());
            size.push(1);
            parent.len() - 1
        });
        let ib = *ids.entry(b).or_insert_with(|| {
            names.push(b);
            parent.push(parent.len());
            size.push(1);
            parent.len() - 1
        });
        let (ra, rb) = (find(&mut parent, ia), find(&mut parent, ib));
        if ra != rb && size[ra] + size[rb] <= rule.max_class_size {
            let (big, small) = if size[ra] >= size[rb] {
                (ra, rb)
            } else {
                (rb, ra)
            };
            parent[small] = big;
            size[big] += size[small];
        }
    }
    let mut members: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    for (i, name) in names.iter().enumerate() {
        if name.starts_with(UPLOAD_PREFIX) {
            continue;
        }
        let r = find(&mut parent, i);
        members.entry(r).or_default().push(name);
    }
    let mut groups: Vec<Vec<&str>> = members.into_values().filter(|m| m.len() >= 2).collect();
    for g in &mut groups {
        g.sort_unstable();
    }
    groups.sort();
    let mut out = BTreeMap::new();
    for (c, g) in groups.iter().enumerate() {
        for name in g {
            out.insert((*name).to_string(), c);
        }
    }
    out
}

/// The images of a log with their engagement class, paths resolved inside `root`.
///
/// # Errors
/// As [`read_log`]; a path that leaves the root, naming the log.
pub fn labeled_from_log(
    root: &Path,
    log: &Path,
    rule: &LabelRule,
) -> Result<Vec<(String, PathBuf, usize)>> {
    let events = read_log(log)?;
    labeled_from_events(root, log, &events, rule)
}

/// As [`labeled_from_log`] for events already read (`log` names them in errors).
///
/// # Errors
/// A path that leaves the root.
pub fn labeled_from_events(
    root: &Path,
    log: &Path,
    events: &[EngagementEvent],
    rule: &LabelRule,
) -> Result<Vec<(String, PathBuf, usize)>> {
    let classes = engagement_classes(events, rule);
    classes
        .into_iter()
        .map(|(path, class)| {
            let file = resolve_inside(root, &path).ok_or_else(|| Error::Manifest {
                path: log.into(),
                line: events
                    .iter()
                    .position(|e| e.query == path || e.result == path)
                    .map_or(0, |i| i + 1),
                what: format!("path `{path}` leaves the dataset root"),
            })?;
            Ok((path, file, class))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(q: &str, r: &str, action: Action, count: u32) -> EngagementEvent {
        EngagementEvent {
            query: q.into(),
            result: r.into(),
            action,
            count,
            ..EngagementEvent::default()
        }
    }

    #[test]
    fn components_from_strong_edges_with_a_size_cap() {
        let events = vec![
            ev("a", "b", Action::Click, 2),
            ev("b", "c", Action::Save, 1),
            ev("c", "d", Action::Click, 1),
            ev("x", "y", Action::Click, 1),
            ev("x", "z", Action::Impression, 9),
            ev("p", "q", Action::Click, 1),
        ];
        let rule = LabelRule {
            save_weight: 3.0,
            min_score: 1.0,
            max_class_size: 3,
        };
        let c = engagement_classes(&events, &rule);
        // b-c (3) then a-b (2) fill {a,b,c}; c-d would make 4 > cap
        assert_eq!(c["a"], c["b"]);
        assert_eq!(c["b"], c["c"]);
        assert!(
            !c.contains_key("d"),
            "d's only edge was capped away, leaving it alone"
        );
        assert_eq!(c["x"], c["y"]);
        assert_ne!(c["x"], c["a"]);
        assert!(!c.contains_key("z"), "impressions are not engagement");
        assert_eq!(c.values().max(), Some(&2));
        // a higher threshold drops the single clicks
        let strict = engagement_classes(
            &events,
            &LabelRule {
                min_score: 2.0,
                ..rule
            },
        );
        assert_eq!(strict.len(), 3);
    }

    #[test]
    fn classes_do_not_depend_on_log_order() {
        let mut events = vec![
            ev("a", "b", Action::Click, 1),
            ev("m", "n", Action::Click, 1),
            ev("b", "c", Action::Click, 1),
        ];
        let one = engagement_classes(&events, &LabelRule::default());
        events.reverse();
        assert_eq!(one, engagement_classes(&events, &LabelRule::default()));
    }

    #[test]
    fn uploaded_queries_link_results_but_are_not_images() {
        let events = vec![
            ev("upload:ab12", "x.jpg", Action::Click, 1),
            ev("upload:ab12", "y.jpg", Action::Click, 1),
            ev("upload:ff00", "z.jpg", Action::Click, 1),
            ev("upload:ff00", "z.jpg", Action::Dwell, 5),
        ];
        let c = engagement_classes(&events, &LabelRule::default());
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!(c["x.jpg"], c["y.jpg"]);
        assert!(!c.keys().any(|k| k.starts_with(UPLOAD_PREFIX)));
    }

    #[test]
    fn rotated_files_are_read_oldest_first_and_a_torn_tail_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let line =
            |q: &str| format!("{{\"query\": \"{q}\", \"result\": \"r\", \"action\": \"click\"}}\n");
        std::fs::write(dir.path().join("log-000002.jsonl"), line("b")).unwrap();
        std::fs::write(dir.path().join("log-000001.jsonl"), line("a")).unwrap();
        std::fs::write(
            dir.path().join("log.jsonl"),
            format!("{}{{\"query\": \"d", line("c")),
        )
        .unwrap();
        std::fs::write(dir.path().join("other.jsonl"), line("x")).unwrap();
        let files = log_files(dir.path(), "log").unwrap();
        assert_eq!(files.len(), 3);
        let (events, torn) = read_logs(&files).unwrap();
        let q: Vec<_> = events.iter().map(|e| e.query.as_str()).collect();
        assert_eq!((q, torn), (vec!["a", "b", "c"], 1));
    }

    #[test]
    fn malformed_lines_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log.jsonl");
        std::fs::write(&log, "{\"query\": \"a\", \"result\": \"b\", \"action\": \"click\"}\n{\"query\": \"a\", \"action\": \"like\"}\n").unwrap();
        let err = read_log(&log).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
    }
}
