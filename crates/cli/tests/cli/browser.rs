//! The web pages in headless Chromium over WebDriver: search by an uploaded photo, and the rater page of a study.

use super::*;

/// A W3C WebDriver session on chromedriver, driven over its HTTP JSON protocol.
pub(super) struct Browser {
    driver: std::process::Child,
    base: String,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    /// Starts chromedriver with headless Chromium, or `None` when either is missing.
    pub(super) fn start() -> Option<(Browser, String)> {
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

    pub(super) fn post(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let r: serde_json::Value = ureq::post(&format!("{}{path}", self.base))
            .send_json(body)
            .unwrap_or_else(|e| panic!("webdriver {path}: {e}"))
            .into_json()
            .unwrap();
        r["value"].clone()
    }

    pub(super) fn get(&self, path: &str) -> serde_json::Value {
        let r: serde_json::Value = ureq::get(&format!("{}{path}", self.base))
            .call()
            .unwrap_or_else(|e| panic!("webdriver {path}: {e}"))
            .into_json()
            .unwrap();
        r["value"].clone()
    }

    pub(super) fn find_all(&self, css: &str) -> Vec<String> {
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

    pub(super) fn text(&self, element: &str) -> String {
        self.get(&format!("/element/{element}/text"))
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Runs `script` in the page until its value satisfies `done` (or 30 s pass); returns the last value.
    pub(super) fn wait_until(
        &self,
        script: &str,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let started = Instant::now();
        loop {
            let value = self.post(
                "/execute/sync",
                serde_json::json!({"script": script, "args": []}),
            );
            if done(&value) || started.elapsed() > Duration::from_secs(30) {
                return value;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until `css` matches at least one element whose text contains `needle`.
    pub(super) fn wait_for(&self, css: &str, needle: &str) -> String {
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
    // thumbnails load from the image route (asynchronously, after the results show)
    let loaded = browser.wait_until(
        "return [...document.querySelectorAll('.hit img')].filter(i => i.complete && i.naturalWidth > 0).length",
        |v| v.as_u64().unwrap_or(0) >= 1,
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
