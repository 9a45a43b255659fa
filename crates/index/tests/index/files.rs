//! Damaged files give clear errors, and frozen indexes of every format version still open.

use super::*;
use unisight_index::{Error, ScanOptions};

#[test]
fn damaged_files_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut index = Index::create(
        dir.path(),
        IndexConfig {
            bits: 256,
            floats: Some((8, FloatKind::F16)),
            keys: true,
        },
    )
    .unwrap();
    add_range(&mut index, 0..10);
    drop(index);
    let seg = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "usg"))
        .unwrap();
    let good = std::fs::read(&seg).unwrap();
    std::fs::write(&seg, &good[..good.len() - 5]).unwrap();
    let msg = Index::open(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("truncated") && msg.contains(".usg"), "{msg}");
    let mut bad = good.clone();
    bad[100] ^= 1;
    std::fs::write(&seg, &bad).unwrap();
    let msg = Index::open(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("checksum"), "{msg}");
    std::fs::write(&seg, &good).unwrap();
    std::fs::write(
        dir.path().join("MANIFEST.json"),
        "{\"format_version\": 1, \"bitz\": 3}",
    )
    .unwrap();
    let msg = Index::open(dir.path()).unwrap_err().to_string();
    assert!(
        msg.contains("MANIFEST.json") && msg.contains("bitz"),
        "{msg}"
    );
    assert!(matches!(
        Index::open(&dir.path().join("nope")),
        Err(Error::NotAnIndex { .. })
    ));
}

/// A frozen index of format version 1 (`tests/data/format_v1`, written by this test when
/// missing and committed): every later build must still open it and read the same items.
#[test]
fn format_v1_fixture_still_opens() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/format_v1");
    if !fixture.join("MANIFEST.json").exists() {
        let mut index = Index::create(
            &fixture,
            IndexConfig {
                bits: 256,
                floats: Some((8, FloatKind::F16)),
                keys: true,
            },
        )
        .unwrap();
        add_range(&mut index, 0..20);
        add_range(&mut index, 20..30);
        index.remove(&[3, 25]).unwrap();
        drop(index);
        std::fs::remove_file(fixture.join("LOCK")).unwrap();
    }
    let index = Index::open(&fixture).unwrap();
    assert_eq!(index.len(), 28);
    assert_eq!(index.stats().segments, 2);
    for id in (0..30u64).filter(|i| ![3, 25].contains(i)) {
        assert_eq!(index.code(id).unwrap(), &code_for(id));
        assert_eq!(index.item(id).unwrap().key, format!("item-{id}"));
        let floats = index.floats(id).unwrap().unwrap();
        for (a, b) in floats.iter().zip(floats_for(id)) {
            assert!((a - b).abs() < 1e-3);
        }
    }
    assert!(index.code(3).is_err());
}

/// A frozen index of segment format 2, without keys (`tests/data/format_v2`, written by this
/// test when missing and committed): every later build must still open it, find its items by
/// their decimal ids, and search it.
#[test]
fn format_v2_fixture_still_opens() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/format_v2");
    if !fixture.join("MANIFEST.json").exists() {
        let mut index = Index::create(
            &fixture,
            IndexConfig {
                bits: 256,
                floats: Some((8, FloatKind::F16)),
                keys: false,
            },
        )
        .unwrap();
        for range in [0..20u64, 20..30] {
            let codes: Vec<[u8; 32]> = range.clone().map(code_for).collect();
            let floats: Vec<Vec<f32>> = range.clone().map(floats_for).collect();
            let items: Vec<NewItem> = (0..codes.len())
                .map(|j| NewItem {
                    key: "",
                    path: "",
                    code: &codes[j],
                    floats: Some(&floats[j]),
                })
                .collect();
            index.add(&items).unwrap();
        }
        index.remove(&[4, 27]).unwrap();
        drop(index);
        std::fs::remove_file(fixture.join("LOCK")).unwrap();
    }
    let bytes = std::fs::read(fixture.join("seg-0000000001.usg")).unwrap();
    assert_eq!(
        u32::from_le_bytes(bytes[8..12].try_into().unwrap()),
        2,
        "the fixture's segments are format 2"
    );
    let index = Index::open(&fixture).unwrap();
    assert!(!index.layout().keys);
    assert_eq!(index.len(), 28);
    for id in (0..30u64).filter(|i| ![4, 27].contains(i)) {
        assert_eq!(index.id_of_key(&id.to_string()).unwrap(), Some(id));
        assert_eq!(index.code(id).unwrap(), &code_for(id));
        assert_eq!(index.item(id).unwrap().key, id.to_string());
        let floats = index.floats(id).unwrap().unwrap();
        for (a, b) in floats.iter().zip(floats_for(id)) {
            assert!((a - b).abs() < 1e-3);
        }
    }
    assert_eq!(index.id_of_key("4").unwrap(), None);
    let hits = index
        .search(&code_for(11), 1, &ScanOptions::default())
        .unwrap();
    assert_eq!(hits[0][0].id, 11);
}
