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

/// Copies the first `n` test photos listed in test.txt into `dir` (created if missing),
/// returning their names.
fn copy_photos(grocery: &Path, dir: &Path, n: usize) -> Vec<String> {
    std::fs::create_dir_all(dir).unwrap();
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
        return unisight_core::testing::skip_for_lack_of_data("no ../shared/data");
    };
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
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
    // exact search equals brute force on these real codes, for every query, k and thread count
    let set = unisight_core::artifacts::EmbeddingSet::load(&out).unwrap();
    let opened = unisight_index::Index::open(&index).unwrap();
    let words: Vec<Vec<u64>> = (0..set.len())
        .map(|i| {
            set.code(i)
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
                .collect()
        })
        .collect();
    let all_codes: Vec<u8> = (0..set.len()).flat_map(|i| set.code(i).to_vec()).collect();
    for threads in [1, 2] {
        let options = unisight_index::ScanOptions {
            threads,
            ..Default::default()
        };
        for k in [1, 4, 12] {
            let found = opened.search(&all_codes, k, &options).unwrap();
            for (q, hits) in found.iter().enumerate() {
                let mut brute: Vec<(u32, u64)> = (0..set.len())
                    .map(|i| {
                        (
                            unisight_index::kernels::hamming(&words[q], &words[i]),
                            i as u64,
                        )
                    })
                    .collect();
                brute.sort();
                brute.truncate(k);
                let got: Vec<(u32, u64)> = hits.iter().map(|h| (h.distance, h.id)).collect();
                assert_eq!(got, brute, "query {q}, k {k}, {threads} threads");
            }
        }
    }
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

    // without keys an item's key is its row in the embedding folder
    let bare = tmp.path().join("bare");
    ok(unisight()
        .args(["index", "build", "--no-keys", "--floats", "none", "--from"])
        .arg(tmp.path().join("emb"))
        .arg("--out")
        .arg(&bare)
        .output()
        .unwrap());
    let json = stdout_of(
        &unisight()
            .args(["search", "--index"])
            .arg(&bare)
            .args(["--id", "3", "-k", "1", "--json"])
            .output()
            .unwrap(),
    );
    let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(rows[0]["key"], "3", "{json}");
    assert_eq!(rows[0]["distance"], 0);
    let stats = ok(unisight()
        .args(["index", "stats", "--index"])
        .arg(&bare)
        .output()
        .unwrap());
    // 12 items: header 64 + 12 x (code + 8-byte id) + footer 24, in one segment
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    let code_bytes = stats["bits"].as_u64().unwrap() / 8;
    assert_eq!(
        stats["file_bytes"],
        64 + 12 * (code_bytes + 8) + 24,
        "{stats}"
    );
}

#[test]
fn killed_embed_resumes_and_never_looks_complete() {
    let Some(grocery) = grocery() else {
        return unisight_core::testing::skip_for_lack_of_data("no ../shared/data");
    };
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
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
        return unisight_core::testing::skip_for_lack_of_data("no ../shared/data");
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

/// A manifest data set of real photos: `query.jsonl` and `gallery.jsonl` with the fine label,
/// the photo's burst (its product folder) as domain, plus one corrupt and one unlabelled row.
fn manifest_dataset(grocery: &Path, root: &Path) {
    let list = std::fs::read_to_string(grocery.join("test.txt")).unwrap();
    let classes = ["Banana", "Kiwi", "Oat-Milk", "Yoghurt"];
    let (mut query, mut gallery) = (String::new(), String::new());
    let mut seen = std::collections::HashMap::new();
    for line in list.lines() {
        let rel = line.split(',').next().unwrap().trim();
        let Some(class) = classes.iter().find(|c| rel.contains(&format!("/{c}/"))) else {
            continue;
        };
        let n = seen.entry(*class).or_insert(0);
        *n += 1;
        if *n > 8 {
            continue;
        }
        let name = rel.replace('/', "_");
        std::fs::copy(grocery.join(rel), root.join(&name)).unwrap();
        let row = format!(
            "{{\"path\": \"{name}\", \"label\": \"{class}\", \"domain\": \"{class}-burst\"}}\n"
        );
        if *n % 2 == 0 {
            gallery.push_str(&row);
        } else {
            query.push_str(&row);
        }
    }
    std::fs::write(root.join("corrupt.jpg"), b"\xff\xd8\xff\xe0 not a jpeg").unwrap();
    query.push_str("{\"path\": \"corrupt.jpg\", \"label\": \"Kiwi\"}\n");
    let first: serde_json::Value = serde_json::from_str(query.lines().next().unwrap()).unwrap();
    query.push_str(&format!(
        "{{\"path\": {}, \"id\": \"nolabel\"}}\n",
        first["path"]
    ));
    std::fs::write(root.join("query.jsonl"), query).unwrap();
    std::fs::write(root.join("gallery.jsonl"), gallery).unwrap();
}

#[test]
fn eval_reports_and_compares_models_on_real_photos() {
    let Some(grocery) = grocery() else {
        return unisight_core::testing::skip_for_lack_of_data("no ../shared/data");
    };
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let root = t.join("shop");
    std::fs::create_dir(&root).unwrap();
    manifest_dataset(&grocery, &root);
    let task_file = |k: &str, group: &str| {
        format!(
            "[train]\nsteps = 0\n\n[datasets.shop]\nkind = \"manifest\"\nroot = \"shop\"\n\n[[tasks]]\nname = \"product\"\n\
             sources = [\"shop\"]\nlabel = \"label\"\n[tasks.eval]\nqueries = \"shop:query\"\n\
             gallery = \"shop:gallery\"\nk = {k}\n{group}"
        )
    };
    std::fs::write(t.join("tasks.toml"), task_file("[1, 3]", "")).unwrap();
    let model = t.join("m.safetensors");
    ok(unisight()
        .args(["init-model", "--dim", "256", "--out"])
        .arg(&model)
        .output()
        .unwrap());
    let eval = |config: &str, out: &str| {
        unisight()
            .args(["eval", "--model"])
            .arg(&model)
            .arg("--config")
            .arg(t.join(config))
            .arg("--cache-dir")
            .arg(t.join("cache"))
            .arg("--out")
            .arg(t.join(out))
            .output()
            .unwrap()
    };
    let first = ok(eval("tasks.toml", "a"));
    assert!(first.contains("embedding"), "{first}");
    assert!(
        first.contains("1 without the label") && first.contains("1 unreadable"),
        "{first}"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(t.join("a/report.json")).unwrap()).unwrap();
    let task = &report["tasks"][0];
    assert_eq!(task["metrics"]["queries"], 16);
    assert_eq!(task["metrics"]["gallery"], 16);
    let r1 = task["metrics"]["float"]["recall"][0].as_f64().unwrap();
    let r3 = task["metrics"]["float"]["recall"][1].as_f64().unwrap();
    assert!(r1 > 0.25 && r1 <= r3 && r3 <= 1.0, "{r1} {r3}");
    for f in ["report.md", "recall-product.png", "examples.html"] {
        assert!(t.join("a").join(f).exists(), "{f}");
    }
    let html = std::fs::read_to_string(t.join("a/examples.html")).unwrap();
    let thumbs = std::fs::read_dir(t.join("a/thumbs")).unwrap().count();
    assert!(
        html.contains("class=\"ok\"") && thumbs > 10,
        "{thumbs} thumbnails"
    );

    // the second run reuses the cached embeddings; excluding each photo's burst makes it harder
    std::fs::write(
        t.join("grouped.toml"),
        task_file("[1, 3]", "group = \"domain\""),
    )
    .unwrap();
    let second = ok(eval("grouped.toml", "b"));
    assert!(!second.contains("embedding 1"), "{second}");
    let grouped: serde_json::Value =
        serde_json::from_slice(&std::fs::read(t.join("b/report.json")).unwrap()).unwrap();
    // every gallery item of a query's class is in its burst: nothing left to find
    assert_eq!(
        grouped["tasks"][0]["metrics"]["queries_without_match"]
            .as_array()
            .unwrap()
            .len(),
        16
    );

    // k beyond the gallery is a clear error
    std::fs::write(t.join("far.toml"), task_file("[100]", "")).unwrap();
    let far = eval("far.toml", "c");
    assert!(!far.status.success());
    let msg = String::from_utf8_lossy(&far.stderr);
    assert!(msg.contains("k = 100") && msg.contains("16 items"), "{msg}");

    // the same model under two names: no difference, and none reported as significant
    let cmp = ok(unisight()
        .args(["compare", "--out"])
        .arg(t.join("cmp"))
        .arg(format!("base={}", t.join("a").display()))
        .arg(format!("again={0},{0}", t.join("a").display()))
        .output()
        .unwrap());
    assert!(cmp.contains("+0.000 [+0.000, +0.000] n.s."), "{cmp}");
    assert!(t.join("cmp/compare-product.png").exists());
    let bad = unisight()
        .args(["compare", "--out"])
        .arg(t.join("cmp2"))
        .arg(t.join("tasks.toml"))
        .output()
        .unwrap();
    let msg = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && msg.contains("tasks.toml"), "{msg}");

    // from embedding folders: the cached query folder, leave-one-out
    let folders: Vec<PathBuf> = std::fs::read_dir(t.join("cache"))
        .unwrap()
        .flat_map(|m| std::fs::read_dir(m.unwrap().path()).unwrap())
        .map(|e| e.unwrap().path())
        .collect();
    let gallery_dir = folders
        .iter()
        .find(|p| p.ends_with("shop-gallery"))
        .unwrap();
    let out = unisight()
        .args(["eval", "--embeddings"])
        .arg(gallery_dir)
        .args(["--k", "1", "--out"])
        .arg(t.join("d"))
        .output()
        .unwrap();
    // the cache keeps no labels: nothing to evaluate, said plainly
    assert!(!out.status.success());
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(msg.contains("empty"), "{msg}");
    // `unisight embed` of a labelled manifest, evaluated leave-one-out
    ok(unisight()
        .args(["embed", "--model"])
        .arg(&model)
        .arg("--input")
        .arg(root.join("gallery.jsonl"))
        .arg("--out")
        .arg(t.join("emb"))
        .output()
        .unwrap());
    let out = ok(unisight()
        .args(["eval", "--embeddings"])
        .arg(t.join("emb"))
        .args(["--k", "1,2", "--task", "shelf", "--image-root"])
        .arg(&root)
        .arg("--out")
        .arg(t.join("e"))
        .output()
        .unwrap());
    assert!(
        out.contains("## shelf") && out.contains("Recall@2"),
        "{out}"
    );
    assert!(std::fs::read_dir(t.join("e/thumbs")).unwrap().count() > 5);
}

/// A running `unisight serve`, killed on drop.
struct Server {
    child: std::process::Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(args: &[&std::ffi::OsStr], token: Option<&str>) -> Server {
    use std::io::BufRead;
    let mut cmd = unisight();
    cmd.arg("serve").args(args).args(["--addr", "127.0.0.1:0"]);
    match token {
        Some(t) => cmd.env("UNISIGHT_TOKEN", t),
        None => cmd.env_remove("UNISIGHT_TOKEN"),
    };
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let Some(url) = line.trim().strip_prefix("listening on ") else {
        let _ = child.kill();
        panic!("unexpected first line {line:?}");
    };
    let url = url.trim_end_matches('/').to_string();
    Server { child, url }
}

/// Status and JSON body of a request (ureq reports 4xx/5xx as errors; both are answers here).
fn call(request: ureq::Request, body: Option<(&str, &[u8])>) -> (u16, serde_json::Value) {
    let result = match body {
        Some((kind, bytes)) => request.set("Content-Type", kind).send_bytes(bytes),
        None => request.call(),
    };
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("transport error: {e}"),
    };
    let status = response.status();
    let text = response.into_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

/// A zero-shot D = 256 model, the `catalog` folder embedded and indexed into `t/idx`, and a
/// server on it (photos served from `image_root`, mutations with `token`, `extra` arguments).
fn serve_catalog(
    t: &Path,
    catalog: &Path,
    image_root: &Path,
    token: Option<&str>,
    extra: &[&str],
) -> Server {
    let model = t.join("m.safetensors");
    ok(unisight()
        .args(["init-model", "--dim", "256", "--out"])
        .arg(&model)
        .output()
        .unwrap());
    ok(unisight()
        .args(["embed", "--model"])
        .arg(&model)
        .arg("--input")
        .arg(catalog)
        .arg("--out")
        .arg(t.join("emb"))
        .output()
        .unwrap());
    ok(unisight()
        .args(["index", "build", "--from"])
        .arg(t.join("emb"))
        .arg("--out")
        .arg(t.join("idx"))
        .output()
        .unwrap());
    let idx = t.join("idx");
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "--model".as_ref(),
        model.as_os_str(),
        "--index".as_ref(),
        idx.as_os_str(),
        "--image-root".as_ref(),
        image_root.as_os_str(),
        "--max-body-mib".as_ref(),
        "1".as_ref(),
    ];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    start_server(&args, token)
}

#[test]
fn serve_answers_searches_and_mutations_over_http() {
    let Some(grocery) = grocery() else {
        return unisight_core::testing::skip_for_lack_of_data("no ../shared/data");
    };
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let photos = t.join("photos");
    let names = copy_photos(&grocery, &photos, 10);
    // the last photo stays out of the index, to be added over HTTP
    let catalog = t.join("catalog");
    std::fs::create_dir(&catalog).unwrap();
    for n in &names[..9] {
        std::fs::copy(photos.join(n), catalog.join(n)).unwrap();
    }
    // searches go through an inverted file (every list probed, so the answers are the exact
    // ones): adds and removals must keep its lists current
    let ivf = ["--ivf-lists", "3", "--ivf-probes", "3"];
    let server = serve_catalog(t, &catalog, &photos, Some("s3cret"), &ivf);
    assert!(
        server.url.starts_with("http://127.0.0.1:"),
        "{}",
        server.url
    );
    let url = |p: &str| format!("{}{p}", server.url);
    let photo = std::fs::read(photos.join(&names[0])).unwrap();

    // search by image: the photo itself comes first, re-ranked by cosine
    let (status, body) = call(
        ureq::post(&url("/v1/search?k=3&embedding=true")),
        Some(("image/jpeg", &photo)),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["key"], names[0].as_str(), "{body}");
    assert!(body["results"][0]["score"].as_f64().unwrap() > 0.999);
    assert_eq!(body["results"].as_array().unwrap().len(), 3);
    assert_eq!(body["embedding"].as_array().unwrap().len(), 256);
    // more like this
    let (status, body) = call(
        ureq::get(&url(&format!("/v1/items/{}/similar?k=2", names[1]))),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(body["results"][0]["key"], names[1].as_str());
    // bad input: 4xx with a reason, never a 5xx
    let (status, body) = call(
        ureq::post(&url("/v1/search")),
        Some(("image/jpeg", b"\xff\xd8\xff not a jpeg")),
    );
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "bad_image");
    let (status, _) = call(
        ureq::post(&url("/v1/search")),
        Some(("text/plain", b"hello")),
    );
    assert_eq!(status, 415);
    let (status, _) = call(ureq::get(&url("/v1/items/nope/similar")), None);
    assert_eq!(status, 404);
    let (status, _) = call(
        ureq::post(&url("/v1/search?k=0")),
        Some(("image/jpeg", &photo)),
    );
    assert_eq!(status, 400);
    // a multipart form (curl -F image=@photo.jpg) is searched like a raw body
    let form = |part_type: &str, bytes: &[u8]| {
        let mut body =
            b"--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n".to_vec();
        body.extend_from_slice(
            format!("--XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"q.jpg\"\r\nContent-Type: {part_type}\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n--XyZ--\r\n");
        body
    };
    let multipart = "multipart/form-data; boundary=XyZ";
    let (status, body) = call(
        ureq::post(&url("/v1/search?k=2")),
        Some((multipart, &form("image/jpeg", &photo))),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["key"], names[0].as_str(), "{body}");
    let (status, body) = call(
        ureq::post(&url("/v1/search")),
        Some((multipart, &form("text/plain", b"hello"))),
    );
    assert_eq!(status, 415, "{body}");
    let (status, body) = call(
        ureq::post(&url("/v1/search")),
        Some((multipart, b"--XyZ\r\nContent-Disposition: form-data; na")),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "bad_body");
    let (status, body) = call(
        ureq::post(&url("/v1/search")),
        Some((multipart, b"--XyZ--\r\n")),
    );
    assert_eq!(status, 400, "{body}");
    // a body at the limit (1 MiB here) is read and judged as an image; one byte more is refused
    // with a JSON reason. (The server stops reading at the limit, so a much larger body would
    // race the client's write against the server's close: the test stays one byte over.)
    let (status, body) = call(
        ureq::post(&url("/v1/search")),
        Some(("image/jpeg", &vec![0u8; 1 << 20])),
    );
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "bad_image");
    let (status, body) = call(
        ureq::post(&url("/v1/search")),
        Some(("image/jpeg", &vec![0u8; (1 << 20) + 1])),
    );
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"], "too_large");
    // concurrent searches (answered together by the search thread) each get their own answer
    let answers: Vec<_> = std::thread::scope(|scope| {
        let jobs: Vec<_> = (0..8)
            .map(|i| {
                let key = names[i % 9].clone();
                let url = url(&format!("/v1/items/{key}/similar?k={}", 1 + i % 4));
                scope.spawn(move || (key, i, call(ureq::get(&url), None)))
            })
            .collect();
        jobs.into_iter().map(|j| j.join().unwrap()).collect()
    });
    for (key, i, (status, body)) in answers {
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["results"][0]["key"], key.as_str(), "{body}");
        assert_eq!(body["results"].as_array().unwrap().len(), 1 + i % 4);
    }

    // mutations need the token; an added item is committed before the answer
    let new = std::fs::read(photos.join(&names[9])).unwrap();
    let add = format!("/v1/items?key={}", names[9]);
    let (status, _) = call(ureq::post(&url(&add)), Some(("image/jpeg", &new)));
    assert_eq!(status, 401);
    let (status, body) = call(
        ureq::post(&url(&add)).set("Authorization", "Bearer s3cret"),
        Some(("image/jpeg", &new)),
    );
    assert_eq!(status, 201, "{body}");
    let stats = ok(unisight()
        .args(["index", "stats", "--index"])
        .arg(t.join("idx"))
        .output()
        .unwrap());
    assert!(stats.contains("10"), "{stats}");
    let (_, body) = call(
        ureq::post(&url("/v1/search?k=1")),
        Some(("image/jpeg", &new)),
    );
    assert_eq!(body["results"][0]["key"], names[9].as_str());
    let (status, _) = call(
        ureq::delete(&url(&format!("/v1/items/{}", names[9])))
            .set("Authorization", "Bearer s3cret"),
        None,
    );
    assert_eq!(status, 204);
    let (status, _) = call(ureq::get(&url(&format!("/v1/items/{}", names[9]))), None);
    assert_eq!(status, 404);

    let (status, ready) = call(ureq::get(&url("/readyz")), None);
    assert_eq!(status, 200);
    assert_eq!(ready["arms"][0]["search"]["kind"], "ivf", "{ready}");
    assert_eq!(ready["arms"][0]["search"]["lists"], 3, "{ready}");
    assert!(
        ready["arms"][0]["model_bytes"].as_u64().unwrap() > 1_000_000,
        "{ready}"
    );

    // the page, the API description, metrics and item images
    let page = ureq::get(&url("/")).call().unwrap().into_string().unwrap();
    assert!(page.contains("unisight visual search"));
    let (_, api) = call(ureq::get(&url("/openapi.json")), None);
    assert_eq!(api["openapi"], "3.1.0");
    assert!(api["paths"]["/v1/search"]["post"].is_object());
    let metrics = ureq::get(&url("/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        metrics.contains("unisight_requests_total{route=\"search_image\",status=\"200\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("unisight_index_items 9"), "{metrics}");
    let image = ureq::get(&url(&format!("/v1/items/{}/image", names[2])))
        .call()
        .unwrap();
    assert_eq!(image.content_type(), "image/jpeg");
}

/// A W3C WebDriver session on chromedriver, driven over its HTTP JSON protocol.
struct Browser {
    driver: std::process::Child,
    base: String,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    /// Starts chromedriver with headless Chromium, or `None` when either is missing.
    fn start() -> Option<(Browser, String)> {
        let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .into_iter()
            .find(|p| Path::new(p).exists())?;
        let driver = ["/usr/bin/chromedriver"]
            .into_iter()
            .find(|p| Path::new(p).exists())?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let mut browser = Browser {
            driver: child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        while ureq::get(&format!("{}/status", browser.base))
            .call()
            .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = serde_json::json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1100,900"]}
        }}});
        let session = browser.post("/session", caps);
        let id = session["sessionId"].as_str().unwrap().to_string();
        browser.base = format!("{}/session/{id}", browser.base);
        Some((browser, id))
    }

    fn post(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let r: serde_json::Value = ureq::post(&format!("{}{path}", self.base))
            .send_json(body)
            .unwrap_or_else(|e| panic!("webdriver {path}: {e}"))
            .into_json()
            .unwrap();
        r["value"].clone()
    }

    fn get(&self, path: &str) -> serde_json::Value {
        let r: serde_json::Value = ureq::get(&format!("{}{path}", self.base))
            .call()
            .unwrap_or_else(|e| panic!("webdriver {path}: {e}"))
            .into_json()
            .unwrap();
        r["value"].clone()
    }

    fn find_all(&self, css: &str) -> Vec<String> {
        self.post(
            "/elements",
            serde_json::json!({"using": "css selector", "value": css}),
        )
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e[ELEMENT]
                .as_str()
                .unwrap_or_else(|| panic!("{e}"))
                .to_string()
        })
        .collect()
    }

    fn text(&self, element: &str) -> String {
        self.get(&format!("/element/{element}/text"))
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Waits until `css` matches at least one element whose text contains `needle`.
    fn wait_for(&self, css: &str, needle: &str) -> String {
        let started = Instant::now();
        loop {
            if let Some(e) = self
                .find_all(css)
                .into_iter()
                .find(|e| self.text(e).contains(needle))
            {
                return e;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no `{css}` containing `{needle}`"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = ureq::delete(&self.base).call();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[test]
fn load_test_runs_bounded_against_a_real_server_and_only_on_loopback() {
    let Some(grocery) = grocery() else {
        return unisight_core::testing::skip_for_lack_of_data("no ../shared/data");
    };
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let photos = t.join("photos");
    copy_photos(&grocery, &photos, 4);
    let server = serve_catalog(t, &photos, &photos, None, &[]);
    let report = t.join("load.json");
    let started = Instant::now();
    let out = ok(unisight()
        .args(["load-test", "--url", &server.url, "--items"])
        .arg(t.join("emb/items.jsonl"))
        .arg("--images")
        .arg(&photos)
        .args(["--seconds", "1", "--levels", "1,2", "--json"])
        .arg(&report)
        .output()
        .unwrap());
    // three kinds x two levels x 1 s, plus requests in flight at the deadline
    assert!(started.elapsed() < Duration::from_secs(60), "{out}");
    assert!(out.contains("no 5xx, no dropped connections"), "{out}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(report["failures"].as_array().unwrap().len(), 0);
    for kind in ["search by id", "search by image", "image, 10% malformed"] {
        let levels = report["results"][kind].as_array().unwrap();
        assert_eq!(levels.len(), 2, "{kind}");
        for level in levels {
            assert!(level["requests"].as_u64().unwrap() > 0, "{kind}: {level}");
            for status in level["statuses"].as_object().unwrap().keys() {
                let allowed: &[&str] = if kind.contains("malformed") {
                    &["200", "415", "422"]
                } else {
                    &["200"]
                };
                assert!(allowed.contains(&status.as_str()), "{kind}: {level}");
            }
        }
    }
    // with the server's pid and a model-only anchor: its CPU per request, the ratio per round
    // and their median
    let anchored = t.join("anchored.json");
    let out = ok(unisight()
        .args(["load-test", "--url", &server.url, "--images"])
        .arg(&photos)
        .args([
            "--kinds",
            "image",
            "--levels",
            "1",
            "--seconds",
            "1",
            "--rounds",
            "2",
        ])
        .args(["--server-pid", &server.child.id().to_string()])
        .args(["--anchor-images", "20", "--anchor-model"])
        .arg(t.join("m.safetensors"))
        .arg("--json")
        .arg(&anchored)
        .output()
        .unwrap());
    assert!(out.contains("median of 2 rounds"), "{out}");
    let anchored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&anchored).unwrap()).unwrap();
    let ratios = anchored["image_x_model_only"].as_array().unwrap();
    assert_eq!(ratios.len(), 2, "{anchored}");
    assert!(
        ratios.iter().all(|r| r.as_f64().unwrap() > 0.0),
        "{anchored}"
    );
    assert_eq!(anchored["anchors"].as_array().unwrap().len(), 2);
    for level in anchored["results"]["search by image"].as_array().unwrap() {
        assert!(
            level["server_cpu_ms_per_request"].as_f64().unwrap() > 0.0,
            "{level}"
        );
    }
    // someone else's server is never loaded, whatever it is
    let refused = unisight()
        .args(["load-test", "--url", "http://192.0.2.1:80", "--images"])
        .arg(&photos)
        .args(["--kinds", "image"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("refusing"));
}

#[test]
fn web_page_searches_an_uploaded_photo_in_headless_chromium() {
    use base64::Engine;
    let Some(grocery) = grocery() else {
        return unisight_core::testing::skip_for_lack_of_data("no ../shared/data");
    };
    let Some((browser, _)) = Browser::start() else {
        return eprintln!(
            "skipped: no chromium + chromedriver (apt-get install chromium chromium-driver)"
        );
    };
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let photos = t.join("photos");
    let names = copy_photos(&grocery, &photos, 12);
    let server = serve_catalog(t, &photos, &photos, None, &[]);
    browser.post(
        "/url",
        serde_json::json!({"url": format!("{}/", server.url)}),
    );
    // pick a photo in the file input, as a person would
    let input = browser.find_all("#file").pop().expect("file input");
    let photo = photos.join(&names[3]);
    browser.post(
        &format!("/element/{input}/value"),
        serde_json::json!({"text": photo.display().to_string()}),
    );
    browser.wait_for("#status", "12 results");
    let hits = browser.find_all(".hit");
    assert_eq!(hits.len(), 12);
    assert!(
        browser.text(&hits[0]).contains(&names[3]),
        "{}",
        browser.text(&hits[0])
    );
    // thumbnails loaded from the image route
    let loaded = browser.post(
        "/execute/sync",
        serde_json::json!({"script": "return [...document.querySelectorAll('.hit img')].filter(i => i.complete && i.naturalWidth > 0).length", "args": []}),
    );
    assert!(loaded.as_u64().unwrap() >= 1, "{loaded}");
    if let Ok(path) = std::env::var("UNISIGHT_SCREENSHOT") {
        let png = browser.get("/screenshot");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    // a click on a result searches from it
    browser.post(
        &format!("/element/{}/click", hits[1]),
        serde_json::json!({}),
    );
    browser.wait_for("#status", "more like");
}

/// Two zero-shot models (different projections) each with its own index of `photos`, and an
/// experiment file serving them as arms `a` and `b` with an engagement log and a study of the
/// first three photos.
fn experiment_setup(t: &Path, photos: &Path, names: &[String]) -> PathBuf {
    for (arm, seed) in [("a", "1"), ("b", "2")] {
        let model = t.join(format!("{arm}.safetensors"));
        ok(unisight()
            .args(["init-model", "--dim", "256", "--seed", seed, "--out"])
            .arg(&model)
            .output()
            .unwrap());
        ok(unisight()
            .args(["embed", "--model"])
            .arg(&model)
            .arg("--input")
            .arg(photos)
            .arg("--out")
            .arg(t.join(format!("emb-{arm}")))
            .output()
            .unwrap());
        ok(unisight()
            .args(["index", "build", "--from"])
            .arg(t.join(format!("emb-{arm}")))
            .arg("--out")
            .arg(t.join(format!("idx-{arm}")))
            .output()
            .unwrap());
    }
    let queries = format!(
        "path,task\n{},fine\n{},fine\n{},coarse\n",
        names[0], names[1], names[2]
    );
    std::fs::write(photos.join("study.csv"), queries).unwrap();
    let file = t.join("experiment.toml");
    std::fs::write(
        &file,
        format!(
            r#"name = "test"
[[arms]]
name = "a"
model = "a.safetensors"
index = "idx-a"
[[arms]]
name = "b"
model = "b.safetensors"
index = "idx-b"
[log]
dir = "logs"
rotate_mib = 1
[study]
arms = ["a", "b"]
queries = "{}"
ratings = "ratings.jsonl"
k = 4
"#,
            photos.join("study.csv").display()
        ),
    )
    .unwrap();
    file
}

fn post_event(url: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    call(
        ureq::post(&format!("{url}/v1/events")),
        Some(("application/json", body.to_string().as_bytes())),
    )
}

#[test]
fn experiment_arms_log_engagement_and_report() {
    let Some(grocery) = grocery() else {
        return unisight_core::testing::skip_for_lack_of_data("no ../shared/data");
    };
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let photos = t.join("photos");
    let names = copy_photos(&grocery, &photos, 12);
    let experiment = experiment_setup(t, &photos, &names);
    let mut server = start_server(
        &[
            "--experiment".as_ref(),
            experiment.as_os_str(),
            "--image-root".as_ref(),
            photos.as_os_str(),
        ],
        None,
    );
    let url = server.url.clone();
    let photo = std::fs::read(photos.join(&names[5])).unwrap();
    let search = |user: &str| {
        let (status, body) = call(
            ureq::post(&format!("{url}/v1/search?k=5")).set("X-Unisight-User", user),
            Some(("image/jpeg", &photo)),
        );
        assert_eq!(status, 200, "{body}");
        body
    };
    // a user stays in one arm; users spread over both
    let mut arms = std::collections::BTreeMap::new();
    for u in 0..24 {
        let user = format!("user-{u}");
        let first = search(&user);
        let again = search(&user);
        assert_eq!(first["arm"], again["arm"], "{user}");
        assert_ne!(first["request"], again["request"]);
        assert_eq!(first["request"].as_str().unwrap().len(), 32);
        *arms
            .entry(first["arm"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
    }
    assert_eq!(arms.len(), 2, "{arms:?}");
    // more like this answers from the user's arm too
    let body = search("user-0");
    let (status, similar) = call(
        ureq::get(&format!("{url}/v1/items/{}/similar?k=3", names[1]))
            .set("X-Unisight-User", "user-0"),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(similar["arm"], body["arm"]);
    // actions: logged, repeated, unknown, not shown, malformed, skewed clock
    let request = body["request"].as_str().unwrap();
    let key = |i: usize| body["results"][i]["key"].as_str().unwrap().to_string();
    let click = serde_json::json!({"request": request, "key": key(1), "action": "click"});
    assert_eq!(post_event(&url, click.clone()).0, 202);
    let (status, dup) = post_event(&url, click);
    assert_eq!((status, dup["status"].as_str()), (200, Some("duplicate")));
    assert_eq!(
        post_event(
            &url,
            serde_json::json!({"request": request, "key": key(1), "action": "save"})
        )
        .0,
        202
    );
    assert_eq!(
        post_event(&url, serde_json::json!({"request": request, "key": key(1), "action": "dwell", "dwell_ms": 4200})).0,
        202
    );
    let skewed = serde_json::json!({"request": request, "key": key(2), "action": "click", "client_time_ms": 1});
    assert_eq!(post_event(&url, skewed).0, 202);
    let (status, e) = post_event(
        &url,
        serde_json::json!({"request": "f".repeat(32), "key": key(1), "action": "click"}),
    );
    assert_eq!(
        (status, e["error"].as_str()),
        (404, Some("unknown_request"))
    );
    let (status, e) = post_event(
        &url,
        serde_json::json!({"request": request, "key": "not-a-result.jpg", "action": "click"}),
    );
    assert_eq!((status, e["error"].as_str()), (400, Some("not_shown")));
    assert_eq!(
        post_event(
            &url,
            serde_json::json!({"request": request, "key": key(0), "action": "dwell"})
        )
        .0,
        400
    );
    assert_eq!(
        post_event(
            &url,
            serde_json::json!({"request": request, "key": key(0), "action": "impression"})
        )
        .0,
        400
    );
    assert_eq!(
        post_event(
            &url,
            serde_json::json!({"request": request, "action": "like"})
        )
        .0,
        400
    );
    // memory and latency per arm
    let (status, ready) = call(ureq::get(&format!("{url}/readyz")), None);
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["ready"], true, "{ready}");
    let ready_arms = ready["arms"].as_array().unwrap();
    assert_eq!(ready_arms.len(), 2);
    for a in ready_arms {
        assert_eq!(a["items"], 12);
        assert_eq!(a["search_queued"], 0, "{a}");
        assert!(a["model_bytes"].as_u64().unwrap() > 1_000_000, "{a}");
        assert!(a["index_bytes"].as_u64().unwrap() > 12 * 32, "{a}");
        assert!(a["searches"].as_u64().unwrap() > 0, "{a}");
    }
    let metrics = ureq::get(&format!("{url}/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    for line in [
        "unisight_events_total{outcome=\"logged\"} 4",
        "unisight_events_total{outcome=\"duplicate\"} 1",
        "unisight_events_total{outcome=\"unknown_request\"} 1",
        "unisight_events_total{outcome=\"not_shown\"} 1",
        "unisight_events_total{outcome=\"clock_skew\"} 1",
        "unisight_arm_search_seconds_count{arm=\"a\"}",
    ] {
        assert!(metrics.contains(line), "{line} missing in\n{metrics}");
    }
    // killed, not stopped: the log holds every line written so far and reads back
    let _ = server.child.kill();
    let _ = server.child.wait();
    let log = std::fs::read_to_string(t.join("logs/engagement.jsonl")).unwrap();
    assert!(!log.contains("user-0"), "raw user ids never reach the log");
    assert!(log.contains("\"action\":\"save\"") && log.contains("\"dwell_ms\":4200"));
    let searches = 24 * 2 + 1;
    let impressions = log.lines().filter(|l| l.contains("\"impression\"")).count();
    assert_eq!(impressions, searches * 5 + 3);
    let out = ok(unisight()
        .args(["experiment", "report", "--log"])
        .arg(t.join("logs"))
        .args(["--control", "a", "--out"])
        .arg(t.join("report"))
        .output()
        .unwrap());
    assert!(out.contains("| a |") && out.contains("| b |"), "{out}");
    assert!(out.contains("not enough data"), "{out}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(t.join("report/report.json")).unwrap())
            .unwrap();
    let total: u64 = report["arms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["searches"].as_u64().unwrap())
        .sum();
    // more like this searches are searches too
    assert_eq!(total, searches as u64 + 1);
    let clicks: u64 = report["arms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["clicks"].as_u64().unwrap())
        .sum();
    assert_eq!(clicks, 2);
    // the log is what training reads: a torn line from a kill mid-write is cut at the next start
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(t.join("logs/engagement.jsonl"))
        .unwrap();
    std::io::Write::write_all(&mut f, b"{\"query\": \"upload:00\", \"res").unwrap();
    drop(f);
    let server = start_server(&["--experiment".as_ref(), experiment.as_os_str()], None);
    search_once(&server.url, &photo);
    drop(server);
    let log = std::fs::read_to_string(t.join("logs/engagement.jsonl")).unwrap();
    assert!(log.ends_with('\n') && !log.contains("\"res\n") && !log.contains("upload:00"));
    // a bad experiment file names the key
    std::fs::write(
        t.join("bad.toml"),
        "name = \"x\"\n[[arms]]\nname = \"a\"\nmodel = \"a.safetensors\"\nindx = \"idx-a\"\n",
    )
    .unwrap();
    let out = unisight()
        .args(["serve", "--experiment"])
        .arg(t.join("bad.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml") && err.contains("indx"), "{err}");
}

#[test]
fn simulated_users_drive_the_service_and_are_marked_in_the_log() {
    let Some(grocery) = grocery() else {
        return unisight_core::testing::skip_for_lack_of_data("no ../shared/data");
    };
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let photos = t.join("photos");
    let names = copy_photos(&grocery, &photos, 12);
    let experiment = experiment_setup(t, &photos, &names);
    let server = start_server(&["--experiment".as_ref(), experiment.as_os_str()], None);
    // labels from the Grocery Store folders in the names: product, then category
    let labels: String = names
        .iter()
        .map(|n| {
            let parts: Vec<&str> = n.split('_').collect();
            let product = parts[..parts.len() - 1].join("/");
            format!("{n}, {product}, {}\n", parts[..3].join("/"))
        })
        .collect();
    std::fs::write(t.join("labels.txt"), labels).unwrap();
    let counts = t.join("counts.json");
    ok(unisight()
        .args(["simulate-users", "--url", &server.url, "--root"])
        .arg(&photos)
        .arg("--queries")
        .arg(t.join("labels.txt"))
        .arg("--catalog")
        .arg(t.join("labels.txt"))
        .args([
            "--searches",
            "30",
            "--users",
            "6",
            "--concurrency",
            "2",
            "--out",
        ])
        .arg(&counts)
        .output()
        .unwrap());
    let counts: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&counts).unwrap()).unwrap();
    assert_eq!(counts["searches"], 30, "{counts}");
    assert_eq!(counts["errors"], 0, "{counts}");
    assert_eq!(counts["simulated"], true);
    // each query photo is in the catalog: users find and click the right product
    assert!(counts["relevant_clicks"].as_u64().unwrap() > 0, "{counts}");
    drop(server);
    let log = std::fs::read_to_string(t.join("logs/engagement.jsonl")).unwrap();
    assert!(log.lines().count() > 30 * 5);
    assert!(
        log.lines().all(|l| l.contains("\"simulated\":true")),
        "every line of simulated users is marked"
    );
    assert!(log.contains("\"action\":\"click\"") && log.contains("\"result_key\""));
    // someone else's service is never driven
    let refused = unisight()
        .args(["simulate-users", "--url", "http://192.0.2.1:80", "--root"])
        .arg(&photos)
        .arg("--queries")
        .arg(t.join("labels.txt"))
        .arg("--catalog")
        .arg(t.join("labels.txt"))
        .output()
        .unwrap();
    assert!(!refused.status.success());
}

fn search_once(url: &str, photo: &[u8]) {
    let (status, body) = call(
        ureq::post(&format!("{url}/v1/search?k=3")),
        Some(("image/jpeg", photo)),
    );
    assert_eq!(status, 200, "{body}");
}

#[test]
fn study_page_collects_ratings_in_headless_chromium() {
    let Some(grocery) = grocery() else {
        return unisight_core::testing::skip_for_lack_of_data("no ../shared/data");
    };
    let Some((browser, _)) = Browser::start() else {
        return eprintln!(
            "skipped: no chromium + chromedriver (apt-get install chromium chromium-driver)"
        );
    };
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let photos = t.join("photos");
    let names = copy_photos(&grocery, &photos, 12);
    let experiment = experiment_setup(t, &photos, &names);
    let server = start_server(
        &[
            "--experiment".as_ref(),
            experiment.as_os_str(),
            "--image-root".as_ref(),
            photos.as_os_str(),
        ],
        None,
    );
    browser.post(
        "/url",
        serde_json::json!({"url": format!("{}/study", server.url)}),
    );
    let rater = browser.find_all("#rater").pop().unwrap();
    browser.post(
        &format!("/element/{rater}/value"),
        serde_json::json!({"text": "rater-one"}),
    );
    let start = browser.find_all("#start").pop().unwrap();
    browser.post(&format!("/element/{start}/click"), serde_json::json!({}));
    // three queries: prefer left, then mark a result and prefer right, then a tie
    for (n, choice) in ["left", "right", "tie"].iter().enumerate() {
        browser.wait_for("#status", &format!("{} left to rate", 3 - n));
        assert_eq!(browser.find_all("#left .hit").len(), 4);
        assert_eq!(browser.find_all("#right .hit").len(), 4);
        if n == 1 {
            let boxes = browser.find_all("#right .hit input");
            browser.post(
                &format!("/element/{}/click", boxes[0]),
                serde_json::json!({}),
            );
        }
        let button = browser
            .find_all(&format!("#choices button[data-choice={choice}]"))
            .pop()
            .unwrap();
        browser.post(&format!("/element/{button}/click"), serde_json::json!({}));
    }
    browser.wait_for("#status", "done: all 3 queries rated");
    let ratings = std::fs::read_to_string(t.join("ratings.jsonl")).unwrap();
    assert_eq!(ratings.lines().count(), 3, "{ratings}");
    assert!(
        !ratings.contains("rater-one"),
        "rater ids are stored opaque"
    );
    assert!(ratings.contains("\"choice\":\"tie\""));
    // the same rater cannot rate a query twice; sides map back to arms
    let (status, _) = call(
        ureq::post(&format!("{}/v1/study/ratings", server.url)),
        Some((
            "application/json",
            serde_json::json!({"rater": "rater-one", "trial": 0, "choice": "left"})
                .to_string()
                .as_bytes(),
        )),
    );
    assert_eq!(status, 409);
    let out = ok(unisight()
        .args(["study", "report", "--ratings"])
        .arg(t.join("ratings.jsonl"))
        .output()
        .unwrap());
    assert!(out.contains("| all | 3 |"), "{out}");
    assert!(out.contains("not enough data"), "{out}");
    // the search page logs a click on a result with the arm that served it
    browser.post(
        "/url",
        serde_json::json!({"url": format!("{}/", server.url)}),
    );
    let input = browser.find_all("#file").pop().expect("file input");
    browser.post(
        &format!("/element/{input}/value"),
        serde_json::json!({"text": photos.join(&names[4]).display().to_string()}),
    );
    browser.wait_for("#status", "arm ");
    let hits = browser.find_all(".hit");
    browser.post(
        &format!("/element/{}/click", hits[2]),
        serde_json::json!({}),
    );
    browser.wait_for("#status", "more like");
    let started = Instant::now();
    loop {
        let log = std::fs::read_to_string(t.join("logs/engagement.jsonl")).unwrap_or_default();
        if let Some(line) = log.lines().find(|l| l.contains("\"action\":\"click\"")) {
            assert!(line.contains("\"position\":2"), "{line}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no click logged"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
