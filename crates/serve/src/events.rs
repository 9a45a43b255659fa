//! `POST /v1/events`: a user's action on a shown result (click, save, dwell), checked against
//! the search it belongs to and appended to the engagement log.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use unisight_engagement::Action;

use crate::app::{ApiError, ApiResult, AppState};
use crate::engagement::Refusal;

/// The body of `POST /v1/events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventBody {
    /// `request` of the search response.
    request: String,
    /// Key of the result acted on.
    key: String,
    /// `click`, `save` or `dwell`.
    action: Action,
    /// For `dwell`: milliseconds spent on the result.
    dwell_ms: Option<u64>,
    /// The client's clock (Unix ms), only compared with the server's.
    client_time_ms: Option<u64>,
}

/// Logs one action.
pub async fn post_event(
    State(state): State<Arc<AppState>>,
    body: Result<Json<EventBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let started = Instant::now();
    let result: ApiResult<_> = (|| {
        let Json(event) =
            body.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_body", e.body_text()))?;
        let Some(engagement) = &state.engagement else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "logging_off",
                "this service keeps no engagement log (start it with an experiment that has [log])",
            ));
        };
        if event.action == Action::Impression {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_action",
                "impressions are logged by the service itself; send click, save or dwell",
            ));
        }
        if event.action == Action::Dwell && event.dwell_ms.is_none_or(|d| d > 86_400_000) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_dwell",
                "a dwell event needs dwell_ms between 0 and 86400000",
            ));
        }
        match engagement.act(
            &event.request,
            &event.key,
            event.action,
            event.dwell_ms,
            event.client_time_ms,
        ) {
            Ok(arm) => Ok((
                StatusCode::ACCEPTED,
                Json(serde_json::json!({"status": "logged", "arm": arm})),
            )),
            Err(Refusal::Duplicate) => Ok((
                StatusCode::OK,
                Json(serde_json::json!({"status": "duplicate"})),
            )),
            Err(Refusal::UnknownRequest) => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_request",
                format!("no search `{}` in the last hour", event.request),
            )),
            Err(Refusal::NotShown) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "not_shown",
                format!("`{}` was not among that search's results", event.key),
            )),
        }
    })();
    state.metrics.finish("event", started, result)
}
