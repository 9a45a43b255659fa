//! PNG charts of a run: the loss of every task (moving average) and the validation Recall@1,
//! float and binary, against the step.

use std::path::Path;

use unisight_eval::chart::line_chart;

use crate::trainer::History;
use crate::Result;

/// Writes `loss.png` and, when there are validation points, `validation.png` into `dir`.
///
/// # Errors
/// I/O errors naming the file.
pub fn plot_history(history: &History, dir: &Path) -> Result<()> {
    let window = 25;
    let losses: Vec<(String, Vec<(f64, f64)>)> = history
        .tasks
        .iter()
        .enumerate()
        .map(|(t, name)| {
            let raw: Vec<(f64, f64)> = history
                .steps
                .iter()
                .filter_map(|s| {
                    s.losses
                        .get(t)
                        .copied()
                        .flatten()
                        .map(|l| (s.step as f64, l))
                })
                .collect();
            let smooth = raw
                .iter()
                .enumerate()
                .map(|(i, &(x, _))| {
                    let from = i.saturating_sub(window - 1);
                    let w = &raw[from..=i];
                    (x, w.iter().map(|p| p.1).sum::<f64>() / w.len() as f64)
                })
                .collect();
            (name.clone(), smooth)
        })
        .collect();
    line_chart(
        &dir.join("loss.png"),
        "training loss per task (moving average)",
        "step",
        "loss",
        &losses,
    )?;
    if !history.validation.is_empty() {
        let mut series = Vec::new();
        for name in &history.tasks {
            for (kind, bits) in [("float", false), ("bits", true)] {
                let points: Vec<(f64, f64)> = history
                    .validation
                    .iter()
                    .filter(|v| &v.task == name)
                    .map(|v| {
                        (
                            v.step as f64,
                            if bits {
                                v.recall_bits[0]
                            } else {
                                v.recall_float[0]
                            },
                        )
                    })
                    .collect();
                if !points.is_empty() {
                    series.push((format!("{name} {kind}"), points));
                }
            }
        }
        line_chart(
            &dir.join("validation.png"),
            "validation Recall@1",
            "step",
            "Recall@1",
            &series,
        )?;
    }
    Ok(())
}
