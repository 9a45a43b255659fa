//! `unisight train`, `unisight summarize-runs` and `unisight sweep`: a task file into a model
//! file, resumable from the run's checkpoints; the table of finished runs; a grid of runs.

use std::path::{Path, PathBuf};

use anyhow::Result;
use unisight_train::config::TrainConfig;
use unisight_train::trainer::{train, TrainOptions};

use crate::args::{SummarizeRunsArgs, SweepArgs, TrainArgs};

/// Where trunk-map caches go unless `--cache-dir` says otherwise.
pub const DEFAULT_TRUNK_CACHE: &str = ".cache/trunk";

/// Runs `unisight train`.
pub fn run(args: TrainArgs) -> Result<()> {
    let mut config =
        TrainConfig::load_with_overrides(&args.config, args.data_dir.as_deref(), &args.overrides)?;
    if let Some(seed) = args.seed {
        config.seed = seed;
    }
    let out = args.out;
    let work_dir = args.work_dir.unwrap_or_else(|| {
        let mut name = out.file_name().unwrap_or_default().to_os_string();
        name.push(".run");
        out.with_file_name(name)
    });
    let options = TrainOptions {
        out: out.clone(),
        work_dir: work_dir.clone(),
        cache_dir: args
            .cache_dir
            .unwrap_or_else(|| PathBuf::from(DEFAULT_TRUNK_CACHE)),
        progress: !args.quiet,
        stop_after: args.stop_after,
    };
    let report = train(&config, &options)?;
    if report.interrupted {
        println!(
            "stopped after step {} (checkpointed in {}); run the same command again to resume",
            report.steps,
            work_dir.display()
        );
        return Ok(());
    }
    println!(
        "trained {} steps ({} in this run, {:.1} img/s; trunk cache {:.0} s); model: {}",
        report.steps,
        report.steps_this_run,
        report.images_per_second,
        report.cache_seconds,
        out.display()
    );
    if !report.skipped_images.is_empty() {
        println!(
            "skipped {} unreadable images (listed in {}/report.json)",
            report.skipped_images.len(),
            work_dir.display()
        );
    }
    for e in &report.eval {
        let mut ks: Vec<String> =
            e.k.iter()
                .zip(e.recall_float.iter().zip(&e.recall_bits))
                .map(|(k, (f, b))| format!("R@{k} {f:.3} (bits {b:.3})"))
                .collect();
        if let (Some(f), Some(b)) = (e.map_at_r_float, e.map_at_r_bits) {
            ks.push(format!("MAP@R {f:.3} (bits {b:.3})"));
        }
        println!(
            "{:<16} {} -> {}: {}",
            e.task,
            e.queries,
            e.gallery,
            ks.join("  ")
        );
    }
    println!(
        "curves: {0}/history.json, {0}/loss.png, {0}/validation.png",
        work_dir.display()
    );
    Ok(())
}

/// Runs `unisight summarize-runs`.
pub fn summarize(args: SummarizeRunsArgs) -> Result<()> {
    let dirs: Vec<&Path> = args.runs.iter().map(PathBuf::as_path).collect();
    if args.validation {
        print!("{}", unisight_train::summary::validation_curves(&dirs)?);
    } else {
        print!("{}", unisight_train::summary::summarize(&dirs)?);
    }
    Ok(())
}

/// Runs `unisight sweep`.
pub fn sweep(args: SweepArgs) -> Result<()> {
    let grid = unisight_train::sweep::Grid::load(&args.grid)?;
    let table = unisight_train::sweep::sweep(
        &grid,
        &unisight_train::sweep::SweepOptions {
            config: args.config,
            data_dir: args.data_dir,
            out: args.out.clone(),
            cache_dir: args
                .cache_dir
                .unwrap_or_else(|| PathBuf::from(DEFAULT_TRUNK_CACHE)),
            progress: !args.quiet,
        },
    )?;
    print!("{table}");
    eprintln!("written to {}", args.out.join("sweep.md").display());
    Ok(())
}
