//! Integration tests of the index directory: [`lifecycle`] (add, remove, search, merge, build),
//! [`files`] (damaged files and frozen fixtures of every format) and [`crash`] (a writer killed at
//! random).

mod crash;
mod files;
mod lifecycle;

use std::path::Path;

use rand::{Rng, SeedableRng};
use unisight_index::{FloatKind, Index, IndexConfig, NewItem};

fn code_for(i: u64) -> [u8; 32] {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(i);
    rng.gen()
}

fn floats_for(i: u64) -> Vec<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(i ^ 0xabc);
    (0..8).map(|_| rng.gen_range(-1.0..1.0)).collect()
}

fn add_range(index: &mut Index, range: std::ops::Range<u64>) -> Vec<u64> {
    let keys: Vec<String> = range.clone().map(|i| format!("item-{i}")).collect();
    let codes: Vec<[u8; 32]> = range.clone().map(code_for).collect();
    let floats: Vec<Vec<f32>> = range.clone().map(floats_for).collect();
    let items: Vec<NewItem> = (0..keys.len())
        .map(|j| NewItem {
            key: &keys[j],
            path: "p.jpg",
            code: &codes[j],
            floats: Some(&floats[j]),
        })
        .collect();
    index.add(&items).unwrap()
}

/// A new index of 256-bit codes with 8 f32 floats and keys, the rows [`add_range`] writes.
fn create_index(dir: &Path) -> Index {
    let config = IndexConfig {
        bits: 256,
        floats: Some((8, FloatKind::F32)),
        keys: true,
    };
    Index::create(dir, config).unwrap()
}
