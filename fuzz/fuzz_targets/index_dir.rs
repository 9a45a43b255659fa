//! Any bytes as `MANIFEST.json` of a real index (two segments, a tombstone; built by
//! `cargo run -p unisight-index --example fuzz_seeds -- corpus`, found in `corpus/fixture` or
//! `$UNISIGHT_FUZZ_FIXTURE`): opening must refuse or give an index whose every item, code and
//! search answers without a crash.
#![no_main]

mod scratch;

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use unisight_index::{Index, ScanOptions};

/// A private copy of the fixture's segment and tombstone files, whose manifest the target
/// overwrites at will.
fn fixture_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let source = std::env::var_os("UNISIGHT_FUZZ_FIXTURE")
            .map_or_else(|| PathBuf::from("corpus/fixture"), PathBuf::from);
        let dir = scratch::dir().join("index");
        std::fs::create_dir_all(&dir).expect("create the fuzz index folder");
        let entries = std::fs::read_dir(&source).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run scripts/fuzz.sh, which makes it)",
                source.display()
            )
        });
        for entry in entries {
            let path = entry.expect("dir entry").path();
            let name = path.file_name().expect("a file name");
            if name != "LOCK" && name != "MANIFEST.json" {
                std::fs::copy(&path, dir.join(name)).expect("copy a fixture file");
            }
        }
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let dir = fixture_dir();
    std::fs::write(dir.join("MANIFEST.json"), data).expect("write the manifest");
    if let Ok(index) = Index::open(dir) {
        let layout = index.layout();
        let ids: Vec<u64> = index.items().filter_map(|i| i.ok()).map(|i| i.id).collect();
        for &id in &ids {
            let _ = index.code(id);
            let _ = index.floats(id);
            let _ = index.item(id);
        }
        let query = vec![0u8; layout.code_bytes()];
        let _ = index.search(&query, 3, &ScanOptions::default());
        let _ = index.stats();
    }
});
