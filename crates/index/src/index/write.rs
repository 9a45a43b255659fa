//! Adding and removing items: each call writes new files (a segment, or tombstones) and
//! commits them with one manifest swap, then updates what the handle keeps in memory (the
//! deleted rows, the key map, the inverted file).

use std::collections::{HashMap, HashSet};

use super::manifest::SegmentEntry;
use super::{Index, LiveSegment, NewItem};
use crate::segment::{self, ItemRow, Segment};
use crate::{tombstones, Error, Result};

impl Index {
    /// Adds items in one commit; returns their new ids. Keys must be new and unique.
    ///
    /// # Errors
    /// [`Error::DuplicateKey`] for a key already there (or twice in `items`),
    /// [`Error::InvalidInput`] for codes/floats of the wrong size (nothing is written then); I/O
    /// errors (the index stays at the previous commit).
    pub fn add(&mut self, items: &[NewItem<'_>]) -> Result<Vec<u64>> {
        self.writer()?;
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let layout = self.layout();
        if layout.keys {
            let keys = self.key_map_mut()?;
            let mut seen = HashSet::new();
            for item in items {
                if keys.contains_key(item.key) || !seen.insert(item.key) {
                    return Err(Error::DuplicateKey(item.key.to_string()));
                }
            }
        } else if let Some(item) = items
            .iter()
            .find(|i| !i.key.is_empty() || !i.path.is_empty())
        {
            return Err(Error::InvalidInput(format!(
                "item {:?}: this index keeps no keys or paths (an item's key is its id); add \
                 items without them",
                item.key
            )));
        }
        for item in items {
            if item.code.len() != layout.code_bytes() {
                return Err(Error::InvalidInput(format!(
                    "item {:?}: code has {} bytes, index expects {}",
                    item.key,
                    item.code.len(),
                    layout.code_bytes()
                )));
            }
        }
        // merged before, not after, the add: an add that returns an error added nothing
        self.keep_segments_bounded()?;
        let first = self.manifest.next_id;
        let generation = self.manifest.generation + 1;
        let file = format!("seg-{generation:010}.usg");
        let path = self.dir.join(&file);
        let rows = items.iter().enumerate().map(|(i, it)| ItemRow {
            id: first + i as u64,
            key: it.key,
            path: it.path,
            code: it.code,
            floats: it.floats,
        });
        if let Err(e) = segment::write_segment(&path, layout, rows) {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        let segment = Segment::open(&path)?;
        let mut next = self.manifest.clone();
        next.generation = generation;
        next.next_id = first + items.len() as u64;
        next.segments.push(SegmentEntry {
            file,
            rows: items.len(),
            tombstones: None,
        });
        self.commit(next)?;
        if let Some(attached) = self.ivf.as_mut() {
            let words = segment.layout().code_words();
            for (row, &id) in segment.ids().iter().enumerate() {
                let code = &segment.codes()[row * words..(row + 1) * words];
                attached.ivf.insert(code, id, attached.kernel);
            }
        }
        self.segments.push(LiveSegment::new(segment, Vec::new()));
        let ids: Vec<u64> = (first..first + items.len() as u64).collect();
        if let Some(keys) = self.keys.get_mut().filter(|_| layout.keys) {
            for (item, &id) in items.iter().zip(&ids) {
                keys.insert(item.key.to_owned(), id);
            }
        }
        Ok(ids)
    }

    /// Deletes items by id in one commit (tombstones); returns how many were live.
    ///
    /// # Errors
    /// [`Error::UnknownItem`] if any id is not live (nothing is changed then); I/O errors.
    pub fn remove(&mut self, ids: &[u64]) -> Result<usize> {
        self.writer()?;
        let mut per_segment: HashMap<usize, Vec<u32>> = HashMap::new();
        for &id in ids {
            let (seg, row) = self
                .locate(id)
                .ok_or_else(|| Error::UnknownItem(format!("id {id}")))?;
            per_segment.entry(seg).or_default().push(row as u32);
        }
        if per_segment.is_empty() {
            return Ok(0);
        }
        let generation = self.manifest.generation + 1;
        let mut next = self.manifest.clone();
        let mut new_rows = Vec::new();
        let mut removed = 0;
        for (&seg, rows) in &per_segment {
            let mut all = self.segments[seg].deleted_rows.clone();
            all.extend(rows);
            all.sort_unstable();
            all.dedup();
            removed += all.len() - self.segments[seg].deleted_rows.len();
            let stem = next.segments[seg].file.trim_end_matches(".usg").to_owned();
            let name = format!("{stem}.{generation:010}.del");
            tombstones::write(&self.dir.join(&name), &all)?;
            next.segments[seg].tombstones = Some(name);
            new_rows.push((seg, all));
        }
        next.generation = generation;
        self.commit(next)?;
        if let Some(attached) = self.ivf.as_mut() {
            let words = self.manifest.bits / 64;
            for (&seg, rows) in &per_segment {
                let segment = &self.segments[seg].segment;
                for &row in rows {
                    let row = row as usize;
                    let code = &segment.codes()[row * words..(row + 1) * words];
                    attached
                        .ivf
                        .remove(code, segment.ids()[row], attached.kernel);
                }
            }
        }
        if let Some(keys) = self.keys.get_mut() {
            for (&seg, rows) in &per_segment {
                let segment = &self.segments[seg].segment;
                for &row in rows {
                    keys.remove(segment.key(row as usize)?.as_ref());
                }
            }
        }
        for (seg, rows) in new_rows {
            self.segments[seg].set_deleted(rows);
        }
        Ok(removed)
    }
}
