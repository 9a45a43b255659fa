//! Health, readiness and Prometheus metrics.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;

use crate::app::AppState;

/// Ready while every arm's backend answers (an index folder gone, a writer that panicked, a
/// Milvus server down or restarting: 503), with what each arm serves.
pub(crate) async fn readyz(
    State(state): State<Arc<AppState>>,
) -> (StatusCode, Json<serde_json::Value>) {
    let served = state.arms();
    let backends: Vec<_> = served.iter().map(|a| a.backend.clone()).collect();
    let described = tokio::task::spawn_blocking(move || {
        backends.iter().map(|b| b.describe()).collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    let mut ready = described.len() == served.len();
    let arms: Vec<serde_json::Value> = served
        .iter()
        .zip(&described)
        .map(|(arm, description)| {
            let (searches, mean_ms) = state.metrics.arm_searches(&arm.name);
            let mut entry = serde_json::json!({
                "name": arm.name,
                "backend": description.as_ref().ok().map(|d| d.kind),
                "index_ok": description.is_ok(),
                "model_bytes": arm.model_bytes,
                "workers": arm.pool.workers(),
                "queued": arm.pool.queued(),
                "abandoned": arm.pool.abandoned(),
                "search_queued": arm.searches.queued(),
                "searches": searches,
                "mean_search_ms": mean_ms,
            });
            match description {
                Ok(d) => {
                    entry["items"] = d.items.into();
                    entry["index_bytes"] = d.bytes.into();
                    // exact, or approximate through the inverted file's lists
                    entry["search"] = serde_json::to_value(&d.search).unwrap_or_default();
                }
                Err(e) => {
                    ready = false;
                    // the details (paths, server messages) go to the log
                    tracing::warn!(arm = arm.name, error = %e, "not ready");
                    entry["items"] = 0.into();
                }
            }
            entry
        })
        .collect();
    let first = &served[0];
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({
        "ready": ready,
        "items": arms.first().map_or(0.into(), |a| a["items"].clone()),
        "workers": first.pool.workers(),
        "queued": first.pool.queued(),
        "search_queued": first.searches.queued(),
        "arms": arms,
        "logging": state.engagement.is_some(),
        "study": state.study.is_some(),
    });
    (status, Json(body))
}

/// `GET /metrics`: Prometheus text.
pub(crate) async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let served = state.arms();
    let backend = served[0].backend.clone();
    // a backend out of reach counts 0 items (readiness says why)
    let items = tokio::task::spawn_blocking(move || backend.count().unwrap_or(0))
        .await
        .unwrap_or(0);
    let queued = served.iter().map(|a| a.pool.queued()).sum();
    let mut text = state.metrics.render(items, queued);
    if let Some(e) = &state.engagement {
        text.push_str(&e.render());
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}
