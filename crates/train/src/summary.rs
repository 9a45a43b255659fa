//! A Markdown table over finished runs: per model (runs named `NAME-sSEED` are one model over
//! several seeds) and task, Recall@1 and MAP@R, float and bits, over seeds, in the cell every
//! unisight table uses ([`OverSeeds::cell`]: mean ± sd (min-max)); and each run's validation
//! curve under both validation scores, to see which step either would keep.

use std::collections::BTreeMap;
use std::path::Path;

use unisight_eval::seeds::OverSeeds;

use crate::config::ValidationMetric;
use crate::trainer::{read_json, History, TaskEval, TrainReport};
use crate::Result;

/// The model a run belongs to: its folder name without `.run`, the model file extension and a
/// trailing `-s<seed>`.
pub fn model_name(run_dir: &Path) -> String {
    let name = run_dir
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .to_string();
    let name = name
        .trim_end_matches(".run")
        .trim_end_matches(".safetensors")
        .to_string();
    match name.rsplit_once("-s") {
        Some((base, seed)) if !seed.is_empty() && seed.chars().all(|c| c.is_ascii_digit()) => {
            base.to_string()
        }
        _ => name,
    }
}

/// The measures of the table, in column order.
const COLUMNS: [&str; 4] = ["R@1 float", "R@1 bits", "MAP@R float", "MAP@R bits"];

/// (task, queries, gallery) -> model -> per seed, each of [`COLUMNS`] (`None`: not measured,
/// as MAP@R in reports written before training measured it).
type Table =
    BTreeMap<(String, String, String), BTreeMap<String, Vec<[Option<f64>; COLUMNS.len()]>>>;

/// Reads `report.json` of each run folder and renders the table.
///
/// # Errors
/// A missing or unreadable report, naming the file.
pub fn summarize(run_dirs: &[&Path]) -> Result<String> {
    let mut table = Table::new();
    for dir in run_dirs {
        let report: TrainReport = read_json(&dir.join("report.json"))?;
        for e in report.eval {
            table
                .entry((e.task.clone(), e.queries.clone(), e.gallery.clone()))
                .or_default()
                .entry(model_name(dir))
                .or_default()
                .push([
                    e.recall_float.first().copied(),
                    e.recall_bits.first().copied(),
                    e.map_at_r_float,
                    e.map_at_r_bits,
                ]);
        }
    }
    let mut out = format!(
        "| task | queries -> gallery | model | seeds | {} |\n|---|---|---|---|{}\n",
        COLUMNS.join(" | "),
        "---|".repeat(COLUMNS.len())
    );
    for ((task, q, g), models) in &table {
        // per model and column: the value of every seed, or nothing when a seed lacks it
        let columns: BTreeMap<&String, Vec<Option<OverSeeds>>> = models
            .iter()
            .map(|(m, seeds)| {
                let per_column = (0..COLUMNS.len())
                    .map(|c| {
                        let values: Option<Vec<f64>> = seeds.iter().map(|v| v[c]).collect();
                        values.map(|v| OverSeeds::of(&v))
                    })
                    .collect();
                (m, per_column)
            })
            .collect();
        // a column's best, where at least two models have a value to compare
        let best: Vec<Option<f64>> = (0..COLUMNS.len())
            .map(|c| {
                let means: Vec<f64> = columns
                    .values()
                    .filter_map(|v| v[c].as_ref().map(|o| o.mean))
                    .collect();
                (means.len() > 1).then(|| means.into_iter().fold(f64::MIN, f64::max))
            })
            .collect();
        for (model, per_column) in &columns {
            let cells: Vec<String> = per_column
                .iter()
                .zip(&best)
                .map(|(o, &best)| match o {
                    Some(o) if best == Some(o.mean) => {
                        format!("{} **best**", o.cell())
                    }
                    Some(o) => o.cell(),
                    None => "–".into(),
                })
                .collect();
            out.push_str(&format!(
                "| {task} | {q} -> {g} | {model} | {} | {} |\n",
                models[*model].len(),
                cells.join(" | ")
            ));
        }
    }
    Ok(out)
}

/// The scores [`validation_curves`] puts side by side, in column order.
const METRICS: [(ValidationMetric, &str); 2] = [
    (ValidationMetric::Recall, "recall"),
    (ValidationMetric::RecallAndMap, "recall-and-map"),
];

/// Per run folder, a Markdown table of its validation score at every validated step under each
/// [`ValidationMetric`] ([`History::of_run`]: a run still training shows its curve up to its
/// latest checkpoint), each score's best marked as training would choose it (the earliest of
/// equal scores), the step the run kept (`report.json`, where present), and each task's R@1 and
/// MAP@R (float), to see which task a choice trades.
///
/// # Errors
/// A folder with neither history nor checkpoint, or a file that does not read, naming the file.
pub fn validation_curves(run_dirs: &[&Path]) -> Result<String> {
    let mut out = String::new();
    for dir in run_dirs {
        let history = History::of_run(dir)?;
        // a run still training has no report yet; a report that does not read is an error
        let kept = if dir.join("report.json").is_file() {
            read_json::<TrainReport>(&dir.join("report.json"))?
                .chosen
                .map(|c| c.step)
        } else {
            None
        };
        let mut steps: Vec<usize> = history.validation.iter().map(|e| e.step).collect();
        steps.dedup();
        let scores: Vec<Vec<Option<f64>>> = steps
            .iter()
            .map(|&s| {
                METRICS
                    .iter()
                    .map(|&(m, _)| history.validation_score_at(s, m))
                    .collect()
            })
            .collect();
        let best: Vec<Option<usize>> = (0..METRICS.len())
            .map(|c| {
                let mut best: Option<(usize, f64)> = None;
                for (i, row) in scores.iter().enumerate() {
                    if let Some(v) = row[c] {
                        if best.is_none_or(|(_, b)| v > b) {
                            best = Some((i, v));
                        }
                    }
                }
                best.map(|(i, _)| i)
            })
            .collect();
        let mut names: Vec<String> = METRICS.iter().map(|m| m.1.to_string()).collect();
        names.push("kept".into());
        names.extend(history.tasks.iter().map(|t| format!("{t} R@1 / MAP@R")));
        out.push_str(&format!(
            "{}\n\n| step | {} |\n|---|{}\n",
            dir.display(),
            names.join(" | "),
            "---|".repeat(names.len())
        ));
        for (i, step) in steps.iter().enumerate() {
            let cells: Vec<String> = (0..METRICS.len())
                .map(|c| match scores[i][c] {
                    Some(v) if best[c] == Some(i) => format!("{v:.4} **best**"),
                    Some(v) => format!("{v:.4}"),
                    None => "–".into(),
                })
                .collect();
            let kept = if kept == Some(*step) { "kept" } else { "" };
            let tasks: Vec<String> = history
                .tasks
                .iter()
                .map(|t| {
                    history
                        .validation
                        .iter()
                        .find(|e| e.step == *step && &e.task == t)
                        .map_or("–".into(), task_cell)
                })
                .collect();
            out.push_str(&format!(
                "| {step} | {} | {kept} | {} |\n",
                cells.join(" | "),
                tasks.join(" | ")
            ));
        }
        out.push('\n');
    }
    Ok(out)
}

/// A task's validation R@1 and MAP@R, float (`–` for MAP@R a build did not measure).
fn task_cell(e: &TaskEval) -> String {
    let r1 = e
        .recall_float
        .first()
        .map_or("–".into(), |v| format!("{v:.3}"));
    let map = e.map_at_r_float.map_or("–".into(), |v| format!("{v:.3}"));
    format!("{r1} / {map}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_of_one_model_group_together() {
        assert_eq!(
            model_name(Path::new("out/unified-s2.safetensors.run")),
            "unified"
        );
        assert_eq!(model_name(Path::new("out/fine-only.run")), "fine-only");
        assert_eq!(model_name(Path::new("out/x-sa.run")), "x-sa");
    }

    fn write_report(dir: &Path, float: f64, bits: f64, map_at_r: Option<(f64, f64)>) {
        std::fs::create_dir_all(dir).unwrap();
        let mut eval = serde_json::json!({"task": "fine", "step": 10, "queries": "g:test",
            "gallery": "g:iconic", "k": [1], "recall_float": [float], "recall_bits": [bits]});
        if let Some((f, b)) = map_at_r {
            eval["map_at_r_float"] = f.into();
            eval["map_at_r_bits"] = b.into();
        }
        let report = serde_json::json!({
            "steps": 10, "steps_this_run": 10, "images_per_second": 1.0, "cache_seconds": 0.0,
            "skipped_images": [], "interrupted": false, "eval": [eval],
        });
        std::fs::write(dir.join("report.json"), report.to_string()).unwrap();
    }

    #[test]
    fn validation_curves_mark_each_scores_choice_and_the_kept_step() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("run-s1.run");
        write_report(&dir, 0.8, 0.8, None);
        let report = dir.join("report.json");
        let mut json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        json["chosen"] = serde_json::json!({"step": 10, "score": 0.8});
        std::fs::write(&report, json.to_string()).unwrap();
        // R@1 peaks at step 10; MAP@R climbs on, so counting it moves the choice to step 20
        let at = |step: usize, r1: f64, map: f64| {
            serde_json::json!({"task": "fine", "step": step, "queries": "g:val",
                "gallery": "g:iconic", "k": [1], "recall_float": [r1], "recall_bits": [r1],
                "map_at_r_float": map, "map_at_r_bits": map})
        };
        let history = serde_json::json!({"tasks": ["fine"], "steps": [], "validation": [
            at(0, 0.5, 0.2), at(10, 0.8, 0.4), at(20, 0.78, 0.6)]});
        std::fs::write(dir.join("history.json"), history.to_string()).unwrap();
        let table = validation_curves(&[dir.as_path()]).unwrap();
        assert!(
            table.contains("| step | recall | recall-and-map | kept | fine R@1 / MAP@R |"),
            "{table}"
        );
        assert!(
            table.contains("| 0 | 0.5000 | 0.3500 |  | 0.500 / 0.200 |"),
            "{table}"
        );
        assert!(
            table.contains("| 10 | 0.8000 **best** | 0.6000 | kept | 0.800 / 0.400 |"),
            "{table}"
        );
        assert!(
            table.contains("| 20 | 0.7800 | 0.6900 **best** |  | 0.780 / 0.600 |"),
            "{table}"
        );
        // a run still training: its latest checkpoint's curve, up to that checkpoint
        let running = t.path().join("running.run");
        let checkpoint = running.join("checkpoints/step-0000010");
        std::fs::create_dir_all(&checkpoint).unwrap();
        let state = serde_json::json!({"fingerprint": 1, "step": 10, "history": {"tasks": ["fine"],
            "steps": [], "validation": [at(0, 0.5, 0.2), at(10, 0.8, 0.4)]}});
        std::fs::write(checkpoint.join("state.json"), state.to_string()).unwrap();
        std::fs::write(running.join("checkpoints/LATEST"), "step-0000010").unwrap();
        let table = validation_curves(&[running.as_path()]).unwrap();
        assert!(
            table.contains("| 10 | 0.8000 **best** | 0.6000 **best** |  | 0.800 / 0.400 |"),
            "{table}"
        );
        assert!(!table.contains("| 20 |"), "{table}");
        // a run folder without history or checkpoint is an error naming the file, and so is a
        // broken report
        let err = validation_curves(&[t.path()]).unwrap_err().to_string();
        assert!(err.contains("history.json"), "{err}");
        std::fs::write(&report, "{").unwrap();
        let err = validation_curves(&[dir.as_path()]).unwrap_err().to_string();
        assert!(err.contains("report.json"), "{err}");
    }

    #[test]
    fn seeds_are_averaged_and_each_column_marks_its_best() {
        let t = tempfile::tempdir().unwrap();
        let runs = [
            ("unified-s1.run", 0.80, 0.70, Some((0.6, 0.5))),
            ("unified-s2.run", 0.70, 0.70, Some((0.4, 0.5))),
            ("specialized-s1.run", 0.74, 0.72, Some((0.55, 0.45))),
            // written before training measured MAP@R: its MAP@R cells stay empty
            ("older-s1.run", 0.60, 0.60, None),
        ];
        for (name, f, b, m) in runs {
            write_report(&t.path().join(name), f, b, m);
        }
        let dirs: Vec<_> = runs.iter().map(|r| t.path().join(r.0)).collect();
        let dirs: Vec<&Path> = dirs.iter().map(|d| d.as_path()).collect();
        let table = summarize(&dirs).unwrap();
        // unified: float mean 0.75 beats 0.74; bits 0.70 loses to 0.72; MAP@R 0.50 loses to
        // 0.55 float and wins 0.50 to 0.45 bits
        assert!(
            table.contains("| fine | g:test -> g:iconic | unified | 2 | 0.750 ± 0.071 (0.700-0.800) **best** | 0.700 ± 0.000 (0.700-0.700) | 0.500 ± 0.141 (0.400-0.600) | 0.500 ± 0.000 (0.500-0.500) **best** |"),
            "{table}"
        );
        assert!(
            table.contains(
                "| fine | g:test -> g:iconic | specialized | 1 | 0.740 | 0.720 **best** | 0.550 **best** | 0.450 |"
            ),
            "{table}"
        );
        assert!(
            table.contains("| fine | g:test -> g:iconic | older | 1 | 0.600 | 0.600 | – | – |"),
            "{table}"
        );
        // a value with nothing beside it to compare is no best
        let pair = [
            t.path().join("older-s1.run"),
            t.path().join("specialized-s1.run"),
        ];
        let pair: Vec<&Path> = pair.iter().map(|d| d.as_path()).collect();
        let table = summarize(&pair).unwrap();
        assert!(
            table.contains("| specialized | 1 | 0.740 **best** | 0.720 **best** | 0.550 | 0.450 |"),
            "{table}"
        );
    }
}
