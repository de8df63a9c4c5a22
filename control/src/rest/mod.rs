//! The HTTP edge: routes, authentication, the `Lavalink-Api-Version` header and the
//! translation of every error into Lavalink's JSON error body.

pub mod body;
mod engine;
pub mod error;
mod info;
pub mod listen;
mod players;
mod routeplanner;
mod tracks;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::node::Node;
use error::{ApiError, ErrorContext};

/// The whole HTTP application: REST routes and the WebSocket endpoint.
pub fn router(node: Arc<Node>) -> Router {
    let rest = Router::new()
        .route("/version", get(info::version))
        .route("/v4/info", get(info::info))
        .route("/v4/stats", get(info::stats))
        .route("/v4/loadtracks", get(tracks::load_tracks))
        .route("/v4/decodetrack", get(tracks::decode_track))
        .route("/v4/decodetracks", post(tracks::decode_tracks))
        .route(
            "/v4/sessions/{session}",
            axum::routing::patch(players::patch_session),
        )
        .route("/v4/sessions/{session}/players", get(players::get_players))
        .route(
            "/v4/sessions/{session}/players/{guild}",
            get(players::get_player)
                .patch(players::patch_player)
                .delete(players::delete_player),
        )
        .route("/v4/routeplanner/status", get(routeplanner::status))
        .route(
            "/v4/routeplanner/free/address",
            post(routeplanner::free_address),
        )
        .route("/v4/routeplanner/free/all", post(routeplanner::free_all))
        .route("/quaver/engine", get(engine::engine))
        // Lavalink keeps these two v3 paths answering 200 with an empty body.
        .route("/", get(StatusCode::OK))
        .route("/v3/websocket", get(StatusCode::OK))
        .route_layer(middleware::from_fn_with_state(node.clone(), authenticate));
    let ws = Router::new().route("/v4/websocket", get(crate::ws::handshake));
    rest.merge(ws)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(node.clone(), serve_metrics))
        .layer(middleware::from_fn(lavalink_edge))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
        .with_state(node)
}

/// REST authentication: the `Authorization` header must equal the password verbatim.
/// Missing → 401, wrong → 403, both with empty bodies. A request that passes marks
/// its connection as authenticated (see [`listen`]).
async fn authenticate(State(node): State<Arc<Node>>, req: Request, next: Next) -> Response {
    match check_password(&node, req.headers()) {
        Ok(()) => {
            if let Some(conn) = req.extensions().get::<listen::EdgeConnection>() {
                conn.authenticate();
            }
            next.run(req).await
        }
        Err(status) => status.into_response(),
    }
}

/// `GET <metrics.prometheus.endpoint>` when metrics are enabled: answered ahead of
/// the routes, so a configured path can never clash with one of them. Authenticated
/// like REST unless the path was configured explicitly, as in Lavalink.
async fn serve_metrics(State(node): State<Arc<Node>>, req: Request, next: Next) -> Response {
    let Some(endpoint) = node.config.metrics.as_ref() else {
        return next.run(req).await;
    };
    if req.method() != Method::GET || req.uri().path() != endpoint.path {
        return next.run(req).await;
    }
    if !endpoint.open {
        if let Err(status) = check_password(&node, req.headers()) {
            return status.into_response();
        }
        if let Some(conn) = req.extensions().get::<listen::EdgeConnection>() {
            conn.authenticate();
        }
    }
    // A few reads of /proc, as `/v4/stats` does; not queued behind loads on the
    // blocking pool.
    let text = crate::metrics::scrape(&node);
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response()
}

/// Compares the `Authorization` header with the configured password.
pub(crate) fn check_password(
    node: &Node,
    headers: &axum::http::HeaderMap,
) -> Result<(), StatusCode> {
    let given = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
    match (given, node.config.password.as_deref()) {
        (None, _) => Err(StatusCode::UNAUTHORIZED),
        (Some(g), Some(p)) if secret_eq(g, p.as_bytes()) => Ok(()),
        _ => Err(StatusCode::FORBIDDEN),
    }
}

/// Whether a given secret equals the expected one, in time that depends on neither:
/// both sides are hashed with SHA-256 and the digests compared in constant time, so
/// not even the length of the password leaks through response timing.
pub(crate) fn secret_eq(given: &[u8], expected: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    use subtle::ConstantTimeEq;
    let (g, e) = (Sha256::digest(given), Sha256::digest(expected));
    g.as_slice().ct_eq(e.as_slice()).into()
}

/// Runs around every request: renders [`ApiError`]s with the request's path and
/// trace flag, and stamps `Lavalink-Api-Version: 4` on every response.
async fn lavalink_edge(req: Request, next: Next) -> Response {
    let ctx = ErrorContext::from_uri(req.uri());
    let mut res = next.run(req).await;
    if let Some(err) = res.extensions_mut().remove::<ApiError>() {
        res = err.render(&ctx);
    } else if is_plain_text_error(&res) {
        res = as_api_error(res).await.render(&ctx);
    }
    res.headers_mut()
        .insert("Lavalink-Api-Version", HeaderValue::from_static("4"));
    res
}

/// axum's own rejections (a body over the size limit, a path segment that does not
/// percent-decode, …) are plain text; Lavalink answers them in its JSON shape.
fn is_plain_text_error(res: &Response) -> bool {
    let error = res.status().is_client_error() || res.status().is_server_error();
    let plain = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/plain"));
    error && plain
}

/// The plain-text error as an [`ApiError`] with the same status and its text as message.
async fn as_api_error(res: Response) -> ApiError {
    let status = res.status();
    let text = axum::body::to_bytes(res.into_body(), 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("Error").to_owned()
    } else {
        text
    };
    ApiError::new(status, message)
}

async fn not_found(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("No endpoint {method} {}.", uri.path()))
}

async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("Method '{method}' is not supported."),
    )
}

/// A handler panic is a bug; the client still gets Lavalink's 500 shape.
fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let text = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".into());
    tracing::error!(panic = %text, "request handler panicked");
    let ctx = ErrorContext {
        path: String::new(),
        trace: false,
    };
    let mut res = ApiError::internal(text).render(&ctx);
    res.headers_mut()
        .insert("Lavalink-Api-Version", HeaderValue::from_static("4"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_compare_accepts_only_the_exact_secret() {
        assert!(secret_eq(b"youshallnotpass", b"youshallnotpass"));
        assert!(secret_eq(b"", b""));
        assert!(!secret_eq(b"youshallnotpasS", b"youshallnotpass"));
        assert!(!secret_eq(b"youshallnotpas", b"youshallnotpass"));
        assert!(!secret_eq(b"youshallnotpass ", b"youshallnotpass"));
        assert!(!secret_eq(b"", b"youshallnotpass"));
    }
}
