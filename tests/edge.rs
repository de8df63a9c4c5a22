//! The HTTP edge under hostile clients: slowloris heads, idle and slow-body
//! connections, a flood of idle sockets against the connection cap, oversized and
//! malformed requests, and what the local source reveals about paths.
//!
//! Every test talks raw TCP to a real node on loopback; timeouts are shortened to a
//! second so the node acts within the tests' generous bounds.

mod common;

use std::time::Duration;

use common::*;
use quaver_control::config::EdgeLimits;
use quaver_control::ControlConfig;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Upper bound for anything the node is expected to do "after a second".
const BOUND: Duration = Duration::from_secs(15);

fn edge(max_connections: usize, header: u64, idle: u64, body: u64) -> ControlConfig {
    ControlConfig {
        edge: EdgeLimits {
            max_connections,
            header_timeout: Duration::from_millis(header),
            idle_timeout: Duration::from_millis(idle),
            body_timeout: Duration::from_millis(body),
        },
        ..fast_config()
    }
}

/// Whether the peer closes (EOF or reset) within `bound`; data read is discarded.
async fn closed_within<R: AsyncReadExt + Unpin>(stream: &mut R, bound: Duration) -> bool {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(bound, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
    .is_ok()
}

/// Reads one response: status, head text and body (by `Content-Length`).
async fn read_response<R: AsyncReadExt + Unpin>(stream: &mut R) -> (u16, String, Vec<u8>) {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = tokio::time::timeout(BOUND, stream.read(&mut buf))
            .await
            .expect("response in time")
            .expect("readable");
        assert!(
            n > 0,
            "closed before a response: {:?}",
            String::from_utf8_lossy(&data)
        );
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let status = head[9..12].parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    while data.len() < head_end + length {
        let n = tokio::time::timeout(BOUND, stream.read(&mut buf))
            .await
            .expect("body in time")
            .expect("readable");
        assert!(n > 0, "closed in the body");
        data.extend_from_slice(&buf[..n]);
    }
    (status, head, data[head_end..head_end + length].to_vec())
}

fn get(path: &str, auth: bool) -> String {
    let auth = if auth {
        format!("Authorization: {PASSWORD}\r\n")
    } else {
        String::new()
    };
    format!("GET {path} HTTP/1.1\r\nHost: quaver\r\n{auth}\r\n")
}

/// Sends `request` on a fresh connection and reads the response.
async fn exchange(node: &TestNode, request: &[u8]) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(node.addr).await.unwrap();
    s.write_all(request).await.unwrap();
    read_response(&mut s).await
}

fn assert_lavalink_error(status: u16, head: &str, body: &[u8], path: &str) -> Value {
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("lavalink-api-version: 4"),
        "{head}"
    );
    let v: Value = serde_json::from_slice(body)
        .unwrap_or_else(|_| panic!("JSON body: {:?}", String::from_utf8_lossy(body)));
    assert_eq!(v["status"], status, "{v}");
    assert!(v["timestamp"].as_u64().unwrap() > 0, "{v}");
    assert!(!v["error"].as_str().unwrap().is_empty(), "{v}");
    assert!(!v["message"].as_str().unwrap().is_empty(), "{v}");
    assert_eq!(v["path"], path, "{v}");
    v
}

#[tokio::test]
async fn slowloris_head_is_closed_after_the_header_timeout() {
    // Idle timeout far beyond the bound: only the header timeout can close it.
    let node = TestNode::start_with(edge(1000, 1_000, 60_000, 60_000)).await;
    let s = TcpStream::connect(node.addr).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let drip = tokio::spawn(async move {
        let _ = wr.write_all(b"GET /v4/info HTTP/1.1\r\nHost: q\r\n").await;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if wr.write_all(b"X-Drip: 1\r\n").await.is_err() {
                return;
            }
        }
    });
    let closed = closed_within(&mut rd, BOUND).await;
    drip.abort();
    assert!(closed, "a header drip must be cut off");
}

#[tokio::test]
async fn idle_unauthenticated_connections_are_closed_authenticated_ones_kept() {
    let node = TestNode::start_with(edge(1000, 60_000, 1_000, 60_000)).await;
    // Connects and says nothing.
    let mut silent = TcpStream::connect(node.addr).await.unwrap();
    // Asks without the password, then idles.
    let mut refused = TcpStream::connect(node.addr).await.unwrap();
    refused
        .write_all(get("/v4/info", false).as_bytes())
        .await
        .unwrap();
    assert_eq!(read_response(&mut refused).await.0, 401);
    // Asks with the password, then idles longer than the idle timeout.
    let mut client = TcpStream::connect(node.addr).await.unwrap();
    client
        .write_all(get("/v4/info", true).as_bytes())
        .await
        .unwrap();
    assert_eq!(read_response(&mut client).await.0, 200);

    assert!(
        closed_within(&mut silent, BOUND).await,
        "silent socket kept"
    );
    assert!(
        closed_within(&mut refused, BOUND).await,
        "refused socket kept"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    client
        .write_all(get("/v4/info", true).as_bytes())
        .await
        .unwrap();
    assert_eq!(
        read_response(&mut client).await.0,
        200,
        "an authenticated keep-alive connection survives idling"
    );
}

#[tokio::test]
async fn slow_body_is_answered_408_and_closed() {
    let node = TestNode::start_with(edge(1000, 60_000, 60_000, 1_000)).await;
    let s = TcpStream::connect(node.addr).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let head = format!(
        "PATCH /v4/sessions/none/players/1 HTTP/1.1\r\nHost: q\r\nAuthorization: {PASSWORD}\r\n\
         Content-Type: application/json\r\nContent-Length: 50\r\n\r\n{{"
    );
    wr.write_all(head.as_bytes()).await.unwrap();
    // One byte every 3 s: the whole body would take minutes.
    let drip = tokio::spawn(async move {
        for _ in 0..49 {
            tokio::time::sleep(Duration::from_secs(3)).await;
            if wr.write_all(b" ").await.is_err() {
                return;
            }
        }
    });
    let (status, head, body) = read_response(&mut rd).await;
    assert_eq!(status, 408, "{head}");
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    assert_lavalink_error(408, &head, &body, "/v4/sessions/none/players/1");
    let closed = closed_within(&mut rd, BOUND).await;
    drip.abort();
    assert!(closed, "the connection closes after the 408");
}

#[tokio::test]
async fn idle_flood_over_the_cap_evicts_strangers_not_clients() {
    let node = TestNode::start_with(edge(20, 60_000, 60_000, 60_000)).await;
    // An authenticated keep-alive REST connection and a WebSocket, opened first.
    let mut client = TcpStream::connect(node.addr).await.unwrap();
    client
        .write_all(get("/v4/info", true).as_bytes())
        .await
        .unwrap();
    assert_eq!(read_response(&mut client).await.0, 200);
    let ws = node.connect().await;

    let mut idle = Vec::new();
    for _ in 0..40 {
        idle.push(TcpStream::connect(node.addr).await.unwrap());
    }
    // The 20 oldest idle sockets make room for the 20 newest.
    for (i, s) in idle.iter_mut().take(20).enumerate() {
        assert!(closed_within(s, BOUND).await, "idle socket {i} not evicted");
    }

    client
        .write_all(get("/v4/info", true).as_bytes())
        .await
        .unwrap();
    assert_eq!(read_response(&mut client).await.0, 200, "REST client kept");
    let (status, _) = node.get("/v4/info").await;
    assert_eq!(status, 200, "a new REST client gets in");
    let _second = node.connect().await;
    // The first WebSocket's session is still there (a closed socket ends it).
    let players = format!("/v4/sessions/{}/players", ws.session_id);
    assert_eq!(node.get(&players).await.0, 200);
}

#[tokio::test]
async fn oversized_and_malformed_requests_answer_in_lavalink_json() {
    let node = TestNode::start().await;

    let long = format!("/v4/info?x={}", "a".repeat(20_000));
    let (status, head, body) = exchange(&node, get(&long, true).as_bytes()).await;
    assert_eq!(status, 414);
    assert_lavalink_error(414, &head, &body, "/v4/info");

    let big = format!(
        "GET /v4/info HTTP/1.1\r\nHost: q\r\nAuthorization: {PASSWORD}\r\nX-Big: {}\r\n\r\n",
        "b".repeat(40_000)
    );
    let (status, head, body) = exchange(&node, big.as_bytes()).await;
    assert_eq!(status, 431);
    assert_lavalink_error(431, &head, &body, "/v4/info");

    // Announces 3 MB and sends none of it: refused at once, nothing read.
    let post = format!(
        "POST /v4/decodetracks HTTP/1.1\r\nHost: q\r\nAuthorization: {PASSWORD}\r\n\
         Content-Type: application/json\r\nContent-Length: 3000000\r\n\r\n"
    );
    let (status, head, body) = exchange(&node, post.as_bytes()).await;
    assert_eq!(status, 413);
    assert_lavalink_error(413, &head, &body, "/v4/decodetracks");

    // A path segment that does not percent-decode to UTF-8.
    let (status, head, body) =
        exchange(&node, get("/v4/sessions/%FF/players", true).as_bytes()).await;
    assert_eq!(status, 400);
    assert_lavalink_error(400, &head, &body, "/v4/sessions/%FF/players");
}

#[tokio::test]
async fn local_paths_outside_the_roots_look_missing() {
    let node = TestNode::start().await;
    let load = |identifier: String| {
        let req = node
            .req(reqwest::Method::GET, "/v4/loadtracks")
            .query(&[("identifier", identifier)]);
        send(req)
    };
    // Exists, outside the roots.
    let outside = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml").to_owned();
    assert!(std::path::Path::new(&outside).is_file());
    let missing = media_dir().join("missing.mp3").display().to_string();
    let (s1, outside) = load(outside).await;
    let (s2, missing) = load(missing).await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(missing["loadType"], "empty", "{missing}");
    assert_eq!(
        outside, missing,
        "an existing file outside the roots answers like a missing one"
    );
}
