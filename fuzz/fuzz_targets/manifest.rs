//! Any bytes as an embedding manifest: JSON Lines when the first byte is even, CSV when odd
//! (the rest is the file). The manifest's folder holds two images, a subfolder, and links that
//! lead out of it (to a file and to a folder). Listing must refuse or give inputs whose every
//! file lies inside the folder, links resolved, with unique ids.
#![no_main]

mod scratch;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use unisight_data::sources::list_inputs;

/// The manifest's folder, made once: `a.jpg`, `sub/b.png`, `out.jpg` -> a file outside,
/// `outdir` -> a folder outside.
fn root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let root = scratch::dir().join("manifest-root");
        let outside = scratch::dir().join("outside");
        std::fs::create_dir_all(root.join("sub")).expect("create the root");
        std::fs::create_dir_all(&outside).expect("create the outside folder");
        std::fs::write(root.join("a.jpg"), b"a").expect("write a.jpg");
        std::fs::write(root.join("sub/b.png"), b"b").expect("write b.png");
        std::fs::write(outside.join("secret.jpg"), b"s").expect("write the outside file");
        for (link, target) in [("out.jpg", outside.join("secret.jpg")), ("outdir", outside)] {
            let _ = std::fs::remove_file(root.join(link));
            std::os::unix::fs::symlink(target, root.join(link)).expect("make a link");
        }
        root.canonicalize().expect("the root exists")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((first, body)) = data.split_first() else {
        return;
    };
    let root = root();
    let name = if first % 2 == 0 { "list.jsonl" } else { "list.csv" };
    let manifest = root.join(name);
    std::fs::write(&manifest, body).expect("write the manifest");
    if let Ok(inputs) = list_inputs(&manifest, None) {
        let mut ids = HashSet::new();
        for input in &inputs {
            assert!(ids.insert(input.id.clone()), "duplicate id {:?}", input.id);
            // the real location of what exists of the path lies inside the root
            let mut existing = input.file.as_path();
            while !existing.exists() {
                existing = existing.parent().expect("the root exists");
            }
            let real = existing.canonicalize().expect("an existing path");
            assert!(real.starts_with(root), "{:?} escapes to {real:?}", input.path);
        }
    }
});
