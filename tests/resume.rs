//! Resuming under the ways real connections end: a client that closes and reconnects
//! at once, connections that drop while events are in flight, and a client that
//! stops reading.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::MaybeTlsStream;

async fn resumable_session(node: &TestNode) -> Client {
    let c = node.connect().await;
    let (status, _) = node
        .patch(
            &format!("/v4/sessions/{}", c.session_id),
            json!({"resuming": true, "timeout": 60}),
        )
        .await;
    assert_eq!(status, 200);
    c
}

/// Lavalink.py's `connect(force=True)`: Close, wait for the reply, reconnect with
/// `Session-Id` at once. The node must have detached the session before its reply.
/// (Several worker threads: on one, the node's task always finished before the
/// client's could look, and the race could not show.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_then_immediate_reconnect_always_resumes() {
    let node = TestNode::start().await;
    let mut c = resumable_session(&node).await;
    let sid = c.session_id.clone();
    let path = node.player_path(&c, "1");
    node.patch(&path, json!({"encodedTrack": track_a()})).await;
    c.wait_event("TrackStartEvent").await;
    let sessions = node.running.as_ref().unwrap().node().sessions.clone();
    let (mut misses, mut early_replies) = (Vec::new(), Vec::new());
    for cycle in 0..200 {
        c.ws.close(None).await.unwrap();
        // Until the Close reply (or the end of the stream).
        let reply = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(Ok(msg)) = c.ws.next().await {
                if matches!(msg, Message::Close(_)) {
                    return true;
                }
            }
            false
        })
        .await
        .expect("the Close reply within 10 s");
        assert!(
            reply,
            "cycle {cycle}: a Close reply, not a dropped connection"
        );
        // The reply proves the node is done with the socket: the session must be
        // resumable now, not a moment later (a fast client would lose the race).
        if !sessions.can_resume(&sid) {
            early_replies.push(cycle);
        }
        let (next, ready) = node.connect_with(Some(&sid)).await;
        if ready["resumed"] != true || next.resumed_header != "true" {
            misses.push(cycle);
        }
        assert_eq!(next.session_id, sid, "cycle {cycle}: a new session");
        c = next;
    }
    assert!(
        early_replies.is_empty(),
        "cycles whose Close reply came before the session was resumable: {early_replies:?}"
    );
    assert!(misses.is_empty(), "cycles that did not resume: {misses:?}");
    let (status, player) = node.get(&path).await;
    assert_eq!(status, 200);
    assert_eq!(player["track"]["info"]["title"], "Track A");
}

/// A reconnect that overtakes the old connection's end (a half-open TCP connection,
/// or a client that does not wait for the Close reply) takes the session over
/// instead of starting an empty one; the old socket's late end changes nothing.
#[tokio::test]
async fn a_reconnect_that_overtakes_the_close_takes_the_session_over() {
    let node = TestNode::start().await;
    let mut old = resumable_session(&node).await;
    let sid = old.session_id.clone();
    let path = node.player_path(&old, "1");
    node.patch(&path, json!({"encodedTrack": track_a()})).await;
    old.wait_event("TrackStartEvent").await;
    let (mut new, ready) = node.connect_with(Some(&sid)).await;
    assert_eq!(ready["resumed"], true);
    assert_eq!(new.resumed_header, "true");
    // The node closes the superseded socket.
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(_)) = old.ws.next().await {}
    })
    .await;
    assert!(ended.is_ok(), "the old socket stayed open");
    drop(old);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The session is live on the new socket, with its player, and events reach it.
    assert_eq!(node.get(&path).await.0, 200);
    node.patch(&path, json!({"encodedTrack": track_b()})).await;
    let end = new.wait_event("TrackEndEvent").await;
    assert_eq!(end["reason"], "replaced");
    assert_eq!(
        new.wait_event("TrackStartEvent").await["track"]["info"]["title"],
        "Track B"
    );
    // A session that did not ask to be resumable is not taken over.
    let other = node.connect().await;
    let (_c, ready) = node.connect_with(Some(&other.session_id)).await;
    assert_eq!(ready["resumed"], false);
}

/// Closes the client's TCP connection without a WebSocket Close: with a reset
/// (unread data is discarded) or a plain FIN.
fn drop_abruptly(c: Client, reset: bool) {
    if let MaybeTlsStream::Plain(tcp) = c.ws.get_ref() {
        if reset {
            socket2::SockRef::from(tcp)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
        }
    }
    drop(c);
}

/// What the client saw of the events: every `TrackStartEvent` and `TrackEndEvent`,
/// keyed by the `userData.k` of their track.
#[derive(Default)]
struct Seen {
    starts: HashMap<u64, u32>,
    ends: HashMap<u64, u32>,
}

impl Seen {
    fn record(&mut self, m: &Value) {
        let Some(k) = m["track"]["userData"]["k"].as_u64() else {
            return;
        };
        match m["type"].as_str() {
            Some("TrackStartEvent") => *self.starts.entry(k).or_default() += 1,
            Some("TrackEndEvent") => *self.ends.entry(k).or_default() += 1,
            _ => {}
        }
    }
}

/// Reads until the start of track `k`, then a little more (so Pings are answered as
/// a client that keeps reading answers them).
async fn read_through(c: &mut Client, seen: &mut Seen, k: u64, linger: Duration) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !seen.starts.contains_key(&k) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let m = c
            .try_next_json(left)
            .await
            .unwrap_or_else(|| panic!("the start of track {k} within 15 s"));
        seen.record(&m);
    }
    while let Some(m) = c.try_next_json(linger).await {
        seen.record(&m);
    }
    let _ = c.ws.flush().await;
}

/// Events written just before a connection drops are in the client's receive buffer
/// or on the wire; a reset discards them. They must come again on resume.
#[tokio::test]
async fn events_in_flight_at_a_drop_are_replayed_on_resume() {
    let drops: u64 = std::env::var("QUAVER_DROPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let node = TestNode::start().await;
    let mut c = resumable_session(&node).await;
    let sid = c.session_id.clone();
    let guilds = ["1", "2", "3"];
    let mut seen = Seen::default();
    let mut last = HashMap::new();
    for k in 1..=drops {
        let guild = guilds[(k % 3) as usize];
        let path = format!("/v4/sessions/{sid}/players/{guild}");
        let track = json!({"encoded": track_a(), "userData": {"k": k}});
        let (status, body) = node.patch(&path, json!({ "track": track })).await;
        assert_eq!(status, 200, "{body}");
        last.insert(guild, k);
        // The PATCH queued TrackEnd(replaced) + TrackStart; drop while they fly.
        drop_abruptly(c, k % 2 == 0);
        let (next, ready) = node.connect_with(Some(&sid)).await;
        assert_eq!(ready["resumed"], true, "drop {k}");
        c = next;
        read_through(&mut c, &mut seen, k, Duration::from_millis(k % 4)).await;
    }
    // Every track started once and every replaced track ended, none lost.
    let lost_starts: Vec<u64> = (1..=drops)
        .filter(|k| !seen.starts.contains_key(k))
        .collect();
    let still_playing: Vec<u64> = last.values().copied().collect();
    let lost_ends: Vec<u64> = (1..=drops)
        .filter(|k| !still_playing.contains(k) && !seen.ends.contains_key(k))
        .collect();
    let duplicates: u32 = seen
        .starts
        .values()
        .chain(seen.ends.values())
        .map(|n| n - 1)
        .sum();
    let events = seen.starts.len() + seen.ends.len();
    eprintln!(
        "{drops} drops: {events} distinct events, {} lost, {duplicates} repeated",
        lost_starts.len() + lost_ends.len()
    );
    assert!(
        lost_starts.is_empty() && lost_ends.is_empty(),
        "lost starts {lost_starts:?}, lost ends {lost_ends:?}"
    );
}

/// A client that never reads makes its queue grow; past the limit the node
/// disconnects it, and the session can still be resumed.
#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected_not_buffered() {
    const LIMIT: usize = 1 << 20;
    let mut config = fast_config();
    config.outbox_limit_bytes = LIMIT;
    let node = TestNode::start_with(config).await;
    let c = resumable_session(&node).await;
    let sid = c.session_id.clone();
    let session = node
        .running
        .as_ref()
        .unwrap()
        .node()
        .sessions
        .get(&sid)
        .unwrap();
    // Each PATCH queues a start and an end, each carrying 256 KiB of userData: 40 of
    // them are 20 MiB, far more than the socket buffers hold.
    let blob = "x".repeat(256 << 10);
    let path = node.player_path(&c, "1");
    let mut most = 0;
    let mut refused = 0;
    for k in 0..40 {
        let track = json!({"encoded": track_a(), "userData": {"k": k, "blob": blob}});
        let (status, _) = node.patch(&path, json!({ "track": track })).await;
        match status {
            200 => {}
            404 => refused += 1, // disconnected: the session waits for a resume
            s => panic!("PATCH answered {s}"),
        }
        most = most.max(session.outbox().bytes());
    }
    assert!(
        most <= LIMIT + (2 << 20),
        "the queue grew to {most} bytes (limit {LIMIT})"
    );
    assert!(refused > 0, "the client was never disconnected");
    // The socket was closed by the node: reading what is left ends.
    let mut c = c;
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(Ok(_)) = c.ws.next().await {}
    })
    .await;
    assert!(ended.is_ok(), "the node kept the slow client's socket open");
    // And the session is still there for a resume.
    let (_c, ready) = node.connect_with(Some(&sid)).await;
    assert_eq!(ready["resumed"], true);
    let (status, player) = node.get(&path).await;
    assert_eq!(status, 200);
    assert_eq!(player["track"]["info"]["title"], "Track A");
}
