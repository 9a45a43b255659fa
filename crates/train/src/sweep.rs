//! `unisight sweep`: a small grid over recipe settings, each point trained (over seeds) as its
//! own resumable run, and one table that ranks the points by validation score, so a user tunes
//! on their own data without ever choosing by the test sets.
//!
//! A grid file:
//!
//! ```toml
//! seeds = [1, 2]                    # optional; default: the task file's seed
//! [grid]
//! "train.steps" = [750, 1500]       # any dotted key of the task file, as `train --set` takes
//! "train.temperature" = [0.05, 0.1]
//! ```
//!
//! or, for an ablation (each lever alone against the file as it is), a list of points:
//!
//! ```toml
//! [[points]]                         # no key: the task file as it is
//! [[points]]
//! "train.steps" = 3000
//! ```
//!
//! (both may be given: the grid's points come first).
//!
//! Runs go to `OUT/<point>-s<seed>.run` with their models beside them; a finished run (its
//! `report.json` exists) is not trained again and a killed one resumes from its checkpoint, so
//! re-running the same command finishes the sweep. `OUT/sweep.md` and `OUT/sweep.json` hold the
//! table.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use unisight_eval::seeds::OverSeeds;

use crate::config::TrainConfig;
use crate::trainer::{read_json, train, History, TrainOptions, TrainReport};
use crate::{Error, Result};

/// A grid file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grid {
    /// Seeds of every point (default: the task file's).
    #[serde(default)]
    pub seeds: Option<Vec<u64>>,
    /// Dotted task-file key -> values to try; every combination is a point.
    #[serde(default)]
    pub grid: BTreeMap<String, Vec<toml::Value>>,
    /// Points listed one by one (dotted key -> value; none: the task file as it is).
    #[serde(default)]
    pub points: Vec<BTreeMap<String, toml::Value>>,
}

impl Grid {
    /// Reads a grid file.
    ///
    /// # Errors
    /// I/O or TOML errors naming the file; an empty grid or a key without values.
    pub fn load(path: &Path) -> Result<Grid> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let grid: Grid = toml::from_str(&text).map_err(|e| Error::Config {
            path: path.into(),
            what: e.to_string(),
        })?;
        if grid.grid.is_empty() && grid.points.is_empty() {
            return Err(Error::Config {
                path: path.into(),
                what: "nothing to run: give a `[grid]` or `[[points]]`".into(),
            });
        }
        if let Some((key, _)) = grid.grid.iter().find(|(_, v)| v.is_empty()) {
            return Err(Error::Config {
                path: path.into(),
                what: format!("grid key `{key}` has no values"),
            });
        }
        if grid.seeds.as_ref().is_some_and(Vec::is_empty) {
            return Err(Error::Config {
                path: path.into(),
                what: "`seeds` is empty".into(),
            });
        }
        Ok(grid)
    }

    /// Every point: its `KEY=VALUE` overrides, in key order; the grid's combinations first,
    /// then the listed points.
    pub fn points(&self) -> Vec<Vec<String>> {
        let mut points = if self.grid.is_empty() {
            Vec::new()
        } else {
            vec![Vec::new()]
        };
        for (key, values) in &self.grid {
            points = points
                .into_iter()
                .flat_map(|p| {
                    values.iter().map(move |v| {
                        let mut next = p.clone();
                        next.push(format!("{key}={v}"));
                        next
                    })
                })
                .collect();
        }
        points.extend(self.points.iter().map(|point| {
            point
                .iter()
                .map(|(key, value)| format!("{key}={value}"))
                .collect()
        }));
        points
    }
}

/// A point's run-folder stem: its overrides joined, with characters a file name should not
/// hold replaced.
pub fn point_name(overrides: &[String]) -> String {
    let name: String = overrides
        .join(",")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "=.,_+-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        "base".into()
    } else {
        name
    }
}

/// Where and how a sweep runs.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// The task file every point starts from.
    pub config: PathBuf,
    /// Where its relative dataset roots are resolved.
    pub data_dir: Option<PathBuf>,
    /// Runs, models and the table.
    pub out: PathBuf,
    /// Trunk caches (shared by the points: most share a front).
    pub cache_dir: PathBuf,
    /// Progress on stderr.
    pub progress: bool,
}

/// One run of the sweep, as the table reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepRun {
    /// The point's overrides.
    pub point: Vec<String>,
    /// Seed.
    pub seed: u64,
    /// Validation score of the chosen model (None: the task file validates nothing).
    pub validation: Option<f64>,
    /// Step of the chosen model.
    pub step: usize,
    /// Per task: (name, test R@1 float, test R@1 bits) of the chosen model.
    pub test: Vec<(String, f64, f64)>,
}

/// Trains every point and seed not finished yet, then writes `sweep.md` and `sweep.json`.
/// Returns the table.
///
/// # Errors
/// A task file that does not load with a point's overrides (before anything trains), and any
/// training error (the runs finished before it are kept).
pub fn sweep(grid: &Grid, options: &SweepOptions) -> Result<String> {
    // every point's task file first: a typo in the grid fails now, not hours in
    let mut plan = Vec::new();
    for point in grid.points() {
        let config =
            TrainConfig::load_with_overrides(&options.config, options.data_dir.as_deref(), &point)?;
        let seeds = grid.seeds.clone().unwrap_or_else(|| vec![config.seed]);
        for seed in seeds {
            plan.push((point.clone(), seed, config.clone()));
        }
    }
    std::fs::create_dir_all(&options.out).map_err(|e| Error::io(&options.out, e))?;
    let mut runs = Vec::new();
    for (i, (point, seed, mut config)) in plan.iter().cloned().enumerate() {
        config.seed = seed;
        let stem = format!("{}-s{seed}", point_name(&point));
        let work_dir = options.out.join(format!("{stem}.run"));
        let report_path = work_dir.join("report.json");
        let report: TrainReport = if report_path.is_file() {
            read_json(&report_path)?
        } else {
            if options.progress {
                eprintln!("sweep: run {} of {}: {stem}", i + 1, plan.len());
            }
            train(
                &config,
                &TrainOptions {
                    out: options.out.join(format!("{stem}.safetensors")),
                    work_dir: work_dir.clone(),
                    cache_dir: options.cache_dir.clone(),
                    progress: options.progress,
                    stop_after: None,
                },
            )?
        };
        let history: History = read_json(&work_dir.join("history.json"))?;
        let step = report.chosen.map_or(report.steps, |c| c.step);
        runs.push(SweepRun {
            point,
            seed,
            validation: history.validation_score_at(step, config.train.validation_metric),
            step,
            test: report
                .eval
                .iter()
                .map(|e| (e.task.clone(), e.recall_float[0], e.recall_bits[0]))
                .collect(),
        });
    }
    let table = render(&runs);
    unisight_core::atomic::atomic_write_bytes(&options.out.join("sweep.md"), table.as_bytes())?;
    let json = serde_json::to_vec_pretty(&runs).expect("runs serialise");
    unisight_core::atomic::atomic_write_bytes(&options.out.join("sweep.json"), &json)?;
    Ok(table)
}

/// The table: one row per point (seeds averaged), best validation score first; the test
/// columns report what each point's validation chose.
pub fn render(runs: &[SweepRun]) -> String {
    let mut points: Vec<(&Vec<String>, Vec<&SweepRun>)> = Vec::new();
    for run in runs {
        match points.iter_mut().find(|(p, _)| *p == &run.point) {
            Some((_, list)) => list.push(run),
            None => points.push((&run.point, vec![run])),
        }
    }
    let score = |list: &[&SweepRun]| {
        let v: Vec<f64> = list.iter().filter_map(|r| r.validation).collect();
        (!v.is_empty()).then(|| OverSeeds::of(&v))
    };
    points.sort_by(|a, b| {
        let (sa, sb) = (score(&a.1).map(|s| s.mean), score(&b.1).map(|s| s.mean));
        sb.partial_cmp(&sa).unwrap_or(std::cmp::Ordering::Equal)
    });
    // every task any point trains (points over task subsets leave some cells empty)
    let mut tasks: Vec<String> = Vec::new();
    for run in runs {
        for (task, _, _) in &run.test {
            if !tasks.contains(task) {
                tasks.push(task.clone());
            }
        }
    }
    let mut out = String::from("| point | seeds | validation score | chosen step |");
    for t in &tasks {
        out.push_str(&format!(" {t} R@1 float (test) | {t} R@1 bits (test) |"));
    }
    out.push_str("\n|---|---:|---:|---:|");
    out.push_str(&"---:|---:|".repeat(tasks.len()));
    out.push('\n');
    for (rank, (point, list)) in points.iter().enumerate() {
        let name = if point.is_empty() {
            "(the task file)".to_string()
        } else {
            point.join(", ")
        };
        let steps: Vec<String> = list.iter().map(|r| r.step.to_string()).collect();
        out.push_str(&format!(
            "| {name}{} | {} | {} | {} |",
            if rank == 0 && points.len() > 1 {
                " **best on validation**"
            } else {
                ""
            },
            list.len(),
            score(list).map_or("–".into(), |s| s.cell()),
            steps.join(", ")
        ));
        for t in &tasks {
            let values = |pick: fn(&(String, f64, f64)) -> f64| -> Vec<f64> {
                list.iter()
                    .filter_map(|r| r.test.iter().find(|x| &x.0 == t).map(pick))
                    .collect()
            };
            let (float, bits) = (values(|x| x.1), values(|x| x.2));
            if float.is_empty() {
                out.push_str(" – | – |");
            } else {
                out.push_str(&format!(
                    " {} | {} |",
                    OverSeeds::of(&float).cell(),
                    OverSeeds::of(&bits).cell()
                ));
            }
        }
        out.push('\n');
    }
    out.push_str(
        "\nvalidation score: mean over the tasks' validation sets of what each run's \
         `train.validation_metric` counts (recall: (R@1 float + R@1 bits) / 2; recall-and-map: \
         R@1 and MAP@R, float and bits, / 4), of the model each run kept; test columns: that \
         model on the test sets (mean ± sd (min-max) over seeds).\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grid_is_the_product_of_its_keys() {
        let grid: Grid = toml::from_str(
            "seeds = [1, 2]\n[grid]\n\"train.steps\" = [10, 20]\n\"train.schedule\" = [\"cosine\", \"step\"]\n",
        )
        .unwrap();
        let points = grid.points();
        assert_eq!(points.len(), 4);
        assert!(points.contains(&vec![
            "train.schedule=\"step\"".to_string(),
            "train.steps=20".to_string()
        ]));
        assert_eq!(
            point_name(&points[0]),
            "train.schedule=_cosine_,train.steps=10"
        );
    }

    #[test]
    fn listed_points_follow_the_grid_and_an_empty_one_is_the_task_file() {
        let ablation: Grid = toml::from_str(
            "[[points]]\n[[points]]\n\"tasks.fine.proxy_init\" = \"grocery:iconic\"\n",
        )
        .unwrap();
        let points = ablation.points();
        assert_eq!(
            points,
            vec![
                Vec::<String>::new(),
                vec!["tasks.fine.proxy_init=\"grocery:iconic\"".to_string()]
            ]
        );
        assert_eq!(point_name(&points[0]), "base");
        let both: Grid =
            toml::from_str("[grid]\n\"train.steps\" = [1, 2]\n[[points]]\n\"seed\" = 3\n").unwrap();
        assert_eq!(both.points().len(), 3);
        assert_eq!(both.points()[2], vec!["seed=3".to_string()]);
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("grid.toml");
        std::fs::write(&empty, "seeds = [1]\n").unwrap();
        let e = Grid::load(&empty).unwrap_err().to_string();
        assert!(e.contains("nothing to run"), "{e}");
    }

    #[test]
    fn every_shipped_sweep_file_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/sweeps");
        let mut loaded = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let grid = Grid::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(!grid.points().is_empty(), "{}", path.display());
            loaded += 1;
        }
        assert!(loaded >= 2, "{loaded} sweep files");
    }

    #[test]
    fn the_table_ranks_points_by_validation_not_test() {
        let run = |point: &str, seed, validation, test| SweepRun {
            point: vec![point.to_string()],
            seed,
            validation: Some(validation),
            step: 10,
            test: vec![("fine".to_string(), test, test)],
        };
        let table = render(&[
            run("train.lr=0.1", 1, 0.5, 0.9),
            run("train.lr=0.01", 1, 0.7, 0.6),
            run("train.lr=0.01", 2, 0.6, 0.6),
        ]);
        let first = table.lines().nth(2).unwrap();
        assert!(
            first.starts_with("| train.lr=0.01 **best on validation** | 2 | 0.650 ± 0.071"),
            "{table}"
        );
        // a point over another task subset: its own column, empty cells elsewhere
        let mut other = run("train.only_tasks=[\"coarse\"]", 1, 0.1, 0.5);
        other.test = vec![("coarse".to_string(), 0.5, 0.4)];
        let table = render(&[run("train.lr=0.1", 1, 0.5, 0.9), other]);
        let last = table.lines().nth(3).unwrap();
        assert!(last.ends_with("| – | – | 0.500 | 0.400 |"), "{table}");
    }
}
