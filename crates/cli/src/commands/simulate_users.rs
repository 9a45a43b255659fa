//! `unisight simulate-users`: SIMULATED users driving a running service on loopback. They
//! search by uploading labelled photos and react to the results as the one simulated user of
//! unisight does ([`unisight_engagement::UserModel`]): a result is relevant when its catalog
//! label is the query's, and looks alike (similarity 1) when only its coarse label is. After a
//! relevant click half of them ask for more like it and react again; a few send what the
//! service must refuse (1% of clicks twice, 0.5% of searches an action for a made-up request,
//! 1% of events with a client clock ten minutes off). Every request is marked simulated
//! (`X-Unisight-Simulated: 1`). Bounded: exactly `--searches` searches, each with a timeout.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::Value;
use unisight_engagement::{Shown, UserModel};

use crate::args::SimulateUsersArgs;
use crate::commands::load_test::{loopback_base, percent_encode};

/// (fine, coarse) label of each photo, by its path relative to the root.
type Labels = HashMap<String, (String, String)>;

/// What the simulated users did, as counted by them.
#[derive(Debug, Default, Serialize)]
struct Counts {
    searches: usize,
    more_like_this: usize,
    clicks: usize,
    relevant_clicks: usize,
    saves: usize,
    by_arm: BTreeMap<String, ArmCounts>,
    /// Answers to events, by status.
    status: BTreeMap<String, usize>,
    /// Replays and made-up requests the service refused as it should.
    refused_as_expected: usize,
    errors: usize,
    seconds: f64,
    simulated: bool,
}

#[derive(Debug, Default, Serialize)]
struct ArmCounts {
    searches: usize,
    clicks: usize,
    relevant_clicks: usize,
    saves: usize,
}

/// Runs `unisight simulate-users`; prints the counts as JSON and writes them with `--out`.
pub fn run(args: SimulateUsersArgs) -> Result<()> {
    let base = loopback_base(&args.url)?;
    if !(1..=1_000_000).contains(&args.searches) || !(1..=64).contains(&args.concurrency) {
        bail!("--searches must be 1..=1000000 and --concurrency 1..=64");
    }
    let queries = read_labels(&args.queries)?;
    let catalog = read_labels(&args.catalog)?;
    if queries.is_empty() {
        bail!("{}: no labelled photos", args.queries.display());
    }
    let mut queries: Vec<(String, (String, String))> = queries.into_iter().collect();
    queries.sort();
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let users: Vec<String> = (0..args.users.max(1))
        .map(|_| format!("sim-{}-{:016x}", args.seed, rng.gen::<u64>()))
        .collect();
    // every search is planned from the seed up front, so a run does not depend on timing
    let plans: Vec<(usize, usize, u64)> = (0..args.searches)
        .map(|_| {
            (
                rng.gen_range(0..users.len()),
                rng.gen_range(0..queries.len()),
                rng.gen(),
            )
        })
        .collect();
    let user = UserModel {
        max_clicks: 2,
        ..UserModel::default()
    };
    let sim = Simulation {
        base: &base,
        k: args.k,
        root: &args.root,
        catalog: &catalog,
        user,
        agent: ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(30))
            .build(),
        counts: Mutex::new(Counts::default()),
    };
    let started = Instant::now();
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..args.concurrency {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&(u, q, seed)) = plans.get(i) else {
                    break;
                };
                let (path, labels) = &queries[q];
                if let Err(e) = sim.search(&users[u], path, labels, seed) {
                    eprintln!("  error: {e:#}");
                    sim.count(|c| c.errors += 1);
                }
                if (i + 1).is_multiple_of(250) {
                    eprintln!(
                        "  {}/{} searches, {:.0}/s",
                        i + 1,
                        plans.len(),
                        (i + 1) as f64 / started.elapsed().as_secs_f64()
                    );
                }
            });
        }
    });
    let mut counts = sim.counts.into_inner().expect("no thread panicked");
    counts.seconds = (started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
    counts.simulated = true;
    let text = serde_json::to_string_pretty(&counts)?;
    println!("{text}");
    if let Some(out) = &args.out {
        unisight_core::atomic::atomic_write_bytes(out, text.as_bytes())
            .with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}

/// `path, fine[, coarse]` per line (the Grocery Store's label files, or any such CSV).
fn read_labels(path: &Path) -> Result<Labels> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut labels = Labels::new();
    for (n, line) in text.lines().enumerate() {
        let cols: Vec<&str> = line.split(',').map(str::trim).collect();
        if line.trim().is_empty() {
            continue;
        }
        if cols.len() < 2 {
            bail!(
                "{}, line {}: expected path,label[,coarse]",
                path.display(),
                n + 1
            );
        }
        let coarse = cols.get(2).unwrap_or(&cols[1]);
        labels.insert(
            cols[0].to_string(),
            (cols[1].to_string(), coarse.to_string()),
        );
    }
    Ok(labels)
}

struct Simulation<'a> {
    base: &'a str,
    k: usize,
    root: &'a Path,
    catalog: &'a Labels,
    user: UserModel,
    agent: ureq::Agent,
    counts: Mutex<Counts>,
}

impl Simulation<'_> {
    fn count(&self, f: impl FnOnce(&mut Counts)) {
        if let Ok(mut c) = self.counts.lock() {
            f(&mut c);
        }
    }

    /// One search by an uploaded photo, the reactions, and maybe "more like this".
    fn search(&self, user: &str, path: &str, labels: &(String, String), seed: u64) -> Result<()> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let file = unisight_data::sources::resolve_inside(self.root, path)
            .with_context(|| format!("{path} leaves {}", self.root.display()))?;
        let image = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        let answer = self
            .agent
            .post(&format!("{}/v1/search?k={}", self.base, self.k))
            .set("Content-Type", "image/jpeg")
            .set("X-Unisight-User", user)
            .set("X-Unisight-Simulated", "1")
            .send_bytes(&image)
            .context("POST /v1/search")?;
        let data: Value = answer.into_json()?;
        self.count(|c| c.searches += 1);
        let arm = data["arm"].as_str().unwrap_or_default().to_string();
        self.count(|c| c.by_arm.entry(arm.clone()).or_default().searches += 1);
        let clicked = self.react(&data, labels, &mut rng);
        if let Some(key) = clicked.filter(|_| rng.gen_bool(0.5)) {
            let more: Value = self
                .agent
                .get(&format!(
                    "{}/v1/items/{}/similar?k={}",
                    self.base,
                    percent_encode(&key),
                    self.k
                ))
                .set("X-Unisight-User", user)
                .set("X-Unisight-Simulated", "1")
                .call()
                .context("GET /v1/items/{key}/similar")?
                .into_json()?;
            self.count(|c| c.more_like_this += 1);
            self.react(&more, labels, &mut rng);
        }
        if rng.gen_bool(0.005) {
            let made_up = format!("{:032x}", rng.gen::<u128>());
            if self.event(&made_up, "x", "click", None, &mut rng) == 404 {
                self.count(|c| c.refused_as_expected += 1);
            }
        }
        Ok(())
    }

    /// The user's reactions to one answer, sent as events; the key of the first relevant click.
    fn react(
        &self,
        data: &Value,
        labels: &(String, String),
        rng: &mut ChaCha8Rng,
    ) -> Option<String> {
        let request = data["request"].as_str().unwrap_or_default();
        let arm = data["arm"].as_str().unwrap_or_default().to_string();
        let results = data["results"].as_array().cloned().unwrap_or_default();
        let shown: Vec<Shown> = results
            .iter()
            .map(|hit| {
                let label = hit["path"].as_str().and_then(|p| self.catalog.get(p));
                Shown {
                    relevant: label.is_some_and(|l| l.0 == labels.0),
                    similarity: f64::from(u8::from(label.is_some_and(|l| l.1 == labels.1))),
                }
            })
            .collect();
        let mut first_relevant = None;
        for r in self.user.react(&shown, rng) {
            let key = results[r.position]["key"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if self.event(request, &key, "click", None, rng) == 202 {
                self.count(|c| {
                    c.clicks += 1;
                    c.relevant_clicks += usize::from(r.relevant);
                    let a = c.by_arm.entry(arm.clone()).or_default();
                    a.clicks += 1;
                    a.relevant_clicks += usize::from(r.relevant);
                });
                if r.relevant && first_relevant.is_none() {
                    first_relevant = Some(key.clone());
                }
            }
            if rng.gen_bool(0.01) && self.event(request, &key, "click", None, rng) == 200 {
                self.count(|c| c.refused_as_expected += 1);
            }
            if r.save && self.event(request, &key, "save", None, rng) == 202 {
                self.count(|c| {
                    c.saves += 1;
                    c.by_arm.entry(arm.clone()).or_default().saves += 1;
                });
            }
            self.event(request, &key, "dwell", Some(r.dwell_ms), rng);
        }
        first_relevant
    }

    /// Sends one event; its status (0 when the connection failed).
    fn event(
        &self,
        request: &str,
        key: &str,
        action: &str,
        dwell_ms: Option<u64>,
        rng: &mut ChaCha8Rng,
    ) -> u16 {
        let mut now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        if rng.gen_bool(0.01) {
            now += 600_000;
        }
        let mut body = serde_json::json!({
            "request": request, "key": key, "action": action, "client_time_ms": now,
        });
        if let Some(d) = dwell_ms {
            body["dwell_ms"] = d.into();
        }
        let status = match self
            .agent
            .post(&format!("{}/v1/events", self.base))
            .send_json(body)
        {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r.status(),
            Err(ureq::Error::Transport(_)) => 0,
        };
        self.count(|c| *c.status.entry(status.to_string()).or_insert(0) += 1);
        status
    }
}
