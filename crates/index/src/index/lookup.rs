//! Items by id and by key: the one key -> id map of an index, built on first use and kept
//! current by every add and remove (so that a service needs no map of its own).

use std::collections::HashMap;

use super::{Index, Item};
use crate::{Error, Result};

impl Index {
    /// The segment and row of the live item `id`.
    pub(super) fn locate(&self, id: u64) -> Option<(usize, usize)> {
        let seg = self
            .segments
            .partition_point(|s| s.segment.ids().first().is_some_and(|&f| f <= id));
        let seg = seg.checked_sub(1)?;
        let row = self.segments[seg].segment.row_of(id)?;
        (!self.segments[seg].is_deleted(row)).then_some((seg, row))
    }

    fn located(&self, id: u64) -> Result<(usize, usize)> {
        self.locate(id)
            .ok_or_else(|| Error::UnknownItem(format!("id {id}")))
    }

    /// The stored item with `id`.
    ///
    /// # Errors
    /// [`Error::UnknownItem`] for an id not in the index (or deleted).
    pub fn item(&self, id: u64) -> Result<Item> {
        let (seg, row) = self.located(id)?;
        let s = &self.segments[seg].segment;
        Ok(Item {
            id,
            key: s.key(row)?.into_owned(),
            path: s.item_path(row)?.to_owned(),
        })
    }

    /// Every live item, in id order.
    pub fn items(&self) -> impl Iterator<Item = Result<Item>> + '_ {
        self.segments.iter().flat_map(|live| {
            (0..live.segment.rows())
                .filter(|&r| !live.is_deleted(r))
                .map(move |r| {
                    Ok(Item {
                        id: live.segment.ids()[r],
                        key: live.segment.key(r)?.into_owned(),
                        path: live.segment.item_path(r)?.to_owned(),
                    })
                })
        })
    }

    /// The packed code of item `id`.
    ///
    /// # Errors
    /// [`Error::UnknownItem`] for an id not in the index.
    pub fn code(&self, id: u64) -> Result<&[u8]> {
        let (seg, row) = self.located(id)?;
        Ok(self.segments[seg].segment.code_bytes_of(row))
    }

    /// The stored float vector of item `id`, if the index keeps floats.
    ///
    /// # Errors
    /// [`Error::UnknownItem`] for an id not in the index.
    pub fn floats(&self, id: u64) -> Result<Option<Vec<f32>>> {
        let (seg, row) = self.located(id)?;
        Ok(self.segments[seg].segment.float_row(row))
    }

    /// The id of the live item with external key `key`. An index without keys answers a key
    /// that is an id in decimal; one with keys builds its key map on first use (or at
    /// [`Index::load_keys`]).
    ///
    /// # Errors
    /// Reading a segment's keys fails.
    pub fn id_of_key(&self, key: &str) -> Result<Option<u64>> {
        if !self.layout().keys {
            return Ok(key
                .parse::<u64>()
                .ok()
                .filter(|&id| id.to_string() == key && self.locate(id).is_some()));
        }
        Ok(self.key_map()?.get(key).copied())
    }

    /// Builds the key map now rather than at the first key lookup (a service does it before it
    /// accepts requests).
    ///
    /// # Errors
    /// Reading a segment's keys fails.
    pub fn load_keys(&self) -> Result<()> {
        if self.layout().keys {
            self.key_map()?;
        }
        Ok(())
    }

    fn key_map(&self) -> Result<&HashMap<String, u64>> {
        if let Some(map) = self.keys.get() {
            return Ok(map);
        }
        let mut map = HashMap::with_capacity(self.len());
        for item in self.items() {
            let item = item?;
            map.insert(item.key, item.id);
        }
        Ok(self.keys.get_or_init(|| map))
    }

    /// The key map for a mutation: built if missing, so that it stays complete.
    pub(super) fn key_map_mut(&mut self) -> Result<&mut HashMap<String, u64>> {
        self.key_map()?;
        Ok(self.keys.get_mut().expect("built by key_map"))
    }
}

#[cfg(test)]
mod tests {
    use crate::{Index, IndexConfig, NewItem};

    fn item<'a>(key: &'a str, code: &'a [u8]) -> NewItem<'a> {
        NewItem {
            key,
            path: key,
            code,
            floats: None,
        }
    }

    #[test]
    fn the_key_map_follows_adds_and_removes() {
        let dir = tempfile::tempdir().unwrap();
        let config = IndexConfig {
            bits: 64,
            floats: None,
            keys: true,
        };
        let mut index = Index::create(dir.path(), config).unwrap();
        let code = [1u8; 8];
        let a = index.add(&[item("a", &code), item("b", &code)]).unwrap();
        assert_eq!(index.id_of_key("a").unwrap(), Some(a[0]));
        index.remove(&[a[0]]).unwrap();
        assert_eq!(index.id_of_key("a").unwrap(), None);
        assert_eq!(index.id_of_key("b").unwrap(), Some(a[1]));
        // a removed key can come back, under a new id
        let again = index.add(&[item("a", &code)]).unwrap();
        assert_eq!(index.id_of_key("a").unwrap(), Some(again[0]));
        assert!(index.add(&[item("b", &code)]).is_err());
        drop(index);
        // a fresh handle builds the same map from the files
        let reopened = Index::open(dir.path()).unwrap();
        assert_eq!(reopened.id_of_key("a").unwrap(), Some(again[0]));
        assert_eq!(reopened.id_of_key("b").unwrap(), Some(a[1]));
    }

    #[test]
    fn an_index_without_keys_answers_decimal_ids_of_live_items() {
        let dir = tempfile::tempdir().unwrap();
        let config = IndexConfig {
            bits: 64,
            floats: None,
            keys: false,
        };
        let mut index = Index::create(dir.path(), config).unwrap();
        let ids = index.add(&[item("", &[0; 8]), item("", &[1; 8])]).unwrap();
        assert_eq!(index.id_of_key("1").unwrap(), Some(ids[1]));
        assert_eq!(index.id_of_key("01").unwrap(), None);
        assert_eq!(index.id_of_key("x").unwrap(), None);
        index.remove(&[ids[1]]).unwrap();
        assert_eq!(index.id_of_key("1").unwrap(), None);
    }
}
