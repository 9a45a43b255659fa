//! Prometheus text exposition of request counts, latency histograms, embed and search time, and
//! the index size, kept in atomics (no lock on the request path).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use axum::response::{IntoResponse, Response};

/// Upper bounds (seconds) of the latency buckets.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    total: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, seconds: f64) {
        for (i, &b) in BUCKETS.iter().enumerate() {
            if seconds <= b {
                self.counts[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.total.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {}",
                self.counts[i].load(Ordering::Relaxed)
            );
        }
        let total = self.total.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {total}");
        let _ = writeln!(
            out,
            "{name}_sum{{{labels}}} {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count{{{labels}}} {total}");
    }
}

/// Counters of the service.
#[derive(Default)]
pub struct Metrics {
    /// (route, status) -> count.
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    /// route -> latency.
    latency: Mutex<BTreeMap<&'static str, std::sync::Arc<Histogram>>>,
    embed: Histogram,
    search: Histogram,
    /// arm -> its searches' latency.
    arms: Mutex<BTreeMap<String, std::sync::Arc<Histogram>>>,
}

impl Metrics {
    /// Records one embedding (queue wait included).
    pub fn observe_embed(&self, seconds: f64) {
        self.embed.observe(seconds);
    }

    /// Records one index search.
    pub fn observe_search(&self, seconds: f64) {
        self.search.observe(seconds);
    }

    /// Records one search of an arm.
    pub fn observe_arm_search(&self, arm: &str, seconds: f64) {
        let histogram = self
            .arms
            .lock()
            .map(|mut m| m.entry(arm.to_string()).or_default().clone())
            .ok();
        if let Some(h) = histogram {
            h.observe(seconds);
        }
    }

    /// Searches of an arm and their mean time in ms.
    pub fn arm_searches(&self, arm: &str) -> (u64, f64) {
        self.arms
            .lock()
            .ok()
            .and_then(|m| m.get(arm).cloned())
            .map_or((0, 0.0), |h| {
                let n = h.total.load(Ordering::Relaxed);
                let sum = h.sum_micros.load(Ordering::Relaxed) as f64 / 1e3;
                (n, if n > 0 { sum / n as f64 } else { 0.0 })
            })
    }

    /// Counts a finished request and turns its result into the response.
    pub fn finish<T: IntoResponse, E: IntoResponse>(
        &self,
        route: &'static str,
        started: Instant,
        result: Result<T, E>,
    ) -> Response {
        let response = match result {
            Ok(r) => r.into_response(),
            Err(e) => e.into_response(),
        };
        let status = response.status().as_u16();
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((route, status)).or_default() += 1;
        }
        let histogram = self
            .latency
            .lock()
            .map(|mut m| m.entry(route).or_default().clone())
            .ok();
        if let Some(h) = histogram {
            h.observe(started.elapsed().as_secs_f64());
        }
        response
    }

    /// The exposition text.
    pub fn render(&self, items: usize, queued: usize) -> String {
        let mut out = String::new();
        out.push_str("# TYPE unisight_requests_total counter\n");
        if let Ok(m) = self.requests.lock() {
            for ((route, status), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "unisight_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        out.push_str("# TYPE unisight_request_seconds histogram\n");
        if let Ok(m) = self.latency.lock() {
            for (route, h) in m.iter() {
                h.render(
                    &mut out,
                    "unisight_request_seconds",
                    &format!("route=\"{route}\""),
                );
            }
        }
        out.push_str("# TYPE unisight_arm_search_seconds histogram\n");
        if let Ok(m) = self.arms.lock() {
            for (arm, h) in m.iter() {
                h.render(
                    &mut out,
                    "unisight_arm_search_seconds",
                    &format!("arm=\"{arm}\""),
                );
            }
        }
        out.push_str("# TYPE unisight_embed_seconds histogram\n");
        self.embed.render(&mut out, "unisight_embed_seconds", "");
        out.push_str("# TYPE unisight_search_seconds histogram\n");
        self.search.render(&mut out, "unisight_search_seconds", "");
        let _ = writeln!(
            out,
            "# TYPE unisight_index_items gauge\nunisight_index_items {items}"
        );
        let _ = writeln!(
            out,
            "# TYPE unisight_embed_queue gauge\nunisight_embed_queue {queued}"
        );
        out
    }
}
