//! `unisight load-test`: a bounded, self-stopping load test of a running `unisight serve` on
//! loopback. Levels of concurrency, each for a fixed time: searches by item id, searches by
//! uploaded image, and uploads of which a tenth are malformed (random bytes, truncated JPEGs,
//! text). Each client is one thread with one keep-alive connection, so the client takes little
//! of the cores the server shares with it; any 5xx or dropped connection is a failure.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Serialize;

mod clients;
mod cpu;

use clients::{run_level, Plan};
use cpu::{cores, cpu_seconds_of};

pub(crate) use clients::{percent_encode, percentile};

/// What a load test sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// `GET /v1/items/{key}/similar` for stored keys.
    Id,
    /// `POST /v1/search` with a JPEG photo.
    Image,
    /// As `image`, with a tenth of the uploads malformed.
    Mixed,
}

impl Kind {
    fn title(self) -> &'static str {
        match self {
            Kind::Id => "search by id",
            Kind::Image => "search by image",
            Kind::Mixed => "image, 10% malformed",
        }
    }
}

/// A load test's settings (the `unisight load-test` arguments).
#[derive(Debug, clap::Args)]
pub struct Settings {
    /// The server, http://127.0.0.1:PORT or http://localhost:PORT (nothing else).
    #[arg(long)]
    url: String,
    /// A second server measured in the same run, each level right after the first's (the same
    /// catalog on another backend, say): the report adds its rate and p99 over the first's.
    #[arg(long)]
    compare_url: Option<String>,
    /// items.jsonl of the indexed embedding folder (its `id` fields are the keys searched by).
    #[arg(long)]
    items: Option<PathBuf>,
    /// Folder of JPEG photos to upload (up to 64 are used).
    #[arg(long)]
    images: Option<PathBuf>,
    /// Seconds per level, at most 120.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Concurrency levels (clients, each on one keep-alive connection).
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    levels: Vec<usize>,
    /// Results per search.
    #[arg(short, default_value_t = 10)]
    k: usize,
    /// What to send, in order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "id,image,mixed"
    )]
    kinds: Vec<Kind>,
    /// Also write the results here (JSON).
    #[arg(long)]
    json: Option<PathBuf>,
    /// A model file to measure model-only ONNX Runtime at batch 1 with, before and after each
    /// round (their mean is the anchor of the "x model-only" ratios): the faster of one session
    /// on every core and `--anchor-sessions` sessions side by side, as the server runs them.
    #[arg(long)]
    anchor_model: Option<PathBuf>,
    /// Sessions of the side-by-side anchor measurement (`serve --workers`).
    #[arg(long, default_value_t = 2)]
    anchor_sessions: usize,
    /// Threads per session of that measurement (`serve --threads`).
    #[arg(long, default_value_t = 1)]
    anchor_threads: usize,
    /// Images per anchor measurement (each of the two, before and after a round).
    #[arg(long, default_value_t = 1000)]
    anchor_images: usize,
    /// Process id of the server, on this machine: its CPU time per request is reported.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Run every kind and level this many times (the ratios' median and range are reported).
    #[arg(long, default_value_t = 1)]
    rounds: usize,
}

/// One level's outcome.
#[derive(Debug, Serialize)]
struct Level {
    /// `url`, or `compare` for `--compare-url`.
    target: &'static str,
    concurrency: usize,
    requests: usize,
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    statuses: BTreeMap<String, usize>,
    connection_errors: usize,
    /// CPU time this process (the client) spent per request, so a reader can see what the
    /// client took of cores it shares with the server.
    client_cpu_ms_per_request: f64,
    /// CPU time the server (`--server-pid`) spent per request.
    server_cpu_ms_per_request: Option<f64>,
    /// Round (1-based) the level belongs to.
    round: usize,
}

/// One round's anchor: model-only images per second before and after its load.
#[derive(Debug, Serialize)]
struct Anchor {
    before: f64,
    after: f64,
    mean: f64,
}

#[derive(Serialize)]
struct Report {
    results: BTreeMap<String, Vec<Level>>,
    failures: Vec<(String, usize)>,
    /// Per round, with `--anchor-model`.
    anchors: Vec<Anchor>,
    /// Per round: the best search by image rate over the anchor.
    image_x_model_only: Vec<f64>,
    /// With `--compare-url`: each level of the second server against the first's.
    compare_x_url: Vec<Comparison>,
}

/// One level of `--compare-url` against the same level of `--url`.
#[derive(Debug, Serialize)]
struct Comparison {
    kind: &'static str,
    concurrency: usize,
    round: usize,
    /// Requests per second of the second server over the first's.
    per_second_ratio: f64,
    p99_ms_url: f64,
    p99_ms_compare: f64,
}

/// Runs every kind at every level, prints a line per level, writes the JSON report when asked,
/// and fails when any answer was a 5xx or a connection dropped.
///
/// # Errors
/// A non-loopback URL, bad settings, unreadable items or photos, or failures seen.
pub fn run(settings: &Settings) -> Result<()> {
    let base = loopback_base(&settings.url)?;
    let mut targets = vec![("url", base)];
    if let Some(url) = &settings.compare_url {
        targets.push(("compare", loopback_base(url)?));
    }
    if !(settings.seconds > 0.0 && settings.seconds <= 120.0) {
        bail!("--seconds must be in (0, 120]");
    }
    if settings.levels.is_empty() || settings.levels.iter().any(|&c| !(1..=64).contains(&c)) {
        bail!("--levels must be between 1 and 64");
    }
    let keys = match (&settings.items, settings.kinds.contains(&Kind::Id)) {
        (Some(items), true) => read_keys(items)?,
        (None, true) => bail!("searches by id need --items"),
        (_, false) => Vec::new(),
    };
    let uploads = settings.kinds.iter().any(|&k| k != Kind::Id);
    let photos = match (&settings.images, uploads) {
        (Some(dir), true) => read_photos(dir)?,
        (None, true) => bail!("uploads need --images"),
        (_, false) => Vec::new(),
    };
    if !(1..=20).contains(&settings.rounds) {
        bail!("--rounds must be between 1 and 20");
    }
    let mut results: BTreeMap<String, Vec<Level>> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut comparisons = Vec::new();
    let mut anchors = Vec::new();
    let mut ratios = Vec::new();
    for round in 1..=settings.rounds {
        let before = anchor(settings)?;
        let mut best_image: Option<f64> = None;
        for &kind in &settings.kinds {
            for &concurrency in &settings.levels {
                let mut pair = Vec::new();
                for (target, base) in &targets {
                    let plan = Plan {
                        base,
                        kind,
                        k: settings.k,
                        keys: &keys,
                        photos: &photos,
                    };
                    let level =
                        measure_level(&plan, settings, target, concurrency, round, &mut failures);
                    if kind == Kind::Image && *target == "url" {
                        best_image = Some(best_image.unwrap_or(0.0).max(level.per_second));
                    }
                    pair.push((level.per_second, level.p99_ms));
                    results
                        .entry(kind.title().to_owned())
                        .or_default()
                        .push(level);
                }
                if let [(rate, p99), (rate2, p99_2)] = pair[..] {
                    let ratio = rate2 / rate.max(1e-9);
                    println!(
                        "{:22} concurrency {concurrency:2}: compare / url {ratio:.2}x req/s, p99 \
                         {p99:.2} ms vs {p99_2:.2} ms",
                        kind.title()
                    );
                    comparisons.push(Comparison {
                        kind: kind.title(),
                        concurrency,
                        round,
                        per_second_ratio: ratio,
                        p99_ms_url: p99,
                        p99_ms_compare: p99_2,
                    });
                }
            }
        }
        if let Some(before) = before {
            let after = anchor(settings)?.unwrap_or(before);
            let mean = (before + after) / 2.0;
            if let Some(best) = best_image {
                ratios.push(best / mean);
                println!(
                    "round {round}: search by image, best {best:.1} req/s = {:.2}x model-only \
                     ONNX Runtime at batch 1 ({mean:.1} img/s: {before:.1} before, {after:.1} \
                     after; {:.2} core-ms per image on {} cores)",
                    best / mean,
                    cores() as f64 * 1e3 / mean,
                    cores()
                );
            }
            anchors.push(Anchor {
                before,
                after,
                mean,
            });
        }
    }
    if ratios.len() > 1 {
        let mut sorted = ratios.clone();
        sorted.sort_by(f64::total_cmp);
        println!(
            "median of {} rounds: {:.2}x model-only (range {:.2}-{:.2})",
            sorted.len(),
            percentile(&sorted, 50.0),
            sorted[0],
            sorted[sorted.len() - 1]
        );
    }
    if let Some(p99) = results.get(Kind::Id.title()).and_then(|levels| {
        levels
            .iter()
            .filter(|l| l.concurrency == 1)
            .map(|l| l.p99_ms)
            .min_by(f64::total_cmp)
    }) {
        println!("search by id, concurrency 1: p99 {p99:.2} ms");
    }
    let report = Report {
        results,
        failures,
        anchors,
        image_x_model_only: ratios,
        compare_x_url: comparisons,
    };
    if let Some(path) = &settings.json {
        unisight_core::atomic::atomic_write_bytes(path, &serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if !report.failures.is_empty() {
        bail!(
            "FAILURES (5xx or dropped connections): {:?}",
            report.failures
        );
    }
    println!("no 5xx, no dropped connections");
    Ok(())
}

/// One level against one server: run, printed, and recorded as a failure when any answer was a
/// 5xx or a connection dropped.
fn measure_level(
    plan: &Plan<'_>,
    settings: &Settings,
    target: &'static str,
    concurrency: usize,
    round: usize,
    failures: &mut Vec<(String, usize)>,
) -> Level {
    let server_before = settings.server_pid.map(cpu_seconds_of);
    let mut level = run_level(plan, concurrency, Duration::from_secs_f64(settings.seconds));
    level.target = target;
    level.round = round;
    level.server_cpu_ms_per_request = settings
        .server_pid
        .zip(server_before)
        .map(|(pid, before)| (cpu_seconds_of(pid) - before) * 1e3 / level.requests.max(1) as f64);
    let server = level
        .server_cpu_ms_per_request
        .map(|ms| format!("  server {ms:.2} cpu-ms/request"))
        .unwrap_or_default();
    let which = if settings.compare_url.is_some() {
        format!("[{target}] ")
    } else {
        String::new()
    };
    println!(
        "{which}{:22} concurrency {concurrency:2}: {:8.1} req/s  p50 {:7.2} ms  p99 {:7.2} ms  \
         statuses {:?}  connection errors {}  client {:.3} cpu-ms/request{server}",
        plan.kind.title(),
        level.per_second,
        level.p50_ms,
        level.p99_ms,
        level.statuses,
        level.connection_errors,
        level.client_cpu_ms_per_request,
    );
    if level.connection_errors > 0 || level.statuses.keys().any(|s| s.starts_with('5')) {
        failures.push((format!("{which}{}", plan.kind.title()), concurrency));
    }
    level
}

/// The round's model-only anchor with `--anchor-model`: images per second at batch 1, the
/// faster of one session on every core and the server's sessions side by side.
fn anchor(settings: &Settings) -> Result<Option<f64>> {
    let Some(model) = &settings.anchor_model else {
        return Ok(None);
    };
    let rate = |threads, sessions| {
        crate::commands::model::model_only_rate(
            Some(model),
            1,
            settings.anchor_images.max(1),
            threads,
            sessions,
            crate::embedder::Backend::Ort,
        )
        .map(|(rate, _)| rate)
    };
    let one = rate(0, 1)?;
    let side = rate(settings.anchor_threads, settings.anchor_sessions)?;
    eprintln!(
        "model only (ONNX Runtime, batch 1): one session {one:.1} img/s; {} sessions of {} \
         threads {side:.1} img/s",
        settings.anchor_sessions, settings.anchor_threads
    );
    Ok(Some(one.max(side)))
}

/// `http://HOST:PORT` without a trailing slash; only loopback hosts, so this never loads
/// someone else's server.
pub(crate) fn loopback_base(url: &str) -> Result<String> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("refusing {url}: only http://127.0.0.1 or localhost"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    if host != "127.0.0.1" && host != "localhost" {
        bail!("refusing {url}: this load test only runs against http://127.0.0.1 or localhost");
    }
    Ok(format!("http://{authority}"))
}

fn read_keys(items: &Path) -> Result<Vec<String>> {
    let file = std::fs::File::open(items).with_context(|| format!("{}", items.display()))?;
    let mut keys = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        if keys.len() >= 200_000 {
            break;
        }
        let line = line.with_context(|| format!("{}:{}", items.display(), n + 1))?;
        let value: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: not JSON", items.display(), n + 1))?;
        let Some(id) = value.get("id").and_then(|v| v.as_str()) else {
            bail!("{}:{}: no string \"id\"", items.display(), n + 1);
        };
        keys.push(id.to_owned());
    }
    if keys.is_empty() {
        bail!("{}: no items", items.display());
    }
    Ok(keys)
}

fn read_photos(dir: &Path) -> Result<Vec<Vec<u8>>> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("{}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("jpeg"))
        })
        .collect();
    names.sort();
    names.truncate(64);
    if names.is_empty() {
        bail!("{}: no JPEG photos", dir.display());
    }
    names
        .iter()
        .map(|p| std::fs::read(p).with_context(|| format!("{}", p.display())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_urls_are_accepted() {
        assert_eq!(
            loopback_base("http://127.0.0.1:8080/").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            loopback_base("http://localhost:9").unwrap(),
            "http://localhost:9"
        );
        assert!(loopback_base("http://example.com:8080").is_err());
        assert!(loopback_base("https://127.0.0.1:8080").is_err());
        assert!(loopback_base("http://127.0.0.1.example.com:80").is_err());
    }
}
