//! Catalogs split over machines: [`Shard`] picks a deterministic share of the items for one
//! `unisight embed --shard I/N`, and [`load_parts`] checks that the folders to merge into one
//! index are complete, from one model, and hold every shard and every item exactly once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::artifacts::{EmbedMeta, EmbeddingSet, META_FILE};
use crate::{Error, Result};

/// A deterministic share of a catalog: shard `index` of `count` holds the items whose id hashes
/// (CRC-32C of its UTF-8 bytes) to `index` modulo `count`, so shards never overlap, together
/// hold every item, and a re-run makes the same split on any machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Shard {
    /// This shard, `0..count`.
    pub index: u32,
    /// Shards in all.
    pub count: u32,
}

impl Shard {
    /// Parses `I/N` (`0/4` .. `3/4`).
    ///
    /// # Errors
    /// A message saying what is wrong.
    pub fn parse(text: &str) -> std::result::Result<Shard, String> {
        let (i, n) = text
            .split_once('/')
            .ok_or_else(|| format!("`{text}`: expected I/N, e.g. 0/4"))?;
        let parse = |v: &str| {
            v.trim()
                .parse::<u32>()
                .map_err(|_| format!("`{text}`: {v:?} is not a whole number"))
        };
        let (index, count) = (parse(i)?, parse(n)?);
        if count == 0 || index >= count {
            return Err(format!("`{text}`: the shard must be 0 to N-1 of N >= 1"));
        }
        Ok(Shard { index, count })
    }

    /// Whether the item with this id belongs to this shard.
    pub fn contains(&self, id: &str) -> bool {
        crc32c::crc32c(id.as_bytes()) % self.count == self.index
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Loads the embedding folders to merge into one index, refusing a merge that would not hold
/// every item exactly once: a folder that is incomplete (a killed run) or from another model or
/// dimension, shards of different splits, a shard given twice or missing, an id in two folders.
/// One folder without a `meta.json` (made by other tools) is loaded as it is, unless a killed
/// run left it incomplete.
///
/// # Errors
/// [`Error::Malformed`] naming the folder and what is wrong; read errors.
pub fn load_parts(dirs: &[PathBuf]) -> Result<Vec<EmbeddingSet>> {
    if let [dir] = dirs {
        if !dir.join(".partial").exists() && !dir.join(META_FILE).exists() {
            return Ok(vec![EmbeddingSet::load_for_index(dir)?]);
        }
    }
    let mut parts: Vec<(EmbeddingSet, EmbedMeta)> = Vec::with_capacity(dirs.len());
    for dir in dirs {
        parts.push(EmbeddingSet::load_complete(dir)?);
    }
    let Some((_, first)) = parts.first() else {
        return Ok(Vec::new());
    };
    let first_dir = &dirs[0];
    for (dir, (_, meta)) in dirs.iter().zip(&parts).skip(1) {
        if weights_of(&meta.model) != weights_of(&first.model) || meta.dim != first.dim {
            return Err(Error::malformed(
                dir,
                format!(
                    "embedded by {} (D = {}), but {} by {} (D = {}): one index holds one model's codes",
                    meta.model,
                    meta.dim,
                    first_dir.display(),
                    first.model,
                    first.dim
                ),
            ));
        }
    }
    check_shards(dirs, &parts)?;
    let mut seen: HashMap<&str, &Path> = HashMap::new();
    for (dir, (set, _)) in dirs.iter().zip(&parts) {
        for item in &set.items {
            if let Some(other) = seen.insert(&item.id, dir) {
                return Err(Error::malformed(
                    dir,
                    format!(
                        "item `{}` is also in {}: a merged index holds each item once",
                        item.id,
                        other.display()
                    ),
                ));
            }
        }
    }
    Ok(parts.into_iter().map(|(set, _)| set).collect())
}

/// Shards of one split, each once, none missing (folders without a shard are plain parts).
fn check_shards(dirs: &[PathBuf], parts: &[(EmbeddingSet, EmbedMeta)]) -> Result<()> {
    let shards: Vec<(&PathBuf, Shard)> = dirs
        .iter()
        .zip(parts)
        .filter_map(|(d, (_, m))| m.shard.map(|s| (d, s)))
        .collect();
    let Some(&(first_dir, first)) = shards.first() else {
        return Ok(());
    };
    if shards.len() != parts.len() {
        return Err(Error::malformed(
            first_dir,
            "is a shard, but some folders to merge are not: give the shards of one split",
        ));
    }
    let mut given: HashMap<u32, &PathBuf> = HashMap::new();
    for &(dir, shard) in &shards {
        if shard.count != first.count {
            return Err(Error::malformed(
                dir,
                format!(
                    "shard {shard}, but {} is shard {first}: shards of different splits",
                    first_dir.display()
                ),
            ));
        }
        if let Some(other) = given.insert(shard.index, dir) {
            return Err(Error::malformed(
                dir,
                format!("shard {shard} is also {}", other.display()),
            ));
        }
    }
    let missing: Vec<String> = (0..first.count)
        .filter(|i| !given.contains_key(i))
        .map(|i| format!("{i}/{}", first.count))
        .collect();
    if !missing.is_empty() {
        return Err(Error::malformed(
            first_dir,
            format!(
                "shard {} missing from the merge: the index would lack its items",
                missing.join(", ")
            ),
        ));
    }
    Ok(())
}

/// The part of a model id that names the weights: a model file's id is `PATH#CRC32C` of its
/// bytes, and the same file at another path (another machine's copy, a Ray worker's) is the
/// same model.
fn weights_of(model: &str) -> &str {
    model.rsplit_once('#').map_or(model, |(_, crc)| crc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifacts::{
        write_items, write_npy, ItemRecord, CODES_FILE, EMBEDDINGS_FILE, ITEMS_FILE, META_FILE,
    };

    #[test]
    fn shards_parse_and_split_ids_without_overlap() {
        assert_eq!(Shard::parse("1/4"), Ok(Shard { index: 1, count: 4 }));
        for bad in ["4/4", "1", "a/2", "0/0", "-1/3"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
        let shards: Vec<Shard> = (0..3).map(|index| Shard { index, count: 3 }).collect();
        let mut sizes = [0usize; 3];
        for i in 0..3000 {
            let id = format!("photos/{i}.jpg");
            let owners: Vec<usize> = (0..3).filter(|&s| shards[s].contains(&id)).collect();
            assert_eq!(owners.len(), 1, "{id}");
            sizes[owners[0]] += 1;
        }
        assert!(sizes.iter().all(|&n| (800..1200).contains(&n)), "{sizes:?}");
    }

    /// An embedding folder of `ids` (D = 64) as `unisight embed` writes it.
    fn folder(dir: &Path, ids: &[&str], model: &str, shard: Option<Shard>) {
        std::fs::create_dir_all(dir).unwrap();
        let n = ids.len();
        write_npy(&dir.join(EMBEDDINGS_FILE), n, 64, &vec![0.125f32; n * 64]).unwrap();
        write_npy(&dir.join(CODES_FILE), n, 8, &vec![7u8; n * 8]).unwrap();
        let items: Vec<ItemRecord> = ids
            .iter()
            .map(|id| ItemRecord {
                id: id.to_string(),
                path: id.to_string(),
                label: None,
            })
            .collect();
        write_items(&dir.join(ITEMS_FILE), &items).unwrap();
        let meta = EmbedMeta {
            model: model.into(),
            backend: "test".into(),
            dim: 64,
            finished_unix: 0,
            inputs: n,
            embedded: n,
            failed: 0,
            resumed_chunks: 0,
            images_per_second: 0.0,
            failures: Vec::new(),
            shard,
        };
        std::fs::write(dir.join(META_FILE), serde_json::to_vec(&meta).unwrap()).unwrap();
    }

    #[test]
    fn a_merge_holds_every_shard_and_item_once_or_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let d = |name: &str| t.path().join(name);
        let s = |index| Some(Shard { index, count: 2 });
        folder(&d("s0"), &["a", "b"], "m", s(0));
        folder(&d("s1"), &["c"], "m", s(1));
        let parts = load_parts(&[d("s0"), d("s1")]).unwrap();
        assert_eq!(parts.iter().map(EmbeddingSet::len).sum::<usize>(), 3);
        let refused = |dirs: &[PathBuf]| load_parts(dirs).unwrap_err().to_string();
        // a missing shard, a shard twice, another split
        assert!(refused(&[d("s0")]).contains("shard 1/2 missing"));
        folder(&d("s1-again"), &["d"], "m", s(1));
        assert!(refused(&[d("s0"), d("s1"), d("s1-again")]).contains("shard 1/2 is also"));
        folder(&d("third"), &["e"], "m", Some(Shard { index: 2, count: 3 }));
        assert!(refused(&[d("s0"), d("s1"), d("third")]).contains("different splits"));
        // another model, an id in two folders, a plain part among shards
        folder(&d("other-model"), &["x"], "m2", s(1));
        assert!(refused(&[d("s0"), d("other-model")]).contains("one index holds one model"));
        // the same model file at two paths (two machines) is one model; other bytes are not
        folder(&d("p0"), &["a"], "/node-a/m.safetensors#0badf00d", s(0));
        folder(&d("p1"), &["c"], "/node-b/m.safetensors#0badf00d", s(1));
        assert_eq!(load_parts(&[d("p0"), d("p1")]).unwrap().len(), 2);
        folder(&d("p2"), &["c"], "/node-a/m.safetensors#12345678", s(1));
        assert!(refused(&[d("p0"), d("p2")]).contains("one index holds one model"));
        folder(&d("dup"), &["b"], "m", s(1));
        assert!(refused(&[d("s0"), d("dup")]).contains("item `b` is also in"));
        folder(&d("plain"), &["z"], "m", None);
        assert!(refused(&[d("s0"), d("s1"), d("plain")]).contains("some folders to merge are not"));
        // a killed run: meta.json removed, or .partial/ left behind
        std::fs::create_dir_all(d("s1").join(".partial")).unwrap();
        assert!(refused(&[d("s1")]).contains("incomplete"));
        // and `index add` of it too
        let e = EmbeddingSet::load_for_index(&d("s1"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("incomplete"), "{e}");
        assert!(refused(&[d("s0"), d("s1")]).contains("incomplete"));
        std::fs::remove_file(d("s0").join(META_FILE)).unwrap();
        assert!(refused(&[d("s0"), d("plain")]).contains("incomplete"));
        // one plain folder alone needs no meta.json
        assert_eq!(load_parts(&[d("s0")]).unwrap()[0].len(), 2);
    }
}
