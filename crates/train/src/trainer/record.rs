//! What a run records: the per-step losses and validation measurements (`history.json`, also
//! inside each checkpoint's state), the final report (`report.json`), the validation score that
//! chooses the model kept, and the JSON files that hold them.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::checkpoint::latest_checkpoint;
use crate::config::ValidationMetric;
use crate::{Error, Result};

/// Loss of every task at one step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepLog {
    /// Step (0-based).
    pub step: usize,
    /// Learning rate of the new parameters.
    pub lr: f64,
    /// Per task, in config order (`None`: no labelled image in the batch).
    pub losses: Vec<Option<f64>>,
    /// Per task, the distillation term (`[tasks.distill]`; empty when no task has a teacher).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub distill: Vec<Option<f64>>,
}

impl StepLog {
    /// An error naming the step and task when a loss is NaN or infinite: the weights are then
    /// ruined, and the run stops before a checkpoint or model keeps them.
    ///
    /// # Errors
    /// [`Error::Diverged`].
    pub fn check_finite(&self, tasks: &[String]) -> Result<()> {
        let terms = [("loss", &self.losses), ("distillation term", &self.distill)];
        for (term, values) in terms {
            for (t, value) in values.iter().enumerate() {
                if let Some(l) = value.filter(|l| !l.is_finite()) {
                    return Err(Error::Diverged {
                        step: self.step,
                        what: format!(
                            "the {term} of task `{}` is {l}",
                            tasks.get(t).map_or("?", String::as_str)
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}

/// Retrieval quality of one task on one query/gallery pair.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskEval {
    /// Task name.
    pub task: String,
    /// Step it was measured at.
    pub step: usize,
    /// Query set.
    pub queries: String,
    /// Gallery set (`self`: leave-one-out).
    pub gallery: String,
    /// The k of the recalls.
    pub k: Vec<usize>,
    /// Recall@k with float embeddings (cosine).
    pub recall_float: Vec<f64>,
    /// Recall@k with the binary codes (Hamming).
    pub recall_bits: Vec<f64>,
    /// MAP@R with float embeddings (`None` in reports and histories written by builds that did
    /// not measure it there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map_at_r_float: Option<f64>,
    /// MAP@R with the binary codes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map_at_r_bits: Option<f64>,
}

/// Curves of a run, written as `history.json` and plotted.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct History {
    /// Task names.
    pub tasks: Vec<String>,
    /// Per-step losses.
    pub steps: Vec<StepLog>,
    /// Validation measurements.
    pub validation: Vec<TaskEval>,
}

impl History {
    /// The validation score of the measurements taken at `step` ([`validation_score`]).
    pub fn validation_score_at(&self, step: usize, metric: ValidationMetric) -> Option<f64> {
        let at: Vec<TaskEval> = self
            .validation
            .iter()
            .filter(|e| e.step == step)
            .cloned()
            .collect();
        validation_score(&at, metric)
    }

    /// The curves of a run folder: its `history.json` once the run has finished, else those of
    /// its latest checkpoint (a run still training, up to its last checkpoint).
    ///
    /// # Errors
    /// A folder with neither, or a file that does not read, naming the file.
    pub fn of_run(work_dir: &Path) -> Result<History> {
        let finished = work_dir.join("history.json");
        if finished.is_file() {
            return read_json(&finished);
        }
        match latest_checkpoint(&work_dir.join("checkpoints"))? {
            Some(dir) => Ok(read_json::<RunState>(&dir.join("state.json"))?.history),
            None => Err(Error::io(
                finished,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no history and no checkpoint: not a training run's --work-dir",
                ),
            )),
        }
    }
}

/// Version of a run's `report.json` this build writes.
pub const TRAIN_REPORT_VERSION: u32 = 2;

/// What a finished run reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainReport {
    /// [`TRAIN_REPORT_VERSION`] (0: written before the field existed).
    #[serde(default)]
    pub format_version: u32,
    /// Steps trained in all.
    pub steps: usize,
    /// Steps of this invocation (fewer after a resume).
    pub steps_this_run: usize,
    /// Training throughput of this invocation, images per second.
    pub images_per_second: f64,
    /// Seconds spent building the trunk cache.
    pub cache_seconds: f64,
    /// Images that could not be read and were skipped.
    pub skipped_images: Vec<(String, String)>,
    /// Final evaluation per task.
    pub eval: Vec<TaskEval>,
    /// Whether the run stopped early (`stop_after`).
    pub interrupted: bool,
    /// The step whose model was written and evaluated, and its validation score (`None`: the
    /// last step, kept because `train.keep = "last"` or nothing was validated).
    #[serde(default)]
    pub chosen: Option<Chosen>,
    /// Whether training stopped before its last step because validation stopped improving
    /// (`train.patience`).
    #[serde(default)]
    pub stopped_early: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct RunState {
    pub(super) fingerprint: u32,
    pub(super) step: usize,
    pub(super) history: History,
    /// The best validation so far (its network is in `WORK/best/`).
    #[serde(default)]
    pub(super) best: Option<Chosen>,
    /// Validation runs since the best one.
    #[serde(default)]
    pub(super) since_best: usize,
}

/// A step and its validation score ([`validation_score`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Chosen {
    /// Step.
    pub step: usize,
    /// Validation score.
    pub score: f64,
}

/// The validation score of a run's validation measurements at one step: the mean over the
/// validation sets of what `metric` counts (`None`: no task has a validation set). A set
/// measured without MAP@R (a history from an older build) counts its recall alone.
pub fn validation_score(evals: &[TaskEval], metric: ValidationMetric) -> Option<f64> {
    let scores: Vec<f64> = evals
        .iter()
        .filter_map(|e| {
            let recall = (e.recall_float.first()? + e.recall_bits.first()?) / 2.0;
            match (metric, e.map_at_r_float, e.map_at_r_bits) {
                (ValidationMetric::RecallAndMap, Some(f), Some(b)) => {
                    Some((recall + (f + b) / 2.0) / 2.0)
                }
                _ => Some(recall),
            }
        })
        .collect();
    (!scores.is_empty()).then(|| scores.iter().sum::<f64>() / scores.len() as f64)
}

/// Writes a run's JSON file atomically.
pub(super) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).expect("serialises");
    unisight_core::atomic::atomic_write_bytes(path, &bytes)?;
    Ok(())
}

/// Reads a JSON file a run wrote; an unreadable one is a [`Error::Resume`] naming it.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Resume {
        path: path.into(),
        what: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_finite_loss_stops_the_run_naming_step_and_task() {
        let tasks = vec!["fine".to_string(), "clothing".to_string()];
        let log = |losses| StepLog {
            step: 7,
            lr: 1e-3,
            losses,
            distill: Vec::new(),
        };
        log(vec![Some(2.5), None]).check_finite(&tasks).unwrap();
        let e = log(vec![Some(2.5), Some(f64::NAN)])
            .check_finite(&tasks)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("step 7") && e.contains("`clothing`") && e.contains("NaN"),
            "{e}"
        );
        assert!(log(vec![Some(f64::INFINITY), None])
            .check_finite(&tasks)
            .is_err());
        let distilled = StepLog {
            distill: vec![None, Some(f64::NAN)],
            ..log(vec![Some(2.5), Some(1.0)])
        };
        let e = distilled.check_finite(&tasks).unwrap_err().to_string();
        assert!(e.contains("distillation term of task `clothing`"), "{e}");
    }

    #[test]
    fn the_validation_score_counts_map_at_r_only_when_asked_and_measured() {
        let set = |r1: [f64; 2], map: Option<[f64; 2]>| TaskEval {
            task: "t".into(),
            step: 0,
            queries: "q".into(),
            gallery: "g".into(),
            k: vec![1, 5],
            recall_float: vec![r1[0], 1.0],
            recall_bits: vec![r1[1], 1.0],
            map_at_r_float: map.map(|m| m[0]),
            map_at_r_bits: map.map(|m| m[1]),
        };
        let evals = [
            set([0.8, 0.6], Some([0.4, 0.2])),
            set([0.9, 0.7], Some([0.5, 0.3])),
        ];
        let recall = validation_score(&evals, ValidationMetric::Recall).unwrap();
        assert!((recall - (0.7 + 0.8) / 2.0).abs() < 1e-12, "{recall}");
        let both = validation_score(&evals, ValidationMetric::RecallAndMap).unwrap();
        assert!((both - (0.5 + 0.6) / 2.0).abs() < 1e-12, "{both}");
        // a set without MAP@R (an older history) counts its recall alone
        let old = [set([0.8, 0.6], None)];
        let score = validation_score(&old, ValidationMetric::RecallAndMap).unwrap();
        assert!((score - 0.7).abs() < 1e-12, "{score}");
        assert_eq!(validation_score(&[], ValidationMetric::Recall), None);
    }
}
