//! The load itself: one thread per client, each with one keep-alive connection, sending its
//! kind of request until the level's deadline; what they saw merged into one level.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Read;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

use super::cpu::process_cpu_seconds;
use super::{Kind, Level};

/// What the clients of a level send, and where.
pub(super) struct Plan<'a> {
    pub(super) base: &'a str,
    pub(super) kind: Kind,
    pub(super) k: usize,
    pub(super) keys: &'a [String],
    pub(super) photos: &'a [Vec<u8>],
}

/// What one client saw.
#[derive(Default)]
struct Seen {
    latencies: Vec<f64>,
    statuses: BTreeMap<u16, usize>,
    errors: usize,
}

pub(super) fn run_level(plan: &Plan<'_>, concurrency: usize, length: Duration) -> Level {
    let cpu_before = process_cpu_seconds();
    let start = Instant::now();
    let deadline = start + length;
    let seen: Vec<Seen> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..concurrency)
            .map(|seed| scope.spawn(move || client(plan, seed as u64, deadline)))
            .collect();
        clients
            .into_iter()
            .map(|c| c.join().unwrap_or_default())
            .collect()
    });
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = process_cpu_seconds() - cpu_before;
    let mut latencies: Vec<f64> = seen
        .iter()
        .flat_map(|s| s.latencies.iter().copied())
        .collect();
    latencies.sort_by(f64::total_cmp);
    let mut statuses = BTreeMap::new();
    for s in &seen {
        for (status, n) in &s.statuses {
            *statuses.entry(status.to_string()).or_insert(0) += n;
        }
    }
    Level {
        target: "url",
        concurrency,
        requests: latencies.len(),
        per_second: latencies.len() as f64 / elapsed,
        p50_ms: percentile(&latencies, 50.0) * 1e3,
        p99_ms: percentile(&latencies, 99.0) * 1e3,
        statuses,
        connection_errors: seen.iter().map(|s| s.errors).sum(),
        client_cpu_ms_per_request: cpu * 1e3 / latencies.len().max(1) as f64,
        server_cpu_ms_per_request: None,
        round: 1,
    }
}

/// The `p`th percentile of sorted values (nearest rank; NaN for none).
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let at = (p / 100.0 * (sorted.len() - 1) as f64).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

fn client(plan: &Plan<'_>, seed: u64, deadline: Instant) -> Seen {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .max_idle_connections_per_host(1)
        .build();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut seen = Seen::default();
    let mut body = Vec::new();
    while Instant::now() < deadline {
        let started = Instant::now();
        let answer = match plan.kind {
            Kind::Id => {
                let key = &plan.keys[rng.gen_range(0..plan.keys.len())];
                agent
                    .get(&format!(
                        "{}/v1/items/{}/similar?k={}",
                        plan.base,
                        percent_encode(key),
                        plan.k
                    ))
                    .call()
            }
            Kind::Image | Kind::Mixed => {
                let photo = &plan.photos[rng.gen_range(0..plan.photos.len())];
                let (bytes, content_type) = if plan.kind == Kind::Mixed && rng.gen_bool(0.1) {
                    malformed(&mut rng, photo)
                } else {
                    (Cow::Borrowed(photo.as_slice()), "image/jpeg")
                };
                agent
                    .post(&format!("{}/v1/search?k={}", plan.base, plan.k))
                    .set("Content-Type", content_type)
                    .send_bytes(&bytes)
            }
        };
        let response = match answer {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(ureq::Error::Transport(_)) => {
                seen.errors += 1;
                continue;
            }
        };
        let status = response.status();
        body.clear();
        // read to the end so the connection is reused
        if response.into_reader().read_to_end(&mut body).is_err() {
            seen.errors += 1;
            continue;
        }
        seen.latencies.push(started.elapsed().as_secs_f64());
        *seen.statuses.entry(status).or_insert(0) += 1;
    }
    seen
}

/// Random bytes, a JPEG cut to a third, or text.
fn malformed<'a>(rng: &mut StdRng, photo: &'a [u8]) -> (Cow<'a, [u8]>, &'static str) {
    match rng.gen_range(0..3) {
        0 => {
            let mut bytes = vec![0u8; 2048];
            rng.fill_bytes(&mut bytes);
            (Cow::Owned(bytes), "image/jpeg")
        }
        1 => (Cow::Borrowed(&photo[..photo.len() / 3]), "image/jpeg"),
        _ => (Cow::Borrowed(b"this is not an image"), "text/plain"),
    }
}

/// Percent-encodes everything but unreserved characters, for a key in a URL path.
pub(crate) fn percent_encode(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 51.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert!(percentile(&[], 50.0).is_nan());
    }

    #[test]
    fn keys_are_percent_encoded_for_paths() {
        assert_eq!(percent_encode("a/b c"), "a%2Fb%20c");
        assert_eq!(percent_encode("x-1_y.z~"), "x-1_y.z~");
    }
}
