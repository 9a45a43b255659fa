//! Writes a synthetic labelled embedding folder (the layout `unisight embed` writes), for
//! measuring evaluation at catalog scale where no real data set is that large:
//!
//!     cargo run --release -p unisight-eval --example synthetic_set -- OUT N D CLASSES SEED
//!
//! Items are class centres (shared by every folder made with the same D, CLASSES and the
//! centre seed 0) plus Gaussian noise, L2-normalised; codes are their sign bits; labels are
//! the class ids. SEED draws the items, so a query folder and a gallery folder differ.

use std::path::PathBuf;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use unisight_core::artifacts::{
    write_items, write_npy, ItemRecord, CODES_FILE, EMBEDDINGS_FILE, ITEMS_FILE,
};
use unisight_core::code::{code_bytes, pack_signs_into};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: synthetic_set OUT N D CLASSES SEED";
    let [out, n, dim, classes, seed] = args.as_slice() else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let parse = |s: &str| -> usize {
        s.parse().unwrap_or_else(|_| {
            eprintln!("{usage}: `{s}` is not a number");
            std::process::exit(2)
        })
    };
    let (n, dim, classes, seed) = (
        parse(n),
        parse(dim),
        parse(classes).max(1),
        parse(seed) as u64,
    );
    let out = PathBuf::from(out);
    std::fs::create_dir_all(&out).expect("create the output folder");
    let normal = Normal::new(0.0f32, 1.0).expect("unit normal");
    let mut centre_rng = ChaCha8Rng::seed_from_u64(0);
    let centres: Vec<f32> = (0..classes * dim)
        .map(|_| normal.sample(&mut centre_rng))
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let cb = code_bytes(dim);
    let mut embeddings = vec![0.0f32; n * dim];
    let mut codes = vec![0u8; n * cb];
    let mut items = Vec::with_capacity(n);
    for i in 0..n {
        let class = i % classes;
        let row = &mut embeddings[i * dim..(i + 1) * dim];
        for (d, x) in row.iter_mut().enumerate() {
            *x = centres[class * dim + d] + 1.2 * normal.sample(&mut rng);
        }
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        row.iter_mut().for_each(|x| *x /= norm);
        pack_signs_into(row, &mut codes[i * cb..(i + 1) * cb]);
        items.push(ItemRecord {
            id: format!("s{seed}-{i}"),
            path: format!("s{seed}-{i}.jpg"),
            label: Some(format!("c{class}")),
        });
    }
    write_npy(&out.join(EMBEDDINGS_FILE), n, dim, &embeddings).expect("write embeddings");
    write_npy(&out.join(CODES_FILE), n, cb, &codes).expect("write codes");
    write_items(&out.join(ITEMS_FILE), &items).expect("write items");
    eprintln!(
        "wrote {n} items of D = {dim} in {classes} classes to {}",
        out.display()
    );
}
