//! The side-by-side relevance study: `GET /v1/study/next` gives a rater the next query with two
//! result lists (two arms, sides shuffled by a hash of rater and query, arm names hidden),
//! `POST /v1/study/ratings` stores the rater's choice durably before answering. A study with a
//! rater file takes the rater from the token presented (`Authorization: Bearer TOKEN`), not from
//! a name the client chooses.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use unisight_experiment::study::{first_arm_on_left, trial_order, Choice, StudyQuery};
use unisight_experiment::{RaterTokens, Rating, RatingsFile};

use crate::app::{ApiError, ApiResult, AppState};
use crate::extract::{ApiPath, ApiQuery};
use crate::images::{embed_image, Upload};
use crate::search::run_search;
use unisight_backend::Hit;

/// A study the service runs.
pub struct Study {
    salt: String,
    arms: [String; 2],
    queries: Vec<StudyQuery>,
    k: usize,
    ratings: RatingsFile,
    /// Who may rate; `None`: anyone, under the rater id they give.
    raters: Option<RaterTokens>,
    /// (trial, arm index) -> results, so each list is computed once.
    lists: Mutex<HashMap<(usize, usize), Vec<Hit>>>,
}

impl Study {
    /// A study of `arms` (names of the service's arms) over `queries`, `k` results a side;
    /// with `raters`, only the holders of its tokens may rate.
    pub fn new(
        salt: String,
        arms: [String; 2],
        queries: Vec<StudyQuery>,
        k: usize,
        ratings: RatingsFile,
        raters: Option<RaterTokens>,
    ) -> Self {
        Study {
            salt,
            arms,
            queries,
            k,
            ratings,
            raters,
            lists: Mutex::new(HashMap::new()),
        }
    }

    /// Forgets the computed result lists (the arms were reloaded: new models, new lists).
    pub(crate) fn forget_lists(&self) {
        if let Ok(mut lists) = self.lists.lock() {
            lists.clear();
        }
    }
}

fn study_of(state: &AppState) -> ApiResult<&Study> {
    state.study.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no_study",
            "this service runs no study (start it with an experiment that has [study])",
        )
    })
}

/// The opaque id a rating is stored under: of the token's rater when the study has a rater
/// file (401 without a known token; 403 when a `rater` given differs), else of the id given.
fn rater_id(
    state: &AppState,
    study: &Study,
    headers: &HeaderMap,
    given: Option<&str>,
) -> ApiResult<String> {
    let rater = match &study.raters {
        Some(raters) => {
            let name = crate::extract::bearer_token(headers)
                .and_then(|t| raters.rater_of(t))
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "rater_token",
                        "this study needs a rater token (Authorization: Bearer TOKEN, from \
                         `unisight study add-rater`)",
                    )
                })?;
            if given.is_some_and(|g| g != name) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "rater_mismatch",
                    "the rater id given is not the token's rater",
                ));
            }
            name
        }
        None => given.ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_rater",
                "a rater id is required",
            )
        })?,
    };
    if rater.is_empty() || rater.len() > 128 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_rater",
            "rater must be 1 to 128 characters",
        ));
    }
    Ok(state.assignment_opaque(rater))
}

/// Query of `GET /v1/study/next`.
#[derive(Debug, Deserialize)]
pub struct NextParams {
    /// The rater's id (optional with rater tokens, which name the rater).
    rater: Option<String>,
}

async fn list(state: &AppState, study: &Study, trial: usize, side: usize) -> ApiResult<Vec<Hit>> {
    let name = &study.arms[side];
    let arms = state.arms();
    let a = arms.iter().position(|a| a.name == *name).ok_or_else(|| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no_arm",
            format!("study arm `{name}` is not served"),
        )
    })?;
    if let Some(hits) = study
        .lists
        .lock()
        .ok()
        .and_then(|l| l.get(&(trial, a)).cloned())
    {
        return Ok(hits);
    }
    let query = &study.queries[trial];
    let bytes = tokio::fs::read(&query.file).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "query_image",
            format!("{}: {e}", query.path),
        )
    })?;
    let arm = &arms[a];
    let deadline = std::time::Instant::now() + state.config.timeout;
    let (embedded, _) = embed_image(state, arm, Upload(bytes.into()), deadline).await?;
    let (hits, _) = run_search(
        state,
        arm,
        embedded.code,
        Some(embedded.embedding),
        study.k,
        None,
        deadline,
    )
    .await?;
    if let Ok(mut l) = study.lists.lock() {
        l.insert((trial, a), hits.clone());
    }
    Ok(hits)
}

/// `GET /v1/study/next?rater=R`: the rater's next unrated query, or `{"done": true}`.
pub async fn next_trial(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    ApiQuery(params): ApiQuery<NextParams>,
) -> Response {
    let started = Instant::now();
    let result: ApiResult<_> = async {
        let study = study_of(&state)?;
        let rater = rater_id(&state, study, &headers, params.rater.as_deref())?;
        let order = trial_order(&study.salt, &rater, study.queries.len());
        let left_to_rate: Vec<usize> = order
            .into_iter()
            .filter(|&t| !study.ratings.has(&rater, t))
            .collect();
        let Some(&trial) = left_to_rate.first() else {
            return Ok(Json(
                serde_json::json!({"done": true, "queries": study.queries.len()}),
            ));
        };
        let first_left = first_arm_on_left(&study.salt, &rater, trial);
        let (l, r) = if first_left { (0, 1) } else { (1, 0) };
        let side = |hits: Vec<Hit>| -> Vec<serde_json::Value> {
            hits.into_iter()
                .map(|h| {
                    serde_json::json!({
                        "key": h.key,
                        "image": format!("/v1/items/{}/image", encode(&h.key)),
                    })
                })
                .collect()
        };
        let left = side(list(&state, study, trial, l).await?);
        let right = side(list(&state, study, trial, r).await?);
        Ok(Json(serde_json::json!({
            "done": false,
            "trial": trial,
            "task": study.queries[trial].task,
            "query_image": format!("/v1/study/queries/{trial}/image"),
            "left": left,
            "right": right,
            "remaining": left_to_rate.len(),
        })))
    }
    .await;
    state.metrics.finish("study_next", started, result)
}

/// Percent-encodes a key for a URL path segment.
fn encode(key: &str) -> String {
    key.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `GET /v1/study/queries/{trial}/image`.
pub async fn query_image(
    State(state): State<Arc<AppState>>,
    ApiPath(trial): ApiPath<usize>,
) -> Response {
    let started = Instant::now();
    let result: ApiResult<_> = async {
        let study = study_of(&state)?;
        let query = study.queries.get(trial).ok_or_else(|| {
            ApiError::new(StatusCode::NOT_FOUND, "unknown_trial", "no such query")
        })?;
        let bytes = tokio::fs::read(&query.file).await.map_err(|_| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no_image",
                "the query image cannot be read",
            )
        })?;
        let kind = if query.path.to_ascii_lowercase().ends_with(".png") {
            "image/png"
        } else {
            "image/jpeg"
        };
        Ok(([(header::CONTENT_TYPE, kind)], bytes))
    }
    .await;
    state.metrics.finish("study_query_image", started, result)
}

/// Body of `POST /v1/study/ratings`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatingBody {
    #[serde(default)]
    rater: Option<String>,
    trial: usize,
    choice: Choice,
    #[serde(default)]
    relevant_left: Vec<bool>,
    #[serde(default)]
    relevant_right: Vec<bool>,
}

/// `POST /v1/study/ratings`: stored and synced before the answer; a second rating of the same
/// query by the same rater answers 409.
pub async fn post_rating(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Json<RatingBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let started = Instant::now();
    let result: ApiResult<_> = async {
        let Json(body) =
            body.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_body", e.body_text()))?;
        let study = study_of(&state)?;
        let rater = rater_id(&state, study, &headers, body.rater.as_deref())?;
        let Some(query) = study.queries.get(body.trial) else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_trial",
                format!("no query {} in this study", body.trial),
            ));
        };
        if body.relevant_left.len() > study.k || body.relevant_right.len() > study.k {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_marks",
                format!("at most {} relevance marks a side", study.k),
            ));
        }
        let first_left = first_arm_on_left(&study.salt, &rater, body.trial);
        let (left, right) = if first_left {
            (&study.arms[0], &study.arms[1])
        } else {
            (&study.arms[1], &study.arms[0])
        };
        let preferred = match body.choice {
            Choice::Left => Some(left.clone()),
            Choice::Right => Some(right.clone()),
            Choice::Tie => None,
        };
        let mut relevant = BTreeMap::new();
        if !body.relevant_left.is_empty() {
            relevant.insert(left.clone(), body.relevant_left);
        }
        if !body.relevant_right.is_empty() {
            relevant.insert(right.clone(), body.relevant_right);
        }
        let rating = Rating {
            trial: body.trial,
            query: query.path.clone(),
            task: query.task.clone(),
            rater,
            left: left.clone(),
            right: right.clone(),
            choice: body.choice,
            preferred,
            relevant,
            time_ms: crate::engagement::now_ms(),
        };
        let state2 = state.clone();
        let added = tokio::task::spawn_blocking(move || {
            state2
                .study
                .as_ref()
                .map(|s| s.ratings.add(&rating))
                .transpose()
        })
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "rating", "task failed"))?
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "rating", e.to_string()))?;
        match added {
            Some(true) => Ok((
                StatusCode::CREATED,
                Json(serde_json::json!({"status": "saved"})),
            )),
            _ => Err(ApiError::new(
                StatusCode::CONFLICT,
                "already_rated",
                "this rater already rated this query",
            )),
        }
    }
    .await;
    state.metrics.finish("study_rating", started, result)
}
