//! `unisight serve` over HTTP: searches, mutations, limits, and `unisight load-test` against it.

use super::*;

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
    // the refusal closes the connection unread: a body larger than the socket's buffer could
    // meet a closed socket while still being sent (broken pipe), so the refused one is short
    let (status, _) = call(ureq::post(&url(&add)), Some(("image/jpeg", &new[..64])));
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
