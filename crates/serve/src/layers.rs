//! What every route gets: a deadline on the whole request, reading its body included (a client
//! trickling a body would otherwise hold a connection and the partial body for as long as it
//! likes), an optional per-client rate limit, a check of the `Host` header, and
//! `X-Content-Type-Options: nosniff` on every answer.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
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

/// Clients tracked at once before idle ones are forgotten.
const MAX_TRACKED_CLIENTS: usize = 100_000;

/// A per-client token bucket: `per_second` requests a second with bursts of twice that, keyed by
/// the peer's address (or, behind a trusted proxy, the first `X-Forwarded-For` address).
pub struct ClientLimit {
    limiter: governor::DefaultKeyedRateLimiter<IpAddr>,
    trust_forwarded_for: bool,
}

impl ClientLimit {
    /// A limit of `per_second` requests a second per client.
    pub fn new(per_second: NonZeroU32, trust_forwarded_for: bool) -> Self {
        let burst = per_second.saturating_mul(NonZeroU32::new(2).expect("2 > 0"));
        ClientLimit {
            limiter: governor::RateLimiter::keyed(
                governor::Quota::per_second(per_second).allow_burst(burst),
            ),
            trust_forwarded_for,
        }
    }

    fn client(&self, request: &Request) -> IpAddr {
        let forwarded = self
            .trust_forwarded_for
            .then(|| request.headers().get("x-forwarded-for"))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse().ok());
        forwarded
            .or_else(|| {
                request
                    .extensions()
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|c| c.0.ip())
            })
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }
}

/// Answers `429 rate_limited` with `Retry-After` to a client over its limit; health, readiness
/// and metrics are never limited (monitoring must see an overloaded service).
pub(crate) async fn rate_limit(
    State(limit): State<Option<Arc<ClientLimit>>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(limit) = limit else {
        return next.run(request).await;
    };
    if matches!(request.uri().path(), "/healthz" | "/readyz" | "/metrics") {
        return next.run(request).await;
    }
    if limit.limiter.len() > MAX_TRACKED_CLIENTS {
        limit.limiter.retain_recent();
    }
    match limit.limiter.check_key(&limit.client(&request)) {
        Ok(()) => next.run(request).await,
        Err(not_until) => {
            use governor::clock::{Clock, DefaultClock};
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let mut response = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests from this client; retry after the given seconds",
            )
            .into_response();
            let seconds = wait.as_secs() + 1;
            if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
            response
        }
    }
}

/// The host names a request may be addressed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCheck {
    names: Vec<String>,
}

impl HostCheck {
    /// Exactly these names (`search.example.com`, `10.0.0.7`, `[::1]`), without ports.
    pub fn new(names: impl IntoIterator<Item = String>) -> Self {
        HostCheck {
            names: names.into_iter().map(|n| n.to_ascii_lowercase()).collect(),
        }
    }

    /// The names of this machine's loopback address: what a browser on it sends to a service
    /// bound to 127.0.0.1 (and what a rebound DNS name never is).
    pub fn loopback() -> Self {
        Self::new(["localhost", "127.0.0.1", "[::1]"].map(String::from))
    }

    /// Whether a `Host` header value (name, optionally `:port`) is one of the names.
    pub fn allows(&self, host: &str) -> bool {
        let name = match host.strip_prefix('[') {
            // an IPv6 literal: `[::1]` or `[::1]:8080`
            Some(rest) => rest
                .split_once(']')
                .map_or(host, |(inside, _)| &host[..inside.len() + 2]),
            None => host.rsplit_once(':').map_or(host, |(name, _)| name),
        };
        self.names.iter().any(|n| n.eq_ignore_ascii_case(name))
    }
}

/// Answers `421 misdirected_host` to a request whose `Host` header names a host outside the
/// allowed list (DNS rebinding: a page of another site whose name now resolves here). A request
/// without the header (HTTP/1.0 tools) passes.
pub(crate) async fn host_check(
    State(check): State<Option<Arc<HostCheck>>>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .map(|v| v.to_str().unwrap_or(""));
    match (check, host) {
        (Some(check), Some(host)) if !check.allows(host) => ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "misdirected_host",
            "this service does not answer for that host name (see `unisight serve --allowed-host`)",
        )
        .into_response(),
        _ => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::HostCheck;

    #[test]
    fn host_names_are_compared_without_port_and_case() {
        let check = HostCheck::loopback();
        for ok in [
            "localhost",
            "LocalHost:8080",
            "127.0.0.1:9",
            "[::1]",
            "[::1]:8080",
        ] {
            assert!(check.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "127.0.0.2",
            "localhost.evil.example",
            "[::2]:80",
            "",
            "[",
        ] {
            assert!(!check.allows(bad), "{bad}");
        }
        let named = HostCheck::new(["search.example.com".to_string()]);
        assert!(named.allows("Search.Example.com:443") && !named.allows("localhost"));
    }
}
