//! What a hostile client tries: malformed query strings and paths, keys that would corrupt the
//! index or the log, mutations with a body but no token, an index folder removed under the
//! service, and pages that another site frames or injects into.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{header, Request, StatusCode};

use std::time::Duration;

use serde_json::Value;
use unisight_engagement::Action;
use unisight_serve::{router, ServiceConfig};

use super::{
    assert_error, get, open_logs, picture, png, post_image, read_events, send, service,
    service_state, TOKEN,
};

fn add(key: &str, auth: &str) -> Request<Body> {
    Request::post(format!("/v1/items?key={key}"))
        .header(header::CONTENT_TYPE, "image/png")
        .header(header::AUTHORIZATION, auth)
        .body(Body::from(png(&picture(9))))
        .unwrap()
}

#[tokio::test]
async fn every_error_is_the_documented_json() {
    let s = service(4, None, false, 1 << 20);
    for (uri, code) in [
        ("/v1/items/item-1/similar?k=abc", "bad_query"),
        ("/v1/items/item-1/similar?rerank=maybe", "bad_query"),
        ("/v1/items/bad%FFutf8/similar", "bad_path"),
        ("/v1/items/bad%FFutf8", "bad_path"),
        ("/v1/study/queries/abc/image", "bad_path"),
    ] {
        let (status, kind, json, _) = send(&s.app, get(uri)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {json}");
        assert!(kind.starts_with("application/json"), "{uri}: {kind}");
        assert_error(&json, code);
    }
}

#[tokio::test]
async fn keys_that_would_corrupt_the_index_or_log_are_refused() {
    let s = service(2, Some(TOKEN), false, 1 << 20);
    let bearer = format!("Bearer {TOKEN}");
    for key in ["a%00b", "a%0Ab", "bad%FFutf8", ""] {
        let (status, _, json, _) = send(&s.app, add(key, &bearer)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{key}: {json}");
        assert_error(&json, "bad_key");
    }
    // the scheme is case-insensitive
    let (status, _, json, _) = send(&s.app, add("fine", &format!("bearer {TOKEN}"))).await;
    assert_eq!(status, StatusCode::CREATED, "{json}");
    // nothing lossy was stored
    let (status, _, _, _) = send(&s.app, get("/v1/items/bad%EF%BF%BDutf8")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_mutation_without_the_token_is_refused_before_its_body_is_read() {
    let s = service(2, Some(TOKEN), false, 1 << 20);
    let polled = Arc::new(AtomicBool::new(false));
    let flag = polled.clone();
    let body = Body::from_stream(polled_once(move || {
        flag.store(true, Ordering::SeqCst);
        Bytes::from_static(b"\x89PNG")
    }));
    let request = Request::post("/v1/items?key=new")
        .header(header::CONTENT_TYPE, "image/png")
        .header(header::AUTHORIZATION, "Bearer wrong")
        .body(body)
        .unwrap();
    let response = tower::ServiceExt::oneshot(s.app.clone(), request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()[header::CONNECTION], "close");
    assert!(
        !polled.load(Ordering::SeqCst),
        "the body was read before the token was checked"
    );
}

/// A one-item body stream that calls `chunk` when (and only when) it is polled.
fn polled_once(
    chunk: impl FnOnce() -> Bytes + Send + 'static,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    let mut chunk = Some(chunk);
    futures_util::stream::poll_fn(move |_| std::task::Poll::Ready(chunk.take().map(|c| Ok(c()))))
}

#[tokio::test]
async fn an_index_folder_removed_under_the_service_is_not_ready_and_answers_5xx() {
    let s = service(2, Some(TOKEN), false, 1 << 20);
    let bearer = format!("Bearer {TOKEN}");
    let (status, _, _, _) = send(&s.app, get("/readyz")).await;
    assert_eq!(status, StatusCode::OK);
    std::fs::remove_dir_all(&s.index_dir).unwrap();
    let (status, _, ready, _) = send(&s.app, get("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    assert_eq!(ready["arms"][0]["index_ok"], false, "{ready}");
    let (status, _, json, _) = send(&s.app, add("new", &bearer)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{json}");
    assert_error(&json, "index_unavailable");
    // no file path reaches the client
    assert!(!json["reason"].as_str().unwrap().contains('/'), "{json}");
    let delete = Request::delete("/v1/items/item-1")
        .header(header::AUTHORIZATION, &bearer)
        .body(Body::empty())
        .unwrap();
    let (status, _, json, _) = send(&s.app, delete).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{json}");
}

#[tokio::test]
async fn pages_carry_a_content_security_policy_and_every_answer_nosniff() {
    let s = service(2, None, false, 1 << 20);
    for uri in ["/", "/study"] {
        let response = tower::ServiceExt::oneshot(s.app.clone(), get(uri))
            .await
            .unwrap();
        let h = response.headers();
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(
            csp.contains("frame-ancestors 'none'") && csp.contains("'sha256-"),
            "{csp}"
        );
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    }
    let response = tower::ServiceExt::oneshot(s.app.clone(), get("/v1/items/nobody"))
        .await
        .unwrap();
    assert_eq!(
        response.headers()[header::X_CONTENT_TYPE_OPTIONS],
        "nosniff"
    );
}

#[tokio::test]
async fn a_flood_of_searches_neither_grows_memory_past_its_budget_nor_expires_a_click() {
    let (state, dir, _) = service_state(40, false, ServiceConfig::default());
    let log_dir = dir.path().join("log");
    // small files and a small memory budget, as a long flood would meet the real ones
    let (actions, impressions) = open_logs(&log_dir, 4096, 2);
    let budget = 96 << 10;
    let app = router(Arc::new(state.with_engagement_log(
        actions,
        impressions,
        budget,
    )));
    let (status, _, first, _) = send(
        &app,
        post_image("/v1/search?k=5", "image/png", png(&picture(3))),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let click = serde_json::json!({
        "request": first["request"], "key": first["results"][0]["key"], "action": "click"
    });
    let request = Request::post("/v1/events")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(click.to_string()))
        .unwrap();
    let (status, _, json, _) = send(&app, request).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{json}");
    // 300 unauthenticated searches showing every item
    for i in 0..300 {
        let (status, _, json, _) = send(
            &app,
            get(&format!("/v1/items/item-{}/similar?k=40", i % 40)),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{json}");
    }
    // the remembered searches stay within the budget
    let (_, _, _, metrics) = send(&app, get("/metrics")).await;
    let metrics = String::from_utf8(metrics).unwrap();
    let bytes: usize = metrics
        .lines()
        .find_map(|l| l.strip_prefix("unisight_remembered_search_bytes "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(
        bytes > 0 && bytes <= budget,
        "{bytes} bytes remembered, budget {budget}"
    );
    // impressions rotated away many times over; the click is still there, once
    tokio::time::sleep(Duration::from_millis(50)).await;
    let events = read_events(&log_dir);
    let clicks: Vec<_> = events
        .iter()
        .filter(|e| e.action == Action::Click)
        .collect();
    assert_eq!(clicks.len(), 1, "{clicks:?}");
    assert_eq!(clicks[0].request.as_deref(), first["request"].as_str());
    let impressions = events
        .iter()
        .filter(|e| e.action == Action::Impression)
        .count();
    assert!(
        impressions < 300 * 40,
        "impressions were not rotated: {impressions}"
    );
    // one impression line per search
    let files = unisight_engagement::log_files(
        &log_dir,
        &unisight_engagement::impressions_stem("engagement"),
    )
    .unwrap();
    let text: String = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    let current = text;
    let line: Value = serde_json::from_str(current.lines().last().unwrap()).unwrap();
    assert_eq!(line["shown"].as_array().map(Vec::len), Some(40), "{line}");
}

#[tokio::test]
async fn an_item_image_behind_a_link_out_of_the_image_root_is_never_served() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("passwd"), b"root:x:0:0").unwrap();
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("ok.png"), png(&picture(1))).unwrap();
    std::os::unix::fs::symlink(outside.path().join("passwd"), root.path().join("evil.png"))
        .unwrap();
    let config = ServiceConfig {
        token: Some(TOKEN.into()),
        image_root: Some(root.path().to_path_buf()),
        ..ServiceConfig::default()
    };
    let (state, _dir, _) = service_state(1, false, config);
    let app = router(Arc::new(state));
    let bearer = format!("Bearer {TOKEN}");
    for (key, path) in [("evil", "evil.png"), ("fine", "ok.png")] {
        let request = Request::post(format!("/v1/items?key={key}&path={path}"))
            .header(header::CONTENT_TYPE, "image/png")
            .header(header::AUTHORIZATION, &bearer)
            .body(Body::from(png(&picture(9))))
            .unwrap();
        let (status, _, json, _) = send(&app, request).await;
        assert_eq!(status, StatusCode::CREATED, "{json}");
    }
    let (status, _, json, body) = send(&app, get("/v1/items/evil/image")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{json}");
    assert!(!String::from_utf8_lossy(&body).contains("root:x"));
    assert_error(&json, "outside_root");
    let (status, _, _, body) = send(&app, get("/v1/items/fine/image")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with(b"\x89PNG"));
}

#[tokio::test]
async fn a_client_over_its_rate_limit_gets_429_and_monitoring_is_never_limited() {
    let config = ServiceConfig {
        rate_limit: std::num::NonZeroU32::new(2),
        ..ServiceConfig::default()
    };
    let (state, _dir, _) = service_state(2, false, config);
    let app = router(Arc::new(state));
    // a burst of twice the rate passes, the next is refused
    for _ in 0..4 {
        let (status, _, json, _) = send(&app, get("/v1/items/item-1")).await;
        assert_eq!(status, StatusCode::OK, "{json}");
    }
    let response = tower::ServiceExt::oneshot(app.clone(), get("/v1/items/item-1"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key(header::RETRY_AFTER));
    let (_, _, json, _) = send(&app, get("/v1/items/item-1")).await;
    assert_error(&json, "rate_limited");
    for uri in ["/healthz", "/readyz", "/metrics"] {
        let (status, _, _, _) = send(&app, get(uri)).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
    }
}

#[tokio::test]
async fn a_request_addressed_to_another_host_name_is_refused() {
    let config = ServiceConfig {
        allowed_hosts: Some(unisight_serve::HostCheck::loopback()),
        ..ServiceConfig::default()
    };
    let (state, _dir, _) = service_state(2, false, config);
    let app = router(Arc::new(state));
    let with_host = |host: &str| {
        Request::get("/v1/items/item-1")
            .header(header::HOST, host)
            .body(Body::empty())
            .unwrap()
    };
    // what a browser sends after a DNS name of another site was rebound to 127.0.0.1
    for host in [
        "evil.example:8080",
        "evil.example",
        "127.0.0.1.evil.example",
    ] {
        let (status, kind, json, _) = send(&app, with_host(host)).await;
        assert_eq!(status, StatusCode::MISDIRECTED_REQUEST, "{host}: {json}");
        assert!(kind.starts_with("application/json"), "{kind}");
        assert_error(&json, "misdirected_host");
    }
    for host in ["127.0.0.1:8080", "localhost:8080", "[::1]:8080"] {
        let (status, _, json, _) = send(&app, with_host(host)).await;
        assert_eq!(status, StatusCode::OK, "{host}: {json}");
    }
}
