//! The service's state and routes. Every error is JSON `{"error": code, "reason": text}` with a
//! 4xx status for anything the client can fix (bad image, unknown id, wrong content type, too
//! large), 503 with `Retry-After` when a queue is full, 504 when a request runs past its time.
//! The handlers live by concern: [`crate::search`] (searches), [`crate::images`] (uploads and
//! embedding), [`crate::items`] (the catalog's items, mutations), [`crate::ops`] (health,
//! readiness, metrics), [`crate::events`] and [`crate::study`] (experiments).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use unisight_backend::Backend;
use unisight_experiment::Assignment;

use crate::engagement::Engagement;
use crate::images::embed;
use crate::items::{add_item, get_item, item_image, remove_item};
use crate::metrics::Metrics;
use crate::ops::{metrics, readyz};
use crate::pool::EmbedPool;
use crate::search::{search_by_image, search_by_item};
use crate::search_queue::SearchQueue;

/// Default seconds a request may take once its body is in.
pub const DEFAULT_TIMEOUT_S: u64 = 10;
/// Default seconds for a request's headers, and for an idle connection.
pub const DEFAULT_HEADER_TIMEOUT_S: u64 = 10;
/// Default seconds for a whole request, body included.
pub const DEFAULT_REQUEST_DEADLINE_S: u64 = 30;
/// Default most connections open at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// Limits and switches of a running service.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Largest k a request may ask for.
    pub max_k: usize,
    /// Time a request may take, from its body being in to its answer, every queue included,
    /// before it is answered 504 (its queued work is then dropped unprocessed).
    pub timeout: Duration,
    /// Time a connection may take to send a request's headers, and may sit idle between
    /// requests, before it is closed.
    pub header_timeout: Duration,
    /// Time a whole request, body included, may take before it is answered 408 and its
    /// connection closed (longer than `timeout`, which starts once the body is in).
    pub request_deadline: Duration,
    /// Most connections open at once; more wait unaccepted until one closes.
    pub max_connections: usize,
    /// Requests a second each client may make (bursts of twice that), answered 429 beyond;
    /// `None`: no limit. Health, readiness and metrics are never limited.
    pub rate_limit: Option<std::num::NonZeroU32>,
    /// Key the rate limit by the first `X-Forwarded-For` address (only behind a proxy that
    /// sets it) instead of the peer's.
    pub trust_forwarded_for: bool,
    /// Host names (without port) a request's `Host` header may carry, compared without case;
    /// others are answered `421 misdirected_host`, so a web page whose DNS name was rebound to
    /// this address cannot talk to the service from a browser. `None`: any host (a service
    /// behind a proxy that checks it). See [`crate::HostCheck::loopback`].
    pub allowed_hosts: Option<crate::layers::HostCheck>,
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
            timeout: Duration::from_secs(DEFAULT_TIMEOUT_S),
            header_timeout: Duration::from_secs(DEFAULT_HEADER_TIMEOUT_S),
            request_deadline: Duration::from_secs(DEFAULT_REQUEST_DEADLINE_S),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            rate_limit: None,
            trust_forwarded_for: false,
            allowed_hosts: None,
            token: None,
            rerank_factor: 4,
            search_threads: 1,
            max_search_batch: 32,
            search_queue: 1024,
            image_root: None,
        }
    }
}

/// One arm: a model (its embedding pool) and the index built with it, behind the backend
/// boundary (the embedded unisight index or a Milvus collection). A service without an
/// experiment has one arm, `default`, assigned by [`AppState::single_arm_assignment`].
pub struct Arm {
    pub(crate) name: String,
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) searches: SearchQueue,
    pub(crate) pool: EmbedPool,
    pub(crate) model_bytes: u64,
}

impl Arm {
    /// Serves `backend` (opened writable when mutations are enabled) with a started pool, and
    /// starts the arm's search thread; `model_bytes` is reported as the arm's model size.
    pub fn new(
        name: &str,
        backend: Arc<dyn Backend>,
        pool: EmbedPool,
        model_bytes: u64,
        config: &ServiceConfig,
    ) -> Self {
        let searches = SearchQueue::start(
            backend.clone(),
            config.search_queue,
            config.max_search_batch,
            config.search_threads,
            config.rerank_factor,
            pool.in_flight(),
        );
        Arm {
            name: name.to_string(),
            backend,
            searches,
            pool,
            model_bytes,
        }
    }
}

/// Builds the service's arms anew from its configuration (the CLI reads its deployment file
/// again), for `POST /v1/admin/reload`; `Err` says why they cannot be served.
pub type Reloader = Box<dyn Fn() -> Result<Vec<Arm>, String> + Send + Sync>;

/// What the handlers share.
pub struct AppState {
    /// Swapped whole by a reload: a request works on the snapshot it took ([`AppState::arms`]),
    /// so a switch never fails a request in flight.
    arms: RwLock<Arc<Vec<Arm>>>,
    reloader: Option<Reloader>,
    /// One reload at a time.
    pub(crate) reloading: tokio::sync::Mutex<()>,
    pub(crate) assignment: Assignment,
    pub(crate) engagement: Option<Engagement>,
    pub(crate) study: Option<crate::study::Study>,
    pub(crate) config: ServiceConfig,
    pub(crate) metrics: Metrics,
}

impl AppState {
    /// The assignment of a service without an experiment: everyone gets its one arm.
    pub fn single_arm_assignment() -> Assignment {
        Assignment::new("unisight".into(), &[1.0])
    }

    /// Several arms, users split by `assignment` (whose shares follow `arms`' order).
    ///
    /// # Panics
    /// If `arms` is empty (a caller bug).
    pub fn with_arms(arms: Vec<Arm>, assignment: Assignment, config: ServiceConfig) -> Self {
        assert!(!arms.is_empty(), "at least one arm");
        AppState {
            arms: RwLock::new(Arc::new(arms)),
            reloader: None,
            reloading: tokio::sync::Mutex::new(()),
            assignment,
            engagement: None,
            study: None,
            config,
            metrics: Metrics::default(),
        }
    }

    /// Logs every search's impressions to `impressions` and the actions accepted at
    /// `POST /v1/events` to `actions` (two streams of one log: `<stem>` and
    /// `<stem>.impressions`), remembering searches for actions up to `remember_bytes`.
    #[must_use]
    pub fn with_engagement_log(
        mut self,
        actions: unisight_engagement::EventLog,
        impressions: unisight_engagement::EventLog,
        remember_bytes: usize,
    ) -> Self {
        self.engagement = Some(Engagement::new(actions, impressions, remember_bytes));
        self
    }

    /// Serves a side-by-side relevance study at `/study`.
    #[must_use]
    pub fn with_study(mut self, study: crate::study::Study) -> Self {
        self.study = Some(study);
        self
    }

    /// Answers `POST /v1/admin/reload` by building the arms with `reloader` and switching to
    /// them.
    #[must_use]
    pub fn with_reloader(mut self, reloader: Reloader) -> Self {
        self.reloader = Some(reloader);
        self
    }

    /// The arms now: a snapshot that stays valid (models, backends and queues running) while a
    /// request holds it, across a reload.
    pub(crate) fn arms(&self) -> Arc<Vec<Arm>> {
        self.arms
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Builds the arms again with the reloader (on the calling thread: it loads models and
    /// opens backends) and switches to them in one step, once they are up; the arms served
    /// until then keep answering the requests that hold them and stop when the last ends.
    /// Nothing changes when the reloader fails or its arms are not the ones served (names and
    /// order: users keep their arm).
    pub(crate) fn reload(&self) -> Result<Arc<Vec<Arm>>, String> {
        let reloader = self
            .reloader
            .as_ref()
            .ok_or("this service was not started from a deployment file")?;
        let arms = reloader()?;
        let names = |arms: &[Arm]| arms.iter().map(|a| a.name.clone()).collect::<Vec<_>>();
        let (now, new) = (names(&self.arms()), names(&arms));
        if now != new {
            return Err(format!(
                "the new arms {new:?} are not the arms served ({now:?})"
            ));
        }
        let arms = Arc::new(arms);
        *self
            .arms
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = arms.clone();
        if let Some(study) = &self.study {
            study.forget_lists();
        }
        Ok(arms)
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
    let deadline = state.config.request_deadline;
    let client_limit = state.config.rate_limit.map(|per_second| {
        Arc::new(crate::layers::ClientLimit::new(
            per_second,
            state.config.trust_forwarded_for,
        ))
    });
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
        .route("/v1/admin/reload", post(crate::admin::reload))
        .route("/v1/events", post(crate::events::post_event))
        .route("/study", get(crate::page::study_page))
        .route("/v1/study/next", get(crate::study::next_trial))
        .route(
            "/v1/study/queries/{trial}/image",
            get(crate::study::query_image),
        )
        .route("/v1/study/ratings", post(crate::study::post_rating))
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(
            deadline,
            crate::layers::request_deadline,
        ))
        .layer(middleware::from_fn_with_state(
            client_limit,
            crate::layers::rate_limit,
        ))
        .layer(middleware::from_fn_with_state(
            state.config.allowed_hosts.clone().map(Arc::new),
            crate::layers::host_check,
        ))
        .layer(middleware::from_fn(crate::layers::no_sniff))
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

    /// The status it answers with.
    pub(crate) fn status(&self) -> StatusCode {
        self.status
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

/// A backend error as an answer, by its kind rather than by route: `409 exists` for a key that
/// is already there, `400 bad_request` for input the index refuses, `503 index_busy` while
/// another process writes the embedded index, `503 index_down` while the index (a Milvus
/// server) cannot be reached, and `500 index_unavailable` for anything else (its details, with
/// file paths or server messages, go to the log, not to the client).
pub(crate) fn backend_error(e: unisight_backend::Error, key: &str) -> ApiError {
    use unisight_backend::Error as E;
    match e {
        E::DuplicateKey(_) => ApiError::new(
            StatusCode::CONFLICT,
            "exists",
            format!("key `{key}` exists"),
        ),
        E::InvalidInput(what) => ApiError::new(StatusCode::BAD_REQUEST, "bad_request", what),
        E::Busy => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "index_busy",
            "another process is writing the index",
        ),
        E::Unavailable(why) => {
            tracing::warn!(reason = %why, "the index cannot be reached");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "index_down",
                "the index cannot be reached now; retry shortly",
            )
        }
        e => {
            tracing::error!(error = %e, "the index cannot be used");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "index_unavailable",
                "the index cannot be read or written; see the service's log",
            )
        }
    }
}

/// Runs `work` on the blocking pool (a remote backend waits on its server, within its own
/// deadline; the embedded one may wait for the index's write lock), off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(work).await.map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "worker_gone",
            "the index task failed",
        )
    })?
}

/// A fresh request id: 128 random bits in hex.
pub(crate) fn request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The answer of a job queued for a worker thread, within the request's time: 503 when the
/// queue refused it, 504 past `deadline` (the request's, shared by all its queued stages), 500
/// when the worker went away. `what` names the work
/// ("embedding", "search") in the reasons.
pub(crate) async fn queued_answer<T, Refused>(
    submitted: Result<tokio::sync::oneshot::Receiver<T>, Refused>,
    deadline: std::time::Instant,
    what: &str,
) -> ApiResult<T> {
    let receiver = submitted.map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            format!("the {what} queue is full; retry shortly"),
        )
    })?;
    let timed_out = || {
        ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            format!("the {what} took too long"),
        )
    };
    match tokio::time::timeout_at(deadline.into(), receiver).await {
        Ok(Ok(answer)) => Ok(answer),
        // a job dropped at its deadline is a timeout, not a lost worker
        Ok(Err(_)) if std::time::Instant::now() >= deadline => Err(timed_out()),
        Ok(Err(_)) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "worker_gone",
            format!("the {what} worker stopped"),
        )),
        Err(_) => Err(timed_out()),
    }
}
