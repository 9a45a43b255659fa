//! One model's evaluation report ([`Report`]: `report.json`, `report.md`, Recall@k charts,
//! `examples.html`); several models side by side are in [`crate::compare`].
//!
//! `report.json` keeps, per task and mode, the rank of the first correct result of every query;
//! that is what lets `compare` pair queries across models and seeds without re-running search.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};
use unisight_core::atomic::atomic_write_bytes;

use crate::chart::line_chart;
use crate::evaluate::{evaluate, Settings, Side, TaskMetrics};
use crate::labelled::{ItemView, LabelledSet, LeftOut};
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
    /// Bytes of the embedding and code files read from embedding folders, to set the peak
    /// memory against (absent when the sets were embedded in this run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_bytes: Option<u64>,
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

    /// ", peak memory X MiB" and, when the input's size is known, what multiple of it that is.
    fn memory_summary(&self) -> String {
        const MIB: f64 = 1048576.0;
        match (self.peak_rss_bytes, self.input_bytes) {
            (Some(rss), Some(input)) if input > 0 => format!(
                ", peak memory {:.0} MiB = {:.2}x the embeddings and codes read ({:.0} MiB)",
                rss as f64 / MIB,
                rss as f64 / input as f64,
                input as f64 / MIB
            ),
            (Some(rss), _) => format!(", peak memory {:.0} MiB", rss as f64 / MIB),
            _ => String::new(),
        }
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
            self.memory_summary()
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

pub(crate) fn curve(values: &[f64]) -> Vec<(f64, f64)> {
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

pub(crate) fn md_escape(s: &str) -> String {
    s.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::{compare, CompareEntry};
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
            input_bytes: None,
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
        // MAP@R (R = 1 here): good 1, 1, 0 over the queries, bad 0, 0, 1
        let m = t.rows[1].map_at_r_vs_baseline_float.unwrap();
        assert!((m.mean - 1.0 / 3.0).abs() < 1e-6, "{m:?}");
        assert!(t.rows[0].map_at_r_vs_baseline_float.is_none());
        assert!(c.to_markdown().contains("MAP@R bits vs bad"));
        // a report of an older build, without per-query average precisions: no MAP@R
        // difference, and a note that says why
        let mut old = entries.clone();
        old[0].reports[0].tasks[0]
            .metrics
            .float
            .average_precision
            .clear();
        let c = compare(&old, &[], None, 10, 0.95, 1).unwrap();
        assert!(c.tasks[0].rows[1].map_at_r_vs_baseline_float.is_none());
        assert!(c.tasks[0].rows[1].vs_baseline_float.is_some());
        assert!(c.tasks[0].notes.iter().any(|n| n.contains("older build")));
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
