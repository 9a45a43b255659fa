//! "Images like this": search by an uploaded image and by an item already in the index, on an
//! arm chosen by the experiment's assignment, logged when the service keeps an engagement log.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use unisight_backend::{Hit, RerankRequest};

use crate::app::{backend_error, queued_answer, request_id, ApiError, ApiResult, AppState, Arm};
use crate::engagement::SearchRecord;
use crate::extract::{ApiPath, ApiQuery};
use crate::images::{embed_image, Upload};
use crate::items::lookup;
use crate::search_queue::SearchJob;

/// Query parameters of the search routes.
#[derive(Debug, Deserialize)]
pub struct SearchParams {
    /// Results wanted (default 10).
    pub(crate) k: Option<usize>,
    /// Re-rank Hamming candidates by float cosine (default true when the index keeps floats).
    pub(crate) rerank: Option<bool>,
    /// Return the query's embedding too.
    pub(crate) embedding: Option<bool>,
    /// Opaque user or session id that picks the experiment arm (also the
    /// `X-Unisight-User` header).
    pub(crate) user: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct SearchResponse {
    /// Id of this search, for `POST /v1/events`.
    request: String,
    /// Arm that answered.
    arm: String,
    results: Vec<Hit>,
    #[serde(skip_serializing_if = "Option::is_none")]
    embedding: Option<Vec<f32>>,
    embed_ms: Option<f64>,
    search_ms: f64,
}

/// The requested k, within 1 and the configured maximum.
pub(crate) fn k_of(state: &AppState, params: &SearchParams) -> ApiResult<usize> {
    let k = params.k.unwrap_or(10);
    if k == 0 || k > state.config.max_k {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_k",
            format!("k must be between 1 and {}", state.config.max_k),
        ));
    }
    Ok(k)
}

/// Searches the index for one code (and float query) on the search thread, which answers
/// concurrent searches together.
pub(crate) async fn run_search(
    state: &AppState,
    arm: &Arm,
    code: Vec<u8>,
    float: Option<Vec<f32>>,
    k: usize,
    rerank: Option<bool>,
    deadline: Instant,
) -> ApiResult<(Vec<Hit>, f64)> {
    let started = Instant::now();
    let request = match rerank {
        None => RerankRequest::Auto,
        Some(true) => RerankRequest::Float,
        Some(false) => RerankRequest::Off,
    };
    let mode = arm
        .backend
        .shape()
        .rerank_for(request, float.is_some())
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "no_floats", e.to_string()))?;
    let job = SearchJob {
        code,
        float,
        k,
        mode,
    };
    let hits = queued_answer(arm.searches.submit(job), deadline, "search")
        .await?
        .map_err(|e| match e {
            unisight_backend::Error::InvalidInput(reason) => {
                ApiError::new(StatusCode::BAD_REQUEST, "bad_query", reason)
            }
            e => backend_error(e, ""),
        })?;
    let ms = started.elapsed().as_secs_f64() * 1e3;
    state.metrics.observe_arm_search(&arm.name, ms / 1e3);
    Ok((hits, ms))
}

/// The arm of a request and the opaque id logged for its user: the `X-Unisight-User` header or
/// `user` parameter picks the arm by the experiment's hash; without one, the request id does
/// (a one-off assignment).
pub(crate) fn choose_arm(
    state: &AppState,
    headers: &HeaderMap,
    user: Option<&str>,
    request: &str,
) -> (usize, Option<String>) {
    let unit = headers
        .get("x-unisight-user")
        .and_then(|v| v.to_str().ok())
        .or(user)
        .filter(|u| !u.is_empty() && u.len() <= 256);
    match unit {
        Some(u) => (state.assignment.arm(u), Some(state.assignment.opaque(u))),
        None => (state.assignment.arm(request), None),
    }
}

/// Whether the client marked itself as a simulated user (`X-Unisight-Simulated: 1`).
pub(crate) fn is_simulated(headers: &HeaderMap) -> bool {
    headers
        .get("x-unisight-simulated")
        .is_some_and(|v| v.as_bytes() == b"1")
}

/// A finished search, before it is logged and answered.
struct Searched {
    request: String,
    user: Option<String>,
    simulated: bool,
    /// What the log names as the query (`None`: not logged).
    query: Option<String>,
    /// The query item's key, for "more like this".
    query_key: Option<String>,
    results: Vec<Hit>,
    embedding: Option<Vec<f32>>,
    embed_ms: Option<f64>,
    search_ms: f64,
}

/// Counts a search, logs its impressions when the service keeps an engagement log, and makes
/// its answer.
fn respond(state: &AppState, arm: &Arm, searched: Searched) -> Json<SearchResponse> {
    state.metrics.observe_search(searched.search_ms / 1e3);
    if let (Some(engagement), Some(query)) = (&state.engagement, searched.query) {
        let results = searched.results.iter().map(|h| {
            let path = if h.path.is_empty() { &h.key } else { &h.path };
            let score = h.score.unwrap_or(-(h.distance as f32));
            (h.key.clone(), path.clone(), score)
        });
        engagement.searched(
            &searched.request,
            SearchRecord {
                arm: arm.name.clone(),
                query,
                query_key: searched.query_key,
                user: searched.user,
                simulated: searched.simulated,
                results: results.collect(),
            },
        );
    }
    Json(SearchResponse {
        request: searched.request,
        arm: arm.name.clone(),
        results: searched.results,
        embedding: searched.embedding,
        embed_ms: searched.embed_ms,
        search_ms: searched.search_ms,
    })
}

/// `POST /v1/search`: the results for an uploaded image.
pub(crate) async fn search_by_image(
    State(state): State<Arc<AppState>>,
    ApiQuery(params): ApiQuery<SearchParams>,
    headers: HeaderMap,
    upload: Result<Upload, ApiError>,
) -> Response {
    let started = Instant::now();
    let result: ApiResult<_> = async {
        let k = k_of(&state, &params)?;
        let upload = upload?;
        let request = request_id();
        let (a, user) = choose_arm(&state, &headers, params.user.as_deref(), &request);
        let arms = state.arms();
        let arm = &arms[a];
        // uploads are named by a hash in the log; the image itself is never kept
        let query = state.engagement.is_some().then(|| {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(&upload.0);
            let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
            format!("{}{hex}", unisight_engagement::UPLOAD_PREFIX)
        });
        // one time budget for the whole request: the embedding queue and the search queue
        let deadline = started + state.config.timeout;
        let (embedded, embed_ms) = embed_image(&state, arm, upload, deadline).await?;
        let (results, search_ms) = run_search(
            &state,
            arm,
            embedded.code,
            Some(embedded.embedding.clone()),
            k,
            params.rerank,
            deadline,
        )
        .await?;
        let embedding = params
            .embedding
            .unwrap_or(false)
            .then_some(embedded.embedding);
        let searched = Searched {
            request,
            user,
            simulated: is_simulated(&headers),
            query,
            query_key: None,
            results,
            embedding,
            embed_ms: Some(embed_ms),
            search_ms,
        };
        Ok(respond(&state, arm, searched))
    }
    .await;
    state.metrics.finish("search_image", started, result)
}

/// `GET /v1/items/{key}/similar`: more like an item already in the index.
pub(crate) async fn search_by_item(
    State(state): State<Arc<AppState>>,
    ApiPath(key): ApiPath<String>,
    ApiQuery(params): ApiQuery<SearchParams>,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    let result: ApiResult<_> = async {
        let k = k_of(&state, &params)?;
        let request = request_id();
        let (a, user) = choose_arm(&state, &headers, params.user.as_deref(), &request);
        let arms = state.arms();
        let arm = &arms[a];
        let item = lookup(arm, &key).await?;
        let path = item.path;
        let deadline = started + state.config.timeout;
        let (results, search_ms) = run_search(
            &state,
            arm,
            item.code,
            item.floats,
            k,
            params.rerank,
            deadline,
        )
        .await?;
        let query = if path.is_empty() { key.clone() } else { path };
        let searched = Searched {
            request,
            user,
            simulated: is_simulated(&headers),
            query: Some(query),
            query_key: Some(key.clone()),
            results,
            embedding: None,
            embed_ms: None,
            search_ms,
        };
        Ok(respond(&state, arm, searched))
    }
    .await;
    state.metrics.finish("search_item", started, result)
}
