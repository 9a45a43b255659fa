//! The service over its backend boundary: `POST /v1/admin/reload` switching arms (and a reload
//! that cannot be served changing nothing), and a backend out of reach answering 503
//! `index_down` on every route that needs it, never a hang or a 500.

use std::sync::atomic::{AtomicBool, Ordering};

use unisight_backend::{
    Backend, Description, Error as BackendError, Hit, NewItem as BackendItem, Query, Shape,
    StoredItem,
};

use super::*;

fn reload_request(token: Option<&str>) -> Request<Body> {
    let mut request = Request::post("/v1/admin/reload");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    request.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn a_reload_switches_arms_and_one_that_cannot_be_served_changes_nothing() {
    let config = ServiceConfig {
        token: Some(TOKEN.into()),
        ..ServiceConfig::default()
    };
    let (state, dir, _) = service_state(4, false, config.clone());
    // the next deployment: an index of 2 pictures, served once `ready` says so
    let next = dir.path().join("next");
    write_index(&next, 2);
    let ready = Arc::new(AtomicBool::new(false));
    let ready2 = ready.clone();
    let reloader = move || {
        if !ready2.load(Ordering::SeqCst) {
            return Err("the next model is not there yet".to_string());
        }
        let backend = Embedded::open(&next, true, None).map_err(|e| e.to_string())?;
        Ok(vec![Arm::new(
            "default",
            Arc::new(backend),
            test_pool(1 << 20),
            0,
            &config,
        )])
    };
    let app = router(Arc::new(state.with_reloader(Box::new(reloader))));
    let items = |app: Router| async move { send(&app, get("/readyz")).await.2["items"].clone() };
    assert_eq!(items(app.clone()).await, 4);

    let (status, _, json, _) = send(&app, reload_request(None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{json}");
    let (status, _, json, _) = send(&app, reload_request(Some(TOKEN))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{json}");
    assert_error(&json, "reload_failed");
    assert_eq!(items(app.clone()).await, 4, "still the old arm");
    let (status, _, _, _) = send(&app, get("/v1/items/item-3/similar")).await;
    assert_eq!(status, StatusCode::OK);

    ready.store(true, Ordering::SeqCst);
    let (status, _, json, _) = send(&app, reload_request(Some(TOKEN))).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["arms"][0]["items"], 2, "{json}");
    assert_eq!(items(app.clone()).await, 2, "the new arm");
    let (status, _, _, _) = send(&app, get("/v1/items/item-3/similar")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, json, _) = send(
        &app,
        post_image("/v1/search?k=5", "image/png", png(&picture(1))),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["results"].as_array().unwrap().len(), 2, "{json}");
    assert_eq!(json["results"][0]["key"], "item-1", "{json}");
}

#[tokio::test]
async fn a_service_started_without_a_deployment_refuses_a_reload() {
    let s = service(2, Some(TOKEN), false, 1 << 20);
    let (status, _, json, _) = send(&s.app, reload_request(Some(TOKEN))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{json}");
    assert_error(&json, "reload_failed");
    // without a token configured, a reload is a mutation like any other: off
    let s = service(2, None, false, 1 << 20);
    let (status, _, json, _) = send(&s.app, reload_request(Some(TOKEN))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{json}");
}

/// A backend whose server cannot be reached: every call is `Unavailable`.
struct Unreachable;

impl Backend for Unreachable {
    fn shape(&self) -> Shape {
        Shape {
            bits: DIM,
            float_dim: Some(DIM),
        }
    }

    fn describe(&self) -> unisight_backend::Result<Description> {
        Err(down())
    }

    fn search(
        &self,
        _: &[Query<'_>],
        _: usize,
        _: usize,
    ) -> unisight_backend::Result<Vec<Vec<Hit>>> {
        Err(down())
    }

    fn get(&self, _: &str) -> unisight_backend::Result<Option<StoredItem>> {
        Err(down())
    }

    fn add(&self, _: &[BackendItem<'_>]) -> unisight_backend::Result<()> {
        Err(down())
    }

    fn remove(&self, _: &[&str]) -> unisight_backend::Result<usize> {
        Err(down())
    }
}

fn down() -> BackendError {
    BackendError::Unavailable("connection refused (server at /secret/path)".into())
}

#[tokio::test]
async fn a_backend_out_of_reach_answers_503_index_down() {
    let config = ServiceConfig {
        token: Some(TOKEN.into()),
        ..ServiceConfig::default()
    };
    let arm = Arm::new(
        "default",
        Arc::new(Unreachable),
        test_pool(1 << 20),
        0,
        &config,
    );
    let app = router(Arc::new(AppState::with_arms(
        vec![arm],
        AppState::single_arm_assignment(),
        config,
    )));
    let bearer = format!("Bearer {TOKEN}");
    let delete = Request::delete("/v1/items/item-1")
        .header(header::AUTHORIZATION, &bearer)
        .body(Body::empty())
        .unwrap();
    let add = Request::post("/v1/items?key=new")
        .header(header::CONTENT_TYPE, "image/png")
        .header(header::AUTHORIZATION, &bearer)
        .body(Body::from(png(&picture(3))))
        .unwrap();
    for request in [
        get("/v1/items/item-1/similar"),
        get("/v1/items/item-1"),
        post_image("/v1/search", "image/png", png(&picture(1))),
        delete,
        add,
    ] {
        let uri = request.uri().to_string();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{uri}");
        assert_eq!(response.headers()[header::RETRY_AFTER], "1", "{uri}");
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let json: Value = serde_json::from_slice(&bytes).unwrap();
        assert_error(&json, "index_down");
        // the backend's details (paths, server messages) stay in the log
        assert!(
            !json["reason"].as_str().unwrap().contains("/secret"),
            "{json}"
        );
    }
    let (status, _, ready, _) = send(&app, get("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    assert_eq!(ready["arms"][0]["index_ok"], false, "{ready}");
    let (status, _, _, metrics) = send(&app, get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8(metrics)
        .unwrap()
        .contains("unisight_index_items 0"));
}
