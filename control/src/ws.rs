//! `/v4/websocket`: the handshake rules and the per-connection writer and reader.
//!
//! The socket only carries server → client messages. Each connection attaches a
//! writer to its session's [`Outbox`](crate::session::Outbox); when the socket
//! closes, unsent messages stay queued for a resume.

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};

use crate::ids::UserId;
use crate::node::Node;
use crate::protocol::messages::OutgoingMessage;
use crate::rest::error::ApiError;
use crate::session::{Mode, Next, Session};

/// Close code sent to every client when the node shuts down.
const GOING_AWAY: u16 = 1001;
/// Close code for a client that stopped reading until its outbox hit the limit.
const POLICY_VIOLATION: u16 = 1008;
/// Close code for a connection whose setup failed (bad `User-Id`).
const INTERNAL_ERROR: u16 = 1011;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Handles the upgrade request.
pub(crate) async fn handshake(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    // A WebSocket handshake only ever fails authentication with 401.
    let given = headers.get("Authorization").map(|v| v.as_bytes());
    let authorized = match (given, node.config.password.as_deref()) {
        (None, None) => true,
        (Some(g), Some(p)) => crate::rest::secret_eq(g, p.as_bytes()),
        _ => false,
    };
    if !authorized {
        tracing::warn!("WebSocket authentication failed");
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let user_id = header(&headers, "User-Id").unwrap_or("");
    if user_id.is_empty() || user_id.trim() == "0" {
        return StatusCode::BAD_REQUEST.into_response();
    }
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(e) => {
            return ApiError::bad_request(format!("Can \"Upgrade\" only to \"WebSocket\": {e}"))
                .into_response()
        }
    };
    let user_id = user_id.parse::<UserId>().ok();
    let resume_id = header(&headers, "Session-Id").map(str::to_owned);
    let resumable = resume_id
        .as_deref()
        .is_some_and(|id| node.sessions.can_resume(id));
    let client_name = header(&headers, "Client-Name").map(str::to_owned);
    // Clients receive small JSON messages and send almost nothing; tungstenite's
    // default 128 KiB read and write buffers would cost a quarter MiB per session.
    let upgrade = upgrade.read_buffer_size(16 * 1024).write_buffer_size(0);
    let mut res = upgrade.on_upgrade(move |socket| async move {
        match user_id {
            Some(user) => run(node, socket, user, client_name, resume_id).await,
            None => close(socket, INTERNAL_ERROR, "Invalid User-Id").await,
        }
    });
    res.headers_mut().insert(
        "Session-Resumed",
        HeaderValue::from_static(if resumable { "true" } else { "false" }),
    );
    res
}

async fn close(mut socket: WebSocket, code: u16, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

/// Attaches the socket to a resumed or new session and pumps messages until either
/// side closes.
async fn run(
    node: Arc<Node>,
    socket: WebSocket,
    user: UserId,
    client_name: Option<String>,
    resume_id: Option<String>,
) {
    let resumed = resume_id.as_deref().and_then(|id| node.sessions.resume(id));
    let (session, was_resumed) = match resumed {
        Some(s) => (s, true),
        None => (
            node.sessions
                .create(user, client_name.clone(), node.config.clone()),
            false,
        ),
    };
    let ready = OutgoingMessage::Ready {
        resumed: was_resumed,
        session_id: session.id().to_string(),
    };
    let generation = session.outbox().attach(ready.to_json());
    if was_resumed {
        tracing::info!(session = %session.id(), queued = session.outbox().len() - 1, "session resumed");
        session.send_all_player_updates();
    } else {
        tracing::info!(session = %session.id(), client = client_name.as_deref().unwrap_or("unknown"), "session opened");
        node.start_stats_ticker(&session);
    }
    let ending = pump(&node, &session, socket, generation).await;
    // Detach before the Close reply goes out: a client that reconnects the moment
    // it sees the reply must find its session resumable.
    node.sessions.on_socket_closed(&session, generation);
    if let Ending::ClientClosed(mut sink) = ending {
        // The WebSocket stack queued the Close reply; flush it so the client sees a
        // clean close instead of 1006.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), sink.close()).await;
    }
}

/// How a connection's pump ended.
enum Ending {
    /// The client started the closing handshake; the reply still has to be flushed.
    ClientClosed(SplitSink<WebSocket, Message>),
    /// Anything else: the socket is done with.
    Other,
}

async fn pump(node: &Node, session: &Arc<Session>, socket: WebSocket, generation: u64) -> Ending {
    let (mut sink, mut stream) = socket.split();
    let mut shutdown = node.shutdown_signal();
    let outbox = session.outbox().clone();
    let writer = async {
        loop {
            let frame = match outbox.next(generation).await {
                Next::Message(msg) => Message::Text(msg.into()),
                Next::Ping(seq) => Message::Ping(seq.to_be_bytes().to_vec().into()),
                Next::TooSlow => {
                    tracing::warn!(session = %session.id(), "client fell too far behind reading its WebSocket; disconnecting it");
                    let frame = CloseFrame {
                        code: POLICY_VIOLATION,
                        reason: "client too slow".into(),
                    };
                    let close = sink.send(Message::Close(Some(frame)));
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), close).await;
                    return;
                }
                Next::Stop => break,
            };
            // A message that fails here stays unacknowledged and is replayed on resume.
            if let Err(e) = sink.send(frame).await {
                tracing::debug!(error = %e, "WebSocket send failed");
                return;
            }
        }
        if outbox.mode() == Mode::Closed {
            let frame = CloseFrame {
                code: GOING_AWAY,
                reason: "".into(),
            };
            let _ = sink.send(Message::Close(Some(frame))).await;
        }
    };
    // True when the client started a closing handshake.
    let reader = async {
        while let Some(frame) = stream.next().await {
            match frame {
                Ok(Message::Text(_)) => {
                    tracing::warn!(
                        "Lavalink v4 does not support websocket messages; use the REST API"
                    )
                }
                Ok(Message::Pong(data)) => {
                    if let Ok(seq) = <[u8; 8]>::try_from(&data[..]) {
                        outbox.ack(generation, u64::from_be_bytes(seq));
                    }
                }
                Ok(Message::Close(_)) => return true,
                Err(_) => return false,
                Ok(_) => {}
            }
        }
        false
    };
    let stop = async {
        let _ = shutdown.wait_for(|down| *down).await;
        // Keep writing until the close frame has gone out.
        std::future::pending::<()>().await
    };
    let client_closed = tokio::select! {
        _ = writer => false,
        closed = reader => closed,
        _ = stop => false,
    };
    if client_closed {
        Ending::ClientClosed(sink)
    } else {
        Ending::Other
    }
}
