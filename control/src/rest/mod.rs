//! The HTTP edge: routes, authentication, the `Lavalink-Api-Version` header and the
//! translation of every error into Lavalink's JSON error body.

pub mod body;
mod engine;
pub mod error;
mod info;
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
        .layer(middleware::from_fn(lavalink_edge))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
        .with_state(node)
}

/// REST authentication: the `Authorization` header must equal the password verbatim.
/// Missing → 401, wrong → 403, both with empty bodies.
async fn authenticate(State(node): State<Arc<Node>>, req: Request, next: Next) -> Response {
    match check_password(&node, req.headers()) {
        Ok(()) => next.run(req).await,
        Err(status) => status.into_response(),
    }
}

/// Compares the `Authorization` header with the configured password.
pub(crate) fn check_password(
    node: &Node,
    headers: &axum::http::HeaderMap,
) -> Result<(), StatusCode> {
    let given = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
    match (given, node.config.password.as_deref()) {
        (None, _) => Err(StatusCode::UNAUTHORIZED),
        (Some(g), Some(p)) if g == p.as_bytes() => Ok(()),
        _ => Err(StatusCode::FORBIDDEN),
    }
}

/// Runs around every request: renders [`ApiError`]s with the request's path and
/// trace flag, and stamps `Lavalink-Api-Version: 4` on every response.
async fn lavalink_edge(req: Request, next: Next) -> Response {
    let ctx = ErrorContext::from_uri(req.uri());
    let mut res = next.run(req).await;
    if let Some(err) = res.extensions_mut().remove::<ApiError>() {
        res = err.render(&ctx);
    }
    res.headers_mut()
        .insert("Lavalink-Api-Version", HeaderValue::from_static("4"));
    res
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
