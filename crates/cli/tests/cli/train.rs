//! `unisight train` killed and resumed; `unisight sweep` over a grid, ranked by validation.

use super::*;

/// `unisight train` killed (SIGKILL) after its first checkpoints resumes from the last good one
/// and ends with exactly the model of an uninterrupted run.
#[test]
fn killed_training_resumes_to_the_same_model() {
    let Some(grocery) = grocery() else {
        return unisight_core::testing::skip_for_lack_of_data("no ../shared/data");
    };
    let tmp = tempfile::tempdir().unwrap();
    photo_manifest(&grocery, tmp.path(), 8);
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

/// `unisight sweep` trains every point of a grid, ranks them by validation score, and a second
/// invocation trains nothing again; a grid key the task file does not take fails before any run.
#[test]
fn sweep_ranks_a_grid_by_validation_and_resumes() {
    let Some(grocery) = grocery() else {
        return unisight_core::testing::skip_for_lack_of_data("no ../shared/data");
    };
    let tmp = tempfile::tempdir().unwrap();
    let rows = photo_manifest(&grocery, tmp.path(), 6);
    std::fs::write(tmp.path().join("val.jsonl"), rows.join("\n")).unwrap();
    let config = tmp.path().join("tasks.toml");
    std::fs::write(
        &config,
        "seed = 4\n[model]\narchitecture = \"lite0\"\ndim = 64\ntrain_from = \"head\"\n\
         [train]\nbatch_size = 6\nsteps = 4\nviews = 2\nvalidate_every = 2\n\
         [datasets.photos]\nkind = \"manifest\"\nroot = \".\"\n\
         [[tasks]]\nname = \"products\"\nsources = [\"photos\"]\nlabel = \"label\"\n\
         [tasks.eval]\nqueries = \"photos:val\"\ngallery = \"self\"\nvalidation = \"photos:val\"\nk = [1]\n",
    )
    .unwrap();
    let grid = tmp.path().join("grid.toml");
    std::fs::write(&grid, "[grid]\n\"train.lr\" = [0.01, 0.0001]\n").unwrap();
    let out = tmp.path().join("sweep");
    let sweep = |grid: &Path| {
        let mut c = unisight();
        c.arg("sweep")
            .arg("--config")
            .arg(&config)
            .arg("--grid")
            .arg(grid)
            .arg("--out")
            .arg(&out)
            .arg("--cache-dir")
            .arg(tmp.path().join("cache"))
            .arg("--quiet");
        c
    };
    let table = ok(sweep(&grid).output().unwrap());
    let rows: Vec<&str> = table
        .lines()
        .filter(|l| l.starts_with("| train.lr"))
        .collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert!(rows[0].contains("**best on validation**"), "{table}");
    let written_table = std::fs::read_to_string(out.join("sweep.md")).unwrap();
    assert!(table.starts_with(&written_table), "{table}");
    let runs: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("sweep.json")).unwrap()).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 2);
    let report = out.join("train.lr=0.01-s4.run/report.json");
    let written = std::fs::metadata(&report).unwrap().modified().unwrap();
    assert!(out.join("train.lr=0.01-s4.safetensors").is_file());
    // again: nothing trains, the same table
    assert_eq!(ok(sweep(&grid).output().unwrap()), table);
    assert_eq!(
        std::fs::metadata(&report).unwrap().modified().unwrap(),
        written
    );
    // a key the task file does not have: refused up front, naming it
    std::fs::write(&grid, "[grid]\n\"train.learning_rate\" = [0.1]\n").unwrap();
    let refused = sweep(&grid).output().unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("learning_rate"), "{err}");
}

/// `per_class` store photos of each of 3 products copied into `dir`, listed in
/// `dir/train.jsonl` (labels `p0`-`p2`); returns the manifest's rows.
fn photo_manifest(grocery: &Path, dir: &Path, per_class: usize) -> Vec<String> {
    let list = std::fs::read_to_string(grocery.join("train.txt")).unwrap();
    let mut rows = Vec::new();
    for class in ["0", "1", "2"] {
        let lines = list
            .lines()
            .filter(|l| l.split(',').nth(1).map(str::trim) == Some(class));
        for line in lines.take(per_class) {
            let rel = line.split(',').next().unwrap();
            let name = rel.replace('/', "_");
            std::fs::copy(grocery.join(rel), dir.join(&name)).unwrap();
            rows.push(format!("{{\"path\": \"{name}\", \"label\": \"p{class}\"}}"));
        }
    }
    std::fs::write(dir.join("train.jsonl"), rows.join("\n")).unwrap();
    rows
}
