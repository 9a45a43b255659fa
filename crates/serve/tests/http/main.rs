//! The HTTP contract of the service, in process: the real router over a real index on disk,
//! with a small deterministic test embedder instead of a network, so that every documented
//! status, the event-refusal rules and the limits are checked without data, models or a
//! browser. (The end-to-end tests with real photos, ONNX Runtime and Chromium are in the CLI's
//! tests.) [`connections`] runs the real listener on loopback against slow and idle clients.

mod admin;
mod connections;
mod hardening;
mod study;

use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use image::{Rgb, RgbImage};
use serde_json::Value;
use tower::ServiceExt;
use unisight_backend::Embedded;
use unisight_core::{
    Architecture, Embedder, Embeddings, ModelSpec, Preprocess, Projection, Result as CoreResult,
};
use unisight_data::decode::DecodeLimits;
use unisight_data::preprocess::embed_image;
use unisight_engagement::{EventLog, LogOptions};
use unisight_index::{FloatKind, Index, IndexConfig, NewItem};
use unisight_serve::pool::EmbedPool;
use unisight_serve::{router, AppState, Arm, ServiceConfig};

const DIM: usize = 64;
const SIZE: usize = 8;
const TOKEN: &str = "secret-token";

/// A fixed projection of the 8 x 8 input's pixels: deterministic, fast, and different images
/// get different embeddings.
struct TestEmbedder {
    spec: ModelSpec,
}

impl TestEmbedder {
    fn new() -> Self {
        TestEmbedder {
            spec: ModelSpec {
                architecture: Architecture::EfficientnetLite0,
                input_size: SIZE,
                preprocess: Preprocess::Tf127,
                trunk_dim: 3 * SIZE * SIZE,
                dim: DIM,
                projection: Projection::Trained,
            },
        }
    }
}

impl Embedder for TestEmbedder {
    fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    fn embed(&mut self, pixels: &[f32], batch: usize) -> CoreResult<Embeddings> {
        let n = 3 * SIZE * SIZE;
        let mut projected = Vec::with_capacity(batch * DIM);
        let mut normalized = Vec::with_capacity(batch * DIM);
        for image in pixels.chunks(n).take(batch) {
            let row: Vec<f32> = (0..DIM)
                .map(|d| {
                    image
                        .iter()
                        .enumerate()
                        .map(|(i, &x)| {
                            let w = ((i * 31 + d * 17) % 7) as f32 - 3.0;
                            w * (x + 0.01 * d as f32)
                        })
                        .sum()
                })
                .collect();
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-6);
            normalized.extend(row.iter().map(|v| v / norm));
            projected.extend(row);
        }
        Ok(Embeddings {
            dim: DIM,
            normalized,
            projected,
        })
    }

    fn backend(&self) -> &'static str {
        "test"
    }
}

/// A 16 x 16 image of its own: two colours split at a position given by `seed`.
fn picture(seed: u8) -> RgbImage {
    RgbImage::from_fn(16, 16, |x, y| {
        if (x + y) as u8 % 16 < seed % 16 {
            Rgb([seed.wrapping_mul(37), 200, seed])
        } else {
            Rgb([10, seed.wrapping_mul(11), 250 - seed])
        }
    })
}

fn png(image: &RgbImage) -> Vec<u8> {
    let mut bytes = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png)
        .unwrap();
    bytes
}

struct Service {
    app: Router,
    _dir: tempfile::TempDir,
    index_dir: std::path::PathBuf,
    log_dir: Option<std::path::PathBuf>,
}

/// A service over an index of `items` pictures (`item-0` ...), built with the test embedder;
/// with `token`, mutations are on; with `log`, it keeps an engagement log.
fn service(items: u8, token: Option<&str>, log: bool, max_body_bytes: usize) -> Service {
    let config = ServiceConfig {
        token: token.map(str::to_string),
        max_body_bytes,
        timeout: Duration::from_secs(10),
        ..ServiceConfig::default()
    };
    let (state, dir, log_dir) = service_state(items, log, config);
    Service {
        app: router(Arc::new(state)),
        index_dir: dir.path().join("index"),
        _dir: dir,
        log_dir,
    }
}

/// The state of [`service`] with any `config` (mutations on when it holds a token), the folder
/// holding its index, and its log folder.
fn service_state(
    items: u8,
    log: bool,
    config: ServiceConfig,
) -> (AppState, tempfile::TempDir, Option<std::path::PathBuf>) {
    let max_body_bytes = config.max_body_bytes;
    let dir = tempfile::tempdir().unwrap();
    let index_dir = dir.path().join("index");
    write_index(&index_dir, items);
    let backend = Embedded::open(&index_dir, config.token.is_some(), None).unwrap();
    let arm = Arm::new(
        "default",
        Arc::new(backend),
        test_pool(max_body_bytes),
        0,
        &config,
    );
    let mut state = AppState::with_arms(vec![arm], AppState::single_arm_assignment(), config);
    let log_dir = log.then(|| dir.path().join("log"));
    if let Some(log_dir) = &log_dir {
        let (actions, impressions) = open_logs(log_dir, 1 << 20, 2);
        state = state.with_engagement_log(actions, impressions, 64 << 20);
    }
    (state, dir, log_dir)
}

/// An index in `index_dir` of `items` pictures (`item-0` ...), embedded by the test embedder,
/// with float embeddings.
fn write_index(index_dir: &std::path::Path, items: u8) {
    let mut index = Index::create(
        index_dir,
        IndexConfig {
            bits: DIM,
            floats: Some((DIM, FloatKind::F32)),
            keys: true,
        },
    )
    .unwrap();
    let mut embedder = TestEmbedder::new();
    let embedded: Vec<_> = (0..items)
        .map(|i| embed_image(&mut embedder, &picture(i), &mut Vec::new()).unwrap())
        .collect();
    let keys: Vec<String> = (0..items).map(|i| format!("item-{i}")).collect();
    let new: Vec<NewItem> = embedded
        .iter()
        .zip(&keys)
        .map(|(e, key)| NewItem {
            key,
            path: key,
            code: &e.code,
            floats: Some(&e.embedding),
        })
        .collect();
    index.add(&new).unwrap();
}

/// A started pool of one test embedder, taking images up to `max_body_bytes`.
fn test_pool(max_body_bytes: usize) -> EmbedPool {
    let limits = DecodeLimits {
        max_file_bytes: max_body_bytes as u64,
        max_pixels: 1_000_000,
        ..DecodeLimits::default()
    };
    EmbedPool::start(vec![Box::new(TestEmbedder::new())], 4, limits)
}

/// The two streams of an engagement log in `dir` (`engagement` and `engagement.impressions`),
/// each rotating at `rotate_bytes` and keeping `keep_files`.
fn open_logs(dir: &std::path::Path, rotate_bytes: u64, keep_files: usize) -> (EventLog, EventLog) {
    let open = |stem: String| {
        EventLog::open(LogOptions {
            dir: dir.to_path_buf(),
            stem,
            rotate_bytes,
            keep_files,
            sync_interval: Duration::from_millis(1),
        })
        .unwrap()
        .0
    };
    (
        open("engagement".into()),
        open(unisight_engagement::impressions_stem("engagement")),
    )
}

/// Every event of the log in `dir`: impressions (expanded) then actions.
fn read_events(dir: &std::path::Path) -> Vec<unisight_engagement::EngagementEvent> {
    let mut files =
        unisight_engagement::log_files(dir, &unisight_engagement::impressions_stem("engagement"))
            .unwrap();
    files.extend(unisight_engagement::log_files(dir, "engagement").unwrap());
    unisight_engagement::read_logs(&files).unwrap().0
}

/// Sends one request; the status, the content type and the body (JSON when it parses).
async fn send(app: &Router, request: Request<Body>) -> (StatusCode, String, Value, Vec<u8>) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let kind = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, kind, json, bytes.to_vec())
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

fn post_image(uri: &str, kind: &str, body: Vec<u8>) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, kind)
        .body(Body::from(body))
        .unwrap()
}

/// An error is the documented JSON shape: `{"error": code, "reason": text}`.
fn assert_error(json: &Value, code: &str) {
    assert_eq!(json["error"], code, "{json}");
    assert!(
        json["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{json}"
    );
}

#[tokio::test]
async fn operations_routes_answer() {
    let s = service(4, None, false, 1 << 20);
    let (status, _, _, body) = send(&s.app, get("/healthz")).await;
    assert_eq!(
        (status, body.as_slice()),
        (StatusCode::OK, b"ok".as_slice())
    );
    let (status, _, ready, _) = send(&s.app, get("/readyz")).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    let (status, kind, _, metrics) = send(&s.app, get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(kind.starts_with("text/plain"), "{kind}");
    assert!(String::from_utf8(metrics).unwrap().contains("unisight_"));
    let (status, _, doc, _) = send(&s.app, get("/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    for path in [
        "/v1/search",
        "/v1/items/{key}/similar",
        "/v1/items",
        "/v1/events",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
    let (status, kind, _, page) = send(&s.app, get("/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(kind.starts_with("text/html"), "{kind}");
    assert!(!page.is_empty());
}

#[tokio::test]
async fn search_by_image_finds_the_same_picture_first() {
    let s = service(8, None, false, 1 << 20);
    for i in [0u8, 5, 7] {
        let (status, _, json, _) = send(
            &s.app,
            post_image("/v1/search?k=3", "image/png", png(&picture(i))),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{json}");
        let results = json["results"].as_array().unwrap();
        assert_eq!(results.len(), 3);
        assert_eq!(results[0]["key"], format!("item-{i}"), "{json}");
        assert_eq!(json["arm"], "default");
        assert!(json["request"].as_str().is_some_and(|r| r.len() == 32));
    }
    // more like an item: the item itself comes first
    let (status, _, json, _) = send(&s.app, get("/v1/items/item-2/similar?k=2")).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["results"][0]["key"], "item-2");
    // embedding only
    let (status, _, json, _) = send(
        &s.app,
        post_image("/v1/embed", "image/png", png(&picture(1))),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["embedding"].as_array().unwrap().len(), DIM);
}

#[tokio::test]
async fn bad_requests_get_the_documented_statuses() {
    let s = service(4, None, false, 4096);
    let image = png(&picture(3));
    assert!(image.len() < 4096);
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (
            post_image("/v1/search?k=0", "image/png", image.clone()),
            StatusCode::BAD_REQUEST,
            "bad_k",
        ),
        (
            post_image("/v1/search?k=100000", "image/png", image.clone()),
            StatusCode::BAD_REQUEST,
            "bad_k",
        ),
        (
            post_image("/v1/search", "text/plain", b"hello".to_vec()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            post_image("/v1/search", "image/png", b"not a png at all".to_vec()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_image",
        ),
        (
            post_image("/v1/search", "image/png", vec![0u8; 8192]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
        (
            get("/v1/items/nobody/similar"),
            StatusCode::NOT_FOUND,
            "unknown_item",
        ),
        (
            get("/v1/items/nobody"),
            StatusCode::NOT_FOUND,
            "unknown_item",
        ),
        (
            get("/v1/items/item-1/similar?rerank=true&k=1"),
            StatusCode::OK,
            "",
        ),
    ];
    for (request, want, code) in cases {
        let uri = request.uri().to_string();
        let (status, _, json, _) = send(&s.app, request).await;
        assert_eq!(status, want, "{uri}: {json}");
        if !code.is_empty() {
            assert_error(&json, code);
        }
    }
}

#[tokio::test]
async fn mutations_need_the_token_and_are_visible_at_once() {
    let off = service(2, None, false, 1 << 20);
    let (status, _, json, _) = send(
        &off.app,
        post_image("/v1/items?key=new", "image/png", png(&picture(9))),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{json}");
    assert_error(&json, "mutations_disabled");

    let s = service(2, Some(TOKEN), false, 1 << 20);
    let add = |auth: Option<&str>, key: &str| {
        let mut r =
            Request::post(format!("/v1/items?key={key}")).header(header::CONTENT_TYPE, "image/png");
        if let Some(a) = auth {
            r = r.header(header::AUTHORIZATION, a);
        }
        r.body(Body::from(png(&picture(9)))).unwrap()
    };
    let bearer = format!("Bearer {TOKEN}");
    let (status, _, json, _) = send(&s.app, add(None, "new")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{json}");
    assert_error(&json, "unauthorized");
    let (status, _, _, _) = send(&s.app, add(Some("Bearer wrong-token!"), "new")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, json, _) = send(&s.app, add(Some(&bearer), "new")).await;
    assert_eq!(status, StatusCode::CREATED, "{json}");
    assert_eq!(json["key"], "new");
    let (status, _, json, _) = send(&s.app, add(Some(&bearer), "new")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{json}");
    assert_error(&json, "exists");

    // the new item is found by key and by its own picture
    let (status, _, json, _) = send(&s.app, get("/v1/items/new")).await;
    assert_eq!(
        (status, &json["path"]),
        (StatusCode::OK, &Value::from("new"))
    );
    let (_, _, json, _) = send(
        &s.app,
        post_image("/v1/search?k=1", "image/png", png(&picture(9))),
    )
    .await;
    assert_eq!(json["results"][0]["key"], "new", "{json}");

    let delete = |auth: Option<&str>| {
        let mut r = Request::delete("/v1/items/new");
        if let Some(a) = auth {
            r = r.header(header::AUTHORIZATION, a);
        }
        r.body(Body::empty()).unwrap()
    };
    let (status, _, _, _) = send(&s.app, delete(None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _, _) = send(&s.app, delete(Some(&bearer))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, json, _) = send(&s.app, delete(Some(&bearer))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{json}");
    let (status, _, _, _) = send(&s.app, get("/v1/items/new/similar")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // the key can be added again after its removal
    let (status, _, json, _) = send(&s.app, add(Some(&bearer), "new")).await;
    assert_eq!(status, StatusCode::CREATED, "{json}");
}

fn event(body: Value) -> Request<Body> {
    Request::post("/v1/events")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

#[tokio::test]
async fn events_are_logged_once_and_only_for_shown_results() {
    let off = service(2, None, false, 1 << 20);
    let (status, _, json, _) = send(
        &off.app,
        event(serde_json::json!({"request": "x", "key": "item-0", "action": "click"})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{json}");
    assert_error(&json, "logging_off");

    let s = service(6, None, true, 1 << 20);
    let (_, _, searched, _) = send(
        &s.app,
        post_image("/v1/search?k=3", "image/png", png(&picture(4))),
    )
    .await;
    let request = searched["request"].as_str().unwrap().to_string();
    let shown = searched["results"][1]["key"].as_str().unwrap().to_string();
    let not_shown = (0..6)
        .map(|i| format!("item-{i}"))
        .find(|k| {
            !searched["results"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["key"] == k.as_str())
        })
        .unwrap();
    let click = |key: &str| serde_json::json!({"request": request, "key": key, "action": "click"});

    let (status, _, json, _) = send(&s.app, event(click(&shown))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{json}");
    let (status, _, json, _) = send(&s.app, event(click(&shown))).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a repeat is not logged again: {json}"
    );
    assert_eq!(json["status"], "duplicate");
    let (status, _, json, _) = send(&s.app, event(click(&not_shown))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    let (status, _, json, _) = send(
        &s.app,
        event(serde_json::json!({"request": "0123", "key": shown, "action": "click"})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{json}");
    assert_error(&json, "unknown_request");
    for bad in [
        serde_json::json!({"request": request, "key": shown, "action": "impression"}),
        serde_json::json!({"request": request, "key": shown, "action": "dwell"}),
        serde_json::json!({"request": request, "key": shown, "action": "click", "extra": 1}),
    ] {
        let (status, _, json, _) = send(&s.app, event(bad.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {json}");
    }

    // what reached the log: three impressions and one click, of this request
    let log = s.log_dir.as_ref().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let events = loop {
        let read = read_events(log);
        if read.len() >= 4 || std::time::Instant::now() > deadline {
            break read;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let actions: Vec<_> = events.iter().map(|e| e.action).collect();
    use unisight_engagement::Action;
    assert_eq!(
        actions.iter().filter(|&&a| a == Action::Impression).count(),
        3,
        "{events:?}"
    );
    assert_eq!(
        actions.iter().filter(|&&a| a == Action::Click).count(),
        1,
        "{events:?}"
    );
    assert!(events
        .iter()
        .all(|e| e.request.as_deref() == Some(request.as_str())));
    // every line names the shown item by its key in the index, which training resolves
    assert!(events.iter().all(|e| e.result_key.is_some()), "{events:?}");
    let logged_click = events.iter().find(|e| e.action == Action::Click).unwrap();
    assert_eq!(logged_click.result_key.as_deref(), Some(shown.as_str()));
}
