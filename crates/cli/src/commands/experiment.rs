//! `unisight experiment report` and `unisight study report`: reports of online experiments from
//! the engagement log and the study's ratings (the work is in `unisight-experiment`).

use std::path::Path;

use anyhow::{bail, Result};
use unisight_core::atomic::atomic_write_bytes;
use unisight_experiment::study::read_ratings;
use unisight_experiment::{experiment_report, study_report};

use crate::args::{ExperimentCommand, StudyCommand};

/// Runs `unisight experiment ...`.
pub fn run_experiment(command: ExperimentCommand) -> Result<()> {
    match command {
        ExperimentCommand::Report {
            log,
            stem,
            control,
            out,
        } => report_experiment(&log, &stem, control.as_deref(), out.as_deref()),
    }
}

/// Runs `unisight study ...`.
pub fn run_study(command: StudyCommand) -> Result<()> {
    match command {
        StudyCommand::Report { ratings, arms, out } => {
            let arms = arms.map(|a| [a[0].clone(), a[1].clone()]);
            report_study(&ratings, arms, out.as_deref())
        }
        StudyCommand::AddRater { raters, name } => {
            let token = unisight_experiment::add_rater(&raters, &name)?;
            eprintln!(
                "added rater `{name}` to {}; their token (shown only now):",
                raters.display()
            );
            println!("{token}");
            Ok(())
        }
    }
}

/// `unisight experiment report`.
fn report_experiment(
    log_dir: &Path,
    stem: &str,
    control: Option<&str>,
    out: Option<&Path>,
) -> Result<()> {
    // impressions first, then actions: the report joins them by request
    let mut files =
        unisight_engagement::log_files(log_dir, &unisight_engagement::impressions_stem(stem))?;
    files.extend(unisight_engagement::log_files(log_dir, stem)?);
    if files.is_empty() {
        bail!(
            "{}: no {stem}.jsonl or {stem}-NNNNNN.jsonl files",
            log_dir.display()
        );
    }
    let (events, torn) = unisight_engagement::read_logs(&files)?;
    let report = experiment_report(&events, control);
    let mut text = report.markdown();
    if torn > 0 {
        text.push_str(&format!(
            "\n{torn} torn last line(s) skipped (a writer killed mid-line).\n"
        ));
    }
    publish(&text, &report, out, "report")
}

/// Prints a report's Markdown and, with `out`, writes `<stem>.md` and `<stem>.json` there
/// (each atomically).
fn publish<T: serde::Serialize>(
    text: &str,
    report: &T,
    out: Option<&Path>,
    stem: &str,
) -> Result<()> {
    print!("{text}");
    if let Some(out) = out {
        std::fs::create_dir_all(out)?;
        atomic_write_bytes(&out.join(format!("{stem}.md")), text.as_bytes())?;
        atomic_write_bytes(
            &out.join(format!("{stem}.json")),
            serde_json::to_string_pretty(report)?.as_bytes(),
        )?;
    }
    Ok(())
}

/// `unisight study report`.
fn report_study(ratings: &Path, arms: Option<[String; 2]>, out: Option<&Path>) -> Result<()> {
    let list = read_ratings(ratings)?;
    let Some(report) = study_report(&list, arms) else {
        bail!("{}: no ratings yet", ratings.display());
    };
    publish(&report.markdown(), &report, out, "study")
}
