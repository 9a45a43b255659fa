//! Writing the log: append-only JSON Lines in the format [`crate::read`] reads, as the service
//! writes it.
//!
//! Crash safety: each batch of events is one `write` of whole lines to a file opened for
//! appending, so a killed process leaves at most one torn last line; opening the log cuts such
//! a tail off (and readers skip it), so the file never holds a half event in the middle. Files
//! are synced to disk at most every `sync_interval` and at rotation.
//!
//! Bounded growth: the current file `<stem>.jsonl` is renamed to `<stem>-NNNNNN.jsonl` once it
//! holds `rotate_bytes`, and only the newest `keep_files` rotated files are kept.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::read::log_files;
use crate::record::EngagementEvent;

use crate::{Error, Result};

/// Rotation, retention and syncing of a log.
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// Folder of the files.
    pub dir: PathBuf,
    /// File stem.
    pub stem: String,
    /// Rotate once the current file holds this many bytes.
    pub rotate_bytes: u64,
    /// Rotated files kept.
    pub keep_files: usize,
    /// Longest time written lines stay unsynced.
    pub sync_interval: Duration,
}

/// What opening found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Opened {
    /// Bytes of a torn last line cut off (a process killed while writing).
    pub repaired_bytes: u64,
}

struct Current {
    file: File,
    bytes: u64,
    last_sync: Instant,
    dirty: bool,
}

/// An open log; `append` may be called from many threads.
pub struct EventLog {
    options: LogOptions,
    current: Mutex<Current>,
}

fn io(path: &Path, e: std::io::Error) -> Error {
    Error::io(path, e)
}

impl EventLog {
    /// Opens (creating the folder and file as needed) and repairs a torn tail.
    ///
    /// # Errors
    /// [`Error::Io`] naming the file.
    pub fn open(options: LogOptions) -> Result<(Self, Opened)> {
        std::fs::create_dir_all(&options.dir).map_err(|e| io(&options.dir, e))?;
        let path = current_path(&options);
        let (file, bytes, repaired_bytes) = open_repaired(&path)?;
        let log = EventLog {
            options,
            current: Mutex::new(Current {
                file,
                bytes,
                last_sync: Instant::now(),
                dirty: false,
            }),
        };
        Ok((log, Opened { repaired_bytes }))
    }

    /// The path of the file written now.
    pub fn current_path(&self) -> PathBuf {
        current_path(&self.options)
    }

    /// Appends `events` as one write of whole lines; rotates and prunes when the file is full.
    ///
    /// # Errors
    /// [`Error::Io`] naming the file; nothing half-written stays behind a failed write
    /// (the file is cut back to its last whole line).
    pub fn append(&self, events: &[EngagementEvent]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut buffer = Vec::with_capacity(events.len() * 200);
        for e in events {
            serde_json::to_writer(&mut buffer, e).map_err(|e| Error::Writer(e.to_string()))?;
            buffer.push(b'\n');
        }
        let path = self.current_path();
        let mut current = self
            .current
            .lock()
            .map_err(|_| Error::Writer("log lock poisoned".into()))?;
        if let Err(e) = current.file.write_all(&buffer) {
            // cut back to the last whole line so the next write starts clean
            let keep = current.bytes;
            let _ = current.file.set_len(keep);
            return Err(io(&path, e));
        }
        current.bytes += buffer.len() as u64;
        current.dirty = true;
        if current.bytes >= self.options.rotate_bytes {
            self.rotate(&mut current)?;
        } else if current.last_sync.elapsed() >= self.options.sync_interval {
            current.file.sync_data().map_err(|e| io(&path, e))?;
            current.last_sync = Instant::now();
            current.dirty = false;
        }
        Ok(())
    }

    /// Syncs what was written.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn sync(&self) -> Result<()> {
        let path = self.current_path();
        let mut current = self
            .current
            .lock()
            .map_err(|_| Error::Writer("log lock poisoned".into()))?;
        if current.dirty {
            current.file.sync_data().map_err(|e| io(&path, e))?;
            current.dirty = false;
            current.last_sync = Instant::now();
        }
        Ok(())
    }

    fn rotate(&self, current: &mut Current) -> Result<()> {
        let path = self.current_path();
        current.file.sync_all().map_err(|e| io(&path, e))?;
        let files = log_files(&self.options.dir, &self.options.stem)?;
        let next = files
            .iter()
            .filter_map(|f| rotated_number(f, &self.options.stem))
            .max()
            .map_or(1, |n| n + 1);
        let rotated = self
            .options
            .dir
            .join(format!("{}-{next:06}.jsonl", self.options.stem));
        std::fs::rename(&path, &rotated).map_err(|e| io(&rotated, e))?;
        let (file, bytes, _) = open_repaired(&path)?;
        sync_dir(&self.options.dir)?;
        *current = Current {
            file,
            bytes,
            last_sync: Instant::now(),
            dirty: false,
        };
        // retention: the newest keep_files rotated files stay
        let mut rotated: Vec<(u64, PathBuf)> = log_files(&self.options.dir, &self.options.stem)?
            .into_iter()
            .filter_map(|f| rotated_number(&f, &self.options.stem).map(|n| (n, f)))
            .collect();
        rotated.sort();
        let excess = rotated.len().saturating_sub(self.options.keep_files);
        for (_, old) in rotated.into_iter().take(excess) {
            std::fs::remove_file(&old).map_err(|e| io(&old, e))?;
        }
        Ok(())
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        let _ = self.sync();
    }
}

fn current_path(options: &LogOptions) -> PathBuf {
    options.dir.join(format!("{}.jsonl", options.stem))
}

fn rotated_number(path: &Path, stem: &str) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    name.strip_prefix(stem)?
        .strip_prefix('-')?
        .strip_suffix(".jsonl")?
        .parse()
        .ok()
}

/// Opens `path` for appending after cutting off anything behind its last newline.
fn open_repaired(path: &Path) -> Result<(File, u64, u64)> {
    let mut file = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
        .map_err(|e| io(path, e))?;
    let len = file.metadata().map_err(|e| io(path, e))?.len();
    let keep = last_line_end(&mut file, len).map_err(|e| io(path, e))?;
    if keep < len {
        file.set_len(keep).map_err(|e| io(path, e))?;
        file.sync_all().map_err(|e| io(path, e))?;
    }
    Ok((file, keep, len - keep))
}

/// The length of the file up to and including its last `\n` (0 when it has none).
fn last_line_end(file: &mut File, len: u64) -> std::io::Result<u64> {
    let mut end = len;
    let mut chunk = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(chunk.len() as u64);
        let n = (end - start) as usize;
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut chunk[..n])?;
        if let Some(i) = chunk[..n].iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::read_logs;
    use crate::record::Action;

    fn event(i: u32) -> EngagementEvent {
        EngagementEvent {
            query: format!("q{i}.jpg"),
            result: format!("r{i}.jpg"),
            action: Action::Impression,
            count: 1,
            position: Some(i % 10),
            request: Some(format!("req{i}")),
            arm: Some("control".into()),
            ..EngagementEvent::default()
        }
    }

    fn options(dir: &Path, rotate_bytes: u64, keep_files: usize) -> LogOptions {
        LogOptions {
            dir: dir.into(),
            stem: "engagement".into(),
            rotate_bytes,
            keep_files,
            sync_interval: Duration::from_millis(0),
        }
    }

    #[test]
    fn appends_rotates_and_keeps_only_the_newest_files() {
        let dir = tempfile::tempdir().unwrap();
        let (log, opened) = EventLog::open(options(dir.path(), 2000, 2)).unwrap();
        assert_eq!(opened.repaired_bytes, 0);
        for i in 0..200 {
            log.append(&[event(i)]).unwrap();
        }
        drop(log);
        let files = log_files(dir.path(), "engagement").unwrap();
        // two rotated files and the current one
        assert_eq!(files.len(), 3, "{files:?}");
        assert!(files.last().unwrap().ends_with("engagement.jsonl"));
        let total: u64 = files
            .iter()
            .map(|f| std::fs::metadata(f).unwrap().len())
            .sum();
        assert!(total < 3 * 2300, "bounded: {total}");
        let (events, torn) = read_logs(&files).unwrap();
        assert_eq!(torn, 0);
        // the newest events are all there, in order
        assert_eq!(events.last().unwrap().query, "q199.jpg");
        let first: u32 = events[0].query[1..events[0].query.len() - 4]
            .parse()
            .unwrap();
        for (n, e) in events.iter().enumerate() {
            assert_eq!(e.query, format!("q{}.jpg", first + n as u32));
        }
    }

    #[test]
    fn a_torn_tail_is_cut_off_at_open_and_skipped_by_readers() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = EventLog::open(options(dir.path(), 1 << 20, 5)).unwrap();
        log.append(&[event(1), event(2)]).unwrap();
        let path = log.current_path();
        drop(log);
        // a process killed in the middle of a write
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"query\": \"q3.jpg\", \"res").unwrap();
        drop(f);
        let (events, torn) = read_logs(std::slice::from_ref(&path)).unwrap();
        assert_eq!((events.len(), torn), (2, 1));
        let (log, opened) = EventLog::open(options(dir.path(), 1 << 20, 5)).unwrap();
        assert_eq!(opened.repaired_bytes, 24);
        log.append(&[event(4)]).unwrap();
        drop(log);
        let (events, torn) = read_logs(&[path]).unwrap();
        assert_eq!(torn, 0);
        let queries: Vec<_> = events.iter().map(|e| e.query.as_str()).collect();
        assert_eq!(queries, ["q1.jpg", "q2.jpg", "q4.jpg"]);
    }
}
