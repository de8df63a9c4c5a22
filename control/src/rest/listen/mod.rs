//! The accept loop and per-connection guard of the HTTP edge.
//!
//! `axum::serve` keeps every connection for as long as the peer wants: a client that
//! connects and sends nothing, drips a request head a byte at a time or dribbles a
//! body holds a socket forever, and ~1 000 of them exhaust a default `ulimit -n`, after
//! which `accept` fails for everyone. This loop serves the same router with hyper's
//! HTTP/1.1 connection (upgrades kept for the WebSocket) and adds:
//!
//! - a cap on connections that have not authenticated yet ([`EdgeLimits::max_connections`]):
//!   one more evicts the oldest of them, so a flood of idle sockets cycles through the
//!   cap instead of filling the file table;
//! - a header timeout and an idle timeout for unauthenticated connections, watched by
//!   the connection's own task (no extra task or thread per connection);
//! - a body timeout for every request: a body not complete in time answers 408 and
//!   closes the connection;
//! - limits on the request head (URI and header block) below hyper's own, so oversized
//!   requests get Lavalink's JSON error body instead of hyper's empty one.
//!
//! A connection becomes authenticated when a REST request passes the password check
//! ([`EdgeConnection::authenticate`], called by the authentication middleware) or when a
//! response switches protocols (a WebSocket handshake, which checks the password
//! itself). From then on it is exempt from the cap and the idle timeouts: a client that
//! knows the password is never locked out by strangers.

mod guard;
mod io;

use std::convert::Infallible;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, StatusCode, Uri};
use axum::Router;
use http_body::Body as _;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

pub use guard::EdgeConnection;
use guard::{Conn, InFlight, Registry, Watch};
use io::{CountingIo, DeadlineBody};

use super::error::{ApiError, ErrorContext};
use crate::config::EdgeLimits;

/// Longest request target (path and query) answered normally; longer gets 414.
/// Lavalink's Tomcat refuses request heads over 8 KiB in all; long identifiers and
/// encoded tracks fit comfortably in this.
pub const MAX_URI_BYTES: usize = 16 * 1024;
/// Largest header block (names, values and separators); larger gets 431.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// Most header lines; more gets 431.
pub const MAX_HEADERS: usize = 100;
/// Largest request body, axum's default limit. A `Content-Length` above it is
/// answered 413 before any of the body is read.
pub const MAX_BODY_BYTES: u64 = 2 * 1024 * 1024;
/// hyper's own limits, set above ours so that a request between the two gets our JSON
/// answer; beyond them hyper answers with an empty body itself.
const PARSER_MAX_HEADERS: usize = 4 * MAX_HEADERS;
const PARSER_MAX_BUF: usize = 128 * 1024;
/// Pause after `accept` fails for lack of file descriptors, so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `app` on `listener` until `shutdown` turns true, then lets open requests
/// finish (connections are asked to close once idle) and returns.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: EdgeLimits,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let limits = Arc::new(limits);
    let registry = Arc::new(Registry::new(limits.max_connections));
    // Every connection task holds a sender; when all are gone, the drain is done.
    let (alive, mut drained) = mpsc::channel::<()>(1);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(&e, &registry).await;
                    continue;
                }
            },
            _ = stopping(&mut shutdown) => break,
        };
        let conn = registry.admit();
        let task = ConnTask {
            conn,
            limits: limits.clone(),
            app: app.clone(),
            shutdown: shutdown.clone(),
            _alive: alive.clone(),
        };
        tokio::spawn(task.run(stream));
    }
    drop(listener);
    drop(alive);
    let _ = drained.recv().await;
    Ok(())
}

/// `EMFILE`/`ENFILE`: free a descriptor by evicting the oldest unauthenticated
/// connection and wait a moment; other errors concern one connection only.
async fn accept_failed(e: &std::io::Error, registry: &Registry) {
    let out_of_files = matches!(e.raw_os_error(), Some(code) if code == EMFILE || code == ENFILE);
    if out_of_files {
        tracing::warn!(error = %e, "accept failed: out of file descriptors; closing the oldest unauthenticated connection");
        registry.evict_oldest();
        tokio::time::sleep(ACCEPT_BACKOFF).await;
    } else {
        tracing::debug!(error = %e, "accept failed");
    }
}

// Linux errno values; `io::ErrorKind` has no stable variant for them.
const EMFILE: i32 = 24;
const ENFILE: i32 = 23;

struct ConnTask {
    conn: Arc<Conn>,
    limits: Arc<EdgeLimits>,
    app: Router,
    shutdown: watch::Receiver<bool>,
    _alive: mpsc::Sender<()>,
}

impl ConnTask {
    async fn run(mut self, stream: TcpStream) {
        let io = TokioIo::new(CountingIo {
            inner: stream,
            conn: self.conn.clone(),
        });
        let service = {
            let (conn, limits, app) = (self.conn.clone(), self.limits.clone(), self.app.clone());
            hyper::service::service_fn(move |req| {
                handle(conn.clone(), limits.clone(), app.clone(), req)
            })
        };
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .max_headers(PARSER_MAX_HEADERS)
            .max_buf_size(PARSER_MAX_BUF);
        let connection = builder.serve_connection(io, service).with_upgrades();
        tokio::pin!(connection);
        let mut draining = false;
        loop {
            let next = match self.conn.watch(&self.limits, Instant::now()) {
                Watch::Close => {
                    tracing::debug!(
                        id = self.conn.id,
                        "closing an idle unauthenticated connection"
                    );
                    break;
                }
                Watch::At(at) => Some(at),
                Watch::Exempt => None,
            };
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    break;
                }
                _ = self.conn.evict.notified() => break,
                _ = self.conn.head_started.notified(), if next.is_some() => {}
                _ = sleep_until(next), if next.is_some() => {}
                _ = stopping(&mut self.shutdown), if !draining => {
                    draining = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
        self.conn.registry.forget(self.conn.id);
    }
}

/// Resolves once the node is shutting down (the borrow of the flag is not held).
async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|down| *down).await;
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

/// One request: head limits, the body deadline, then the router.
async fn handle(
    conn: Arc<Conn>,
    limits: Arc<EdgeLimits>,
    mut app: Router,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let _in_flight = InFlight::new(&conn);
    if let Some(err) = head_error(&req) {
        // A refused body is never read: close rather than let it arrive.
        let close = err.status == StatusCode::PAYLOAD_TOO_LARGE;
        return Ok(edge_error(err, req.uri(), close));
    }
    let uri = req.uri().clone();
    let (mut parts, body) = req.into_parts();
    parts.extensions.insert(EdgeConnection(conn.clone()));
    let body = if body.is_end_stream() {
        Body::new(body)
    } else {
        Body::new(DeadlineBody {
            inner: body,
            deadline: Box::pin(tokio::time::sleep(limits.body_timeout)),
            conn: conn.clone(),
        })
    };
    let res = tower_service::Service::call(&mut app, Request::from_parts(parts, body)).await?;
    if res.status() == StatusCode::SWITCHING_PROTOCOLS {
        conn.authenticate();
    }
    if conn.body_timed_out.load(SeqCst) {
        let err = ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "The request body did not arrive within {} ms.",
                limits.body_timeout.as_millis()
            ),
        );
        return Ok(edge_error(err, &uri, true));
    }
    Ok(res)
}

/// A request head over our limits, as the error to answer.
fn head_error<B>(req: &Request<B>) -> Option<ApiError> {
    let target = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if target > MAX_URI_BYTES {
        return Some(ApiError::new(
            StatusCode::URI_TOO_LONG,
            format!("The request target is {target} bytes; at most {MAX_URI_BYTES} are accepted."),
        ));
    }
    let headers = req.headers();
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if headers.len() > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
        return Some(ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "The request has {} headers in {bytes} bytes; at most {MAX_HEADERS} in {MAX_HEADER_BYTES} bytes are accepted.",
                headers.len()
            ),
        ));
    }
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(length) = length.filter(|l| *l > MAX_BODY_BYTES) {
        return Some(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("The request body is {length} bytes; at most {MAX_BODY_BYTES} are accepted."),
        ));
    }
    None
}

/// An error answered by the edge itself, in Lavalink's shape.
fn edge_error(err: ApiError, uri: &Uri, close: bool) -> Response<Body> {
    let mut res = err.render(&ErrorContext::from_uri(uri));
    let headers = res.headers_mut();
    headers.insert("Lavalink-Api-Version", HeaderValue::from_static("4"));
    if close {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_limits() {
        let ok = Request::get("/v4/info").body(()).unwrap();
        assert!(head_error(&ok).is_none());
        let long = format!("/v4/info?x={}", "a".repeat(MAX_URI_BYTES));
        let req = Request::get(long.as_str()).body(()).unwrap();
        assert_eq!(head_error(&req).unwrap().status, 414);
        let req = Request::get("/")
            .header("x-big", "a".repeat(MAX_HEADER_BYTES))
            .body(())
            .unwrap();
        assert_eq!(head_error(&req).unwrap().status, 431);
        let req = Request::post("/v4/decodetracks")
            .header("content-length", MAX_BODY_BYTES + 1)
            .body(())
            .unwrap();
        assert_eq!(head_error(&req).unwrap().status, 413);
    }
}
