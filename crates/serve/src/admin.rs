//! Operating the running service: `POST /v1/admin/reload` (bearer token) switches it to the arms
//! its configuration names now (the CLI's deployment file: a model and an index), built and
//! checked before the switch, so a back-fill moves the service to a new model and collection
//! without a failed request, and a reload that cannot be served changes nothing.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;

use crate::app::{blocking, ApiError, ApiResult, AppState};
use crate::items::authorize;

/// `POST /v1/admin/reload`: the arms built anew and switched to; 409 `reload_failed` (the old
/// arms still serving) when they cannot be.
pub(crate) async fn reload(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let started = Instant::now();
    let result: ApiResult<_> = async {
        authorize(&state, &headers)?;
        let _one_at_a_time = state.reloading.lock().await;
        let state2 = state.clone();
        let arms = blocking(move || {
            state2.reload().map_err(|why| {
                tracing::warn!(reason = %why, "reload refused; still serving the old arms");
                ApiError::new(StatusCode::CONFLICT, "reload_failed", why)
            })
        })
        .await?;
        let described = blocking(move || {
            Ok(arms
                .iter()
                .map(|arm| {
                    let d = arm.backend.describe().ok();
                    serde_json::json!({
                        "name": arm.name,
                        "backend": d.as_ref().map(|d| d.kind),
                        // a token holder's answer: where the index is, so the switch is seen
                        "index": d.as_ref().map(|d| d.location.clone()),
                        "items": d.as_ref().map(|d| d.items),
                        "model_bytes": arm.model_bytes,
                    })
                })
                .collect::<Vec<_>>())
        })
        .await?;
        tracing::info!(arms = described.len(), "reloaded");
        Ok(Json(
            serde_json::json!({"reloaded": true, "arms": described}),
        ))
    }
    .await;
    state.metrics.finish("reload", started, result)
}
