//! Several models side by side (`unisight compare`): per task, each model's metrics over its
//! seeds ([`OverSeeds`]) and its difference to a baseline with paired bootstrap intervals over
//! the queries, from the per-query first-hit ranks and average precisions the reports keep (no
//! search again).

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};
use unisight_core::atomic::atomic_write_bytes;

use crate::bootstrap::{paired_difference, Interval};
use crate::chart::line_chart;
use crate::evaluate::ModeMetrics;
use crate::report::{curve, file_safe, md_escape, Report, TaskReport};
use crate::seeds::OverSeeds;
use crate::{Error, Result};

/// One compared model: a name and its reports (one per training seed).
#[derive(Debug, Clone)]
pub struct CompareEntry {
    /// Row name.
    pub name: String,
    /// Reports, one per seed.
    pub reports: Vec<Report>,
}

/// A model's metrics over its seeds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeedSummary {
    /// Recall@k (at the task's ks) over seeds.
    pub recall: Vec<OverSeeds>,
    /// MAP@R over seeds.
    pub map_at_r: OverSeeds,
}

/// One model in a task's comparison table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompareRow {
    /// Model name.
    pub name: String,
    /// Seeds (reports) averaged.
    pub seeds: usize,
    /// Float metrics.
    pub float: SeedSummary,
    /// Bits metrics.
    pub bits: SeedSummary,
    /// Recall@1 curve (mean over seeds), float.
    pub curve_float: Vec<f64>,
    /// Recall@1 curve (mean over seeds), bits.
    pub curve_bits: Vec<f64>,
    /// Difference in Recall@k to the baseline, per k, float (None for the baseline itself).
    pub vs_baseline_float: Option<Vec<Interval>>,
    /// Same, bits.
    pub vs_baseline_bits: Option<Vec<Interval>>,
    /// Difference in MAP@R to the baseline, float (None for the baseline itself, or when a
    /// report lacks per-query average precisions).
    #[serde(default)]
    pub map_at_r_vs_baseline_float: Option<Interval>,
    /// Same, bits.
    #[serde(default)]
    pub map_at_r_vs_baseline_bits: Option<Interval>,
}

/// One task compared across models.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskComparison {
    /// Task.
    pub task: String,
    /// Query set.
    pub queries: String,
    /// Gallery set.
    pub gallery: String,
    /// The k of the recall columns.
    pub ks: Vec<usize>,
    /// Queries paired.
    pub queries_paired: usize,
    /// One per model that has this task.
    pub rows: Vec<CompareRow>,
    /// Models without this task, or other remarks.
    pub notes: Vec<String>,
}

/// Version of `compare.json` this build writes.
pub const COMPARE_VERSION: u32 = 1;

/// Several models side by side.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    /// [`COMPARE_VERSION`] (0: written before the field existed).
    #[serde(default)]
    pub format_version: u32,
    /// The row differences are taken against.
    pub baseline: String,
    /// Confidence level of the intervals.
    pub level: f64,
    /// Bootstrap resamples.
    pub resamples: usize,
    /// Per task, in the order of the first model's report.
    pub tasks: Vec<TaskComparison>,
}

/// Compares `entries` task by task (only the tasks named in `only_tasks`, when not empty);
/// differences against `baseline` (an entry name; default the first) with paired bootstrap
/// intervals over queries (a query's value is its hit, or its average precision at R for MAP@R,
/// averaged over the entry's seeds).
///
/// # Errors
/// [`Error::Input`] when an entry has no reports, the baseline is unknown, or two reports of a
/// task were measured on different query lists.
pub fn compare(
    entries: &[CompareEntry],
    only_tasks: &[String],
    baseline: Option<&str>,
    resamples: usize,
    level: f64,
    seed: u64,
) -> Result<Comparison> {
    let Some(first) = entries.first() else {
        return Err(Error::Input("nothing to compare".into()));
    };
    if let Some(e) = entries.iter().find(|e| e.reports.is_empty()) {
        return Err(Error::Input(format!("`{}` has no reports", e.name)));
    }
    let baseline = baseline.unwrap_or(&first.name).to_string();
    if !entries.iter().any(|e| e.name == baseline) {
        return Err(Error::Input(format!(
            "baseline `{baseline}` is not one of the models"
        )));
    }
    let mut task_keys: Vec<(String, String, String)> = Vec::new();
    for e in entries {
        for r in &e.reports {
            for t in &r.tasks {
                let key = (t.task.clone(), t.queries.clone(), t.gallery.clone());
                let wanted = only_tasks.is_empty() || only_tasks.contains(&t.task);
                if wanted && !task_keys.contains(&key) {
                    task_keys.push(key);
                }
            }
        }
    }
    if let Some(missing) = only_tasks
        .iter()
        .find(|n| !task_keys.iter().any(|(t, _, _)| t == *n))
    {
        return Err(Error::Input(format!(
            "no report has a task named `{missing}`"
        )));
    }
    let mut tasks = Vec::new();
    for (task, queries, gallery) in task_keys {
        let find = |r: &Report| -> Option<TaskReport> {
            r.tasks
                .iter()
                .find(|t| t.task == task && t.queries == queries && t.gallery == gallery)
                .cloned()
        };
        let mut notes = Vec::new();
        // (entry name, its reports of this task)
        let mut present: Vec<(String, Vec<TaskReport>)> = Vec::new();
        for e in entries {
            let found: Vec<TaskReport> = e.reports.iter().filter_map(find).collect();
            if found.len() < e.reports.len() {
                notes.push(format!(
                    "`{}`: {} of {} reports lack this task",
                    e.name,
                    e.reports.len() - found.len(),
                    e.reports.len()
                ));
            }
            if !found.is_empty() {
                present.push((e.name.clone(), found));
            }
        }
        let reference = &present[0].1[0];
        for (name, reports) in &present {
            for t in reports {
                if t.query_fingerprint != reference.query_fingerprint
                    || t.metrics.queries_without_match != reference.metrics.queries_without_match
                    || t.metrics.ks != reference.metrics.ks
                {
                    return Err(Error::Input(format!(
                        "task `{task}`: `{name}` was measured on other queries or k than `{}` \
                         (query fingerprint {} vs {}); only identical query lists are paired",
                        present[0].0, t.query_fingerprint, reference.query_fingerprint
                    )));
                }
            }
        }
        let ks = reference.metrics.ks.clone();
        let excluded: std::collections::HashSet<usize> = reference
            .metrics
            .queries_without_match
            .iter()
            .copied()
            .collect();
        let used: Vec<usize> = (0..reference.metrics.queries)
            .filter(|q| !excluded.contains(q))
            .collect();
        // per entry, per mode, per k: each query's hit averaged over seeds
        let hits = |reports: &[TaskReport], bits: bool, k: usize| -> Vec<f64> {
            used.iter()
                .map(|&q| {
                    reports
                        .iter()
                        .map(|t| {
                            let m = if bits {
                                &t.metrics.bits
                            } else {
                                &t.metrics.float
                            };
                            let r = m.first_hit[q];
                            f64::from(u8::from(r != 0 && r as usize <= k))
                        })
                        .sum::<f64>()
                        / reports.len() as f64
                })
                .collect()
        };
        // per entry and mode: each query's average precision at R averaged over seeds; None
        // when a report was written before they were kept
        let precisions = |reports: &[TaskReport], bits: bool| -> Option<Vec<f64>> {
            let modes: Vec<&ModeMetrics> = reports
                .iter()
                .map(|t| {
                    if bits {
                        &t.metrics.bits
                    } else {
                        &t.metrics.float
                    }
                })
                .collect();
            if modes
                .iter()
                .any(|m| m.average_precision.len() != reference.metrics.queries)
            {
                return None;
            }
            Some(
                used.iter()
                    .map(|&q| {
                        modes
                            .iter()
                            .map(|m| f64::from(m.average_precision[q]))
                            .sum::<f64>()
                            / modes.len() as f64
                    })
                    .collect(),
            )
        };
        let base = present.iter().find(|(n, _)| *n == baseline);
        if base.is_some()
            && present
                .iter()
                .any(|(_, reports)| precisions(reports, false).is_none())
        {
            notes.push(
                "no MAP@R differences: a report lacks per-query average precisions (written \
                 by an older build; `unisight eval` again writes them)"
                    .into(),
            );
        }
        let mut rows = Vec::new();
        for (name, reports) in &present {
            let summary = |bits: bool| -> SeedSummary {
                let pick = |t: &TaskReport| {
                    if bits {
                        t.metrics.bits.clone()
                    } else {
                        t.metrics.float.clone()
                    }
                };
                let modes: Vec<_> = reports.iter().map(pick).collect();
                SeedSummary {
                    recall: (0..ks.len())
                        .map(|j| {
                            OverSeeds::of(&modes.iter().map(|m| m.recall[j]).collect::<Vec<_>>())
                        })
                        .collect(),
                    map_at_r: OverSeeds::of(&modes.iter().map(|m| m.map_at_r).collect::<Vec<_>>()),
                }
            };
            let mean_curve = |bits: bool| -> Vec<f64> {
                let curves: Vec<&Vec<f64>> = reports
                    .iter()
                    .map(|t| {
                        if bits {
                            &t.metrics.bits.curve
                        } else {
                            &t.metrics.float.curve
                        }
                    })
                    .collect();
                let len = curves.iter().map(|c| c.len()).min().unwrap_or(0);
                (0..len)
                    .map(|i| curves.iter().map(|c| c[i]).sum::<f64>() / curves.len() as f64)
                    .collect()
            };
            let diffs = |bits: bool| -> Option<Vec<Interval>> {
                let (base_name, base_reports) = base?;
                if base_name == name {
                    return None;
                }
                Some(
                    ks.iter()
                        .map(|&k| {
                            paired_difference(
                                &hits(reports, bits, k),
                                &hits(base_reports, bits, k),
                                resamples,
                                level,
                                seed,
                            )
                        })
                        .collect(),
                )
            };
            let map_diff = |bits: bool| -> Option<Interval> {
                let (base_name, base_reports) = base?;
                if base_name == name {
                    return None;
                }
                Some(paired_difference(
                    &precisions(reports, bits)?,
                    &precisions(base_reports, bits)?,
                    resamples,
                    level,
                    seed,
                ))
            };
            rows.push(CompareRow {
                name: name.clone(),
                seeds: reports.len(),
                float: summary(false),
                bits: summary(true),
                curve_float: mean_curve(false),
                curve_bits: mean_curve(true),
                vs_baseline_float: diffs(false),
                vs_baseline_bits: diffs(true),
                map_at_r_vs_baseline_float: map_diff(false),
                map_at_r_vs_baseline_bits: map_diff(true),
            });
        }
        if base.is_none() {
            notes.push(format!(
                "the baseline `{baseline}` lacks this task: no differences"
            ));
        }
        tasks.push(TaskComparison {
            task,
            queries,
            gallery,
            ks,
            queries_paired: used.len(),
            rows,
            notes,
        });
    }
    Ok(Comparison {
        format_version: COMPARE_VERSION,
        baseline,
        level,
        resamples,
        tasks,
    })
}

impl Comparison {
    /// Markdown tables, one per task: Recall@k and MAP@R over seeds ([`OverSeeds::cell`]), the best of
    /// each column in bold, and the Recall@1 and MAP@R differences to the baseline with their
    /// intervals.
    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        for t in &self.tasks {
            let _ = writeln!(md, "### {} ({} -> {})\n", t.task, t.queries, t.gallery);
            let mut header = String::from("| model | seeds |");
            let mut rule = String::from("|---|---:|");
            for k in &t.ks {
                let _ = write!(header, " R@{k} float | R@{k} bits |");
                rule.push_str("---:|---:|");
            }
            let _ = write!(
                header,
                " MAP@R float | MAP@R bits | R@1 float vs {b} | R@1 bits vs {b} | \
                 MAP@R float vs {b} | MAP@R bits vs {b} |",
                b = self.baseline
            );
            rule.push_str("---:|---:|---|---|---|---|");
            let _ = writeln!(md, "{header}\n{rule}");
            // columns: (k index or MAP, bits?)
            let value = |r: &CompareRow, col: Option<usize>, bits: bool| -> OverSeeds {
                let s = if bits { &r.bits } else { &r.float };
                match col {
                    Some(j) => s.recall[j],
                    None => s.map_at_r,
                }
            };
            let best = |col: Option<usize>, bits: bool| -> f64 {
                t.rows
                    .iter()
                    .map(|r| value(r, col, bits).mean)
                    .fold(f64::MIN, f64::max)
            };
            for r in &t.rows {
                let mut line = format!("| {} | {} |", md_escape(&r.name), r.seeds);
                let cols: Vec<Option<usize>> = (0..t.ks.len())
                    .map(Some)
                    .chain(std::iter::once(None))
                    .collect();
                for col in cols {
                    for bits in [false, true] {
                        let v = value(r, col, bits);
                        let text = v.cell();
                        if t.rows.len() > 1 && (v.mean - best(col, bits)).abs() < 1e-12 {
                            let _ = write!(line, " **{text}** |");
                        } else {
                            let _ = write!(line, " {text} |");
                        }
                    }
                }
                for diff in [
                    r.vs_baseline_float.as_ref().and_then(|d| d.first()),
                    r.vs_baseline_bits.as_ref().and_then(|d| d.first()),
                    r.map_at_r_vs_baseline_float.as_ref(),
                    r.map_at_r_vs_baseline_bits.as_ref(),
                ] {
                    match diff {
                        Some(i) => {
                            let _ = write!(
                                line,
                                " {:+.3} [{:+.3}, {:+.3}]{} |",
                                i.mean,
                                i.low,
                                i.high,
                                if i.significant() { "" } else { " n.s." }
                            );
                        }
                        None => line.push_str(" – |"),
                    }
                }
                let _ = writeln!(md, "{line}");
            }
            let _ = writeln!(
                md,
                "\n{} queries paired; intervals: {:.0}% paired bootstrap over queries ({} \
                 resamples), n.s. = the interval contains 0.",
                t.queries_paired,
                self.level * 100.0,
                self.resamples
            );
            for n in &t.notes {
                let _ = writeln!(md, "Note: {n}.");
            }
            let _ = writeln!(md);
        }
        md
    }

    /// Writes `compare.json`, `compare.md` and `compare-<task>.png` into `dir`.
    ///
    /// # Errors
    /// I/O errors naming the file.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let json = serde_json::to_vec_pretty(self).expect("comparison serialises");
        atomic_write_bytes(&dir.join("compare.json"), &json)?;
        atomic_write_bytes(&dir.join("compare.md"), self.to_markdown().as_bytes())?;
        for t in &self.tasks {
            let series: Vec<(String, Vec<(f64, f64)>)> = t
                .rows
                .iter()
                .flat_map(|r| {
                    [
                        (format!("{} float", r.name), curve(&r.curve_float)),
                        (format!("{} bits", r.name), curve(&r.curve_bits)),
                    ]
                })
                .collect();
            line_chart(
                &dir.join(format!("compare-{}.png", file_safe(&t.task))),
                &format!("{}: Recall@k, {} -> {}", t.task, t.queries, t.gallery),
                "k",
                "Recall@k",
                &series,
            )?;
        }
        Ok(())
    }
}
