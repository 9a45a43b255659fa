//! Reports: one model's evaluation ([`Report`]: `report.json`, `report.md`, Recall@k charts,
//! `examples.html`) and several models side by side ([`Comparison`]: `compare.json`,
//! `compare.md`, charts), with paired bootstrap intervals so that noise is not reported as a
//! win.
//!
//! `report.json` keeps, per task and mode, the rank of the first correct result of every query;
//! that is what lets `compare` pair queries across models and seeds without re-running search.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};
use unisight_core::atomic::atomic_write_bytes;

use crate::bootstrap::{paired_difference, Interval};
use crate::chart::line_chart;
use crate::evaluate::{evaluate, Settings, Side, TaskMetrics};
use crate::labelled::{ItemView, LabelledSet, LeftOut};
use crate::seeds::OverSeeds;
use crate::{Error, Result};

/// `format` field of `report.json`.
pub const REPORT_FORMAT: &str = "unisight-eval-report";
/// Version of `report.json` this build writes and reads.
pub const REPORT_VERSION: u32 = 1;

/// One result of an example query.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResultView {
    /// The retrieved item.
    pub item: ItemView,
    /// Cosine (float) or Hamming distance (bits).
    pub score: f32,
    /// Whether it shares the query's label.
    pub correct: bool,
}

/// An example query and its top results in both modes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExampleView {
    /// The query.
    pub query: ItemView,
    /// Ranked by cosine.
    pub float: Vec<ResultView>,
    /// Ranked by Hamming distance.
    pub bits: Vec<ResultView>,
}

/// One task of a report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskReport {
    /// Task name.
    pub task: String,
    /// Query set.
    pub queries: String,
    /// Gallery set, or `leave-one-out`.
    pub gallery: String,
    /// Label field compared.
    pub label: String,
    /// CRC32C of the query ids in order: comparisons pair only identical query lists.
    pub query_fingerprint: String,
    /// Queries left out before evaluation.
    pub queries_left_out: LeftOut,
    /// Gallery items left out before evaluation.
    pub gallery_left_out: LeftOut,
    /// Label names by label id.
    pub label_names: Vec<String>,
    /// The numbers.
    pub metrics: TaskMetrics,
    /// Example queries with their results.
    pub examples: Vec<ExampleView>,
}

/// One model's evaluation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// Always [`REPORT_FORMAT`].
    pub format: String,
    /// [`REPORT_VERSION`].
    pub version: u32,
    /// Model id (file and checksum) or the embedding folder.
    pub model: String,
    /// When it was made (seconds since the Unix epoch).
    pub created_unix: u64,
    /// Seconds spent searching and scoring (embedding excluded).
    pub seconds: f64,
    /// Peak resident memory of the process, where the OS reports it.
    pub peak_rss_bytes: Option<u64>,
    /// What was computed.
    pub settings: Settings,
    /// Per task.
    pub tasks: Vec<TaskReport>,
}

/// Evaluates one task: interns labels and groups, runs [`evaluate`], resolves examples.
///
/// # Errors
/// [`Error::Input`] when the sets cannot be evaluated (see [`evaluate`]).
pub fn evaluate_task(
    task: &str,
    label: &str,
    queries: &LabelledSet,
    gallery: Option<&LabelledSet>,
    dim: usize,
    settings: &Settings,
) -> Result<TaskReport> {
    let mut names: Vec<String> = Vec::new();
    let mut ids: HashMap<String, u32> = HashMap::new();
    let mut intern = |s: &str, names: &mut Vec<String>| -> u32 {
        *ids.entry(s.to_string()).or_insert_with(|| {
            names.push(s.to_string());
            names.len() as u32 - 1
        })
    };
    let q_labels: Vec<u32> = queries
        .items
        .iter()
        .map(|i| intern(&i.label, &mut names))
        .collect();
    let g_labels: Option<Vec<u32>> = gallery.map(|g| {
        g.items
            .iter()
            .map(|i| intern(&i.label, &mut names))
            .collect()
    });
    let mut group_ids: HashMap<String, u32> = HashMap::new();
    let mut group = |s: &LabelledSet| -> Option<Vec<u32>> {
        s.groups.as_ref().map(|gs| {
            gs.iter()
                .map(|g| {
                    let next = group_ids.len() as u32;
                    *group_ids.entry(g.clone()).or_insert(next)
                })
                .collect()
        })
    };
    let q_groups = group(queries);
    let g_groups = gallery.and_then(&mut group);
    let q_side = Side {
        embeddings: &queries.embeddings,
        codes: &queries.codes,
        labels: &q_labels,
        groups: q_groups.as_deref(),
    };
    let g_side = gallery.zip(g_labels.as_ref()).map(|(g, labels)| Side {
        embeddings: &g.embeddings,
        codes: &g.codes,
        labels,
        groups: g_groups.as_deref(),
    });
    let mut metrics = evaluate(&q_side, g_side.as_ref(), dim, settings)
        .map_err(|e| Error::Input(format!("task `{task}`: {e}")))?;
    let gallery_set = gallery.unwrap_or(queries);
    let view = |rows: &[(usize, f32)]| -> Vec<(ItemView, f32)> {
        rows.iter()
            .map(|&(g, s)| (gallery_set.items[g].clone(), s))
            .collect()
    };
    let examples = std::mem::take(&mut metrics.examples)
        .into_iter()
        .map(|e| {
            let query = queries.items[e.query].clone();
            let mark = |rows: Vec<(ItemView, f32)>| -> Vec<ResultView> {
                rows.into_iter()
                    .map(|(item, score)| ResultView {
                        correct: item.label == query.label,
                        item,
                        score,
                    })
                    .collect()
            };
            ExampleView {
                float: mark(view(&e.float)),
                bits: mark(view(&e.bits)),
                query,
            }
        })
        .collect();
    let joined: String = queries
        .items
        .iter()
        .map(|i| i.id.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    Ok(TaskReport {
        task: task.to_string(),
        queries: queries.name.clone(),
        gallery: gallery.map_or_else(|| "leave-one-out".to_string(), |g| g.name.clone()),
        label: label.to_string(),
        query_fingerprint: format!("{:08x}", crc32c::crc32c(joined.as_bytes())),
        queries_left_out: queries.left_out,
        gallery_left_out: gallery.map(|g| g.left_out).unwrap_or_default(),
        label_names: names,
        metrics,
        examples,
    })
}

/// Peak resident set size of this process (Linux `VmHWM`), if known.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

impl Report {
    /// Reads `report.json` (or the folder holding it), checking format and version.
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::Malformed`] naming the file and what is wrong.
    pub fn read(path: &Path) -> Result<Report> {
        let file = if path.is_dir() {
            path.join("report.json")
        } else {
            path.to_path_buf()
        };
        let bytes = std::fs::read(&file).map_err(|e| Error::io(&file, e))?;
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| Error::Malformed {
                path: file.clone(),
                what: format!("not JSON: {e}"),
            })?;
        if value.get("format").and_then(|f| f.as_str()) != Some(REPORT_FORMAT) {
            return Err(Error::Malformed {
                path: file,
                what: format!("`format` is not \"{REPORT_FORMAT}\""),
            });
        }
        let version = value.get("version").and_then(|v| v.as_u64());
        if version != Some(u64::from(REPORT_VERSION)) {
            return Err(Error::Malformed {
                path: file,
                what: format!("`version` is {version:?}; this build reads {REPORT_VERSION}"),
            });
        }
        serde_json::from_value(value).map_err(|e| Error::Malformed {
            path: file,
            what: e.to_string(),
        })
    }

    /// Writes `report.json`, `report.md` and `recall-<task>.png` into `dir` (each atomically).
    ///
    /// # Errors
    /// I/O errors naming the file.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let json = serde_json::to_vec_pretty(self).expect("report serialises");
        atomic_write_bytes(&dir.join("report.json"), &json)?;
        atomic_write_bytes(&dir.join("report.md"), self.to_markdown().as_bytes())?;
        for t in &self.tasks {
            let series = vec![
                (
                    format!("{} float", self.model_name()),
                    curve(&t.metrics.float.curve),
                ),
                (
                    format!("{} bits", self.model_name()),
                    curve(&t.metrics.bits.curve),
                ),
            ];
            line_chart(
                &dir.join(format!("recall-{}.png", file_safe(&t.task))),
                &format!("{}: Recall@k, {} -> {}", t.task, t.queries, t.gallery),
                "k",
                "Recall@k",
                &series,
            )?;
        }
        Ok(())
    }

    /// The model's short name (file stem of its path).
    pub fn model_name(&self) -> String {
        let path = self.model.split('#').next().unwrap_or(&self.model);
        Path::new(path)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.model.clone())
    }

    /// The report for people.
    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "# Evaluation of `{}`\n", self.model);
        let _ = writeln!(
            md,
            "Search and scoring took {:.1} s{}. Float: cosine over the embeddings; bits: Hamming \
             distance over the sign codes.\n",
            self.seconds,
            self.peak_rss_bytes
                .map(|b| format!(", peak memory {:.0} MiB", b as f64 / 1048576.0))
                .unwrap_or_default()
        );
        for t in &self.tasks {
            let m = &t.metrics;
            let _ = writeln!(
                md,
                "## {} ({} -> {}, label `{}`)\n",
                t.task, t.queries, t.gallery, t.label
            );
            let used = m.queries - m.queries_without_match.len();
            let _ = writeln!(
                md,
                "{used} queries, {} gallery items.{}{}\n",
                m.gallery,
                left_out_note(
                    "queries",
                    &t.queries_left_out,
                    m.queries_without_match.len()
                ),
                left_out_note("gallery items", &t.gallery_left_out, 0),
            );
            let _ = writeln!(md, "| metric | float | bits | bits - float |");
            let _ = writeln!(md, "|---|---:|---:|---:|");
            let mut row = |name: String, f: f64, b: f64| {
                let _ = writeln!(md, "| {name} | {f:.4} | {b:.4} | {:+.4} |", b - f);
            };
            for (j, k) in m.ks.iter().enumerate() {
                row(format!("Recall@{k}"), m.float.recall[j], m.bits.recall[j]);
            }
            for (j, k) in m.ks.iter().enumerate() {
                row(
                    format!("Precision@{k}"),
                    m.float.precision[j],
                    m.bits.precision[j],
                );
            }
            row(
                format!("MAP@R (R <= {})", m.map_r_cap),
                m.float.map_at_r,
                m.bits.map_at_r,
            );
            if let (Some(f), Some(b)) = (m.float.nmi, m.bits.nmi) {
                row("NMI (k-means on the queries)".into(), f, b);
            }
            let worst: Vec<_> = m.per_class.iter().take(10).collect();
            if !worst.is_empty() {
                let _ = writeln!(md, "\nWorst classes by Recall@1 (float):\n");
                let _ = writeln!(md, "| class | queries | Recall@1 float | Recall@1 bits |");
                let _ = writeln!(md, "|---|---:|---:|---:|");
                for c in worst {
                    let name = t
                        .label_names
                        .get(c.label as usize)
                        .map_or("?", String::as_str);
                    let _ = writeln!(
                        md,
                        "| {} | {} | {:.3} | {:.3} |",
                        md_escape(name),
                        c.queries,
                        c.recall_at_1_float,
                        c.recall_at_1_bits
                    );
                }
            }
            let _ = writeln!(md);
        }
        md
    }
}

fn left_out_note(what: &str, left: &LeftOut, unmatched: usize) -> String {
    let mut parts = Vec::new();
    if left.unlabelled > 0 {
        parts.push(format!("{} without the label", left.unlabelled));
    }
    if left.unreadable > 0 {
        parts.push(format!("{} unreadable", left.unreadable));
    }
    if unmatched > 0 {
        parts.push(format!("{unmatched} whose label has no gallery item"));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" Left out {what}: {}.", parts.join(", "))
    }
}

fn curve(values: &[f64]) -> Vec<(f64, f64)> {
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| ((i + 1) as f64, v))
        .collect()
}

/// A task name usable in a file name.
pub fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|")
}

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
/// intervals over queries (a query's value is its hit averaged over the entry's seeds).
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
        let base = present.iter().find(|(n, _)| *n == baseline);
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
            rows.push(CompareRow {
                name: name.clone(),
                seeds: reports.len(),
                float: summary(false),
                bits: summary(true),
                curve_float: mean_curve(false),
                curve_bits: mean_curve(true),
                vs_baseline_float: diffs(false),
                vs_baseline_bits: diffs(true),
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
    /// each column in bold, and the Recall@1 difference to the baseline with its interval.
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
                " MAP@R float | MAP@R bits | R@1 float vs {b} | R@1 bits vs {b} |",
                b = self.baseline
            );
            rule.push_str("---:|---:|---|---|");
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
                for diffs in [&r.vs_baseline_float, &r.vs_baseline_bits] {
                    match diffs.as_ref().and_then(|d| d.first()) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use unisight_core::code::pack_signs;

    fn set(name: &str, rows: &[([f32; 2], &str)]) -> LabelledSet {
        let mut embeddings = Vec::new();
        let mut codes = Vec::new();
        for (v, _) in rows {
            let n = (v[0] * v[0] + v[1] * v[1]).sqrt();
            embeddings.extend([v[0] / n, v[1] / n]);
            codes.extend(pack_signs(v));
        }
        LabelledSet {
            name: name.into(),
            items: rows
                .iter()
                .enumerate()
                .map(|(i, (_, l))| ItemView {
                    id: format!("{name}/{i}"),
                    path: format!("{name}/{i}.jpg"),
                    label: l.to_string(),
                })
                .collect(),
            embeddings,
            codes,
            groups: None,
            left_out: LeftOut::default(),
        }
    }

    fn report(model: &str, queries: &LabelledSet, gallery: &LabelledSet) -> Report {
        let settings = Settings {
            ks: vec![1, 2],
            examples: 2,
            ..Settings::default()
        };
        let task = evaluate_task("t", "label", queries, Some(gallery), 2, &settings).unwrap();
        Report {
            format: REPORT_FORMAT.into(),
            version: REPORT_VERSION,
            model: model.into(),
            created_unix: 0,
            seconds: 0.0,
            peak_rss_bytes: None,
            settings,
            tasks: vec![task],
        }
    }

    #[test]
    fn reports_round_trip_and_compare_pairs_queries() {
        let gallery = set("g", &[([1.0, 0.0], "a"), ([0.0, 1.0], "b")]);
        let queries = set(
            "q",
            &[([1.0, 0.2], "a"), ([0.2, 1.0], "b"), ([1.0, 0.3], "b")],
        );
        let good = report("good.safetensors#1", &queries, &gallery);
        assert_eq!(good.tasks[0].metrics.float.first_hit, vec![1, 1, 2]);
        assert_eq!(good.tasks[0].examples.len(), 2);
        // a worse model: every query points the other way
        let flipped = set(
            "q",
            &[([0.0, 1.0], "a"), ([1.0, 0.0], "b"), ([0.0, 1.0], "b")],
        );
        let bad = report("bad.safetensors#2", &flipped, &gallery);

        let dir = tempfile::tempdir().unwrap();
        good.write(dir.path()).unwrap();
        let back = Report::read(dir.path()).unwrap();
        assert_eq!(back.tasks[0].metrics.float.first_hit, vec![1, 1, 2]);
        assert!(dir.path().join("report.md").exists());
        assert!(dir.path().join("recall-t.png").exists());

        let entries = vec![
            CompareEntry {
                name: "bad".into(),
                reports: vec![bad],
            },
            CompareEntry {
                name: "good".into(),
                reports: vec![good.clone(), good.clone()],
            },
        ];
        let c = compare(&entries, &[], None, 200, 0.95, 1).unwrap();
        let t = &c.tasks[0];
        assert_eq!(t.rows[1].seeds, 2);
        let d = t.rows[1].vs_baseline_float.as_ref().unwrap()[0];
        // good hits 2 of 3 at k=1, bad hits 1 of 3 (query 2: "b" with [0,1])
        assert!((d.mean - 1.0 / 3.0).abs() < 1e-12, "{d:?}");
        assert!(
            c.to_markdown().contains("**0.667 ± 0.000 (0.667-0.667)**"),
            "{}",
            c.to_markdown()
        );
        let only = compare(&entries, &["t".into()], Some("good"), 10, 0.95, 1).unwrap();
        assert!(only.tasks[0].rows[1].vs_baseline_float.is_none());
        let err = compare(&entries, &["nope".into()], None, 10, 0.95, 1).unwrap_err();
        assert!(err.to_string().contains("`nope`"));

        // another query list is refused, not paired
        let other = set("q", &[([1.0, 0.2], "a"), ([0.2, 1.0], "b")]);
        let entries = vec![
            entries[1].clone(),
            CompareEntry {
                name: "other".into(),
                reports: vec![report("o#3", &other, &gallery)],
            },
        ];
        let err = compare(&entries, &[], None, 10, 0.95, 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("other queries"), "{err}");
    }

    #[test]
    fn malformed_reports_name_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("report.json");
        std::fs::write(&p, "{\"format\": \"something-else\"}").unwrap();
        assert!(Report::read(&p).unwrap_err().to_string().contains("format"));
        std::fs::write(
            &p,
            format!("{{\"format\": \"{REPORT_FORMAT}\", \"version\": 99}}"),
        )
        .unwrap();
        assert!(Report::read(&p)
            .unwrap_err()
            .to_string()
            .contains("version"));
        std::fs::write(&p, "{").unwrap();
        assert!(Report::read(&p)
            .unwrap_err()
            .to_string()
            .contains("not JSON"));
    }
}
