//! The catalog's items: look one up, serve its image (from inside the image root only), and add
//! or remove items with the bearer token, durable in the index before the answer.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use unisight_backend::{NewItem, StoredItem};

use crate::app::{backend_error, blocking, ApiError, ApiResult, AppState, Arm};
use crate::extract::{check_key, ApiPath, ApiQuery};
use crate::images::{embed_image, Upload};

/// The item with this key in an arm (404 for an unknown key).
pub(crate) async fn lookup(arm: &Arm, key: &str) -> ApiResult<StoredItem> {
    let backend = arm.backend.clone();
    let key = key.to_string();
    blocking(move || {
        backend
            .get(&key)
            .map_err(|e| backend_error(e, &key))?
            .ok_or_else(|| unknown_item(&key))
    })
    .await
}

fn unknown_item(key: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_item",
        format!("no item with key `{key}`"),
    )
}

/// `GET /v1/items/{key}`: the item's key and path.
pub(crate) async fn get_item(
    State(state): State<Arc<AppState>>,
    ApiPath(key): ApiPath<String>,
) -> Response {
    let started = Instant::now();
    let result: ApiResult<_> = async {
        let item = lookup(&state.arms()[0], &key).await?;
        Ok(Json(
            serde_json::json!({"key": item.key, "path": item.path}),
        ))
    }
    .await;
    state.metrics.finish("get_item", started, result)
}

/// Mutations need the configured bearer token (403 when none is configured, 401 when it does not
/// match).
pub(crate) fn authorize(state: &AppState, headers: &HeaderMap) -> ApiResult<()> {
    let Some(token) = &state.config.token else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "mutations_disabled",
            "no token is configured, so adding and removing items is off",
        ));
    };
    let given = crate::extract::bearer_token(headers);
    // SHA-256 digests compared in constant time: neither the token's length nor its bytes
    // show in how long a refusal takes
    let ok = given.is_some_and(|g| {
        let (a, b) = (
            Sha256::digest(g.as_bytes()),
            Sha256::digest(token.as_bytes()),
        );
        a.iter()
            .zip(b.iter())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
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

/// A refused mutation closes its connection: its body is never read, so the connection cannot
/// carry another request.
fn close_after(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// `POST /v1/items?key=K`: embeds the uploaded image and adds it, committed before the answer.
/// The token and the key are checked before a byte of the body is read.
pub(crate) async fn add_item(
    State(state): State<Arc<AppState>>,
    query: Result<ApiQuery<AddParams>, ApiError>,
    headers: HeaderMap,
    request: Request,
) -> Response {
    let started = Instant::now();
    if let Err(e) = authorize(&state, &headers) {
        let refused = state
            .metrics
            .finish("add_item", started, Err::<StatusCode, _>(e));
        return close_after(refused);
    }
    let result: ApiResult<_> = async {
        let ApiQuery(params) = query?;
        check_key(&params.key)?;
        if let Some(path) = &params.path {
            check_key(path).map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_path",
                    "a path must be 1 to 1024 bytes of UTF-8 without control characters",
                )
            })?;
        }
        let arms = state.arms();
        match lookup(&arms[0], &params.key).await {
            Ok(_) => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "exists",
                    format!("key `{}` exists", params.key),
                ))
            }
            Err(e) if e.status() == StatusCode::NOT_FOUND => {}
            Err(e) => return Err(e),
        }
        // every arm indexes the same catalog, each with its own model's embedding
        let upload = Upload::from_request(request, &()).await?;
        let deadline = Instant::now() + state.config.timeout;
        let mut embedded = Vec::with_capacity(arms.len());
        for arm in arms.iter() {
            let upload = Upload(upload.0.clone());
            embedded.push(embed_image(&state, arm, upload, deadline).await?.0);
        }
        let key = params.key.clone();
        let path = params.path.clone().unwrap_or_else(|| params.key.clone());
        // each backend commits before this returns (an index: write, fsync, rename; Milvus: an
        // acknowledged insert, which a server restart keeps)
        blocking(move || {
            for (arm, e) in arms.iter().zip(&embedded) {
                let floats = arm
                    .backend
                    .shape()
                    .float_dim
                    .is_some()
                    .then_some(e.embedding.as_slice());
                let item = NewItem {
                    key: &key,
                    path: &path,
                    code: &e.code,
                    floats,
                };
                arm.backend
                    .add(&[item])
                    .map_err(|e| backend_error(e, &key))?;
            }
            Ok(())
        })
        .await?;
        Ok((
            StatusCode::CREATED,
            Json(serde_json::json!({"key": params.key})),
        ))
    }
    .await;
    state.metrics.finish("add_item", started, result)
}

/// `DELETE /v1/items/{key}`: removes the item, committed before the answer.
pub(crate) async fn remove_item(
    State(state): State<Arc<AppState>>,
    ApiPath(key): ApiPath<String>,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    let result: ApiResult<_> = async {
        authorize(&state, &headers)?;
        check_key(&key)?;
        let arms = state.arms();
        lookup(&arms[0], &key).await?;
        blocking(move || {
            for (i, arm) in arms.iter().enumerate() {
                let removed = arm
                    .backend
                    .remove(&[key.as_str()])
                    .map_err(|e| backend_error(e, &key))?;
                // a concurrent delete removed it first: a 404, as the lookup would have said
                if i == 0 && removed == 0 {
                    return Err(unknown_item(&key));
                }
            }
            Ok(())
        })
        .await?;
        Ok(StatusCode::NO_CONTENT)
    }
    .await;
    state.metrics.finish("remove_item", started, result)
}

/// `GET /v1/items/{key}/image`: the item's image file, read only from inside the image root.
pub(crate) async fn item_image(
    State(state): State<Arc<AppState>>,
    ApiPath(key): ApiPath<String>,
) -> Response {
    let started = Instant::now();
    let result: ApiResult<_> = async {
        let Some(root) = &state.config.image_root else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "no_images",
                "the service was started without an image root",
            ));
        };
        let path = lookup(&state.arms()[0], &key).await?.path;
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
