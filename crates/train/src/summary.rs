//! A Markdown table over finished runs: per model (runs named `NAME-sSEED` are one model over
//! several seeds) and task, Recall@1 float and bits over seeds, in the cell every unisight table
//! uses ([`OverSeeds::cell`]: mean ± sd (min-max)).

use std::collections::BTreeMap;
use std::path::Path;

use unisight_eval::seeds::OverSeeds;

use crate::trainer::TrainReport;
use crate::{Error, Result};

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

/// (task, queries, gallery) -> model -> (float, bits) Recall@1 per seed.
type Table = BTreeMap<(String, String, String), BTreeMap<String, Vec<(f64, f64)>>>;

/// Reads `report.json` of each run folder and renders the table.
///
/// # Errors
/// A missing or unreadable report, naming the file.
pub fn summarize(run_dirs: &[&Path]) -> Result<String> {
    let mut table = Table::new();
    for dir in run_dirs {
        let path = dir.join("report.json");
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let report: TrainReport = serde_json::from_slice(&bytes).map_err(|e| Error::Resume {
            path: path.clone(),
            what: e.to_string(),
        })?;
        for e in report.eval {
            table
                .entry((e.task.clone(), e.queries.clone(), e.gallery.clone()))
                .or_default()
                .entry(model_name(dir))
                .or_default()
                .push((e.recall_float[0], e.recall_bits[0]));
        }
    }
    let mut out = String::from("| task | queries -> gallery | model | seeds | R@1 float | R@1 bits |\n|---|---|---|---|---|---|\n");
    let mean = |v: &[f64]| OverSeeds::of(v).mean;
    for ((task, q, g), models) in &table {
        // per model: (float R@1 per seed, bits R@1 per seed)
        let columns: BTreeMap<&String, (Vec<f64>, Vec<f64>)> = models
            .iter()
            .map(|(m, v)| (m, v.iter().copied().unzip()))
            .collect();
        let best_float = columns
            .values()
            .map(|c| mean(&c.0))
            .fold(f64::MIN, f64::max);
        let best_bits = columns
            .values()
            .map(|c| mean(&c.1))
            .fold(f64::MIN, f64::max);
        let mark = |value: f64, best: f64| {
            if models.len() > 1 && value == best {
                " **best**"
            } else {
                ""
            }
        };
        for (model, (f, b)) in &columns {
            out.push_str(&format!(
                "| {task} | {q} -> {g} | {model} | {} | {}{} | {}{} |\n",
                f.len(),
                OverSeeds::of(f).cell(),
                mark(mean(f), best_float),
                OverSeeds::of(b).cell(),
                mark(mean(b), best_bits),
            ));
        }
    }
    Ok(out)
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

    fn write_report(dir: &Path, float: f64, bits: f64) {
        std::fs::create_dir_all(dir).unwrap();
        let report = serde_json::json!({
            "steps": 10, "steps_this_run": 10, "images_per_second": 1.0, "cache_seconds": 0.0,
            "skipped_images": [], "interrupted": false,
            "eval": [{"task": "fine", "step": 10, "queries": "g:test", "gallery": "g:iconic",
                      "k": [1], "recall_float": [float], "recall_bits": [bits]}],
        });
        std::fs::write(dir.join("report.json"), report.to_string()).unwrap();
    }

    #[test]
    fn seeds_are_averaged_and_each_column_marks_its_best() {
        let t = tempfile::tempdir().unwrap();
        let runs = [
            ("unified-s1.run", 0.80, 0.70),
            ("unified-s2.run", 0.70, 0.70),
            ("specialized-s1.run", 0.74, 0.72),
        ];
        for (name, f, b) in runs {
            write_report(&t.path().join(name), f, b);
        }
        let dirs: Vec<_> = runs.iter().map(|r| t.path().join(r.0)).collect();
        let dirs: Vec<&Path> = dirs.iter().map(|d| d.as_path()).collect();
        let table = summarize(&dirs).unwrap();
        // unified: float mean 0.75 beats 0.74; bits 0.70 loses to 0.72
        assert!(
            table.contains("| fine | g:test -> g:iconic | unified | 2 | 0.750 ± 0.071 (0.700-0.800) **best** | 0.700 ± 0.000 (0.700-0.700) |"),
            "{table}"
        );
        assert!(
            table.contains(
                "| fine | g:test -> g:iconic | specialized | 1 | 0.740 | 0.720 **best** |"
            ),
            "{table}"
        );
    }
}
