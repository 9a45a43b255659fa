//! The Milvus backend against a real Milvus 2.3.5 server (the PyPI `milvus` package), started
//! here inside the loopback-only namespace `scripts/netns.sh` makes. One server per test binary
//! (its ports are fixed), so the scenarios run in order in one test.
//!
//! Outside such a namespace, or without the package, the test prints `skipped: why` and passes,
//! unless `UNISIGHT_REQUIRE_MILVUS=1` (CI) makes that a failure.

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use unisight_backend::{Backend, Embedded, Error, NewItem, Query, Rerank, Shape};
use unisight_index::{FloatKind, Index, IndexConfig};
use unisight_milvus::local_server::LocalServer;
use unisight_milvus::{Milvus, MilvusUrl, ServerIndex};

const BITS: usize = 256;
const DIM: usize = 64;
const ITEMS: usize = 3_000;
const PORT: u16 = 19530;

struct Catalog {
    keys: Vec<String>,
    codes: Vec<Vec<u8>>,
    floats: Vec<Vec<f32>>,
}

/// Codes that are the signs of their floats, as the model makes them.
fn catalog(n: usize, seed: u64) -> Catalog {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut c = Catalog {
        keys: vec![],
        codes: vec![],
        floats: vec![],
    };
    for i in 0..n {
        let f: Vec<f32> = (0..DIM).map(|_| rng.gen_range(-1.0..1.0)).collect();
        // 256 bits from 64 floats and 192 random bits: distances spread widely
        let mut code = vec![0u8; BITS / 8];
        for (b, byte) in code.iter_mut().enumerate() {
            for bit in 0..8 {
                let d = b * 8 + bit;
                let on = if d < DIM {
                    f[d] > 0.0
                } else {
                    rng.gen_bool(0.5)
                };
                if on {
                    *byte |= 0x80 >> bit;
                }
            }
        }
        c.keys.push(format!("item-{i:05} \"quoted\" \\ ] / ü"));
        c.codes.push(code);
        c.floats.push(f);
    }
    c
}

fn items(c: &Catalog) -> Vec<NewItem<'_>> {
    (0..c.keys.len())
        .map(|i| NewItem {
            key: &c.keys[i],
            path: &c.keys[i],
            code: &c.codes[i],
            floats: Some(&c.floats[i]),
        })
        .collect()
}

fn embedded(dir: &std::path::Path, c: &Catalog) -> Embedded {
    let mut index = Index::create(
        dir,
        IndexConfig {
            bits: BITS,
            floats: Some((DIM, FloatKind::F32)),
            keys: true,
        },
    )
    .unwrap();
    index.add(&items(c)).unwrap();
    Embedded::new(index, true)
}

fn distances(hits: &[unisight_backend::Hit]) -> Vec<u32> {
    hits.iter().map(|h| h.distance).collect()
}

#[test]
fn milvus_backend_against_a_real_server() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(mut server) = LocalServer::start_or_skip(&tmp.path().join("milvus"), PORT, 9091)
    else {
        return;
    };
    let shape = Shape {
        bits: BITS,
        float_dim: Some(DIM),
    };
    let c = catalog(ITEMS, 7);
    let local = embedded(&tmp.path().join("index"), &c);
    let queries = catalog(40, 8);

    // 1. the same top-k distances as the embedded index: BIN_FLAT, and BIN_IVF_FLAT probing
    //    every list; float re-ranking gives the same order where the shortlist is not cut in a
    //    tie
    let flat_url: MilvusUrl = server.url("codes_flat").parse().unwrap();
    let flat = Milvus::create(&flat_url, shape, ServerIndex::Flat).unwrap();
    let started = Instant::now();
    flat.add(&items(&c)).unwrap();
    eprintln!(
        "inserted {ITEMS} items in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(flat.count().unwrap(), ITEMS);
    let ivf_url: MilvusUrl = server.url("codes_ivf").parse().unwrap();
    let ivf = Milvus::create(&ivf_url, shape, ServerIndex::Ivf { nlist: 16 }).unwrap();
    ivf.add(&items(&c)).unwrap();
    // asymmetric scoring takes a float query of the code width
    let wide: Vec<Vec<f32>> = (0..queries.keys.len())
        .map(|i| wide_query(&queries, i))
        .collect();
    for mode in [Rerank::None, Rerank::Float, Rerank::Asymmetric] {
        let batch: Vec<Query<'_>> = (0..queries.keys.len())
            .map(|i| Query {
                code: &queries.codes[i],
                float: Some(match mode {
                    Rerank::Asymmetric => &wide[i],
                    _ => &queries.floats[i],
                }),
                k: 10,
                mode,
            })
            .collect();
        compare(&local, &[&flat, &ivf], &batch);
    }

    // 2. get by key: code and floats come back exactly
    let got = flat.get(&c.keys[17]).unwrap().expect("stored");
    assert_eq!(got.code, c.codes[17]);
    assert_eq!(got.floats.as_deref(), Some(&c.floats[17][..]));
    assert_eq!(got.path, c.keys[17]);
    assert!(flat.get("no such key").unwrap().is_none());

    // 3. add and remove, then a restart keeps every acknowledged item and none removed
    let extra = catalog(5, 9);
    let renamed: Vec<String> = (0..5).map(|i| format!("added-{i}")).collect();
    let extra_items: Vec<NewItem<'_>> = (0..5)
        .map(|i| NewItem {
            key: &renamed[i],
            path: "added.jpg",
            code: &extra.codes[i],
            floats: Some(&extra.floats[i]),
        })
        .collect();
    flat.add(&extra_items).unwrap();
    assert!(matches!(
        flat.add(&extra_items[..1]),
        Err(Error::DuplicateKey(k)) if k == "added-0"
    ));
    let removed: Vec<&str> = c.keys[..10].iter().map(String::as_str).collect();
    assert_eq!(flat.remove(&removed).unwrap(), 10);
    assert_eq!(flat.remove(&removed).unwrap(), 0, "removed twice");
    // the new item is found by its own code at distance 0, a removed one is not found
    let own = Query {
        code: &extra.codes[2],
        float: None,
        k: 1,
        mode: Rerank::None,
    };
    assert_eq!(flat.search(&[own], 4, 1).unwrap()[0][0].key, "added-2");
    let gone = Query {
        code: &c.codes[3],
        float: None,
        k: 3,
        mode: Rerank::None,
    };
    assert!(flat.search(&[gone], 4, 1).unwrap()[0]
        .iter()
        .all(|h| h.key != c.keys[3]));
    let expected = ITEMS + 5 - 10;
    assert_eq!(flat.count().unwrap(), expected);

    // the server goes down: requests fail as unavailable within the deadline, never hang
    server.stop();
    let down = Instant::now();
    let e = flat.count().unwrap_err();
    assert!(matches!(e, Error::Unavailable(_)), "{e}");
    assert!(
        down.elapsed() < Duration::from_secs(15),
        "{:?}",
        down.elapsed()
    );
    let e = flat.search(&[own], 4, 1).unwrap_err();
    assert!(matches!(e, Error::Unavailable(_)), "{e}");
    server.restart().unwrap();
    // the same backend recovers once the server is back (the collection reloads on start)
    let recovered = wait_for(|| flat.count().ok()).expect("the backend recovers");
    assert_eq!(recovered, expected);
    let reopened = Milvus::open(&flat_url, false).unwrap();
    assert_eq!(reopened.count().unwrap(), expected);
    assert!(reopened.get(&c.keys[3]).unwrap().is_none());
    assert_eq!(
        reopened.get("added-4").unwrap().unwrap().code,
        extra.codes[4]
    );
    assert!(matches!(
        reopened.remove(&["added-4"]),
        Err(Error::ReadOnly)
    ));

    // 4. what is refused, and how
    let e = flat
        .search(
            &[Query {
                code: &[0; 8],
                float: None,
                k: 1,
                mode: Rerank::None,
            }],
            4,
            1,
        )
        .unwrap_err();
    assert!(
        matches!(e, Error::InvalidInput(ref m) if m.contains("8 bytes")),
        "{e}"
    );
    let other_width: MilvusUrl = server.url("codes_64").parse().unwrap();
    Milvus::create(
        &other_width,
        Shape {
            bits: 64,
            float_dim: None,
        },
        ServerIndex::Flat,
    )
    .unwrap();
    let e = Milvus::create(&other_width, shape, ServerIndex::Flat)
        .err()
        .unwrap();
    assert!(
        matches!(e, Error::Incompatible(ref m) if m.contains("exists")),
        "{e}"
    );
    let narrow = Milvus::open(&other_width, true).unwrap();
    assert_eq!(
        narrow.shape(),
        Shape {
            bits: 64,
            float_dim: None
        }
    );
    let e = narrow
        .search(
            &[Query {
                code: &c.codes[0],
                float: None,
                k: 1,
                mode: Rerank::None,
            }],
            4,
            1,
        )
        .unwrap_err();
    assert!(matches!(e, Error::InvalidInput(_)), "{e}");
    let missing: MilvusUrl = server.url("no_such_collection").parse().unwrap();
    let e = Milvus::open(&missing, false).err().unwrap();
    assert!(
        matches!(e, Error::Incompatible(ref m) if m.contains("no such collection")),
        "{e}"
    );
    let nobody: MilvusUrl = "milvus://127.0.0.1:1/c?timeout_s=2".parse().unwrap();
    let e = Milvus::open(&nobody, false).err().unwrap();
    assert!(matches!(e, Error::Unavailable(_)), "{e}");

    // 5. an alias moves from one collection to another in one step
    Milvus::point_alias(&flat_url, "catalog", "codes_flat").unwrap();
    let alias: MilvusUrl = server.url("catalog").parse().unwrap();
    assert_eq!(
        Milvus::open(&alias, false).unwrap().count().unwrap(),
        expected
    );
    Milvus::point_alias(&flat_url, "catalog", "codes_ivf").unwrap();
    assert_eq!(Milvus::open(&alias, false).unwrap().count().unwrap(), ITEMS);
    assert!(Milvus::drop_collection(&other_width).unwrap());
    assert!(!Milvus::drop_collection(&other_width).unwrap());
}

/// A float query of the code width for asymmetric re-ranking.
fn wide_query(c: &Catalog, i: usize) -> Vec<f32> {
    (0..BITS)
        .map(|d| {
            if d < DIM {
                c.floats[i][d]
            } else {
                ((d * 31 + i) % 7) as f32 / 7.0 - 0.5
            }
        })
        .collect()
}

/// Every backend answers each query with the embedded index's distances (and, where re-ranked
/// and the shortlist's last distance is not tied with the next, the same keys in order).
fn compare(local: &Embedded, others: &[&Milvus], batch: &[Query<'_>]) {
    const FACTOR: usize = 4;
    let expected = local.search(batch, FACTOR, 1).unwrap();
    let plain: Vec<Query<'_>> = batch
        .iter()
        .map(|q| Query {
            k: q.k * FACTOR + 1,
            mode: Rerank::None,
            ..*q
        })
        .collect();
    let shortlists = local.search(&plain, FACTOR, 1).unwrap();
    for backend in others {
        let got = backend.search(batch, FACTOR, 1).unwrap();
        assert_eq!(got.len(), expected.len());
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            if batch[i].mode == Rerank::None {
                assert_eq!(distances(g), distances(e), "query {i} on {}", backend.url());
                continue;
            }
            let s = &shortlists[i];
            if s[s.len() - 2].distance == s[s.len() - 1].distance {
                continue; // a tie at the cut: either shortlist is right
            }
            let keys =
                |h: &[unisight_backend::Hit]| h.iter().map(|h| h.key.clone()).collect::<Vec<_>>();
            assert_eq!(
                keys(g),
                keys(e),
                "query {i} ({:?}) on {}",
                batch[i].mode,
                backend.url()
            );
        }
    }
}

fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        if let Some(v) = f() {
            return Some(v);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    None
}
