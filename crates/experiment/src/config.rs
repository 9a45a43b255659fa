//! The experiment file a user writes, and the stable assignment of users to arms.
//!
//! ```toml
//! name = "round-2"
//! [[arms]]
//! name = "control"
//! model = "models/human.safetensors"
//! index = "indexes/human"
//! share = 0.5
//! [[arms]]
//! name = "treatment"
//! model = "models/engagement.safetensors"
//! index = "indexes/engagement"
//! share = 0.5
//! [log]
//! dir = "logs"
//! [study]
//! arms = ["control", "treatment"]
//! queries = "study-queries.csv"
//! ratings = "ratings.jsonl"
//! ```
//!
//! Relative paths are resolved from the file's folder.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// Buckets a user's hash is reduced to; shares are whole buckets of this many.
pub const BUCKETS: u64 = 10_000;

/// One arm: a model and the index built with it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArmConfig {
    /// Name shown in responses and reports (`control`, `treatment`, ...).
    pub name: String,
    /// Model file.
    pub model: PathBuf,
    /// Index built with that model: a folder, or a Milvus collection
    /// (`milvus://HOST:PORT/COLLECTION`, left as written).
    pub index: PathBuf,
    /// Share of users (any non-negative numbers; normalised over the arms).
    #[serde(default = "one")]
    pub share: f64,
}

fn one() -> f64 {
    1.0
}

/// Whether an arm's `index` names an index server rather than a folder.
pub fn is_server_address(index: &str) -> bool {
    index.starts_with("milvus://")
}

/// Where and how the engagement log is written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// Folder of the log files.
    pub dir: PathBuf,
    /// File stem: the current file is `<stem>.jsonl`, rotated ones `<stem>-NNNNNN.jsonl`, which
    /// is the layout the training's engagement source reads (`train_splits = ["<stem>"]`).
    #[serde(default = "default_stem")]
    pub stem: String,
    /// A file is rotated once it holds this many MiB.
    #[serde(default = "default_rotate")]
    pub rotate_mib: u64,
    /// Rotated files kept; older ones are deleted (retention).
    #[serde(default = "default_keep")]
    pub keep_files: usize,
    /// The impressions' stream (`<stem>.impressions`) rotates at this many MiB (default:
    /// `rotate_mib`); it rotates apart from the actions, so searches never expire a click.
    pub impressions_rotate_mib: Option<u64>,
    /// Rotated impression files kept (default: `keep_files`).
    pub impressions_keep_files: Option<usize>,
    /// MiB of recent searches kept in memory to check actions against (oldest forgotten
    /// first).
    #[serde(default = "default_remember")]
    pub remember_mib: usize,
}

impl LogSettings {
    /// Rotation MiB and files kept of the impressions' stream.
    pub fn impressions_retention(&self) -> (u64, usize) {
        (
            self.impressions_rotate_mib.unwrap_or(self.rotate_mib),
            self.impressions_keep_files.unwrap_or(self.keep_files),
        )
    }
}

fn default_stem() -> String {
    "engagement".into()
}
fn default_rotate() -> u64 {
    64
}
fn default_keep() -> usize {
    50
}
fn default_remember() -> usize {
    64
}

/// A side-by-side relevance study between two arms.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudySettings {
    /// The two arms compared (names from `[[arms]]`).
    pub arms: [String; 2],
    /// CSV with columns `path` (an image inside `root`) and `task` (for per-task breakdowns).
    pub queries: PathBuf,
    /// Folder the query paths are inside (default: the CSV's folder).
    pub root: Option<PathBuf>,
    /// Ratings file (JSON Lines, appended and synced per rating).
    pub ratings: PathBuf,
    /// Rater file (`unisight study add-rater`): when given, only raters presenting one of its
    /// tokens may rate, under the name it lists; without it any rater id is taken as given.
    pub raters: Option<PathBuf>,
    /// Results shown per side.
    #[serde(default = "default_study_k")]
    pub k: usize,
}

fn default_study_k() -> usize {
    8
}

/// A whole experiment file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Experiment name; also salts the assignment so that two experiments split users
    /// independently.
    pub name: String,
    /// Salt of the assignment hash (default: `name`).
    pub salt: Option<String>,
    /// The arms, at least one.
    pub arms: Vec<ArmConfig>,
    /// Engagement log; without it nothing is logged.
    pub log: Option<LogSettings>,
    /// Optional relevance study.
    pub study: Option<StudySettings>,
}

impl ExperimentConfig {
    /// Reads and checks a file; relative paths become relative to its folder.
    ///
    /// # Errors
    /// [`Error::Config`] naming the file and the key or reason.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut config: ExperimentConfig = toml::from_str(&text).map_err(|e| Error::Config {
            path: path.into(),
            what: e.to_string().trim_end().to_string(),
        })?;
        config.check().map_err(|what| Error::Config {
            path: path.into(),
            what,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        for arm in &mut config.arms {
            fix(&mut arm.model);
            if !arm.index.to_str().is_some_and(is_server_address) {
                fix(&mut arm.index);
            }
        }
        if let Some(log) = &mut config.log {
            fix(&mut log.dir);
        }
        if let Some(study) = &mut config.study {
            fix(&mut study.queries);
            fix(&mut study.ratings);
            if let Some(raters) = &mut study.raters {
                fix(raters);
            }
            if let Some(root) = &mut study.root {
                fix(root);
            }
        }
        Ok(config)
    }

    fn check(&self) -> std::result::Result<(), String> {
        if self.arms.is_empty() {
            return Err("`arms`: at least one arm is needed".into());
        }
        for (i, arm) in self.arms.iter().enumerate() {
            if arm.name.is_empty() || arm.name.len() > 64 {
                return Err(format!("`arms[{i}].name`: 1 to 64 characters"));
            }
            if self.arms[..i].iter().any(|a| a.name == arm.name) {
                return Err(format!("`arms[{i}].name`: `{}` is used twice", arm.name));
            }
            if !(arm.share.is_finite() && arm.share >= 0.0) {
                return Err(format!("`arms[{i}].share`: must be a number >= 0"));
            }
        }
        if self.arms.iter().map(|a| a.share).sum::<f64>() <= 0.0 {
            return Err("`arms`: the shares add up to 0".into());
        }
        if let Some(log) = &self.log {
            let (rotate, keep) = log.impressions_retention();
            if log.rotate_mib == 0 || log.keep_files == 0 || rotate == 0 || keep == 0 {
                return Err(
                    "`log.rotate_mib`, `log.keep_files` and their `impressions_` \
                            counterparts must be at least 1"
                        .into(),
                );
            }
            if log.remember_mib == 0 || log.remember_mib > 1 << 16 {
                return Err(format!(
                    "`log.remember_mib` = {}: must be between 1 and 65536",
                    log.remember_mib
                ));
            }
            if log.stem.is_empty()
                || !log
                    .stem
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            {
                return Err("`log.stem`: letters, digits, `_` and `.` only".into());
            }
        }
        if let Some(study) = &self.study {
            for name in &study.arms {
                if !self.arms.iter().any(|a| &a.name == name) {
                    return Err(format!("`study.arms`: no arm named `{name}`"));
                }
            }
            if study.arms[0] == study.arms[1] {
                return Err("`study.arms`: two different arms are compared".into());
            }
            if study.k == 0 || study.k > 50 {
                return Err("`study.k`: 1 to 50".into());
            }
        }
        Ok(())
    }

    /// The salt of every hash this experiment draws from (assignment, a study's trial order
    /// and sides): `salt`, or the name without one.
    pub fn salt(&self) -> String {
        self.salt.clone().unwrap_or_else(|| self.name.clone())
    }

    /// The assignment of this experiment.
    pub fn assignment(&self) -> Assignment {
        Assignment::new(
            self.salt(),
            &self.arms.iter().map(|a| a.share).collect::<Vec<_>>(),
        )
    }
}

/// Hash-based assignment: the same unit (user or session id) always lands in the same arm, and
/// arms get their share of the buckets.
#[derive(Debug, Clone)]
pub struct Assignment {
    salt: String,
    /// Upper bucket bound (exclusive) of each arm.
    bounds: Vec<u64>,
}

impl Assignment {
    /// Splits [`BUCKETS`] over `shares` (normalised; rounding goes to the last arms).
    ///
    /// # Panics
    /// If `shares` is empty or adds up to 0 (checked by [`ExperimentConfig::load`]).
    pub fn new(salt: String, shares: &[f64]) -> Self {
        let total: f64 = shares.iter().sum();
        assert!(
            !shares.is_empty() && total > 0.0,
            "shares add up to more than 0"
        );
        let mut acc = 0.0;
        let mut bounds: Vec<u64> = shares
            .iter()
            .map(|s| {
                acc += s;
                ((acc / total) * BUCKETS as f64).round() as u64
            })
            .collect();
        if let Some(last) = bounds.last_mut() {
            *last = BUCKETS;
        }
        Assignment { salt, bounds }
    }

    /// The bucket of `unit` in `0..BUCKETS`.
    pub fn bucket(&self, unit: &str) -> u64 {
        let digest = Sha256::new()
            .chain_update(self.salt.as_bytes())
            .chain_update([0u8])
            .chain_update(unit.as_bytes())
            .finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_le_bytes(first) % BUCKETS
    }

    /// The arm (index into the config's arms) of `unit`.
    pub fn arm(&self, unit: &str) -> usize {
        let b = self.bucket(unit);
        self.bounds.iter().position(|&end| b < end).unwrap_or(0)
    }

    /// An opaque id for `unit` to write into logs in place of what the client sent: stable
    /// within this experiment, not reversible.
    pub fn opaque(&self, unit: &str) -> String {
        let digest = Sha256::new()
            .chain_update(b"unisight-user")
            .chain_update(self.salt.as_bytes())
            .chain_update([0u8])
            .chain_update(unit.as_bytes())
            .finalize();
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_is_stable_and_follows_shares() {
        let a = Assignment::new("exp".into(), &[1.0, 3.0]);
        let mut counts = [0usize; 2];
        for u in 0..20_000 {
            let unit = format!("user-{u}");
            let arm = a.arm(&unit);
            assert_eq!(arm, a.arm(&unit), "same user, same arm");
            counts[arm] += 1;
        }
        let share = counts[0] as f64 / 20_000.0;
        assert!((share - 0.25).abs() < 0.02, "{counts:?}");
        // another salt splits users independently
        let b = Assignment::new("other".into(), &[1.0, 3.0]);
        let moved = (0..2000)
            .filter(|u| a.arm(&format!("user-{u}")) != b.arm(&format!("user-{u}")))
            .count();
        assert!(moved > 400, "{moved}");
        // a zero share gets nobody
        let z = Assignment::new("exp".into(), &[0.0, 1.0]);
        assert!((0..1000).all(|u| z.arm(&format!("u{u}")) == 1));
    }

    #[test]
    fn opaque_ids_do_not_show_the_user() {
        let a = Assignment::new("exp".into(), &[1.0]);
        let id = a.opaque("alice@example.com");
        assert_eq!(id.len(), 16);
        assert!(!id.contains("alice"));
        assert_eq!(id, a.opaque("alice@example.com"));
        assert_ne!(id, a.opaque("bob"));
    }

    fn load(text: &str) -> Result<ExperimentConfig> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exp.toml");
        std::fs::write(&path, text).unwrap();
        ExperimentConfig::load(&path)
    }

    const GOOD: &str = r#"
name = "r1"
[[arms]]
name = "control"
model = "a.safetensors"
index = "a-index"
[[arms]]
name = "treatment"
model = "/abs/b.safetensors"
index = "b-index"
share = 3
[log]
dir = "logs"
[study]
arms = ["control", "treatment"]
queries = "q.csv"
ratings = "r.jsonl"
"#;

    #[test]
    fn a_good_file_loads_with_paths_from_its_folder() {
        let c = load(GOOD).unwrap();
        assert_eq!(c.arms.len(), 2);
        assert!(c.arms[0].model.ends_with("a.safetensors") && c.arms[0].model.is_absolute());
        assert_eq!(c.arms[1].model, PathBuf::from("/abs/b.safetensors"));
        // a Milvus collection is an address, not a folder of the file's
        let milvus = load(&GOOD.replace(
            "index = \"b-index\"",
            "index = \"milvus://127.0.0.1:19530/b\"",
        ))
        .unwrap();
        assert_eq!(
            milvus.arms[1].index,
            PathBuf::from("milvus://127.0.0.1:19530/b")
        );
        assert!(milvus.arms[0].index.is_absolute());
        assert_eq!(c.log.as_ref().unwrap().stem, "engagement");
        assert_eq!(c.study.as_ref().unwrap().k, 8);
    }

    #[test]
    fn bad_files_name_the_key() {
        let e = load(&GOOD.replace("share = 3", "shares = 3"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("shares") && e.contains("exp.toml"), "{e}");
        let e = load(&GOOD.replace("name = \"treatment\"", "name = \"control\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("arms[1].name"), "{e}");
        let e = load(&GOOD.replace(
            "arms = [\"control\", \"treatment\"]",
            "arms = [\"control\", \"x\"]",
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("no arm named `x`"), "{e}");
        let e = load(&GOOD.replace("share = 3", "share = -1"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("arms[1].share"), "{e}");
    }
}
