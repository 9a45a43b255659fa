//! A Markdown table over finished runs: per model (runs named `NAME-sSEED` are one model over
//! several seeds) and task, Recall@1 and MAP@R, float and bits, over seeds, in the cell every
//! unisight table uses ([`OverSeeds::cell`]: mean ± sd (min-max)).

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
