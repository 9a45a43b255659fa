//! Request parts read the service's way: query strings and path segments whose errors answer in
//! the documented JSON shape (axum's own rejections are `text/plain`), and item keys checked
//! before they reach the index or the log.

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use crate::app::{ApiError, ApiResult};

/// Longest item key, in bytes.
pub(crate) const MAX_KEY_BYTES: usize = 1024;

/// The token of an `Authorization: Bearer TOKEN` header (the scheme matched without case).
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
}

/// A query string, refused as `400 bad_query` JSON when it does not parse.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| ApiQuery(v))
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_query", e.body_text()))
    }
}

/// Path parameters, refused as `400 bad_path` JSON when they do not parse (a number that is
/// not one, bytes that are not UTF-8).
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| ApiPath(v))
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_path", e.body_text()))
    }
}

/// An item key from a request: 1 to [`MAX_KEY_BYTES`] bytes of valid UTF-8 without control
/// characters (NUL, newline, ...), which would corrupt logs and listings. Bytes that were not
/// UTF-8 arrive as U+FFFD and are refused too, so no key is ever stored lossily.
///
/// # Errors
/// `400 bad_key` naming what is wrong.
pub(crate) fn check_key(key: &str) -> ApiResult<()> {
    let bad = |reason: &str| Err(ApiError::new(StatusCode::BAD_REQUEST, "bad_key", reason));
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return bad("a key must be 1 to 1024 bytes");
    }
    if key.chars().any(char::is_control) {
        return bad("a key must not hold control characters (NUL, newline, tab, ...)");
    }
    if key.contains('\u{FFFD}') {
        return bad("a key must be valid UTF-8");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked() {
        assert!(check_key("sku-1/äöü").is_ok());
        for bad in ["", "a\0b", "a\nb", "tab\there", "bad\u{FFFD}utf8"] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
        assert!(check_key(&"k".repeat(MAX_KEY_BYTES)).is_ok());
        assert!(check_key(&"k".repeat(MAX_KEY_BYTES + 1)).is_err());
    }
}
