//! End-to-end tests of the `unisight` binary on real photos from ../shared/data.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn unisight() -> Command {
    Command::new(env!("CARGO_BIN_EXE_unisight"))
}

fn grocery() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/grocery-store/dataset");
    dir.is_dir().then_some(dir)
}

/// Asserts success and returns stdout followed by stderr.
fn ok(out: Output) -> String {
    stdout_of(&out) + &String::from_utf8_lossy(&out.stderr)
}

fn stdout_of(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Copies the first `n` test photos listed in test.txt into `dir`, returning their names.
fn copy_photos(grocery: &Path, dir: &Path, n: usize) -> Vec<String> {
    let list = std::fs::read_to_string(grocery.join("test.txt")).unwrap();
    let mut names = Vec::new();
    for line in list.lines().step_by(7).take(n) {
        let rel = line.split(',').next().unwrap().trim();
        let name = rel.replace('/', "_");
        std::fs::copy(grocery.join(rel), dir.join(&name)).unwrap();
        names.push(name);
    }
    names
}

#[test]
fn embed_index_search_with_bad_images() {
    let Some(grocery) = grocery() else {
        return eprintln!("skipped: no ../shared/data");
    };
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    std::fs::create_dir(&photos).unwrap();
    let names = copy_photos(&grocery, &photos, 12);
    std::fs::write(
        photos.join("corrupt.jpg"),
        b"\xff\xd8\xff\xe0 not really a jpeg",
    )
    .unwrap();
    std::fs::write(photos.join("empty.png"), b"").unwrap();
    let good = std::fs::read(photos.join(&names[0])).unwrap();
    std::fs::write(photos.join("truncated.jpg"), &good[..good.len() / 3]).unwrap();
    std::fs::write(photos.join("notes.txt"), b"ignored").unwrap();
    let out = tmp.path().join("emb");
    let log = ok(unisight()
        .args(["embed", "--input"])
        .arg(&photos)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap());
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["embedded"], 12, "{log}");
    assert_eq!(meta["failed"], 3, "{log}");
    assert!(
        log.contains("skipped corrupt.jpg") && log.contains("skipped empty.png: empty file"),
        "{log}"
    );
    assert!(!out.join(".partial").exists());

    let index = tmp.path().join("idx");
    ok(unisight()
        .args(["index", "build", "--from"])
        .arg(&out)
        .arg("--out")
        .arg(&index)
        .output()
        .unwrap());
    let key = &names[3];
    let json = stdout_of(
        &unisight()
            .args(["search", "--index"])
            .arg(&index)
            .args(["--id", key, "-k", "3", "--json"])
            .output()
            .unwrap(),
    );
    let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(rows[0]["key"], key.as_str());
    assert_eq!(rows[0]["distance"], 0);
    // re-ranked search by image finds the same photo first
    let text = stdout_of(
        &unisight()
            .args(["search", "--index"])
            .arg(&index)
            .arg("--image")
            .arg(photos.join(key))
            .args(["-k", "2", "--rerank", "4"])
            .output()
            .unwrap(),
    );
    assert!(
        text.lines().next().unwrap().contains(key.as_str()),
        "{text}"
    );

    ok(unisight()
        .args(["index", "remove", "--index"])
        .arg(&index)
        .arg(key)
        .output()
        .unwrap());
    let out = unisight()
        .args(["search", "--index"])
        .arg(&index)
        .args(["--id", key])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no item with key"));
    let stats = ok(unisight()
        .args(["index", "stats", "--index"])
        .arg(&index)
        .output()
        .unwrap());
    assert!(stats.contains("\"items\": 11"), "{stats}");
}

#[test]
fn killed_embed_resumes_and_never_looks_complete() {
    let Some(grocery) = grocery() else {
        return eprintln!("skipped: no ../shared/data");
    };
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    std::fs::create_dir(&photos).unwrap();
    copy_photos(&grocery, &photos, 160);
    let out = tmp.path().join("emb");
    let args = |c: &mut Command| {
        c.args(["embed", "--batch", "2", "--threads", "1", "--input"])
            .arg(&photos)
            .arg("--out")
            .arg(&out);
    };
    let mut cmd = unisight();
    args(&mut cmd);
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let first_chunk = out.join(".partial/chunk-000000.json");
    let start = Instant::now();
    while !first_chunk.exists() && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(first_chunk.exists(), "no chunk committed before the kill");
    assert!(
        !out.join("meta.json").exists(),
        "a killed run must not look complete"
    );
    let mut cmd = unisight();
    args(&mut cmd);
    let log = ok(cmd.output().unwrap());
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["embedded"], 160, "{log}");
    assert!(meta["resumed_chunks"].as_u64().unwrap() >= 1, "{log}");
    assert!(log.contains("resuming"), "{log}");
}

/// `unisight train` killed (SIGKILL) after its first checkpoints resumes from the last good one
/// and ends with exactly the model of an uninterrupted run.
#[test]
fn killed_training_resumes_to_the_same_model() {
    let Some(grocery) = grocery() else {
        return eprintln!("skipped: no ../shared/data");
    };
    let tmp = tempfile::tempdir().unwrap();
    // 24 store photos of 3 products as a JSONL manifest
    let list = std::fs::read_to_string(grocery.join("train.txt")).unwrap();
    let mut rows = Vec::new();
    for class in ["0", "1", "2"] {
        let lines = list
            .lines()
            .filter(|l| l.split(',').nth(1).map(str::trim) == Some(class));
        for line in lines.take(8) {
            let rel = line.split(',').next().unwrap();
            let name = rel.replace('/', "_");
            std::fs::copy(grocery.join(rel), tmp.path().join(&name)).unwrap();
            rows.push(format!("{{\"path\": \"{name}\", \"label\": \"p{class}\"}}"));
        }
    }
    std::fs::write(tmp.path().join("train.jsonl"), rows.join("\n")).unwrap();
    let config = tmp.path().join("tasks.toml");
    std::fs::write(
        &config,
        "seed = 4\n[model]\narchitecture = \"lite0\"\ndim = 64\ntrain_from = \"head\"\n\
         [train]\nbatch_size = 6\nsteps = 200\nviews = 2\ncheckpoint_every = 3\nvalidate_every = 0\n\
         [datasets.photos]\nkind = \"manifest\"\nroot = \".\"\n\
         [[tasks]]\nname = \"products\"\nsources = [\"photos\"]\nlabel = \"label\"\n",
    )
    .unwrap();
    let train = |name: &str| {
        let mut c = unisight();
        c.arg("train")
            .arg("--config")
            .arg(&config)
            .arg("--out")
            .arg(tmp.path().join(format!("{name}.safetensors")))
            .arg("--cache-dir")
            .arg(tmp.path().join("cache"))
            .arg("--quiet");
        c
    };
    ok(train("whole").output().unwrap());

    let mut child = train("killed")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let latest = tmp.path().join("killed.safetensors.run/checkpoints/LATEST");
    let start = Instant::now();
    while !latest.exists() && start.elapsed() < Duration::from_secs(300) {
        std::thread::sleep(Duration::from_millis(5));
    }
    // let it get a few checkpoints further, then kill it without warning
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(latest.exists(), "no checkpoint before the kill");
    let killed_model = tmp.path().join("killed.safetensors");
    if !killed_model.exists() {
        let log = ok(train("killed").output().unwrap());
        assert!(log.contains("trained 200 steps"), "{log}");
        assert!(!log.contains("(200 in this run"), "it resumed: {log}");
    }
    // (compared tensor by tensor: safetensors metadata order is not fixed)
    let (_, whole) =
        unisight_model::model_file::read(&tmp.path().join("whole.safetensors")).unwrap();
    let (_, resumed) = unisight_model::model_file::read(&killed_model).unwrap();
    assert_eq!(whole.tensors.len(), resumed.tensors.len());
    for (name, t) in &whole.tensors {
        assert!(
            t == &resumed.tensors[name],
            "{name} differs after the kill and resume"
        );
    }
}
