//! The WebSocket: handshake rules, ready/stats, and session resuming with events
//! queued during the gap.

mod common;

use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

async fn handshake_status(
    node: &TestNode,
    headers: &[(&'static str, &'static str)],
) -> Result<u16, u16> {
    let mut req = format!("ws://{}/v4/websocket", node.addr)
        .into_client_request()
        .unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(*k, HeaderValue::from_static(v));
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((_, res)) => Ok(res.status().as_u16()),
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            assert_eq!(res.headers()["Lavalink-Api-Version"], "4");
            Err(res.status().as_u16())
        }
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn handshake_rules() {
    let node = TestNode::start().await;
    let uid = ("User-Id", USER_ID);
    assert_eq!(
        handshake_status(&node, &[uid]).await,
        Err(401),
        "missing password"
    );
    assert_eq!(
        handshake_status(&node, &[uid, ("Authorization", "wrong")]).await,
        Err(401),
        "never 403 on the socket"
    );
    assert_eq!(
        handshake_status(&node, &[("Authorization", PASSWORD)]).await,
        Err(400),
        "missing User-Id"
    );
    assert_eq!(
        handshake_status(&node, &[("Authorization", PASSWORD), ("User-Id", "0")]).await,
        Err(400)
    );
    assert_eq!(
        handshake_status(&node, &[("Authorization", PASSWORD), uid]).await,
        Ok(101)
    );

    // A non-numeric User-Id passes the handshake, then the socket closes with 1011.
    let mut req = format!("ws://{}/v4/websocket", node.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Authorization", HeaderValue::from_static(PASSWORD));
    req.headers_mut()
        .insert("User-Id", HeaderValue::from_static("not-a-number"));
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    use futures_util::StreamExt;
    match ws.next().await {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1011),
        other => panic!("expected close 1011, got {other:?}"),
    }
}

#[tokio::test]
async fn ready_then_stats_and_text_is_ignored() {
    let node = TestNode::start().await;
    let (mut c, ready) = node.connect_with(None).await;
    assert_eq!(c.resumed_header, "false");
    assert_eq!(ready.as_object().unwrap().len(), 3);
    assert_eq!(c.session_id.len(), 16);
    assert!(c
        .session_id
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
    let stats = c.next_json().await;
    assert_eq!(stats["op"], "stats");
    assert!(stats.as_object().unwrap().contains_key("frameStats"));
    assert_eq!(stats["frameStats"], Value::Null, "no usable frame data yet");
    // Pings are answered (Tomato6966's client drops a socket that does not pong).
    c.ws.send(Message::Ping(vec![7, 7].into())).await.unwrap();
    let pong = tokio::time::timeout(Duration::from_secs(5), async {
        use futures_util::StreamExt;
        loop {
            if let Some(Ok(Message::Pong(p))) = c.ws.next().await {
                return p;
            }
        }
    })
    .await
    .expect("pong within 5 s");
    assert_eq!(&pong[..], &[7, 7]);
    // Client text frames are ignored; the socket stays usable.
    c.ws.send(Message::Text("{\"op\":\"play\"}".into()))
        .await
        .unwrap();
    let path = node.player_path(&c, "1");
    node.patch(&path, json!({"encodedTrack": track_a()})).await;
    assert_eq!(c.next_event().await["type"], "TrackStartEvent");
    // A second client gets its own session.
    let other = node.connect().await;
    assert_ne!(other.session_id, c.session_id);
    assert_eq!(
        node.get(&format!("/v4/sessions/{}/players", other.session_id))
            .await
            .1,
        json!([])
    );
}

#[tokio::test]
async fn session_patch_reads_and_sets_resume() {
    let node = TestNode::start().await;
    let c = node.connect().await;
    let path = format!("/v4/sessions/{}", c.session_id);
    assert_eq!(
        node.patch(&path, json!({})).await,
        (200, json!({"resuming": false, "timeout": 60}))
    );
    assert_eq!(
        node.patch(&path, json!({"resuming": true, "timeout": 5}))
            .await
            .1,
        json!({"resuming": true, "timeout": 5})
    );
    assert_eq!(
        node.patch(&path, json!({"timeout": 9})).await.1,
        json!({"resuming": true, "timeout": 9})
    );
    assert_eq!(node.patch(&path, json!({"resuming": "yes"})).await.0, 400);
}

#[tokio::test]
async fn client_close_is_answered_with_a_close_frame() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::protocol::{frame::coding::CloseCode, CloseFrame};
    let node = TestNode::start().await;
    let mut c = node.connect().await;
    c.ws.send(Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    })))
    .await
    .unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match c.ws.next().await {
                Some(Ok(Message::Close(frame))) => return Some(frame),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .unwrap();
    assert!(
        reply.is_some(),
        "the server must answer the closing handshake, not drop TCP (clients report 1006)"
    );
}

#[tokio::test]
async fn non_resumable_session_dies_with_its_socket() {
    let node = TestNode::start().await;
    let c = node.connect().await;
    let path = node.player_path(&c, "1");
    node.patch(&path, json!({"encodedTrack": track_a()})).await;
    drop(c);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(node.get(&path).await.0, 404);
    assert_eq!(
        node.get("/v4/stats").await.1["players"],
        0,
        "its players were destroyed"
    );
}

#[tokio::test]
async fn resume_replays_queued_events_in_order_then_player_updates() {
    let mut cfg = fast_config();
    cfg.player_update_interval = Duration::from_secs(30);
    cfg.stats_interval = Duration::from_millis(400);
    cfg.cleanup_threshold = Duration::from_millis(700);
    let node = TestNode::start_with(cfg).await;
    let mut c = node.connect().await;
    let sid = c.session_id.clone();
    node.patch(
        &format!("/v4/sessions/{sid}"),
        json!({"resuming": true, "timeout": 30}),
    )
    .await;
    for guild in ["1", "2"] {
        let p = node.player_path(&c, guild);
        node.patch(
            &p,
            json!({"encodedTrack": track_a(), "paused": guild == "2"}),
        )
        .await;
    }
    let mut seen = 0;
    while seen < 2 {
        if c.next_json().await["type"] == "TrackStartEvent" {
            seen += 1;
        }
    }
    c.ws.close(None).await.unwrap();
    drop(c);
    // During the gap: REST on the session is 404, players keep going, and the
    // cleanup ends both tracks (events queued), as do stats messages.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        node.get(&format!("/v4/sessions/{sid}/players")).await.0,
        404
    );
    assert_eq!(node.get("/v4/stats").await.1["players"], 2);
    tokio::time::sleep(Duration::from_millis(1200)).await;

    let (mut c, ready) = node.connect_with(Some(&sid)).await;
    assert_eq!(c.resumed_header, "true");
    assert_eq!(
        ready,
        json!({"op": "ready", "resumed": true, "sessionId": sid})
    );
    // Read until both player updates arrived, plus whatever came right after.
    let mut replay = Vec::new();
    while replay
        .iter()
        .filter(|m: &&Value| m["op"] == "playerUpdate")
        .count()
        < 2
    {
        replay.push(c.next_json().await);
    }
    replay.extend(c.try_next_json(Duration::from_millis(100)).await);
    let ops: Vec<String> = replay
        .iter()
        .map(|m| {
            format!(
                "{}{}",
                m["op"].as_str().unwrap(),
                m["type"]
                    .as_str()
                    .map(|t| format!(":{t}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    let ends: Vec<_> = replay
        .iter()
        .filter(|m| m["type"] == "TrackEndEvent")
        .collect();
    assert_eq!(ends.len(), 2, "each cleanup exactly once: {ops:?}");
    assert!(ends.iter().all(|e| e["reason"] == "cleanup"));
    assert!(
        ops.iter().filter(|o| *o == "stats").count() >= 2,
        "stats were queued: {ops:?}"
    );
    // Queued messages come first, then exactly one playerUpdate per player.
    let first_update = ops
        .iter()
        .position(|o| o == "playerUpdate")
        .expect("player updates after replay");
    assert!(
        ops[..first_update].iter().all(|o| o != "playerUpdate"),
        "no updates generated during the gap: {ops:?}"
    );
    let updates: Vec<_> = replay[first_update..first_update + 2]
        .iter()
        .map(|m| m["guildId"].as_str().unwrap())
        .collect();
    assert_eq!(updates, ["1", "2"]);
    assert!(
        ops[first_update..].iter().skip(2).all(|o| o == "stats"),
        "{ops:?}"
    );
    // The session works again.
    assert_eq!(
        node.get(&format!("/v4/sessions/{sid}/players")).await.0,
        200
    );
}

#[tokio::test]
async fn resume_timeout_destroys_the_session() {
    let node = TestNode::start().await;
    let c = node.connect().await;
    let sid = c.session_id.clone();
    node.patch(
        &format!("/v4/sessions/{sid}"),
        json!({"resuming": true, "timeout": 1}),
    )
    .await;
    node.patch(
        &node.player_path(&c, "1"),
        json!({"encodedTrack": track_a()}),
    )
    .await;
    drop(c);
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(node.get("/v4/stats").await.1["players"], 0);
    let (c, ready) = node.connect_with(Some(&sid)).await;
    assert_eq!(c.resumed_header, "false");
    assert_eq!(ready["resumed"], false);
    assert_ne!(c.session_id, sid, "an expired id gets a brand-new session");
}

#[tokio::test]
async fn shutdown_closes_sockets_with_1001() {
    let mut node = TestNode::start().await;
    let mut c = node.connect().await;
    let _stats = c.next_json().await;
    node.running.take().unwrap().shutdown().await.unwrap();
    use futures_util::StreamExt;
    let close = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match c.ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(close, Some(1001));
}
