//! What every route gets: a deadline on the whole request, reading its body included (a client
//! trickling a body would otherwise hold a connection and the partial body for as long as it
//! likes), and `X-Content-Type-Options: nosniff` on every answer.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app::ApiError;

/// Answers `408 request_timeout` (and closes the connection) when the request is not read and
/// answered within `limit`; the handler and its partial body are dropped.
pub(crate) async fn request_deadline(
    State(limit): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            let mut response = ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                format!(
                    "the request was not received and answered within {:.0} s",
                    limit.as_secs_f64()
                ),
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}

/// Adds `X-Content-Type-Options: nosniff`: an item image or JSON answer is never run as
/// something else by a browser.
pub(crate) async fn no_sniff(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}
