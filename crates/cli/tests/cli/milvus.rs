//! The index on a real Milvus 2.3.5 server (the PyPI `milvus` package) through the user's
//! commands: `index build --out milvus://...`, `search --index milvus://...` (the same answers as
//! the index folder), `serve --index milvus://...` (search by image and by item, add, remove, the
//! web page in headless Chromium), and the service over a server that stops and comes back
//! (503 `index_down` within the request's deadline, never a hang; then answers again).
//!
//! `scripts/test.sh` runs this module alone inside a loopback-only network namespace
//! (`scripts/netns.sh`); elsewhere it says "skipped: why", or fails with
//! `UNISIGHT_REQUIRE_MILVUS=1`.

use unisight_milvus::local_server::LocalServer;

use super::browser::Browser;
use super::*;

/// A Milvus server with its data in `data`, gRPC on `port` and health on `health_port` (each
/// test its own: the backend crate's test uses 19530/9091); see [`LocalServer::start_or_skip`].
pub(super) fn milvus_server(data: &Path, port: u16, health_port: u16) -> Option<LocalServer> {
    LocalServer::start_or_skip(data, port, health_port)
}

/// Held for a whole test that starts a server: two of the package's servers at once collide on
/// their internal ports (the second aborts), so the tests of this module take turns.
fn one_server_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `unisight search --json` of `key` on `index` (a folder or a Milvus address): (key,
/// distance) of each result.
fn search_by_key(index: &std::ffi::OsStr, key: &str, rerank: &str) -> Vec<(String, u64)> {
    let out = stdout_of(
        &unisight()
            .args([
                "search", "--json", "-k", "5", "--rerank", rerank, "--id", key,
            ])
            .arg("--index")
            .arg(index)
            .output()
            .unwrap(),
    );
    let hits: serde_json::Value = serde_json::from_str(&out).unwrap();
    hits.as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["key"].as_str().unwrap().to_string(),
                h["distance"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Polls `url` until it answers `status` (within a minute).
pub(super) fn wait_for_status(url: &str, status: u16) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let (got, body) = call(ureq::get(url), None);
        if got == status {
            return body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{url} still answers {got}: {body}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn milvus_serves_the_catalog_and_the_service_survives_its_restart() {
    let Some(grocery) = grocery() else {
        return unisight_core::testing::skip_for_lack_of_data("no ../shared/data");
    };
    let _turn = one_server_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let Some(mut milvus) = milvus_server(&t.join("milvus"), 19541, 9093) else {
        return;
    };
    let photos = t.join("photos");
    let names = copy_photos(&grocery, &photos, 12);
    // the last photo stays out of the catalog, to be added over HTTP
    let catalog = t.join("catalog");
    std::fs::create_dir(&catalog).unwrap();
    for n in &names[..11] {
        std::fs::copy(photos.join(n), catalog.join(n)).unwrap();
    }
    let model = embed_catalog(t, &catalog);

    // index build into a new collection; a second build into it is refused
    let collection = format!("{}?timeout_s=3", milvus.url("grocery"));
    let built = ok(unisight()
        .args(["index", "build", "--floats", "f32", "--from"])
        .arg(t.join("emb"))
        .args(["--out", &collection])
        .output()
        .unwrap());
    assert!(built.contains("\"items\": 11"), "{built}");
    let again = unisight()
        .args(["index", "build", "--from"])
        .arg(t.join("emb"))
        .args(["--out", &collection])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("exists already"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    // `unisight search` gives the index folder's answers, without and with re-ranking
    for rerank in ["0", "4"] {
        for key in &names[..3] {
            let here = search_by_key(t.join("idx").as_os_str(), key, rerank);
            let there = search_by_key(collection.as_ref(), key, rerank);
            assert_eq!(here.len(), 5);
            // the same distances in the same order; keys may swap only within a tie
            let distances = |h: &[(String, u64)]| h.iter().map(|x| x.1).collect::<Vec<_>>();
            assert_eq!(distances(&here), distances(&there), "{key} rerank {rerank}");
            assert_eq!(there[0].0, *key);
        }
    }

    // the service on the collection
    let args: Vec<&std::ffi::OsStr> = vec![
        "--model".as_ref(),
        model.as_os_str(),
        "--index".as_ref(),
        collection.as_ref(),
        "--image-root".as_ref(),
        photos.as_os_str(),
        "--timeout-s".as_ref(),
        "8".as_ref(),
    ];
    let server = start_server(&args, Some("s3cret"));
    let url = |p: &str| format!("{}{p}", server.url);
    let ready = wait_for_status(&url("/readyz"), 200);
    assert_eq!(ready["arms"][0]["backend"], "milvus", "{ready}");
    assert_eq!(ready["items"], 11, "{ready}");
    let photo = std::fs::read(photos.join(&names[0])).unwrap();
    let (status, body) = call(
        ureq::post(&url("/v1/search?k=3")),
        Some(("image/jpeg", &photo)),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["key"], names[0].as_str(), "{body}");
    assert!(
        body["results"][0]["score"].as_f64().unwrap() > 0.999,
        "{body}"
    );
    let (status, body) = call(
        ureq::get(&url(&format!("/v1/items/{}/similar?k=2", names[1]))),
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["key"], names[1].as_str(), "{body}");
    let (status, _) = call(ureq::get(&url("/v1/items/nope/similar")), None);
    assert_eq!(status, 404);

    // add and remove through the service, committed before the answer
    let new = std::fs::read(photos.join(&names[11])).unwrap();
    let add = url(&format!("/v1/items?key={}", names[11]));
    let (status, body) = call(
        ureq::post(&add).set("Authorization", "Bearer s3cret"),
        Some(("image/jpeg", &new)),
    );
    assert_eq!(status, 201, "{body}");
    let (status, _) = call(
        ureq::post(&add).set("Authorization", "Bearer s3cret"),
        Some(("image/jpeg", &new)),
    );
    assert_eq!(status, 409);
    let (_, body) = call(
        ureq::post(&url("/v1/search?k=1")),
        Some(("image/jpeg", &new)),
    );
    assert_eq!(body["results"][0]["key"], names[11].as_str(), "{body}");
    let removed = names[10].clone();
    let (status, _) = call(
        ureq::delete(&url(&format!("/v1/items/{removed}"))).set("Authorization", "Bearer s3cret"),
        None,
    );
    assert_eq!(status, 204);
    let (status, _) = call(ureq::get(&url(&format!("/v1/items/{removed}"))), None);
    assert_eq!(status, 404);
    let (status, body) = call(ureq::get(&url(&format!("/v1/items/{}", names[11]))), None);
    assert_eq!(
        (status, body["path"].as_str()),
        (200, Some(names[11].as_str()))
    );

    // the web page searches the collection in a real browser (where Chromium is installed)
    let browser = Browser::start();
    match &browser {
        Some((browser, _)) => {
            browser.post("/url", serde_json::json!({"url": url("/")}));
            let input = browser.find_all("#file").pop().expect("file input");
            browser.post(
                &format!("/element/{input}/value"),
                serde_json::json!({"text": photos.join(&names[3]).display().to_string()}),
            );
            browser.wait_for("#status", "11 results");
            let hits = browser.find_all(".hit");
            assert!(browser.text(&hits[0]).contains(&names[3]));
        }
        None => eprintln!("skipped the page: no chromium + chromedriver"),
    }

    // an experiment file whose arms are the index folder and the collection: each answers its
    // users from its own backend
    let experiment = t.join("experiment.toml");
    std::fs::write(
        &experiment,
        format!(
            "name = \"backends\"\n[[arms]]\nname = \"folder\"\nmodel = \"{model}\"\nindex = \"idx\"\n\
             [[arms]]\nname = \"milvus\"\nmodel = \"{model}\"\nindex = \"{collection}\"\n",
            model = model.display()
        ),
    )
    .unwrap();
    let arms = start_server(
        &[
            "--experiment".as_ref(),
            experiment.as_os_str(),
            "--image-root".as_ref(),
            photos.as_os_str(),
        ],
        None,
    );
    let ready = wait_for_status(&format!("{}/readyz", arms.url), 200);
    let backends: Vec<&str> = ready["arms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["backend"].as_str().unwrap())
        .collect();
    assert_eq!(backends, ["embedded", "milvus"], "{ready}");
    let mut answered = std::collections::BTreeSet::new();
    for user in 0..40 {
        let (status, body) = call(
            ureq::post(&format!("{}/v1/search?k=1&user=u{user}", arms.url)),
            Some(("image/jpeg", &photo)),
        );
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["results"][0]["key"], names[0].as_str(), "{body}");
        answered.insert(body["arm"].as_str().unwrap().to_string());
    }
    assert_eq!(answered.len(), 2, "both arms answered: {answered:?}");
    drop(arms);

    // the server stops: every answer is a prompt 503, never a hang or a crash
    milvus.stop();
    for _ in 0..2 {
        let started = Instant::now();
        let (status, body) = call(
            ureq::get(&url(&format!("/v1/items/{}/similar", names[2]))),
            None,
        );
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"], "index_down", "{body}");
        let (status, body) = call(
            ureq::post(&url("/v1/search?k=3")),
            Some(("image/jpeg", &photo)),
        );
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"], "index_down", "{body}");
        let (status, ready) = call(ureq::get(&url("/readyz")), None);
        assert_eq!(status, 503, "{ready}");
        assert_eq!(ready["arms"][0]["index_ok"], false, "{ready}");
        // each request gives up within its own deadline (3 s per server call here)
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "{:?}",
            started.elapsed()
        );
    }
    if let Some((browser, _)) = &browser {
        let input = browser.find_all("#file").pop().expect("file input");
        browser.post(
            &format!("/element/{input}/value"),
            serde_json::json!({"text": photos.join(&names[4]).display().to_string()}),
        );
        browser.wait_for("#status", "503");
    }

    // it comes back: the same service answers again, with every acknowledged change
    milvus.restart().unwrap();
    let ready = wait_for_status(&url("/readyz"), 200);
    assert_eq!(ready["items"], 11, "{ready}");
    let (status, body) = call(
        ureq::post(&url("/v1/search?k=11")),
        Some(("image/jpeg", &new)),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["key"], names[11].as_str(), "{body}");
    let keys: Vec<&str> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["key"].as_str().unwrap())
        .collect();
    assert!(!keys.contains(&removed.as_str()), "{keys:?}");
    assert_eq!(keys.len(), 11);
    drop(server);
    // the CLI's own view agrees
    let stats = ok(unisight()
        .args(["index", "stats", "--index", &collection])
        .output()
        .unwrap());
    assert!(stats.contains("\"items\": 11"), "{stats}");
}

/// `bench-scatter --milvus`: the same random codes and queries on a fresh collection give the
/// exact scan's distances, and the benchmark drops its collection again (and never touches one
/// it did not make).
#[test]
fn bench_scatter_measures_the_same_codes_on_milvus_and_drops_its_collection() {
    let _turn = one_server_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let Some(_milvus) = milvus_server(&t.join("milvus"), 19541, 9093) else {
        return;
    };
    let url = "milvus://127.0.0.1:19541/bench_test";
    let bench = |json: &Path| {
        unisight()
            .args([
                "bench-scatter",
                "--items",
                "3000",
                "--queries",
                "30",
                "--shards",
                "1",
                "--milvus",
                url,
            ])
            .arg("--work")
            .arg(t.join("work"))
            .arg("--json")
            .arg(json)
            .output()
            .unwrap()
    };
    let json = t.join("scatter.json");
    let out = ok(bench(&json));
    assert!(out.contains("| Milvus |"), "{out}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let m = &report["milvus"];
    assert_eq!(m["items"], 3000, "{m}");
    assert_eq!(m["exact_share"], 1.0, "{m}");
    assert!(m["p50_ms"].as_f64().unwrap() > 0.0, "{m}");
    // dropped: stats of the collection name fail, naming it
    let stats = unisight()
        .args(["index", "stats", "--index", url])
        .output()
        .unwrap();
    assert!(!stats.status.success());
    assert!(
        String::from_utf8_lossy(&stats.stderr).contains("no such collection"),
        "{}",
        String::from_utf8_lossy(&stats.stderr)
    );
    // a collection the benchmark did not make is refused, not dropped
    let theirs: unisight_milvus::MilvusUrl = url.parse().unwrap();
    let shape = unisight_backend::Shape {
        bits: 256,
        float_dim: None,
    };
    drop(
        unisight_milvus::Milvus::create(&theirs, shape, unisight_milvus::ServerIndex::Flat)
            .unwrap(),
    );
    let refused = bench(&t.join("again.json"));
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("exists already"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(unisight_milvus::Milvus::open(&theirs, false).is_ok());
}
