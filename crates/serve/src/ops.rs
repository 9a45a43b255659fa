//! Health, readiness and Prometheus metrics.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;

use crate::app::AppState;

/// Ready while every arm's index can be read (a writer that panicked makes it unusable: 503).
pub(crate) async fn readyz(
    State(state): State<Arc<AppState>>,
) -> (StatusCode, Json<serde_json::Value>) {
    let mut ready = true;
    let arms: Vec<serde_json::Value> = state
        .arms
        .iter()
        .map(|arm| {
            let (items, index_bytes, ivf, on_disk) = arm.index.read().map_or_else(
                |_| (0, 0, None, false),
                |i| {
                    (
                        i.len(),
                        i.stats().file_bytes,
                        i.ivf_settings(),
                        i.is_on_disk(),
                    )
                },
            );
            // a poisoned lock or an index folder gone from under the service
            ready &= on_disk;
            // exact, or approximate through the inverted file's lists
            let search = match ivf {
                Some(s) => serde_json::json!({"kind": "ivf", "lists": s.lists, "probes": s.probes}),
                None => serde_json::json!({"kind": "exact"}),
            };
            let (searches, mean_ms) = state.metrics.arm_searches(&arm.name);
            serde_json::json!({
                "name": arm.name,
                "items": items,
                "index_on_disk": on_disk,
                "index_bytes": index_bytes,
                "search": search,
                "model_bytes": arm.model_bytes,
                "workers": arm.pool.workers(),
                "queued": arm.pool.queued(),
                "abandoned": arm.pool.abandoned(),
                "search_queued": arm.searches.queued(),
                "searches": searches,
                "mean_search_ms": mean_ms,
            })
        })
        .collect();
    let first = &state.arms[0];
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({
        "ready": ready,
        "items": first.index.read().map(|i| i.len()).unwrap_or(0),
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
    let first = &state.arms[0];
    let items = first.index.read().map(|i| i.len()).unwrap_or(0);
    let queued = state.arms.iter().map(|a| a.pool.queued()).sum();
    let mut text = state.metrics.render(items, queued);
    if let Some(e) = &state.engagement {
        text.push_str(&e.render());
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}
