//! A back-fill without downtime, as a user runs it: a service on a Milvus collection (started
//! from a deployment file) keeps answering `unisight load-test` while `scripts/backfill.sh`
//! re-embeds the catalog with a new model on a two-node Ray cluster into a new collection,
//! checks it and switches the service; no request fails, the service then answers with the new
//! model on the new collection, and the old collection stays until it is dropped. A switch that
//! cannot be served, and a back-fill that fails, change nothing.
//!
//! Needs a Milvus server and a Ray cluster: `scripts/test.sh` runs it inside a loopback-only
//! network namespace.

use super::milvus::{milvus_server, wait_for_status};
use super::ray::ray_cluster;
use super::*;

#[test]
fn a_backfill_switches_model_and_collection_without_a_failed_request() {
    let Some(grocery) = grocery() else {
        return unisight_core::testing::skip_for_lack_of_data("no ../shared/data");
    };
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let Some(milvus) = milvus_server(&t.join("milvus"), 19543, 9095) else {
        return;
    };
    let scratch = t.join("s");
    std::fs::create_dir(&scratch).unwrap();
    let Some(cluster) = ray_cluster(&scratch, 6393) else {
        return;
    };
    let catalog = t.join("catalog");
    let names = copy_photos(&grocery, &catalog, 60);
    // two models: the same trunk with other projections, so other codes
    for (model, seed) in [("v1", "1"), ("v2", "2")] {
        ok(unisight()
            .args(["init-model", "--dim", "256", "--seed", seed, "--out"])
            .arg(t.join(format!("{model}.safetensors")))
            .output()
            .unwrap());
    }
    ok(unisight()
        .args(["embed", "--model"])
        .arg(t.join("v1.safetensors"))
        .arg("--input")
        .arg(&catalog)
        .arg("--out")
        .arg(t.join("emb1"))
        .output()
        .unwrap());
    let v1 = milvus.url("catalog_v1") + "?timeout_s=3";
    let v2 = milvus.url("catalog_v2") + "?timeout_s=3";
    ok(unisight()
        .args(["index", "build", "--floats", "f32", "--from"])
        .arg(t.join("emb1"))
        .args(["--out", &v1])
        .output()
        .unwrap());
    let deployment = t.join("deploy.toml");
    let deploy = |index: &str| {
        std::fs::write(
            &deployment,
            format!("model = \"v1.safetensors\"\nindex = \"{index}\"\n"),
        )
        .unwrap();
    };
    deploy(&v1);
    let server = start_server(
        &[std::ffi::OsStr::new("--deployment"), deployment.as_os_str()],
        Some("s3cret"),
    );
    let url = |p: &str| format!("{}{p}", server.url);
    wait_for_status(&url("/readyz"), 200);
    let reload = || {
        call(
            ureq::post(&url("/v1/admin/reload")).set("Authorization", "Bearer s3cret"),
            None,
        )
    };

    // a switch that cannot be served changes nothing: the old arm keeps answering
    deploy(&milvus.url("catalog_missing"));
    let (status, body) = reload();
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "reload_failed", "{body}");
    let (status, _) = call(ureq::post(&url("/v1/admin/reload")), None);
    assert_eq!(status, 401, "a reload needs the token");
    deploy(&v1);
    let photo = std::fs::read(catalog.join(&names[0])).unwrap();
    let top = || {
        let (status, body) = call(
            ureq::post(&url("/v1/search?k=1")),
            Some(("image/jpeg", &photo)),
        );
        assert_eq!(status, 200, "{body}");
        (
            body["results"][0]["key"].as_str().unwrap().to_string(),
            body["results"][0]["distance"].as_u64().unwrap(),
        )
    };
    assert_eq!(top(), (names[0].clone(), 0));

    // the load runs across the whole back-fill (searches by id, then by image)
    let mut load = unisight()
        .arg("load-test")
        .args(["--url", &server.url, "--items"])
        .arg(t.join("emb1/items.jsonl"))
        .arg("--images")
        .arg(&catalog)
        .args([
            "--kinds",
            "id,image",
            "--levels",
            "1",
            "--seconds",
            "45",
            "--json",
        ])
        .arg(t.join("load.json"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let backfill = |index: &str, work: &str| {
        Command::new(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/backfill.sh"))
            .args(["--service", &server.url, "--deployment"])
            .arg(&deployment)
            .arg("--model")
            .arg(t.join("v2.safetensors"))
            .arg("--catalog")
            .arg(&catalog)
            .args(["--index", index, "--ray", &cluster.address, "--work"])
            .arg(t.join(work))
            .args([
                "--shards",
                "2",
                "--sample",
                "20",
                "--unisight",
                env!("CARGO_BIN_EXE_unisight"),
            ])
            .env("UNISIGHT_TOKEN", "s3cret")
            .envs(cluster.env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap()
    };
    let done = backfill(&v2, "bf");
    let log = ok(done);
    assert!(
        load.try_wait().unwrap().is_none(),
        "the load test ended before the switch:\n{log}"
    );
    let reloaded = std::fs::read_to_string(t.join("bf/reload.json")).unwrap();
    assert!(reloaded.contains("catalog_v2"), "{reloaded}");
    let load_log = load.wait_with_output().unwrap();
    let load_out = String::from_utf8_lossy(&load_log.stdout);
    assert!(load_log.status.success(), "{load_out}");
    eprintln!("load test across the back-fill:\n{load_out}");
    // every answer of the load test was a 200: not one failed request during the switch
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(t.join("load.json")).unwrap()).unwrap();
    for (kind, levels) in report["results"].as_object().unwrap() {
        for level in levels.as_array().unwrap() {
            let statuses = level["statuses"].as_object().unwrap();
            assert!(
                statuses.keys().all(|s| s == "200") && level["connection_errors"] == 0,
                "{kind}: {level}"
            );
        }
    }
    // the service now embeds with the new model and searches the new collection: a photo finds
    // itself at distance 0 (the old model on the new codes would not)
    assert_eq!(top(), (names[0].clone(), 0));
    let ready = wait_for_status(&url("/readyz"), 200);
    assert_eq!(ready["items"], 60, "{ready}");
    let deployed = std::fs::read_to_string(&deployment).unwrap();
    assert!(deployed.contains("catalog_v2") && deployed.contains("v2.safetensors"));

    // a back-fill that fails (its collection exists already) leaves everything as it was
    let failed = backfill(&v2, "bf");
    assert!(!failed.status.success());
    assert_eq!(std::fs::read_to_string(&deployment).unwrap(), deployed);
    assert_eq!(top(), (names[0].clone(), 0));

    // the old collection stayed until dropped
    let stats = ok(unisight()
        .args(["index", "stats", "--index", &v1])
        .output()
        .unwrap());
    assert!(stats.contains("\"items\": 60"), "{stats}");
    ok(unisight()
        .args(["index", "drop", "--index", &v1])
        .output()
        .unwrap());
    assert!(!unisight()
        .args(["index", "stats", "--index", &v1])
        .output()
        .unwrap()
        .status
        .success());
}
