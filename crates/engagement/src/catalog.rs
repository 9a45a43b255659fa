//! The catalog a log's item keys are resolved through: the index the service searched, or the
//! embedding folder it was built from. The service logs each shown item's key; training needs
//! its image, and this is the one join between the two.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use unisight_core::artifacts::{read_items, ITEMS_FILE};
use unisight_index::Index;

use crate::record::EngagementEvent;
use crate::{Error, Result};

/// Item key -> image path.
pub(crate) struct Catalog {
    path: PathBuf,
    paths: HashMap<String, String>,
}

impl Catalog {
    /// Reads the keys and paths of an index folder (one with `MANIFEST.json`) or of an
    /// embedding folder (`items.jsonl`). An embedding folder also answers an item's row in
    /// decimal: the key an index built from it with `--no-keys` gives each item.
    ///
    /// # Errors
    /// [`Error::Catalog`] when the folder is neither, cannot be read, or is an index without
    /// paths.
    pub(crate) fn open(path: &Path) -> Result<Catalog> {
        let catalog_error = |what: String| Error::Catalog {
            path: path.into(),
            what,
        };
        let mut paths = HashMap::new();
        if path.join("MANIFEST.json").is_file() {
            let index = Index::open(path).map_err(|e| catalog_error(e.to_string()))?;
            if !index.layout().keys {
                return Err(catalog_error(
                    "this index keeps no keys or paths (built with --no-keys): name the \
                     embedding folder it was built from instead"
                        .into(),
                ));
            }
            for item in index.items() {
                let item = item.map_err(|e| catalog_error(e.to_string()))?;
                paths.insert(item.key, item.path);
            }
        } else {
            let items = read_items(&path.join(ITEMS_FILE)).map_err(|e| {
                catalog_error(format!(
                    "neither an index (MANIFEST.json) nor an embedding folder ({ITEMS_FILE}): {e}"
                ))
            })?;
            for (row, item) in items.iter().enumerate() {
                paths
                    .entry(row.to_string())
                    .or_insert_with(|| item.path.clone());
            }
            for item in items {
                paths.insert(item.id, item.path);
            }
        }
        Ok(Catalog {
            path: path.into(),
            paths,
        })
    }

    /// The catalog's folder.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces each event's query and result by the path of its logged key, where it has one
    /// in the catalog; returns (keys seen, keys resolved).
    pub(crate) fn resolve(&self, events: &mut [EngagementEvent]) -> (usize, usize) {
        let (mut keyed, mut resolved) = (0, 0);
        for e in events {
            for (key, path) in [(&e.query_key, &mut e.query), (&e.result_key, &mut e.result)] {
                if let Some(key) = key {
                    keyed += 1;
                    if let Some(p) = self.paths.get(key) {
                        path.clone_from(p);
                        resolved += 1;
                    }
                }
            }
        }
        (keyed, resolved)
    }
}
