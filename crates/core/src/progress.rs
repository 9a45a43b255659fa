//! Progress of long work, shown in every mode: a bar when stderr is a terminal, otherwise a
//! plain line every few seconds (and one at the end), so a job run by a scheduler, a pipe or
//! CI still says how far it is and how fast it goes.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often a line is printed when stderr is not a terminal.
pub const LINE_EVERY: Duration = Duration::from_secs(5);

/// One piece of long work with a known size.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
    lines: Option<Mutex<Lines>>,
}

#[derive(Debug)]
struct Lines {
    what: String,
    unit: String,
    total: u64,
    done: u64,
    start_done: u64,
    message: String,
    started: Instant,
    last: Instant,
}

impl Lines {
    fn line(&self) -> String {
        if self.done == self.start_done && self.done == self.total {
            return format!(
                "{}: {}/{} {} (every one done by an earlier run)",
                self.what, self.done, self.total, self.unit
            );
        }
        let seconds = self.started.elapsed().as_secs_f64().max(1e-9);
        let rate = (self.done - self.start_done) as f64 / seconds;
        let eta = if rate > 0.0 && self.total > self.done {
            format!(", ETA {:.0} s", (self.total - self.done) as f64 / rate)
        } else {
            String::new()
        };
        let message = if self.message.is_empty() {
            String::new()
        } else {
            format!("  {}", self.message)
        };
        format!(
            "{}: {}/{} {} ({rate:.1} {}/s{eta}){message}",
            self.what, self.done, self.total, self.unit, self.unit
        )
    }
}

impl Progress {
    /// Progress of `total` `unit`s of `what` (e.g. "trunk cache", 9000, "views"); `show: false`
    /// prints nothing at all (tests, `--quiet`).
    pub fn new(what: &str, total: u64, unit: &str, show: bool) -> Progress {
        Progress::with_terminal(what, total, unit, show, std::io::stderr().is_terminal())
    }

    fn with_terminal(what: &str, total: u64, unit: &str, show: bool, terminal: bool) -> Progress {
        if show && terminal {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(&format!(
                    "{what} {{bar:30}} {{pos}}/{{len}} {unit}  {{per_sec}}  ETA {{eta}}  {{msg}}"
                ))
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            return Progress { bar, lines: None };
        }
        let now = Instant::now();
        Progress {
            bar: ProgressBar::hidden(),
            lines: show.then(|| {
                Mutex::new(Lines {
                    what: what.to_string(),
                    unit: unit.to_string(),
                    total,
                    done: 0,
                    start_done: 0,
                    message: String::new(),
                    started: now,
                    last: now,
                })
            }),
        }
    }

    /// Work already done before this process started (a resumed job): counted in the position,
    /// not in the rate.
    pub fn resume_at(&self, done: u64) {
        self.bar.set_position(done);
        self.bar.reset_eta();
        if let Some(lines) = &self.lines {
            let mut l = lines.lock().unwrap_or_else(|e| e.into_inner());
            l.done = done;
            l.start_done = done;
            l.started = Instant::now();
        }
    }

    /// `n` more units done.
    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
        self.update(|l| l.done += n);
    }

    /// A short status shown beside the count (losses, epoch).
    pub fn set_message(&self, message: String) {
        if let Some(lines) = &self.lines {
            lines.lock().unwrap_or_else(|e| e.into_inner()).message = message;
        } else {
            self.bar.set_message(message);
        }
    }

    /// Prints `line` without tearing the bar.
    pub fn println(&self, line: &str) {
        self.bar.suspend(|| eprintln!("{line}"));
    }

    /// Ends the bar; in line mode, prints the final count.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
        if let Some(lines) = &self.lines {
            let l = lines.lock().unwrap_or_else(|e| e.into_inner());
            eprintln!("{}", l.line());
        }
    }

    fn update(&self, change: impl FnOnce(&mut Lines)) {
        if let Some(lines) = &self.lines {
            let mut l = lines.lock().unwrap_or_else(|e| e.into_inner());
            change(&mut l);
            if l.last.elapsed() >= LINE_EVERY {
                l.last = Instant::now();
                eprintln!("{}", l.line());
            }
        }
    }

    #[cfg(test)]
    fn current_line(&self) -> Option<String> {
        self.lines
            .as_ref()
            .map(|l| l.lock().unwrap_or_else(|e| e.into_inner()).line())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_terminal_it_counts_in_lines_with_rate_and_message() {
        let p = Progress::with_terminal("trunk cache", 100, "views", true, false);
        p.resume_at(40);
        p.inc(10);
        p.set_message("epoch 1.5".into());
        let line = p.current_line().unwrap();
        assert!(line.starts_with("trunk cache: 50/100 views ("), "{line}");
        assert!(
            line.contains("views/s") && line.ends_with("epoch 1.5"),
            "{line}"
        );
    }

    #[test]
    fn work_done_by_an_earlier_run_says_so_instead_of_a_rate() {
        let p = Progress::with_terminal("trunk cache", 30, "views", true, false);
        p.resume_at(30);
        assert_eq!(
            p.current_line().unwrap(),
            "trunk cache: 30/30 views (every one done by an earlier run)"
        );
    }

    #[test]
    fn hidden_progress_keeps_no_line_state() {
        let p = Progress::with_terminal("x", 10, "items", false, false);
        p.inc(3);
        assert!(p.current_line().is_none());
    }
}
