//! Reclaiming space: compaction rewrites the live items into one segment; garbage collection
//! removes files that no committed manifest lists (left by interrupted mutations).

use super::manifest::SegmentEntry;
use super::{Index, LiveSegment};
use crate::segment::{self, ItemRow, Segment};
use crate::{Error, Result};

impl Index {
    /// Rewrites all live items into one segment, dropping deleted rows, in one commit.
    ///
    /// # Errors
    /// I/O errors (the index stays at the previous commit).
    pub fn compact(&mut self) -> Result<()> {
        self.writer()?;
        let layout = self.layout();
        let generation = self.manifest.generation + 1;
        let file = format!("seg-{generation:010}.usg");
        let path = self.dir.join(&file);
        let mut live = Vec::new();
        for (s, seg) in self.segments.iter().enumerate() {
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
        next.segments.clear();
        if !rows.is_empty() {
            if let Err(e) = segment::write_segment(&path, layout, rows.into_iter()) {
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
            next.segments.push(SegmentEntry {
                file,
                rows: live.len(),
                tombstones: None,
            });
        }
        let new_segments = if live.is_empty() {
            Vec::new()
        } else {
            vec![LiveSegment::new(Segment::open(&path)?, Vec::new())]
        };
        self.commit(next)?;
        self.segments = new_segments;
        self.collect_garbage()
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
