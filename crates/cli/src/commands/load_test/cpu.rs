//! CPU time, of this process and of a server beside it, from /proc: what a request costs the
//! client and the server, not only how long it took.

/// Cores this process may use.
pub(super) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// User plus system CPU seconds of this process so far (0 where /proc is unavailable).
pub(super) fn process_cpu_seconds() -> f64 {
    cpu_seconds_at("/proc/self/stat")
}

/// User plus system CPU seconds of process `pid` so far (0 where /proc is unavailable).
pub(super) fn cpu_seconds_of(pid: u32) -> f64 {
    cpu_seconds_at(&format!("/proc/{pid}/stat"))
}

fn cpu_seconds_at(stat: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(stat) else {
        return 0.0;
    };
    // fields after the command name, which is in parentheses and may hold spaces
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name
    // in USER_HZ, which Linux fixes at 100 for /proc
    (ticks(11) + ticks(12)) / 100.0
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn busy_work_shows_in_this_process_cpu_time() {
        // spin until the counter moves (ticks are 10 ms); a broken reader never gets there
        let before = process_cpu_seconds();
        let start = Instant::now();
        let mut x = 0u64;
        while process_cpu_seconds() - before < 0.05 {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "CPU time never grew"
            );
        }
    }
}
