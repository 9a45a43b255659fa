//! The write path of [`Milvus`]: inserting items (checked, and refused when a key is already
//! stored) and deleting keys, one writer at a time.

use std::collections::HashSet;

use milvus::v2::prelude::*;
use milvus::v2::ConsistencyLevel;
use unisight_backend::{Error, NewItem, Result};

use super::reads::key_filter;
use super::{column, malformed, Milvus};
use crate::collection::{CODE, FLOATS, KEY, MAX_KEY, MAX_PATH, PATH};

/// Rows sent in one insert request (well under the server's 64 MiB message limit).
const INSERT_CHUNK: usize = 2_000;

impl Milvus {
    /// [`unisight_backend::Backend::add`]: checks every item, refuses keys already stored, then inserts in
    /// chunks under the writer lock.
    pub(super) fn insert(&self, items: &[NewItem<'_>]) -> Result<()> {
        if !self.writable {
            return Err(Error::ReadOnly);
        }
        let mut seen = HashSet::with_capacity(items.len());
        for item in items {
            if item.key.is_empty() || item.key.len() > MAX_KEY || item.path.len() > MAX_PATH {
                return Err(Error::InvalidInput(format!(
                    "key {:?}: a key is 1 to {MAX_KEY} bytes and a path at most {MAX_PATH}",
                    item.key
                )));
            }
            self.check_code(item.code)?;
            match (self.shape.float_dim, item.floats) {
                (Some(dim), Some(f)) if f.len() == dim => {}
                (None, _) => {}
                (Some(dim), f) => {
                    return Err(Error::InvalidInput(format!(
                        "key {:?}: the collection keeps {dim} floats per item, got {}",
                        item.key,
                        f.map_or(0, <[f32]>::len)
                    )))
                }
            }
            if !seen.insert(item.key) {
                return Err(Error::DuplicateKey(item.key.to_string()));
            }
        }
        let _writer = self
            .writer
            .lock()
            .map_err(|_| Error::Unavailable("the writer lock is poisoned".into()))?;
        for chunk in items.chunks(INSERT_CHUNK) {
            let keys: Vec<String> = chunk.iter().map(|i| i.key.to_string()).collect();
            let present = self.fetch(keys.clone(), vec![KEY], ConsistencyLevel::Strong)?;
            if let Some(key) = column(&present, KEY)?.as_varchar().and_then(|k| k.first()) {
                return Err(Error::DuplicateKey(key.clone()));
            }
        }
        for chunk in items.chunks(INSERT_CHUNK) {
            let mut columns = vec![
                FieldData::varchar(KEY, chunk.iter().map(|i| i.key.to_string()).collect()),
                FieldData::varchar(PATH, chunk.iter().map(|i| i.path.to_string()).collect()),
                FieldData::binary_vector(CODE, chunk.iter().map(|i| i.code.to_vec()).collect()),
            ];
            if self.shape.float_dim.is_some() {
                columns.push(FieldData::array_float(
                    FLOATS,
                    chunk
                        .iter()
                        .map(|i| i.floats.unwrap_or_default().to_vec())
                        .collect(),
                ));
            }
            let (client, name) = (self.client.clone(), self.url.collection.clone());
            let inserted = self.bridge.call("insert", async move {
                client
                    .insert(
                        InsertRequest::builder()
                            .collection_name(name)
                            .columns(columns)
                            .build()?,
                    )
                    .await
            })?;
            self.wrote();
            if inserted.insert_count() != chunk.len() as i64 {
                return Err(Error::Server(format!(
                    "inserted {} of {} rows",
                    inserted.insert_count(),
                    chunk.len()
                )));
            }
        }
        Ok(())
    }

    /// [`unisight_backend::Backend::remove`]: deletes the keys that are present, under the writer lock.
    pub(super) fn delete(&self, keys: &[&str]) -> Result<usize> {
        if !self.writable {
            return Err(Error::ReadOnly);
        }
        let _writer = self
            .writer
            .lock()
            .map_err(|_| Error::Unavailable("the writer lock is poisoned".into()))?;
        let mut unique: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        unique.sort_unstable();
        unique.dedup();
        let present = self.fetch(unique, vec![KEY], ConsistencyLevel::Strong)?;
        let present: Vec<String> = column(&present, KEY)?
            .as_varchar()
            .ok_or_else(|| malformed("keys"))?
            .to_vec();
        if present.is_empty() {
            return Ok(0);
        }
        let count = present.len();
        let (client, name) = (self.client.clone(), self.url.collection.clone());
        self.bridge.call("delete", async move {
            client
                .delete(
                    DeleteRequest::builder()
                        .collection_name(name)
                        .filter(key_filter(&present))
                        .build()?,
                )
                .await
        })?;
        self.wrote();
        Ok(count)
    }
}
