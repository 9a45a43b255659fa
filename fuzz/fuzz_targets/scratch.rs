//! A scratch folder per fuzzing process, where a target writes each input as the file its
//! reader opens (in memory where /dev/shm exists).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The folder, created on first use.
pub fn dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("unisight-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the scratch folder");
        dir
    })
}

/// Writes `bytes` as `name` in the scratch folder and returns its path.
pub fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir().join(name);
    std::fs::write(&path, bytes).expect("write a scratch file");
    path
}
