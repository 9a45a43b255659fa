//! Routes of the service. Every error is JSON `{"error": code, "reason": text}` with a 4xx status
//! for anything the client can fix (bad image, unknown id, wrong content type, too large), 503
//! with `Retry-After` when the embedding queue is full, 504 when a request runs past its time.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use unisight_experiment::Assignment;
use unisight_index::{Index, NewItem, Rerank};

use crate::engagement::{Engagement, SearchRecord};
use crate::metrics::Metrics;
use crate::pool::{EmbedPool, Embedded, JobError};
use crate::search::{Hit, SearchError, SearchJob, SearchQueue};

/// Limits and switches of a running service.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Largest k a request may ask for.
    pub max_k: usize,
    /// Time a request may take before it is answered 504.
    pub timeout: Duration,
    /// Bearer token that add and remove require; `None` turns those routes off.
    pub token: Option<String>,
    /// Hamming candidates per result re-scored by floats when a request asks for re-ranking.
    pub rerank_factor: usize,
    /// Threads one search's scan is split over.
    pub search_threads: usize,
    /// Most searches answered together by one pass over the codes.
    pub max_search_batch: usize,
    /// Searches that may wait for the search thread before the service answers 503.
    pub search_queue: usize,
    /// Folder the items' paths are relative to; item images are served from it (never from
    /// outside it). `None`: no item images.
    pub image_root: Option<std::path::PathBuf>,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            max_body_bytes: 16 << 20,
            max_k: 1000,
            timeout: Duration::from_secs(10),
            token: None,
            rerank_factor: 4,
            search_threads: 1,
            max_search_batch: 32,
            search_queue: 1024,
            image_root: None,
        }
    }
}

/// One arm: a model (its embedding pool) and the index built with it. A service without an
/// experiment has one arm, `default`.
pub struct Arm {
    name: String,
    index: Arc<RwLock<Index>>,
    searches: SearchQueue,
    keys: RwLock<HashMap<String, u64>>,
    pool: EmbedPool,
    model_bytes: u64,
}

impl Arm {
    /// Wraps an open index (writable when mutations are enabled) and a started pool;
    /// `model_bytes` is reported as the arm's model size.
    ///
    /// # Errors
    /// Reading the index's items fails.
    pub fn new(
        name: &str,
        index: Index,
        pool: EmbedPool,
        model_bytes: u64,
        config: &ServiceConfig,
    ) -> Result<Self, unisight_index::Error> {
        let mut keys = HashMap::with_capacity(index.len());
        for item in index.items() {
            let item = item?;
            keys.insert(item.key, item.id);
        }
        let index = Arc::new(RwLock::new(index));
        let searches = SearchQueue::start(
            index.clone(),
            config.search_queue,
            config.max_search_batch,
            config.search_threads,
            config.rerank_factor,
            pool.in_flight(),
        );
        Ok(Arm {
            name: name.to_string(),
            index,
            searches,
            keys: RwLock::new(keys),
            pool,
            model_bytes,
        })
    }
}

/// What the handlers share.
pub struct AppState {
    arms: Vec<Arm>,
    assignment: Assignment,
    pub(crate) engagement: Option<Engagement>,
    pub(crate) study: Option<crate::study::Study>,
    config: ServiceConfig,
    pub(crate) metrics: Metrics,
}

impl AppState {
    /// One arm (`default`) over an open index and a started pool.
    ///
    /// # Errors
    /// Reading the index's items fails.
    pub fn new(
        index: Index,
        pool: EmbedPool,
        config: ServiceConfig,
    ) -> Result<Self, unisight_index::Error> {
        let arm = Arm::new("default", index, pool, 0, &config)?;
        Ok(Self::with_arms(
            vec![arm],
            Assignment::new("unisight".into(), &[1.0]),
            config,
        ))
    }

    /// Several arms, users split by `assignment` (whose shares follow `arms`' order).
    ///
    /// # Panics
    /// If `arms` is empty (a caller bug).
    pub fn with_arms(arms: Vec<Arm>, assignment: Assignment, config: ServiceConfig) -> Self {
        assert!(!arms.is_empty(), "at least one arm");
        AppState {
            arms,
            assignment,
            engagement: None,
            study: None,
            config,
            metrics: Metrics::default(),
        }
    }

    /// Logs every search and accepts actions at `POST /v1/events`.
    #[must_use]
    pub fn with_engagement_log(mut self, log: unisight_experiment::EventLog) -> Self {
        self.engagement = Some(Engagement::new(log));
        self
    }

    /// Serves a side-by-side relevance study at `/study`.
    #[must_use]
    pub fn with_study(mut self, study: crate::study::Study) -> Self {
        self.study = Some(study);
        self
    }

    /// The arm named `name`.
    pub(crate) fn arm_named(&self, name: &str) -> Option<usize> {
        self.arms.iter().position(|a| a.name == name)
    }

    pub(crate) fn arm(&self, i: usize) -> &Arm {
        &self.arms[i]
    }

    /// The opaque id stored for a user or rater id.
    pub(crate) fn assignment_opaque(&self, unit: &str) -> String {
        self.assignment.opaque(unit)
    }

    /// Syncs the engagement log (at shutdown).
    pub fn flush(&self) {
        if let Some(e) = &self.engagement {
            e.sync();
        }
    }
}

/// The router with every route, sharing `state`.
pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.config.max_body_bytes;
    Router::new()
        .route("/", get(crate::page::index_page))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(
            "/openapi.json",
            get(|| async { Json(crate::openapi::document()) }),
        )
        .route("/v1/search", post(search_by_image))
        .route("/v1/items/{key}/similar", get(search_by_item))
        .route("/v1/embed", post(embed))
        .route("/v1/items", post(add_item))
        .route("/v1/items/{key}", delete(remove_item).get(get_item))
        .route("/v1/items/{key}/image", get(item_image))
        .route("/v1/events", post(crate::events::post_event))
        .route("/study", get(crate::page::study_page))
        .route("/v1/study/next", get(crate::study::next_trial))
        .route(
            "/v1/study/queries/{trial}/image",
            get(crate::study::query_image),
        )
        .route("/v1/study/ratings", post(crate::study::post_rating))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// A JSON error response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    reason: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, reason: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            reason: reason.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({"error": self.code, "reason": self.reason}));
        let mut response = (self.status, body).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// Query parameters of the search routes.
#[derive(Debug, Deserialize)]
pub struct SearchParams {
    /// Results wanted (default 10).
    k: Option<usize>,
    /// Re-rank Hamming candidates by float cosine (default true when the index keeps floats).
    rerank: Option<bool>,
    /// Return the query's embedding too.
    embedding: Option<bool>,
    /// Opaque user or session id that picks the experiment arm (also the
    /// `X-Unisight-User` header).
    user: Option<String>,
}

#[derive(Debug, Serialize)]
struct SearchResponse {
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

async fn readyz(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let arms: Vec<serde_json::Value> = state
        .arms
        .iter()
        .map(|arm| {
            let (items, index_bytes) = arm
                .index
                .read()
                .map(|i| (i.len(), i.stats().file_bytes))
                .unwrap_or((0, 0));
            let (searches, mean_ms) = state.metrics.arm_searches(&arm.name);
            serde_json::json!({
                "name": arm.name,
                "items": items,
                "index_bytes": index_bytes,
                "model_bytes": arm.model_bytes,
                "workers": arm.pool.workers(),
                "queued": arm.pool.queued(),
                "searches": searches,
                "mean_search_ms": mean_ms,
            })
        })
        .collect();
    let first = &state.arms[0];
    Json(serde_json::json!({
        "ready": true,
        "items": first.index.read().map(|i| i.len()).unwrap_or(0),
        "workers": first.pool.workers(),
        "queued": first.pool.queued(),
        "arms": arms,
        "logging": state.engagement.is_some(),
        "study": state.study.is_some(),
    }))
}

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let first = &state.arms[0];
    let items = first.index.read().map(|i| i.len()).unwrap_or(0);
    let queued = state.arms.iter().map(|a| a.pool.queued()).sum();
    let mut text = state.metrics.render(items, queued);
    if let Some(e) = &state.engagement {
        text.push_str(&e.render());
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

/// An uploaded image: the raw body (`Content-Type: image/*` or `application/octet-stream`) or
/// the first file part of a `multipart/form-data` body (`curl -F image=@photo.jpg`).
pub struct Upload(pub(crate) Bytes);

fn is_image_type(kind: &str) -> bool {
    kind.starts_with("image/") || kind.starts_with("application/octet-stream")
}

impl<S: Send + Sync> FromRequest<S> for Upload {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bad_body = |status: StatusCode, reason: String| {
            let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
                "too_large"
            } else {
                "bad_body"
            };
            ApiError::new(status, code, reason)
        };
        let (parts, body) = request.into_parts();
        let kind = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        // the whole body is read (within the body limit) before any answer, also a refusal: a
        // connection whose request body is left unread cannot be kept alive
        let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(|e| bad_body(e.status(), e.body_text()))?;
        if kind.starts_with("multipart/form-data") {
            return image_part(Request::from_parts(parts, bytes.into()), state).await;
        }
        if !is_image_type(&kind) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "send the image as the body with Content-Type image/*, or as multipart/form-data \
                     (got `{kind}`)"
                ),
            ));
        }
        Ok(Upload(bytes))
    }
}

/// The image of a multipart form: its first file part, or the part named `image`.
async fn image_part<S: Send + Sync>(request: Request, state: &S) -> ApiResult<Upload> {
    let bad_form = |reason: String| ApiError::new(StatusCode::BAD_REQUEST, "bad_body", reason);
    let mut form = Multipart::from_request(request, state)
        .await
        .map_err(|e| bad_form(e.body_text()))?;
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| bad_form(e.body_text()))?
    {
        if field.file_name().is_none() && field.name() != Some("image") {
            continue;
        }
        let part = field.content_type().unwrap_or("application/octet-stream");
        if !is_image_type(part) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("the uploaded part is `{part}`, not an image"),
            ));
        }
        let bytes = field.bytes().await.map_err(|e| bad_form(e.body_text()))?;
        return Ok(Upload(bytes));
    }
    Err(bad_form(
        "the form has no file part (send the image as a part named `image`)".into(),
    ))
}

/// Runs one image through an arm's pool within the request's time.
pub(crate) async fn embed_image(
    state: &AppState,
    arm: &Arm,
    Upload(body): Upload,
) -> ApiResult<(Embedded, f64)> {
    if body.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_image",
            "empty body",
        ));
    }
    let started = Instant::now();
    let receiver = arm.pool.submit(body.to_vec()).map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "the embedding queue is full; retry shortly",
        )
    })?;
    let result = tokio::time::timeout(state.config.timeout, receiver)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                "embedding took too long",
            )
        })?
        .map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "worker_gone",
                "embedding worker stopped",
            )
        })?;
    let seconds = started.elapsed().as_secs_f64();
    state.metrics.observe_embed(seconds);
    match result {
        Ok(e) => Ok((e, seconds * 1e3)),
        Err(JobError::BadImage(reason)) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_image",
            reason,
        )),
        Err(JobError::Inference(reason)) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "inference",
            reason,
        )),
    }
}

fn k_of(state: &AppState, params: &SearchParams) -> ApiResult<usize> {
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
) -> ApiResult<(Vec<Hit>, f64)> {
    let started = Instant::now();
    let has_floats = arm
        .index
        .read()
        .map_err(|_| poisoned())?
        .layout()
        .floats
        .is_some();
    let mode = match rerank {
        Some(true) if !has_floats => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "no_floats",
                "this index keeps no float vectors to re-rank with",
            ))
        }
        Some(false) => Rerank::None,
        _ if has_floats && float.is_some() => Rerank::Float,
        _ => Rerank::None,
    };
    let job = SearchJob {
        code,
        float,
        k,
        mode,
    };
    let receiver = arm.searches.submit(job).map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "the search queue is full; retry shortly",
        )
    })?;
    let hits = tokio::time::timeout(state.config.timeout, receiver)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                "the search took too long",
            )
        })?
        .map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "search",
                "the search thread stopped",
            )
        })?
        .map_err(|e| match e {
            SearchError::BadQuery(reason) => {
                ApiError::new(StatusCode::BAD_REQUEST, "bad_query", reason)
            }
            SearchError::Index(reason) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "index", reason)
            }
        })?;
    let ms = started.elapsed().as_secs_f64() * 1e3;
    state.metrics.observe_arm_search(&arm.name, ms / 1e3);
    Ok((hits, ms))
}

fn poisoned() -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "poisoned",
        "index lock poisoned",
    )
}

/// The arm of a request and the opaque id logged for its user: the `X-Unisight-User` header or
/// `user` parameter picks the arm by the experiment's hash; without one, the request id does
/// (a one-off assignment).
fn choose_arm(
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

fn is_simulated(headers: &HeaderMap) -> bool {
    headers
        .get("x-unisight-simulated")
        .is_some_and(|v| v.as_bytes() == b"1")
}

/// A fresh request id: 128 random bits in hex.
pub(crate) fn request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Logs a search's impressions when the service keeps an engagement log.
fn log_search(
    state: &AppState,
    request: &str,
    arm: &Arm,
    query: String,
    user: Option<String>,
    simulated: bool,
    results: &[Hit],
) {
    if let Some(engagement) = &state.engagement {
        engagement.searched(
            request,
            SearchRecord {
                arm: arm.name.clone(),
                query,
                user,
                simulated,
                results: results
                    .iter()
                    .map(|h| {
                        let path = if h.path.is_empty() {
                            h.key.clone()
                        } else {
                            h.path.clone()
                        };
                        (h.key.clone(), path, h.score.unwrap_or(-(h.distance as f32)))
                    })
                    .collect(),
            },
        );
    }
}

async fn search_by_image(
    State(state): State<Arc<AppState>>,
    Query(params): Query<SearchParams>,
    headers: HeaderMap,
    upload: Result<Upload, ApiError>,
) -> Response {
    let started = Instant::now();
    let result: ApiResult<_> = async {
        let k = k_of(&state, &params)?;
        let upload = upload?;
        let request = request_id();
        let (a, user) = choose_arm(&state, &headers, params.user.as_deref(), &request);
        let arm = &state.arms[a];
        // uploads are named by a hash in the log; the image itself is never kept
        let query = state.engagement.is_some().then(|| {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(&upload.0);
            let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
            format!("{}{hex}", unisight_data::engagement::UPLOAD_PREFIX)
        });
        let (embedded, embed_ms) = embed_image(&state, arm, upload).await?;
        let (results, search_ms) = run_search(
            &state,
            arm,
            embedded.code,
            Some(embedded.embedding.clone()),
            k,
            params.rerank,
        )
        .await?;
        state.metrics.observe_search(search_ms / 1e3);
        if let Some(query) = query {
            log_search(
                &state,
                &request,
                arm,
                query,
                user,
                is_simulated(&headers),
                &results,
            );
        }
        Ok(Json(SearchResponse {
            request,
            arm: arm.name.clone(),
            results,
            embedding: params
                .embedding
                .unwrap_or(false)
                .then_some(embedded.embedding),
            embed_ms: Some(embed_ms),
            search_ms,
        }))
    }
    .await;
    state.metrics.finish("search_image", started, result)
}

async fn search_by_item(
    State(state): State<Arc<AppState>>,
    Path(key): Path<String>,
    Query(params): Query<SearchParams>,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    let result: ApiResult<_> = async {
        let k = k_of(&state, &params)?;
        let request = request_id();
        let (a, user) = choose_arm(&state, &headers, params.user.as_deref(), &request);
        let arm = &state.arms[a];
        let id = lookup(arm, &key)?;
        let (code, floats, path) = {
            let index = arm.index.read().map_err(|_| poisoned())?;
            let code = index
                .code(id)
                .map_err(|e| ApiError::new(StatusCode::NOT_FOUND, "unknown_item", e.to_string()))?
                .to_vec();
            let floats = index.floats(id).ok().flatten();
            let path = index.item(id).map(|i| i.path).unwrap_or_default();
            (code, floats, path)
        };
        let (results, search_ms) = run_search(&state, arm, code, floats, k, params.rerank).await?;
        state.metrics.observe_search(search_ms / 1e3);
        let query = if path.is_empty() { key.clone() } else { path };
        log_search(
            &state,
            &request,
            arm,
            query,
            user,
            is_simulated(&headers),
            &results,
        );
        Ok(Json(SearchResponse {
            request,
            arm: arm.name.clone(),
            results,
            embedding: None,
            embed_ms: None,
            search_ms,
        }))
    }
    .await;
    state.metrics.finish("search_item", started, result)
}

fn lookup(arm: &Arm, key: &str) -> ApiResult<u64> {
    arm.keys
        .read()
        .map_err(|_| poisoned())?
        .get(key)
        .copied()
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_item",
                format!("no item with key `{key}`"),
            )
        })
}

async fn get_item(State(state): State<Arc<AppState>>, Path(key): Path<String>) -> Response {
    let started = Instant::now();
    let result: ApiResult<_> = (|| {
        let arm = &state.arms[0];
        let id = lookup(arm, &key)?;
        let index = arm.index.read().map_err(|_| poisoned())?;
        let item = index
            .item(id)
            .map_err(|e| ApiError::new(StatusCode::NOT_FOUND, "unknown_item", e.to_string()))?;
        Ok(Json(
            serde_json::json!({"key": item.key, "path": item.path}),
        ))
    })();
    state.metrics.finish("get_item", started, result)
}

async fn embed(
    State(state): State<Arc<AppState>>,
    Query(params): Query<SearchParams>,
    headers: HeaderMap,
    upload: Result<Upload, ApiError>,
) -> Response {
    let started = Instant::now();
    let result: ApiResult<_> = async {
        let (a, _) = choose_arm(&state, &headers, params.user.as_deref(), &request_id());
        let arm = &state.arms[a];
        let (e, embed_ms) = embed_image(&state, arm, upload?).await?;
        Ok(Json(serde_json::json!({
            "arm": arm.name,
            "dim": e.embedding.len(),
            "embedding": e.embedding,
            "code": e.code.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "embed_ms": embed_ms,
        })))
    }
    .await;
    state.metrics.finish("embed", started, result)
}

fn authorize(state: &AppState, headers: &HeaderMap) -> ApiResult<()> {
    let Some(token) = &state.config.token else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "mutations_disabled",
            "no token is configured, so adding and removing items is off",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // constant-time comparison: the token's bytes are never compared early-out
    let ok = given.is_some_and(|g| {
        g.len() == token.len()
            && g.bytes()
                .zip(token.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    });
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required",
        ))
    }
}

/// Query parameters of `POST /v1/items`.
#[derive(Debug, Deserialize)]
pub struct AddParams {
    /// External key of the new item.
    key: String,
    /// Path or URL shown in results (default: the key).
    path: Option<String>,
}

async fn add_item(
    State(state): State<Arc<AppState>>,
    Query(params): Query<AddParams>,
    headers: HeaderMap,
    upload: Result<Upload, ApiError>,
) -> Response {
    let started = Instant::now();
    let result: ApiResult<_> = async {
        authorize(&state, &headers)?;
        if params.key.is_empty() || params.key.len() > 1024 {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_key",
                "key must be 1 to 1024 bytes",
            ));
        }
        if state.arms[0]
            .keys
            .read()
            .map_err(|_| poisoned())?
            .contains_key(&params.key)
        {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "exists",
                format!("key `{}` exists", params.key),
            ));
        }
        // every arm indexes the same catalog, each with its own model's embedding
        let upload = upload?;
        let mut embedded = Vec::with_capacity(state.arms.len());
        for arm in &state.arms {
            embedded.push(embed_image(&state, arm, Upload(upload.0.clone())).await?.0);
        }
        let state2 = state.clone();
        let key = params.key.clone();
        let path = params.path.clone().unwrap_or_else(|| params.key.clone());
        // each index commits (write, fsync, rename) before this returns
        let id = tokio::task::spawn_blocking(move || -> ApiResult<u64> {
            let mut first_id = 0;
            for (i, (arm, e)) in state2.arms.iter().zip(&embedded).enumerate() {
                let mut index = arm.index.write().map_err(|_| poisoned())?;
                let floats = index
                    .layout()
                    .floats
                    .is_some()
                    .then_some(e.embedding.as_slice());
                let ids = index
                    .add(&[NewItem {
                        key: &key,
                        path: &path,
                        code: &e.code,
                        floats,
                    }])
                    .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "add", e.to_string()))?;
                arm.keys
                    .write()
                    .map_err(|_| poisoned())?
                    .insert(key.clone(), ids[0]);
                if i == 0 {
                    first_id = ids[0];
                }
            }
            Ok(first_id)
        })
        .await
        .map_err(|_| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "add", "add task failed")
        })??;
        Ok((
            StatusCode::CREATED,
            Json(serde_json::json!({"key": params.key, "id": id})),
        ))
    }
    .await;
    state.metrics.finish("add_item", started, result)
}

async fn remove_item(
    State(state): State<Arc<AppState>>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    let result: ApiResult<_> = async {
        authorize(&state, &headers)?;
        lookup(&state.arms[0], &key)?;
        let state2 = state.clone();
        tokio::task::spawn_blocking(move || -> ApiResult<()> {
            for arm in &state2.arms {
                let Ok(id) = lookup(arm, &key) else { continue };
                let mut index = arm.index.write().map_err(|_| poisoned())?;
                index
                    .remove(&[id])
                    .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "remove", e.to_string()))?;
                arm.keys.write().map_err(|_| poisoned())?.remove(&key);
            }
            Ok(())
        })
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "remove",
                "remove task failed",
            )
        })??;
        Ok(StatusCode::NO_CONTENT)
    }
    .await;
    state.metrics.finish("remove_item", started, result)
}

async fn item_image(State(state): State<Arc<AppState>>, Path(key): Path<String>) -> Response {
    let started = Instant::now();
    let result: ApiResult<_> = async {
        let Some(root) = &state.config.image_root else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "no_images",
                "the service was started without an image root",
            ));
        };
        let arm = &state.arms[0];
        let id = lookup(arm, &key)?;
        let path = arm
            .index
            .read()
            .map_err(|_| poisoned())?
            .item(id)
            .map_err(|e| ApiError::new(StatusCode::NOT_FOUND, "unknown_item", e.to_string()))?
            .path;
        let file = unisight_data::sources::resolve_inside(root, &path).ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "outside_root",
                "the item's path is not inside the image root",
            )
        })?;
        let bytes = tokio::fs::read(&file).await.map_err(|_| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no_image",
                "the item's image cannot be read",
            )
        })?;
        let kind = match file
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("png") => "image/png",
            Some("webp") => "image/webp",
            _ => "image/jpeg",
        };
        Ok((
            [
                (header::CONTENT_TYPE, kind),
                (header::CACHE_CONTROL, "max-age=3600"),
            ],
            bytes,
        ))
    }
    .await;
    state.metrics.finish("item_image", started, result)
}
