//! Uploaded images: the request extractor (raw body or multipart form), embedding on an arm's
//! worker pool within the request's time, and `POST /v1/embed`.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;

use crate::app::{queued_answer, request_id, ApiError, ApiResult, AppState, Arm};
use crate::extract::ApiQuery;
use crate::pool::JobError;
use crate::search::{choose_arm, SearchParams};
use unisight_core::ImageEmbedding as Embedded;

/// An uploaded image: the raw body (`Content-Type: image/*` or `application/octet-stream`) or
/// the first file part of a `multipart/form-data` body (`curl -F image=@photo.jpg`).
pub struct Upload(pub(crate) Bytes);

pub(crate) fn is_image_type(kind: &str) -> bool {
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
pub(crate) async fn image_part<S: Send + Sync>(request: Request, state: &S) -> ApiResult<Upload> {
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
    deadline: Instant,
) -> ApiResult<(Embedded, f64)> {
    if body.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_image",
            "empty body",
        ));
    }
    let started = Instant::now();
    let result = queued_answer(
        arm.pool.submit(body.to_vec(), deadline),
        deadline,
        "embedding",
    )
    .await?;
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

/// `POST /v1/embed`: the uploaded image's embedding and packed code.
pub(crate) async fn embed(
    State(state): State<Arc<AppState>>,
    ApiQuery(params): ApiQuery<SearchParams>,
    headers: HeaderMap,
    upload: Result<Upload, ApiError>,
) -> Response {
    let started = Instant::now();
    let result: ApiResult<_> = async {
        let (a, _) = choose_arm(&state, &headers, params.user.as_deref(), &request_id());
        let arms = state.arms();
        let arm = &arms[a];
        let deadline = started + state.config.timeout;
        let (e, embed_ms) = embed_image(&state, arm, upload?, deadline).await?;
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
