//! Side-by-side relevance studies: raters see a query and two result lists (two arms, sides
//! shuffled per rater and query, names hidden), pick the better list or a tie, and may mark each
//! result relevant or not. Ratings are JSON Lines, one synced write each.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::stats::{fleiss_kappa, mean_interval, wilson, Interval};
use crate::{Error, Result};

/// A rater's choice between the two sides as shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Choice {
    /// The left list is better.
    Left,
    /// The right list is better.
    Right,
    /// Neither.
    Tie,
}

/// One stored rating, with the sides already mapped back to arms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rating {
    /// Query number in the study's query list.
    pub trial: usize,
    /// Query image (path inside the study root).
    pub query: String,
    /// Task of the query, for breakdowns.
    pub task: String,
    /// Opaque rater id.
    pub rater: String,
    /// Arm shown on the left.
    pub left: String,
    /// Arm shown on the right.
    pub right: String,
    /// What the rater chose.
    pub choice: Choice,
    /// The preferred arm (`None`: tie).
    pub preferred: Option<String>,
    /// Per arm, the rater's relevant/irrelevant mark of each shown result (optional).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub relevant: BTreeMap<String, Vec<bool>>,
    /// Server time, Unix milliseconds.
    pub time_ms: u64,
}

/// One query of a study.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudyQuery {
    /// Path inside the study root, as listed.
    pub path: String,
    /// The resolved file.
    pub file: PathBuf,
    /// Task, for breakdowns.
    pub task: String,
}

/// Reads the study's query list: a CSV with a `path,task` header; paths stay inside `root`.
///
/// # Errors
/// [`Error::Io`]; [`Error::Manifest`] naming the line of a malformed row or of a path that
/// leaves the root.
pub fn read_queries(csv: &Path, root: &Path) -> Result<Vec<StudyQuery>> {
    let text = std::fs::read_to_string(csv).map_err(|e| Error::io(csv, e))?;
    let bad = |line: usize, what: String| Error::Manifest {
        path: csv.into(),
        line,
        what,
    };
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, h)) if h.trim().eq_ignore_ascii_case("path,task") => {}
        _ => return Err(bad(1, "the header must be `path,task`".into())),
    }
    let mut out = Vec::new();
    for (n, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let Some((path, task)) = line.split_once(',') else {
            return Err(bad(n + 1, "expected `path,task`".into()));
        };
        let (path, task) = (path.trim(), task.trim());
        let file = unisight_data::sources::resolve_inside(root, path)
            .ok_or_else(|| bad(n + 1, format!("path `{path}` leaves the study root")))?;
        out.push(StudyQuery {
            path: path.into(),
            file,
            task: task.into(),
        });
    }
    if out.is_empty() {
        return Err(bad(1, "no queries".into()));
    }
    Ok(out)
}

/// Which arm goes left for this rater and query: a hash, so the server keeps no state for it,
/// each rater sees both orders, and nobody can tell the arms apart by side.
pub fn first_arm_on_left(salt: &str, rater: &str, trial: usize) -> bool {
    let digest = Sha256::new()
        .chain_update(b"unisight-study")
        .chain_update(salt.as_bytes())
        .chain_update([0u8])
        .chain_update(rater.as_bytes())
        .chain_update(trial.to_le_bytes())
        .finalize();
    digest[0] & 1 == 0
}

/// The order in which `rater` meets the `n` queries (a per-rater shuffle, so that raters who
/// stop early still cover different queries together).
pub fn trial_order(salt: &str, rater: &str, n: usize) -> Vec<usize> {
    let mut keyed: Vec<([u8; 8], usize)> = (0..n)
        .map(|t| {
            let d = Sha256::new()
                .chain_update(b"unisight-order")
                .chain_update(salt.as_bytes())
                .chain_update([0u8])
                .chain_update(rater.as_bytes())
                .chain_update(t.to_le_bytes())
                .finalize();
            let mut k = [0u8; 8];
            k.copy_from_slice(&d[..8]);
            (k, t)
        })
        .collect();
    keyed.sort();
    keyed.into_iter().map(|(_, t)| t).collect()
}

/// The ratings file: loaded at start (to refuse a rater's second rating of a query), appended
/// with one synced write per rating.
pub struct RatingsFile {
    path: PathBuf,
    state: Mutex<(File, HashSet<(String, usize)>)>,
}

impl RatingsFile {
    /// Opens or creates; a torn last line (a killed process) is cut off first.
    ///
    /// # Errors
    /// [`Error::Io`]; [`Error::Manifest`] for a malformed line before the last.
    pub fn open(path: &Path) -> Result<(Self, Vec<Rating>)> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let ratings = if path.exists() {
            let (ratings, torn_bytes) = read_ratings_with_tail(path)?;
            if torn_bytes > 0 {
                let len = std::fs::metadata(path)
                    .map_err(|e| Error::io(path, e))?
                    .len();
                let f = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(|e| Error::io(path, e))?;
                f.set_len(len - torn_bytes)
                    .map_err(|e| Error::io(path, e))?;
                f.sync_all().map_err(|e| Error::io(path, e))?;
            }
            ratings
        } else {
            Vec::new()
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        let done = ratings.iter().map(|r| (r.rater.clone(), r.trial)).collect();
        Ok((
            RatingsFile {
                path: path.into(),
                state: Mutex::new((file, done)),
            },
            ratings,
        ))
    }

    /// Whether `rater` already rated `trial`.
    pub fn has(&self, rater: &str, trial: usize) -> bool {
        self.state
            .lock()
            .map(|s| s.1.contains(&(rater.to_string(), trial)))
            .unwrap_or(false)
    }

    /// Appends and syncs; `Ok(false)` when this rater already rated this query (nothing written).
    ///
    /// # Errors
    /// [`Error::Io`] naming the file.
    pub fn add(&self, rating: &Rating) -> Result<bool> {
        let mut line = serde_json::to_vec(rating).map_err(|e| Error::Input(e.to_string()))?;
        line.push(b'\n');
        let mut state = self
            .state
            .lock()
            .map_err(|_| Error::Input("ratings lock poisoned".into()))?;
        if !state.1.insert((rating.rater.clone(), rating.trial)) {
            return Ok(false);
        }
        let result = state.0.write_all(&line).and_then(|()| state.0.sync_data());
        if let Err(e) = result {
            state.1.remove(&(rating.rater.clone(), rating.trial));
            return Err(Error::io(&self.path, e));
        }
        Ok(true)
    }
}

/// Reads a ratings file; a torn last line is skipped.
///
/// # Errors
/// [`Error::Io`]; [`Error::Manifest`] naming the line of a malformed rating.
pub fn read_ratings(path: &Path) -> Result<Vec<Rating>> {
    Ok(read_ratings_with_tail(path)?.0)
}

fn read_ratings_with_tail(path: &Path) -> Result<(Vec<Rating>, u64)> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::new();
    let mut torn = 0;
    let ends_whole = text.is_empty() || text.ends_with('\n');
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    for (n, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Rating>(line) {
            Ok(r) => out.push(r),
            Err(_) if n + 1 == lines.len() && !ends_whole => torn = line.len() as u64,
            Err(e) => {
                return Err(Error::Manifest {
                    path: path.into(),
                    line: n + 1,
                    what: e.to_string(),
                })
            }
        }
    }
    Ok((out, torn))
}

/// Preference between the two arms over some ratings.
#[derive(Debug, Clone, Serialize)]
pub struct Preference {
    /// Ratings counted.
    pub ratings: u64,
    /// Ratings preferring the second arm.
    pub second_wins: u64,
    /// Ratings preferring the first arm.
    pub first_wins: u64,
    /// Ties.
    pub ties: u64,
    /// Share of decided ratings preferring the second arm (Wilson interval); ties left out.
    pub second_preferred: Option<Interval>,
}

/// Version of `study.json` written by `unisight study report`.
pub const STUDY_REPORT_VERSION: u32 = 1;

/// The study report.
#[derive(Debug, Clone, Serialize)]
pub struct StudyReport {
    /// [`STUDY_REPORT_VERSION`].
    pub format_version: u32,
    /// The two arms, `[first, second]`: the preference is the second's.
    pub arms: [String; 2],
    /// All ratings.
    pub overall: Preference,
    /// Per task.
    pub per_task: BTreeMap<String, Preference>,
    /// Raters.
    pub raters: u64,
    /// Queries rated by at least two raters.
    pub queries_with_several_raters: u64,
    /// Share of rater pairs on the same query who chose the same (first, second or tie).
    pub pairwise_agreement: Option<f64>,
    /// Fleiss' kappa over those queries (agreement beyond chance; 1 perfect, 0 chance).
    pub fleiss_kappa: Option<f64>,
    /// Per arm, the share of results marked relevant (mean over rated lists).
    pub relevant_share: BTreeMap<String, Option<Interval>>,
    /// Plain-words verdict.
    pub verdict: String,
}

fn preference(ratings: &[&Rating], arms: &[String; 2]) -> Preference {
    let second = ratings
        .iter()
        .filter(|r| r.preferred.as_deref() == Some(arms[1].as_str()))
        .count() as u64;
    let first = ratings
        .iter()
        .filter(|r| r.preferred.as_deref() == Some(arms[0].as_str()))
        .count() as u64;
    Preference {
        ratings: ratings.len() as u64,
        second_wins: second,
        first_wins: first,
        ties: ratings.len() as u64 - second - first,
        second_preferred: wilson(second, second + first),
    }
}

/// Computes the report; `arms` orders the two arms (default: as the first rating names them,
/// left then right, sorted).
pub fn study_report(ratings: &[Rating], arms: Option<[String; 2]>) -> Option<StudyReport> {
    let arms = arms.or_else(|| {
        let r = ratings.first()?;
        let mut a = [r.left.clone(), r.right.clone()];
        a.sort();
        Some(a)
    })?;
    let all: Vec<&Rating> = ratings.iter().collect();
    let overall = preference(&all, &arms);
    let mut tasks: BTreeMap<String, Vec<&Rating>> = BTreeMap::new();
    for r in ratings {
        tasks.entry(r.task.clone()).or_default().push(r);
    }
    let per_task = tasks
        .iter()
        .map(|(t, rs)| (t.clone(), preference(rs, &arms)))
        .collect();
    // agreement: per query, how many raters chose each of (first, second, tie)
    let mut per_query: HashMap<usize, [u64; 3]> = HashMap::new();
    for r in ratings {
        let c = match r.preferred.as_deref() {
            Some(a) if a == arms[0] => 0,
            Some(_) => 1,
            None => 2,
        };
        per_query.entry(r.trial).or_default()[c] += 1;
    }
    let several: Vec<Vec<u64>> = per_query
        .values()
        .filter(|c| c.iter().sum::<u64>() >= 2)
        .map(|c| c.to_vec())
        .collect();
    let (mut agree, mut pairs) = (0u64, 0u64);
    for c in &several {
        let n: u64 = c.iter().sum();
        pairs += n * (n - 1) / 2;
        agree += c.iter().map(|k| k * k.saturating_sub(1) / 2).sum::<u64>();
    }
    let relevant_share = arms
        .iter()
        .map(|a| {
            let shares: Vec<f64> = ratings
                .iter()
                .filter_map(|r| r.relevant.get(a))
                .filter(|marks| !marks.is_empty())
                .map(|marks| marks.iter().filter(|&&m| m).count() as f64 / marks.len() as f64)
                .collect();
            (a.clone(), mean_interval(&shares))
        })
        .collect();
    let verdict = match overall.second_preferred {
        None => "not enough data: no rating preferred either list".into(),
        Some(_) if overall.first_wins + overall.second_wins < 20 => format!(
            "not enough data: {} decided ratings (at least 20 are needed for a verdict)",
            overall.first_wins + overall.second_wins
        ),
        Some(i) if i.low > 0.5 => format!(
            "raters prefer {}: {:.0}% of decided ratings (95% CI {:.0}% to {:.0}%)",
            arms[1],
            100.0 * i.value,
            100.0 * i.low,
            100.0 * i.high
        ),
        Some(i) if i.high < 0.5 => format!(
            "raters prefer {}: {:.0}% of decided ratings (95% CI {:.0}% to {:.0}%)",
            arms[0],
            100.0 * (1.0 - i.value),
            100.0 * (1.0 - i.high),
            100.0 * (1.0 - i.low)
        ),
        Some(i) => format!(
            "no clear preference: {:.0}% for {} (95% CI {:.0}% to {:.0}%)",
            100.0 * i.value,
            arms[1],
            100.0 * i.low,
            100.0 * i.high
        ),
    };
    Some(StudyReport {
        format_version: STUDY_REPORT_VERSION,
        raters: ratings
            .iter()
            .map(|r| r.rater.as_str())
            .collect::<HashSet<_>>()
            .len() as u64,
        queries_with_several_raters: several.len() as u64,
        pairwise_agreement: (pairs > 0).then(|| agree as f64 / pairs as f64),
        fleiss_kappa: fleiss_kappa(&several),
        arms,
        overall,
        per_task,
        relevant_share,
        verdict,
    })
}

impl StudyReport {
    /// The report as Markdown.
    pub fn markdown(&self) -> String {
        let pct = |i: Option<Interval>| {
            i.map_or("-".into(), |i| {
                format!(
                    "{:.0}% ({:.0}% to {:.0}%)",
                    100.0 * i.value,
                    100.0 * i.low,
                    100.0 * i.high
                )
            })
        };
        let mut s = format!(
            "## Relevance study: {} against {}\n\n| tasks | ratings | {} better | {} better | ties | {} preferred (95% CI) |\n|---|---:|---:|---:|---:|---|\n",
            self.arms[1], self.arms[0], self.arms[1], self.arms[0], self.arms[1]
        );
        let mut row = |name: &str, p: &Preference| {
            let _ = writeln!(
                s,
                "| {name} | {} | {} | {} | {} | {} |",
                p.ratings,
                p.second_wins,
                p.first_wins,
                p.ties,
                pct(p.second_preferred)
            );
        };
        row("all", &self.overall);
        for (t, p) in &self.per_task {
            row(t, p);
        }
        let _ = writeln!(
            s,
            "\nRaters: {}; queries rated by several: {}; pairwise agreement: {}; Fleiss' kappa: {}.",
            self.raters,
            self.queries_with_several_raters,
            self.pairwise_agreement
                .map_or("-".into(), |a| format!("{:.0}%", 100.0 * a)),
            self.fleiss_kappa.map_or("-".into(), |k| format!("{k:.2}"))
        );
        for (arm, share) in &self.relevant_share {
            let _ = writeln!(s, "- results marked relevant, {arm}: {}", pct(*share));
        }
        let _ = writeln!(s, "\n**{}**", self.verdict);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rating(trial: usize, rater: &str, preferred: Option<&str>, task: &str) -> Rating {
        Rating {
            trial,
            query: format!("q{trial}.jpg"),
            task: task.into(),
            rater: rater.into(),
            left: "control".into(),
            right: "treatment".into(),
            choice: match preferred {
                Some("control") => Choice::Left,
                Some(_) => Choice::Right,
                None => Choice::Tie,
            },
            preferred: preferred.map(String::from),
            relevant: BTreeMap::new(),
            time_ms: 0,
        }
    }

    #[test]
    fn sides_are_shuffled_and_orders_differ_per_rater() {
        let left: usize = (0..1000)
            .filter(|&t| first_arm_on_left("s", "r1", t))
            .count();
        assert!((400..600).contains(&left), "{left}");
        let a = trial_order("s", "r1", 50);
        let b = trial_order("s", "r2", 50);
        assert_ne!(a, b);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert_eq!(a, trial_order("s", "r1", 50));
    }

    #[test]
    fn preference_agreement_and_tasks() {
        let mut rs = Vec::new();
        for t in 0..30 {
            // two raters agree on treatment for most queries; ties on a few
            let p = if t % 10 == 0 { None } else { Some("treatment") };
            let task = if t % 2 == 0 { "fine" } else { "coarse" };
            rs.push(rating(t, "r1", p, task));
            rs.push(rating(
                t,
                "r2",
                if t % 5 == 1 { Some("control") } else { p },
                task,
            ));
        }
        let r = study_report(&rs, None).unwrap();
        assert_eq!(r.arms, ["control".to_string(), "treatment".to_string()]);
        assert_eq!(r.overall.ratings, 60);
        assert_eq!(r.overall.ties, 6);
        assert_eq!(r.overall.first_wins, 6);
        assert_eq!(r.queries_with_several_raters, 30);
        // 24 of 30 queries with both raters choosing the same
        assert!((r.pairwise_agreement.unwrap() - 0.8).abs() < 1e-12);
        assert!(r.fleiss_kappa.unwrap() > 0.2);
        assert!(
            r.verdict.starts_with("raters prefer treatment"),
            "{}",
            r.verdict
        );
        assert_eq!(r.per_task["fine"].ratings, 30);
        assert!(r.markdown().contains("| all | 60 | 48 | 6 | 6 |"));
        // few ratings: no verdict
        let r = study_report(&rs[..6], None).unwrap();
        assert!(r.verdict.starts_with("not enough data"), "{}", r.verdict);
    }

    #[test]
    fn query_lists_stay_inside_their_root() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("q.csv");
        std::fs::write(&csv, "path,task\na/1.jpg,fine\nb/2.jpg, coarse\n").unwrap();
        let q = read_queries(&csv, dir.path()).unwrap();
        assert_eq!(q.len(), 2);
        assert_eq!(
            (q[1].path.as_str(), q[1].task.as_str()),
            ("b/2.jpg", "coarse")
        );
        assert!(q[0].file.starts_with(dir.path()));
        std::fs::write(&csv, "path,task\na/1.jpg,fine\n../../etc/passwd,x\n").unwrap();
        let e = read_queries(&csv, dir.path()).unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("leaves"), "{e}");
        std::fs::write(&csv, "file,label\n").unwrap();
        assert!(read_queries(&csv, dir.path())
            .unwrap_err()
            .to_string()
            .contains("header"));
    }

    #[test]
    fn ratings_are_durable_and_a_second_rating_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("study/ratings.jsonl");
        let (file, old) = RatingsFile::open(&path).unwrap();
        assert!(old.is_empty());
        assert!(file.add(&rating(1, "r1", Some("control"), "t")).unwrap());
        assert!(!file.add(&rating(1, "r1", None, "t")).unwrap());
        assert!(file.has("r1", 1) && !file.has("r2", 1));
        drop(file);
        // a kill in the middle of the next write
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"trial\": 2, \"que").unwrap();
        drop(f);
        let (file, old) = RatingsFile::open(&path).unwrap();
        assert_eq!(old.len(), 1);
        assert!(file.has("r1", 1));
        assert!(file.add(&rating(2, "r1", None, "t")).unwrap());
        assert_eq!(read_ratings(&path).unwrap().len(), 2);
        std::fs::write(&path, "{\"trial\": 1}\n{}\n").unwrap();
        let e = read_ratings(&path).unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
    }
}
