//! Experiments: arms, the engagement log and its refusal rules, the report, simulated users.

use super::*;

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
    let shown = t.join("logs/engagement.impressions.jsonl");
    let shown_text = std::fs::read_to_string(&shown).unwrap();
    assert!(
        !log.contains("user-0") && !shown_text.contains("user-0"),
        "raw user ids never reach the log"
    );
    assert!(log.contains("\"action\":\"save\"") && log.contains("\"dwell_ms\":4200"));
    assert!(
        !log.contains("\"impression\""),
        "impressions have a stream of their own"
    );
    let searches = 24 * 2 + 1;
    // one compact line per search, read back as one impression per shown result
    assert_eq!(shown_text.lines().count(), searches + 1);
    let impressions = unisight_engagement::read_log(&shown).unwrap();
    assert_eq!(impressions.len(), searches * 5 + 3);
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
    let shown = t.join("logs/engagement.impressions.jsonl");
    let shown_text = std::fs::read_to_string(&shown).unwrap();
    // one compact impression line per search (the 30 uploads and the users' "more like this")
    assert!(shown_text.lines().count() >= 30);
    assert!(unisight_engagement::read_log(&shown).unwrap().len() > 30 * 5);
    assert!(
        log.lines()
            .chain(shown_text.lines())
            .all(|l| l.contains("\"simulated\":true")),
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
