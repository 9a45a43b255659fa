//! Seeds for the cargo-fuzz targets of `fuzz/`: builds two small real indexes with
//! the library (one with keys, f16 floats, two segments and a tombstone; one without keys) and
//! writes their segment files (also as odd-first-byte bodies, for which the `segment` target
//! adds a valid footer) and the manifest as corpus inputs. The first index also stays in
//! OUT/fixture, where the `index_dir` target finds the segments its manifests name.
//!
//! usage: fuzz_seeds OUT   (writes OUT/segment/*, OUT/index_dir/*, OUT/fixture/)

use std::path::{Path, PathBuf};

use unisight_index::{FloatKind, Index, IndexConfig, NewItem};

/// Builds the fixture index in `dir` (which must not hold one).
fn build(dir: &Path) {
    let config = IndexConfig {
        bits: 128,
        floats: Some((4, FloatKind::F16)),
        keys: true,
    };
    let mut index = Index::create(dir, config).expect("create the fixture index");
    let codes: Vec<[u8; 16]> = (0..6u8).map(|i| [i.wrapping_mul(37); 16]).collect();
    let floats: Vec<[f32; 4]> = (0..6).map(|i| [i as f32, 1.0, -1.0, 0.5]).collect();
    let keys: Vec<String> = (0..6).map(|i| format!("item-{i}")).collect();
    for half in [0..3, 3..6] {
        let items: Vec<NewItem> = half
            .map(|i| NewItem {
                key: &keys[i],
                path: "photos/p.jpg",
                code: &codes[i],
                floats: Some(&floats[i]),
            })
            .collect();
        index.add(&items).expect("add to the fixture index");
    }
    index.remove(&[1]).expect("remove from the fixture index");
}

/// Builds a key-less one-segment index in `dir`.
fn build_keyless(dir: &Path) {
    let config = IndexConfig {
        bits: 64,
        floats: None,
        keys: false,
    };
    let mut index = Index::create(dir, config).expect("create the key-less fixture");
    let codes: Vec<[u8; 8]> = (0..4u8).map(|i| [i; 8]).collect();
    let items: Vec<NewItem> = codes
        .iter()
        .map(|c| NewItem {
            key: "",
            path: "",
            code: c,
            floats: None,
        })
        .collect();
    index.add(&items).expect("add to the key-less fixture");
}

fn main() {
    let out = PathBuf::from(std::env::args().nth(1).expect("usage: fuzz_seeds OUT"));
    let (segments, manifests) = (out.join("segment"), out.join("index_dir"));
    std::fs::create_dir_all(&segments).expect("create the segment corpus");
    std::fs::create_dir_all(&manifests).expect("create the index_dir corpus");
    let fixture = out.join("fixture");
    if fixture.exists() {
        std::fs::remove_dir_all(&fixture).expect("remove the old fixture");
    }
    build(&fixture);
    let keyless = tempfile::tempdir().expect("temp dir");
    build_keyless(keyless.path());
    let mut n = 0;
    for (name, dir) in [("keys", fixture.as_path()), ("keyless", keyless.path())] {
        for entry in std::fs::read_dir(dir).expect("read a fixture") {
            let path = entry.expect("dir entry").path();
            let file = path
                .file_name()
                .expect("a file name")
                .to_string_lossy()
                .to_string();
            let bytes = std::fs::read(&path).expect("read a fixture file");
            if file.ends_with(".usg") {
                write(&segments.join(format!("{name}-{file}")), &bytes);
                let mut body = vec![1u8];
                body.extend_from_slice(&bytes[..bytes.len() - 24]);
                write(&segments.join(format!("{name}-{file}.body")), &body);
                n += 2;
            } else if file == "MANIFEST.json" {
                write(&manifests.join(format!("{name}.json")), &bytes);
                n += 1;
            }
        }
    }
    println!(
        "wrote {n} seeds and the fixture index under {}",
        out.display()
    );
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}
