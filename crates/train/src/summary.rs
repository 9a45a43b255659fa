//! A Markdown table over finished runs: per model (runs named `NAME-sSEED` are one model over
//! several seeds) and task, the mean and the spread (min to max) of Recall@1, float and bits.

use std::collections::BTreeMap;
use std::path::Path;

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

fn stats(v: &[f64]) -> String {
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    if v.len() == 1 {
        return format!("{mean:.3}");
    }
    let lo = v.iter().copied().fold(f64::MAX, f64::min);
    let hi = v.iter().copied().fold(f64::MIN, f64::max);
    format!("{mean:.3} ({lo:.3}-{hi:.3})")
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
    for ((task, q, g), models) in &table {
        let best = models
            .values()
            .map(|v| v.iter().map(|x| x.0).sum::<f64>() / v.len() as f64)
            .fold(f64::MIN, f64::max);
        for (model, v) in models {
            let f: Vec<f64> = v.iter().map(|x| x.0).collect();
            let b: Vec<f64> = v.iter().map(|x| x.1).collect();
            let mean = f.iter().sum::<f64>() / f.len() as f64;
            let mark = if models.len() > 1 && mean == best {
                " **best**"
            } else {
                ""
            };
            out.push_str(&format!(
                "| {task} | {q} -> {g} | {model} | {} | {}{mark} | {} |\n",
                v.len(),
                stats(&f),
                stats(&b)
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
}
