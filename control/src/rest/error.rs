//! The one place errors become HTTP responses, in the body shape Spring Boot gives
//! Lavalink: `{timestamp,status,error,[trace],message,path}`.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error answered to a REST client. Handlers build it; the [`ErrorContext`] layer
/// fills in the path and whether `?trace=true` asked for a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The human-readable reason; never empty.
    pub message: String,
    /// Longer diagnostic detail, shown only with `?trace=true`.
    pub detail: Option<String>,
}

impl ApiError {
    /// An error with the given status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            detail: None,
        }
    }
    /// 400 Bad Request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    /// 404 Not Found.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    /// 500 Internal Server Error.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
    /// Attaches diagnostic detail for `?trace=true`.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
    /// `Session not found`, the 404 every session-scoped route gives.
    pub fn session_not_found() -> Self {
        Self::not_found("Session not found")
    }
}

/// The request facts an error body needs, stored in request extensions by the
/// middleware and copied onto the response.
#[derive(Debug, Clone)]
pub struct ErrorContext {
    /// Request path without the query string.
    pub path: String,
    /// Whether `trace` was present in the query and not `false`.
    pub trace: bool,
}

impl ErrorContext {
    /// Reads the context from a request URI.
    pub fn from_uri(uri: &axum::http::Uri) -> Self {
        let trace = uri
            .query()
            .map(|q| {
                q.split('&').any(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    k == "trace" && !v.eq_ignore_ascii_case("false")
                })
            })
            .unwrap_or(false);
        ErrorContext {
            path: uri.path().to_owned(),
            trace,
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    timestamp: u64,
    status: u16,
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace: Option<String>,
    message: &'a str,
    path: &'a str,
}

/// Milliseconds since the Unix epoch, as every Lavalink timestamp is expressed.
pub fn epoch_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl ApiError {
    /// Renders the error body for a request.
    pub fn render(&self, ctx: &ErrorContext) -> Response {
        let trace = ctx.trace.then(|| {
            let mut t = format!("quaver::ApiError: {}", self.message);
            if let Some(d) = &self.detail {
                t.push_str("\nCaused by: ");
                t.push_str(d);
            }
            t
        });
        let body = ErrorBody {
            timestamp: epoch_millis(),
            status: self.status.as_u16(),
            error: self.status.canonical_reason().unwrap_or("Unknown"),
            trace,
            message: &self.message,
            path: &ctx.path,
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            json,
        )
            .into_response()
    }
}

impl IntoResponse for ApiError {
    /// Without the request at hand the error travels in a response extension; the
    /// error middleware replaces the response with the rendered body.
    fn into_response(self) -> Response {
        let mut res = self.status.into_response();
        res.extensions_mut().insert(self);
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_flag_follows_spring_rules() {
        let t = |q: &str| ErrorContext::from_uri(&q.parse().unwrap()).trace;
        assert!(t("/v4/info?trace=true"));
        assert!(t("/v4/info?trace"));
        assert!(t("/v4/info?a=1&trace=1"));
        assert!(!t("/v4/info?trace=false"));
        assert!(!t("/v4/info"));
    }

    #[tokio::test]
    async fn body_has_lavalink_field_order() {
        let ctx = ErrorContext {
            path: "/v4/x".into(),
            trace: true,
        };
        let res = ApiError::not_found("Session not found")
            .with_detail("why")
            .render(&ctx);
        assert_eq!(res.status(), 404);
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 16)
            .await
            .unwrap();
        let text = std::str::from_utf8(&bytes).unwrap();
        let keys: Vec<_> = ["timestamp", "status", "error", "trace", "message", "path"]
            .iter()
            .map(|k| text.find(&format!("\"{k}\"")).unwrap())
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert!(text.contains("\"error\":\"Not Found\""));
    }
}
