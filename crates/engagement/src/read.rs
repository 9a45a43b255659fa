//! Reading a log: its files in order (rotated ones oldest first, then the current one), every
//! line an event; a torn last line (a writer killed mid-line) is skipped and counted.

use std::path::{Path, PathBuf};

use crate::record::EngagementEvent;
use crate::{Error, Result};

/// Reads a log file. A last line without its newline that does not parse (a writer killed
/// mid-line) is skipped; a malformed line anywhere else is an error.
///
/// # Errors
/// [`Error::Io`]; [`Error::Malformed`] naming the line of a malformed event.
pub fn read_log(path: &Path) -> Result<Vec<EngagementEvent>> {
    Ok(read_logs(std::slice::from_ref(&path.to_path_buf()))?.0)
}

/// Reads log files in order, compact impression lines expanded into one event per shown
/// result; also returns how many torn last lines were skipped.
///
/// # Errors
/// As [`read_log`].
pub fn read_logs(paths: &[PathBuf]) -> Result<(Vec<EngagementEvent>, usize)> {
    let mut events = Vec::new();
    let mut torn = 0;
    for path in paths {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let whole = text.is_empty() || text.ends_with('\n');
        let lines: Vec<&str> = text.lines().collect();
        for (n, l) in lines.iter().enumerate() {
            if l.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<EngagementEvent>(l) {
                Ok(e) => events.extend(e.expand()),
                Err(_) if !whole && n + 1 == lines.len() => torn += 1,
                Err(e) => {
                    return Err(Error::Malformed {
                        path: path.clone(),
                        line: n + 1,
                        what: e.to_string(),
                    })
                }
            }
        }
    }
    Ok((events, torn))
}

/// The files of log `stem` in `dir`: rotated `<stem>-NNNNNN.jsonl` oldest first, then the
/// current `<stem>.jsonl` (each only if present).
///
/// # Errors
/// [`Error::Io`] when the folder cannot be listed.
pub fn log_files(dir: &Path, stem: &str) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Io {
        path: dir.into(),
        source,
    })?;
    let mut rotated: Vec<(u64, PathBuf)> = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(n) = name
            .strip_prefix(stem)
            .and_then(|r| r.strip_prefix('-'))
            .and_then(|r| r.strip_suffix(".jsonl"))
            .and_then(|r| r.parse::<u64>().ok())
        {
            rotated.push((n, entry.path()));
        }
    }
    rotated.sort();
    let mut files: Vec<PathBuf> = rotated.into_iter().map(|(_, p)| p).collect();
    let current = dir.join(format!("{stem}.jsonl"));
    if current.exists() {
        files.push(current);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotated_files_are_read_oldest_first_and_a_torn_tail_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let line =
            |q: &str| format!("{{\"query\": \"{q}\", \"result\": \"r\", \"action\": \"click\"}}\n");
        std::fs::write(dir.path().join("log-000002.jsonl"), line("b")).unwrap();
        std::fs::write(dir.path().join("log-000001.jsonl"), line("a")).unwrap();
        std::fs::write(
            dir.path().join("log.jsonl"),
            format!("{}{{\"query\": \"d", line("c")),
        )
        .unwrap();
        std::fs::write(dir.path().join("other.jsonl"), line("x")).unwrap();
        let files = log_files(dir.path(), "log").unwrap();
        assert_eq!(files.len(), 3);
        let (events, torn) = read_logs(&files).unwrap();
        let q: Vec<_> = events.iter().map(|e| e.query.as_str()).collect();
        assert_eq!((q, torn), (vec!["a", "b", "c"], 1));
    }

    #[test]
    fn a_compact_impression_line_reads_as_one_event_per_result() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log.impressions.jsonl");
        std::fs::write(
            &log,
            "{\"query\": \"q.jpg\", \"result\": \"\", \"action\": \"impression\", \"request\": \"r1\", \
             \"shown\": [{\"key\": \"a\", \"path\": \"a.jpg\", \"score\": 0.9}, \
             {\"key\": \"b\", \"path\": \"b.jpg\", \"score\": 0.5}]}\n",
        )
        .unwrap();
        let events = read_log(&log).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].result, "b.jpg");
        assert_eq!(events[1].result_key.as_deref(), Some("b"));
        assert_eq!((events[1].position, events[1].score), (Some(1), Some(0.5)));
        assert!(events
            .iter()
            .all(|e| e.request.as_deref() == Some("r1") && e.shown.is_none()));
        // the impressions' stream is not the actions'
        assert!(log_files(dir.path(), "log").unwrap().is_empty());
        assert_eq!(
            log_files(dir.path(), &crate::record::impressions_stem("log")).unwrap(),
            [log]
        );
    }

    #[test]
    fn malformed_lines_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log.jsonl");
        std::fs::write(&log, "{\"query\": \"a\", \"result\": \"b\", \"action\": \"click\"}\n{\"query\": \"a\", \"action\": \"like\"}\n").unwrap();
        let err = read_log(&log).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
    }
}
