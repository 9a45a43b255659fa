//! Reclaiming space and bounding the segment count: compaction rewrites the live items into one
//! segment; every add first merges the newest segments by a size ratio; garbage collection
//! removes files that no committed manifest lists (left by merges and interrupted mutations).

use super::manifest::SegmentEntry;
use super::{Index, LiveSegment};
use crate::segment::{self, ItemRow, Segment};
use crate::{Error, Result};

/// The segment below the newest must hold at least this many times the newest one's live rows,
/// or the two are merged: segment sizes then fall geometrically from the oldest to the newest,
/// so an index of N items has at most about log2(N) + 2 segments however many single adds and
/// removals it sees, and each item is rewritten about log2(N) times in its life.
const MERGE_RATIO: usize = 2;

impl Index {
    /// Rewrites all live items into one segment, dropping deleted rows, in one commit.
    ///
    /// # Errors
    /// I/O errors (the index stays at the previous commit).
    pub fn compact(&mut self) -> Result<()> {
        self.writer()?;
        self.merge(0..self.segments.len())?;
        self.collect_garbage()
    }

    /// Merges the newest segments while the one below the newest is not [`MERGE_RATIO`] times
    /// larger (by live rows): what keeps the segment count bounded under any number of
    /// mutations. Each merge is one commit, like any other.
    ///
    /// # Errors
    /// I/O errors (the index stays at the last commit that succeeded).
    pub(super) fn keep_segments_bounded(&mut self) -> Result<()> {
        let mut merged = false;
        while let [.., below, top] = self.segments.as_slice() {
            if below.live_rows() >= MERGE_RATIO * top.live_rows().max(1) {
                break;
            }
            let n = self.segments.len();
            self.merge(n - 2..n)?;
            merged = true;
        }
        if merged {
            self.collect_garbage()?;
        }
        Ok(())
    }

    /// Rewrites the live items of the adjacent segments `range` into one segment in their place
    /// (none when all are deleted), ids unchanged, in one commit.
    fn merge(&mut self, range: std::ops::Range<usize>) -> Result<()> {
        let layout = self.layout();
        let generation = self.manifest.generation + 1;
        let file = format!("seg-{generation:010}.usg");
        let path = self.dir.join(&file);
        let mut live = Vec::new();
        for s in range.clone() {
            let seg = &self.segments[s];
            for row in 0..seg.segment.rows() {
                if !seg.is_deleted(row) {
                    live.push((s, row));
                }
            }
        }
        let floats: Vec<Option<Vec<f32>>> = live
            .iter()
            .map(|&(s, r)| self.segments[s].segment.float_row(r))
            .collect();
        let keys = live
            .iter()
            .map(|&(s, r)| self.segments[s].segment.key(r))
            .collect::<Result<Vec<_>>>()?;
        let mut rows = Vec::with_capacity(live.len());
        for (i, &(s, r)) in live.iter().enumerate() {
            let seg = &self.segments[s].segment;
            rows.push(ItemRow {
                id: seg.ids()[r],
                key: &keys[i],
                path: seg.item_path(r)?,
                code: seg.code_bytes_of(r),
                floats: floats[i].as_deref(),
            });
        }
        let mut next = self.manifest.clone();
        next.generation = generation;
        let mut entries = Vec::new();
        if !rows.is_empty() {
            if let Err(e) = segment::write_segment(&path, layout, rows.into_iter()) {
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
            entries.push(SegmentEntry {
                file,
                rows: live.len(),
                tombstones: None,
            });
        }
        next.segments.splice(range.clone(), entries);
        let merged = if live.is_empty() {
            Vec::new()
        } else {
            vec![LiveSegment::new(Segment::open(&path)?, Vec::new())]
        };
        self.commit(next)?;
        self.segments.splice(range, merged);
        Ok(())
    }

    /// Removes files of ours that the manifest does not list.
    pub(super) fn collect_garbage(&self) -> Result<()> {
        let listed: std::collections::HashSet<&str> = self.manifest.files().collect();
        let entries = std::fs::read_dir(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&self.dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let ours = (name.starts_with("seg-")
                && (name.ends_with(".usg") || name.ends_with(".del")))
                || (name.starts_with(".MANIFEST.json.tmp-"));
            if ours && !listed.contains(name) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(())
    }
}
