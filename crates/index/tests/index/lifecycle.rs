//! Adding, removing, searching (batched, re-ranked, through an inverted file), merging segments
//! and building a new index all or nothing.

use unisight_index::{Error, Query, Rerank, ScanOptions};

use super::*;

#[test]
fn add_remove_compact_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut index = create_index(dir.path());
    let a = add_range(&mut index, 0..50);
    let b = add_range(&mut index, 50..80);
    assert_eq!(index.len(), 80);
    // self-search finds itself at distance 0
    let hits = index
        .search(&code_for(60), 3, &ScanOptions::default())
        .unwrap();
    assert_eq!((hits[0][0].id, hits[0][0].distance), (b[10], 0));
    assert_eq!(index.remove(&[a[3], b[10]]).unwrap(), 2);
    assert!(matches!(index.remove(&[a[3]]), Err(Error::UnknownItem(_))));
    let hits = index
        .search(&code_for(60), 80, &ScanOptions::default())
        .unwrap();
    assert_eq!(hits[0].len(), 78);
    assert!(hits[0].iter().all(|h| h.id != b[10]));
    // duplicate keys are refused and nothing is written
    let gen = index.stats().generation;
    let dup = [NewItem {
        key: "item-1",
        path: "",
        code: &[0; 32],
        floats: Some(&[0.0; 8]),
    }];
    assert!(index.add(&dup).is_err());
    assert_eq!(index.stats().generation, gen);
    drop(index);

    let mut index = Index::open_writable(dir.path()).unwrap();
    assert_eq!(index.len(), 78);
    assert_eq!(index.id_of_key("item-4").unwrap(), Some(a[4]));
    assert_eq!(index.id_of_key("item-3").unwrap(), None);
    index.compact().unwrap();
    assert_eq!(index.stats().segments, 1);
    assert_eq!(index.stats().deleted, 0);
    drop(index);
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files.len(), 3, "{files:?}"); // LOCK, MANIFEST.json, one segment
    let index = Index::open(dir.path()).unwrap();
    assert_eq!(index.len(), 78);
    assert_eq!(index.code(a[5]).unwrap(), &code_for(5));
    assert_eq!(index.floats(a[5]).unwrap().unwrap(), floats_for(5));
    // float re-ranking puts the exact vector first
    let q = floats_for(7);
    let ranked = index
        .search_reranked(
            &code_for(7),
            Some(&q),
            5,
            4,
            Rerank::Float,
            &ScanOptions::default(),
        )
        .unwrap();
    assert_eq!(ranked[0].id, a[7]);
    assert!((ranked[0].score.unwrap() - 1.0).abs() < 1e-5);
}

#[test]
fn a_batched_search_answers_each_query_as_if_it_were_alone() {
    let dir = tempfile::tempdir().unwrap();
    let config = IndexConfig {
        bits: 256,
        floats: Some((8, FloatKind::F16)),
        keys: true,
    };
    let mut index = Index::create(dir.path(), config).unwrap();
    add_range(&mut index, 0..300);
    let gone = add_range(&mut index, 300..400);
    index.remove(&gone[10..40]).unwrap();
    let options = ScanOptions {
        threads: 2,
        ..ScanOptions::default()
    };
    let floats: Vec<Vec<f32>> = (0..24u64).map(|i| floats_for(i * 17)).collect();
    let asym: Vec<Vec<f32>> = (0..24u64)
        .map(|i| {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(i);
            (0..256).map(|_| rng.gen_range(-1.0..1.0)).collect()
        })
        .collect();
    let codes: Vec<[u8; 32]> = (0..24u64).map(|i| code_for(i * 17 + 5)).collect();
    let modes = [Rerank::None, Rerank::Float, Rerank::Asymmetric];
    let queries: Vec<Query> = (0..24)
        .map(|i| {
            let mode = modes[i % 3];
            Query {
                code: &codes[i],
                float: match mode {
                    Rerank::Asymmetric => Some(&asym[i]),
                    _ => Some(&floats[i]),
                },
                k: 1 + (i * 7) % 30,
                mode,
            }
        })
        .collect();
    let batched = index.search_reranked_batch(&queries, 3, &options).unwrap();
    assert_eq!(batched.len(), queries.len());
    for (q, got) in queries.iter().zip(&batched) {
        let alone = index
            .search_reranked(q.code, q.float, q.k, 3, q.mode, &ScanOptions::default())
            .unwrap();
        assert_eq!(got, &alone, "k {} mode {:?}", q.k, q.mode);
        assert_eq!(got.len(), q.k);
    }
    // one invalid query refuses the batch with a reason
    let mut bad = queries.clone();
    bad[5].float = Some(&floats[0][..4]);
    let err = index.search_reranked_batch(&bad, 3, &options).unwrap_err();
    assert!(err.to_string().contains("values"), "{err}");
    bad[5] = Query {
        code: &codes[0][..16],
        float: None,
        k: 3,
        mode: Rerank::None,
    };
    assert!(index.search_reranked_batch(&bad, 3, &options).is_err());
}

#[test]
fn an_inverted_file_follows_adds_and_removals() {
    let dir = tempfile::tempdir().unwrap();
    let mut index = create_index(dir.path());
    let err = index.build_ivf(4, 1, 1).unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");
    let ids = add_range(&mut index, 0..300);
    index.remove(&ids[10..20]).unwrap();
    assert!(index.build_ivf(0, 1, 1).is_err());
    let settings = index.build_ivf(8, 100, 1).unwrap();
    assert_eq!(
        (settings.lists, settings.probes),
        (8, 8),
        "probes capped at the lists"
    );
    assert_eq!(index.ivf_settings(), Some(settings));
    // every list probed: the same answers as the exact scan of a plain reader
    let exact = Index::open(dir.path()).unwrap();
    let options = ScanOptions::default();
    for q in [0u64, 15, 150, 299] {
        let code = code_for(q);
        assert_eq!(
            index.search(&code, 5, &options).unwrap(),
            exact.search(&code, 5, &options).unwrap(),
            "query {q}"
        );
    }
    // items added after the build are found, removed ones are not, with one probe
    index.build_ivf(8, 1, 1).unwrap();
    let added = add_range(&mut index, 300..310);
    for (i, &id) in (300..310).zip(&added) {
        assert_eq!(
            index.search(&code_for(i), 1, &options).unwrap()[0][0].id,
            id
        );
    }
    index.remove(&[added[3], ids[42]]).unwrap();
    for q in [303u64, 42] {
        let hits = index.search(&code_for(q), 300, &options).unwrap();
        assert!(hits[0].iter().all(|h| h.id != q), "removed {q} still found");
    }
    // re-ranking takes its shortlist from the inverted file too
    let query = Query {
        code: &code_for(5),
        float: Some(&floats_for(5)),
        k: 1,
        mode: Rerank::Float,
    };
    let top = index.search_reranked_batch(&[query], 4, &options).unwrap();
    assert_eq!(top[0][0].id, ids[5]);
}

#[test]
fn a_keyless_index_stores_code_and_id_only() {
    let dir = tempfile::tempdir().unwrap();
    let config = IndexConfig {
        bits: 256,
        floats: None,
        keys: false,
    };
    let mut index = Index::create(dir.path(), config).unwrap();
    let codes: Vec<[u8; 32]> = (0..50).map(code_for).collect();
    let items: Vec<NewItem> = codes
        .iter()
        .map(|c| NewItem {
            key: "",
            path: "",
            code: c,
            floats: None,
        })
        .collect();
    let ids = index.add(&items).unwrap();
    assert_eq!(ids, (0..50).collect::<Vec<u64>>());
    // the segment holds header, codes, ids and footer, nothing else
    let segment_bytes: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".usg"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert_eq!(segment_bytes, 64 + 50 * (32 + 8) + 24);
    let manifest = std::fs::read_to_string(dir.path().join("MANIFEST.json")).unwrap();
    assert!(manifest.contains("\"keys\": false"), "{manifest}");
    // keys read as ids; an item with a key or path is refused and nothing is written
    assert_eq!(index.item(7).unwrap().key, "7");
    assert_eq!(index.item(7).unwrap().path, "");
    assert_eq!(index.id_of_key("7").unwrap(), Some(7));
    let gen = index.stats().generation;
    let keyed = [NewItem {
        key: "x",
        path: "",
        code: &codes[0],
        floats: None,
    }];
    let err = index.add(&keyed).unwrap_err().to_string();
    assert!(err.contains("keeps no keys"), "{err}");
    assert_eq!(index.stats().generation, gen);
    let more = index.add(&items[..3]).unwrap();
    assert_eq!(more, vec![50, 51, 52]);
    assert_eq!(index.id_of_key("51").unwrap(), Some(51));
    index.remove(&[3, 51]).unwrap();
    index.compact().unwrap();
    drop(index);
    let index = Index::open(dir.path()).unwrap();
    assert!(!index.layout().keys);
    assert_eq!(index.len(), 51);
    assert_eq!(index.code(40).unwrap(), &code_for(40));
    let hits = index
        .search(&code_for(9), 1, &ScanOptions::default())
        .unwrap();
    assert_eq!((hits[0][0].id, hits[0][0].distance), (9, 0));
    // an index with keys writes no `keys` field, as before this option existed
    let keyed_dir = tempfile::tempdir().unwrap();
    let config = IndexConfig {
        keys: true,
        ..config
    };
    Index::create(keyed_dir.path(), config).unwrap();
    let manifest = std::fs::read_to_string(keyed_dir.path().join("MANIFEST.json")).unwrap();
    assert!(!manifest.contains("keys"), "{manifest}");
}

#[test]
fn the_segment_count_stays_bounded_under_any_number_of_mutations() {
    let tmp = tempfile::tempdir().unwrap();
    let mut index = create_index(tmp.path());
    // one large build, then a long-running service's single adds and removals
    add_range(&mut index, 0..500);
    let mut live: Vec<u64> = (0..500).collect();
    for i in 500..1500u64 {
        let ids = add_range(&mut index, i..i + 1);
        live.extend(ids);
        if i % 3 == 0 {
            let gone = live.remove((i as usize * 7) % live.len());
            index.remove(&[gone]).unwrap();
        }
        let bound = (index.len() as f64).log2().ceil() as usize + 2;
        assert!(
            index.stats().segments <= bound,
            "{} segments for {} items",
            index.stats().segments,
            index.len()
        );
    }
    // nothing was lost or resurrected, and no file is left that the manifest does not list
    assert_eq!(index.len(), live.len());
    for &id in live.iter().step_by(37) {
        assert_eq!(index.item(id).unwrap().key, format!("item-{id}"));
        let hits = index
            .search(&code_for(id), 1, &ScanOptions::default())
            .unwrap();
        assert_eq!(hits[0][0].id, id);
    }
    let files = std::fs::read_dir(tmp.path()).unwrap().count();
    assert!(files <= 2 * index.stats().segments + 2, "{files} files");
    drop(index);
    let reopened = Index::open(tmp.path()).unwrap();
    assert_eq!(reopened.len(), live.len());
}

#[test]
fn a_huge_k_is_capped_at_the_index_size() {
    let tmp = tempfile::tempdir().unwrap();
    let mut index = create_index(tmp.path());
    add_range(&mut index, 0..30);
    // k sizes the top-k heaps: 10^12 once aborted on a 64 TB allocation
    let hits = index
        .search(&code_for(3), 1_000_000_000_000, &ScanOptions::default())
        .unwrap();
    assert_eq!(hits[0].len(), 30);
    assert_eq!(hits[0][0].id, 3);
    let scored = index
        .search_reranked(
            &code_for(3),
            Some(&floats_for(3)),
            usize::MAX,
            4,
            Rerank::Float,
            &ScanOptions::default(),
        )
        .unwrap();
    assert_eq!(scored.len(), 30);
}

#[test]
fn a_new_index_is_built_all_or_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("idx");
    let config = IndexConfig {
        bits: 256,
        floats: Some((8, FloatKind::F32)),
        keys: true,
    };
    // a build that fails leaves nothing behind, and the re-run is not refused
    let failed = Index::build_new(&dir, config, |index| {
        add_range(index, 0..10);
        Err(Error::InvalidInput("the input ended early".into()))
    });
    assert!(failed.is_err());
    assert!(!dir.exists());
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    // a killed build leaves only a hidden building folder, which the next build replaces
    let stale = tmp.path().join(".idx.building");
    add_range(&mut Index::create(&stale, config).unwrap(), 0..5);
    Index::build_new(&dir, config, |index| {
        add_range(index, 0..20);
        Ok::<_, Error>(())
    })
    .unwrap();
    assert!(!stale.exists());
    assert_eq!(Index::open(&dir).unwrap().len(), 20);
    // an existing folder is never built over
    let again = Index::build_new(&dir, config, |_| Ok::<_, Error>(()));
    assert!(again.unwrap_err().to_string().contains("already exists"));
    // a build running elsewhere (holding the building folder's lock) is not disturbed
    let other = tmp.path().join("other");
    let running = Index::create(&tmp.path().join(".other.building"), config).unwrap();
    let e = Index::build_new(&other, config, |_| Ok::<_, Error>(())).unwrap_err();
    assert!(matches!(e, Error::Locked { .. }), "{e}");
    drop(running);
}

#[test]
fn second_writer_is_refused_and_readonly_cannot_write() {
    let dir = tempfile::tempdir().unwrap();
    let _w = Index::create(
        dir.path(),
        IndexConfig {
            bits: 64,
            floats: None,
            keys: true,
        },
    )
    .unwrap();
    assert!(matches!(
        Index::open_writable(dir.path()),
        Err(Error::Locked { .. })
    ));
    let mut r = Index::open(dir.path()).unwrap();
    assert!(r
        .add(&[NewItem {
            key: "x",
            path: "",
            code: &[0; 8],
            floats: None
        }])
        .is_err());
}
