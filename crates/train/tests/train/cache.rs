//! The trunk cache shared across runs and image lists.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use unisight_core::Architecture;
use unisight_model::UnifiedModel;
use unisight_train::network::TrainFrom;

use super::{grocery, ort, small_config};

/// The trunk cache is one folder per frozen front, augmentation and seed, shared by runs over
/// other image lists: a run over more images computes only the new ones, with the same rows a
/// fresh build gives; an evaluation-only use (one view) of cached images computes nothing; an
/// unreadable image is reported and never stored.
#[test]
fn trunk_cache_is_shared_across_image_lists_and_equal_to_a_fresh_build() {
    use unisight_train::cache::{self, CacheEntry};
    let Some(root) = grocery() else {
        return unisight_core::testing::skip_for_lack_of_data("no ../shared/data");
    };
    ort();
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path(), &root, 1, "block14");
    let model =
        UnifiedModel::zero_shot(Architecture::EfficientnetLite0, 128, 9, &Device::flex()).unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
        .collect();
    // the readable photos in name order, then the broken file
    files.sort_by_key(|f| (f.ends_with("broken.jpg"), f.clone()));
    let entries: Vec<CacheEntry> = files
        .iter()
        .map(|f| CacheEntry {
            key: format!("photos/{}", f.file_name().unwrap().to_string_lossy()),
            file: f.clone(),
            views: 2,
        })
        .collect();
    let build = |cache: &Path, entries: &[CacheEntry]| {
        cache::build(
            cache,
            &model,
            TrainFrom::Block(14).into(),
            entries,
            &config.augment,
            9,
            false,
        )
        .unwrap()
    };
    let chunks = |cache: &Path| -> usize {
        walk(cache)
            .iter()
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .count()
    };
    let shared = dir.path().join("shared-cache");
    let half = build(&shared, &entries[..12]);
    assert_eq!(half.failures.len(), 0);
    let before = chunks(&shared);
    let all = build(&shared, &entries);
    let after = chunks(&shared);
    assert!(after > before, "the new images were committed");
    assert_eq!(all.failures.len(), 1, "{:?}", all.failures);
    assert!(all.failures[0].0.ends_with("broken.jpg"));
    let fresh = build(&dir.path().join("fresh-cache"), &entries);
    for e in 0..entries.len() {
        assert_eq!(all.is_ok(e), fresh.is_ok(e));
        for v in 0..2 {
            assert_eq!(all.row(e, v), fresh.row(e, v), "entry {e} view {v}");
        }
    }
    assert_ne!(all.row(0, 0), all.row(0, 1), "view 1 is augmented");
    // the plain view of every cached image serves an evaluation set without new work
    let plain: Vec<CacheEntry> = entries
        .iter()
        .map(|e| CacheEntry {
            views: 1,
            ..e.clone()
        })
        .collect();
    let eval = build(&shared, &plain);
    assert_eq!(chunks(&shared), after, "nothing computed again");
    assert_eq!(eval.row(3, 0), fresh.row(3, 0));
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
