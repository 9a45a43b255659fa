//! The rule that turns engagement into classes, and the labelled images of a log: what
//! training's `engagement` datasets read. See the crate doc for the rule and why.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use unisight_data::datasets::LabeledImage;
use unisight_data::sources::resolve_inside;

use crate::catalog::Catalog;
use crate::read::{log_files, read_logs};
use crate::record::{Action, EngagementEvent, UPLOAD_PREFIX};
use crate::{Error, Result};

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

/// The images of log `<logs>/<split>.jsonl` (and its rotated files) with their class under
/// `rule` as label `engagement`, resolved inside `root`. With a `catalog` (the index or
/// embedding folder the service searched), logged item keys are resolved through it to their
/// paths; events without keys (older logs) and logs without a catalog use the logged paths.
///
/// # Errors
/// [`Error::Io`] for a missing log; [`Error::Malformed`] naming file and line;
/// [`Error::Unresolved`] for a path leaving the root, or when no image of the log exists, so
/// that clicks that cannot be joined to images are an error, not an empty dataset.
pub fn list_split(
    root: &Path,
    logs: &Path,
    split: &str,
    rule: &LabelRule,
    catalog: Option<&Path>,
) -> Result<Vec<LabeledImage>> {
    let files = log_files(logs, split)?;
    let log = logs.join(format!("{split}.jsonl"));
    if files.is_empty() {
        return Err(Error::io(
            &log,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such engagement log"),
        ));
    }
    let (mut events, _) = read_logs(&files)?;
    if let Some(catalog) = catalog {
        let catalog = Catalog::open(catalog)?;
        let (keyed, resolved) = catalog.resolve(&mut events);
        if keyed > 0 && resolved == 0 {
            return Err(Error::Unresolved {
                path: log,
                what: format!(
                    "none of its {keyed} logged item keys is in the catalog {}: is it the \
                     index the service searched?",
                    catalog.path().display()
                ),
            });
        }
    }
    let images: Vec<LabeledImage> = labeled_from_events(root, &log, &events, rule)?
        .into_iter()
        .map(|(id, file, class)| LabeledImage {
            id,
            file,
            labels: BTreeMap::from([("engagement".to_string(), format!("e{class}"))]),
            domain: None,
        })
        .collect();
    if !images.is_empty() && !images.iter().any(|im| im.file.is_file()) {
        return Err(Error::Unresolved {
            path: log,
            what: format!(
                "none of the {} images its events name exists under {}; a log of an index \
                 built with --no-keys, or one whose paths are not relative to this root, needs \
                 `catalog` (the index or embedding folder the service searched)",
                images.len(),
                root.display()
            ),
        });
    }
    Ok(images)
}

/// The images of `events` with their engagement class, paths resolved inside `root` (`log`
/// names them in errors).
///
/// # Errors
/// [`Error::Unresolved`] for a path that leaves the root, naming the log and line.
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
            let file = resolve_inside(root, &path).ok_or_else(|| Error::Unresolved {
                path: log.into(),
                what: format!(
                    "line {}: path `{path}` leaves the dataset root",
                    events
                        .iter()
                        .position(|e| e.query == path || e.result == path)
                        .map_or(0, |i| i + 1)
                ),
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

    /// A log as the service writes it now: paths and keys of an index built from an
    /// embedding folder. Keys resolve through the catalog; none resolving is an error.
    fn logged(dir: &Path, lines: &[(&str, &str, &str, &str)]) {
        let text: String = lines
            .iter()
            .map(|(q, qk, r, rk)| {
                format!(
                    "{{\"query\": \"{q}\", \"query_key\": \"{qk}\", \"result\": \"{r}\", \
                     \"result_key\": \"{rk}\", \"action\": \"click\"}}\n"
                )
            })
            .collect();
        std::fs::write(dir.join("engagement.jsonl"), text).unwrap();
    }

    #[test]
    fn keys_resolve_through_the_catalog_and_unresolvable_logs_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("images");
        std::fs::create_dir_all(&root).unwrap();
        for f in ["a.jpg", "b.jpg"] {
            std::fs::write(root.join(f), b"x").unwrap();
        }
        // an embedding folder: ids a, b at rows 0, 1
        let catalog = dir.path().join("catalog");
        std::fs::create_dir_all(&catalog).unwrap();
        unisight_core::artifacts::write_items(
            &catalog.join("items.jsonl"),
            &[
                unisight_core::artifacts::ItemRecord {
                    id: "a".into(),
                    path: "a.jpg".into(),
                    label: None,
                },
                unisight_core::artifacts::ItemRecord {
                    id: "b".into(),
                    path: "b.jpg".into(),
                    label: None,
                },
            ],
        )
        .unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let rule = LabelRule::default();

        // logged by key: the logged paths are not files under root, the keys are
        logged(&logs, &[("a", "a", "b", "b"), ("b", "b", "a", "a")]);
        let images = list_split(&root, &logs, "engagement", &rule, Some(&catalog)).unwrap();
        let files: Vec<_> = images.iter().map(|i| i.file.clone()).collect();
        assert_eq!(files, vec![root.join("a.jpg"), root.join("b.jpg")]);
        // without the catalog the same log names no image: an error, not an empty dataset
        let err = list_split(&root, &logs, "engagement", &rule, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("catalog"), "{err}");

        // an index built with --no-keys logs rows as keys: they resolve through the folder too
        logged(&logs, &[("0", "0", "1", "1"), ("0", "0", "1", "1")]);
        let images = list_split(&root, &logs, "engagement", &rule, Some(&catalog)).unwrap();
        assert_eq!(images.len(), 2);

        // keys of another catalog resolve to nothing
        logged(&logs, &[("x", "x", "y", "y")]);
        let err = list_split(&root, &logs, "engagement", &rule, Some(&catalog))
            .unwrap_err()
            .to_string();
        assert!(err.contains("none of its 2 logged item keys"), "{err}");
        let err = list_split(&root, &logs, "engagement", &rule, Some(&root))
            .unwrap_err()
            .to_string();
        assert!(err.contains("neither an index"), "{err}");
    }
}
