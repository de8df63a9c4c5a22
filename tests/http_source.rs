//! The HTTP source against a local media server: metadata, sniffing, streams,
//! playlists, errors, playback with Range seeks, stalls and dropped connections.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::media_server::MediaServer;
use common::*;
use serde_json::{json, Value};

const GUILD: &str = "400000000000000001";

fn voice() -> Value {
    json!({"token": "t", "endpoint": "voice.example", "sessionId": "s", "channelId": "1"})
}

fn enc(url: &str) -> String {
    url.replace(':', "%3A").replace('/', "%2F")
}

async fn load(node: &TestNode, url: &str) -> Value {
    let (status, body) = node
        .get(&format!("/v4/loadtracks?identifier={}", enc(url)))
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn files_streams_and_playlists_load_like_lavaplayers_http_source() {
    let node = TestNode::start().await;
    let media = MediaServer::start().await;

    let url = media.url("/media/sine.mp3");
    let r = load(&node, &url).await;
    assert_eq!(r["loadType"], "track", "{r}");
    let info = &r["data"]["info"];
    assert_eq!(
        (info["title"].as_str(), info["author"].as_str()),
        (Some("Sine 1k"), Some("Quaver Tests"))
    );
    assert_eq!(
        (info["identifier"].as_str(), info["uri"].as_str()),
        (Some(url.as_str()), Some(url.as_str()))
    );
    assert_eq!(
        (info["sourceName"].as_str(), info["isStream"].as_bool()),
        (Some("http"), Some(false))
    );
    assert!((1_950..=2_100).contains(&info["length"].as_i64().unwrap()));
    assert_eq!(r["data"]["pluginInfo"], json!({"probeInfo": "mp3"}));

    // Content sniffing beats a lying Content-Type and a missing extension.
    let r = load(&node, &media.url("/lying/track")).await;
    assert_eq!(r["data"]["pluginInfo"], json!({"probeInfo": "flac"}), "{r}");

    // An Icecast stream: endless, titled from its ICY metadata.
    let r = load(&node, &media.url("/radio")).await;
    let info = &r["data"]["info"];
    assert_eq!(
        (info["isStream"].as_bool(), info["isSeekable"].as_bool()),
        (Some(true), Some(false)),
        "{r}"
    );
    assert_eq!(info["length"], i64::MAX);
    assert_eq!(
        (info["title"].as_str(), info["author"].as_str()),
        (Some("Sine Radio"), Some("Quaver Radio"))
    );
    let r = load(&node, &media.url("/radio").replace("http://", "icy://")).await;
    assert_eq!(r["loadType"], "track", "icy:// is http://");

    let r = load(&node, &media.url("/list.m3u")).await;
    assert_eq!(r["loadType"], "playlist", "{r}");
    assert_eq!(
        r["data"]["info"],
        json!({"name": "Sines", "selectedTrack": -1})
    );
    let probes: Vec<_> = r["data"]["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["pluginInfo"]["probeInfo"].clone())
        .collect();
    assert_eq!(probes, [json!("mp3"), json!("flac")]);
    let r = load(&node, &media.url("/list.pls")).await;
    assert_eq!(r["data"]["tracks"][0]["info"]["title"], "Ogg sine");

    // Errors are load results, with Lavalink's severities. An upstream 404 is "no
    // match", as lavaplayer's HTTP source answers it.
    let r = load(&node, &media.url("/missing")).await;
    assert_eq!(r, json!({"loadType": "empty", "data": null}));
    let r = load(&node, "http://127.0.0.1:9/nothing.mp3").await;
    assert_eq!(
        (
            r["data"]["severity"].as_str(),
            r["data"]["message"].as_str()
        ),
        (Some("suspicious"), Some("Connecting to the URL failed."))
    );
}

#[tokio::test]
async fn http_tracks_play_and_seek_without_downloading_again() {
    let node = TestNode::start().await;
    let media = MediaServer::start().await;
    let mut c = node.connect().await;
    let path = node.player_path(&c, GUILD);
    let track = load(&node, &media.url("/media/sine.flac")).await["data"]["encoded"]
        .as_str()
        .unwrap()
        .to_owned();
    let full_before = media.stats.requests.load(Ordering::Relaxed)
        - media.stats.range_requests.load(Ordering::Relaxed);
    node.patch(&path, json!({"voice": voice(), "encodedTrack": track}))
        .await;
    assert_eq!(c.next_event().await["type"], "TrackStartEvent");
    tokio::time::sleep(Duration::from_millis(300)).await;
    node.patch(&path, json!({"position": 1_000})).await;
    let end = tokio::time::timeout(Duration::from_secs(10), c.next_event())
        .await
        .unwrap();
    assert_eq!(end["reason"], "finished", "{end}");
    let packets = node.captures.take(GUILD).len();
    // The last 1 s (50 packets) in full, after what played before the seek (about
    // 0.3 s, less when a busy machine started the track late); 100 without the seek.
    assert!(
        (50..=80).contains(&packets),
        "up to 0.3 s + the last 1 s: {packets} packets"
    );
    let full = media.stats.requests.load(Ordering::Relaxed)
        - media.stats.range_requests.load(Ordering::Relaxed);
    assert_eq!(
        full - full_before,
        1,
        "one whole-file request for playback; seeks never re-download"
    );
}

#[tokio::test]
async fn a_stalled_server_makes_the_track_stuck() {
    let mut control = fast_config();
    control.player_update_interval = Duration::from_secs(30);
    let node = TestNode::start_with_stuck(control, 1_000).await;
    let media = MediaServer::start().await;
    let mut c = node.connect().await;
    play_from(&node, &mut c, &media, "sine.mp3", "/stall/sine.mp3").await;
    let stuck = tokio::time::timeout(Duration::from_secs(10), c.next_event())
        .await
        .unwrap();
    assert_eq!(stuck["type"], "TrackStuckEvent", "{stuck}");
    assert_eq!(stuck["thresholdMs"], 1_000);
    assert!(
        node.captures.take(GUILD).len() >= 10,
        "the first 30 % played before the stall"
    );
}

#[tokio::test]
async fn a_dropped_connection_ends_the_track_with_an_exception() {
    let node = TestNode::start().await;
    let media = MediaServer::start().await;
    let mut c = node.connect().await;
    play_from(&node, &mut c, &media, "sine.mp3", "/drop/sine.mp3").await;
    let ex = tokio::time::timeout(Duration::from_secs(10), c.next_event())
        .await
        .unwrap();
    assert_eq!(ex["type"], "TrackExceptionEvent", "{ex}");
    assert_eq!(ex["exception"]["severity"], "fault", "{ex}");
    assert_eq!(
        ex["exception"]["message"],
        "Something broke when playing the track."
    );
    let end = c.next_event().await;
    assert_eq!(
        end["reason"], "finished",
        "a track that dies mid-play ends as finished"
    );
    let packets = node.captures.take(GUILD).len();
    assert!((20..=60).contains(&packets), "about 40 % played: {packets}");
}

/// Loads `/media/{file}`, then plays the same track from `fault_path` on a connected
/// player and waits for its start.
async fn play_from(
    node: &TestNode,
    c: &mut Client,
    media: &MediaServer,
    file: &str,
    fault_path: &str,
) {
    let path = node.player_path(c, GUILD);
    let loaded = load(node, &media.url(&format!("/media/{file}"))).await;
    let track = track_with_url(
        loaded["data"]["encoded"].as_str().unwrap(),
        &media.url(fault_path),
    );
    node.patch(&path, json!({"voice": voice(), "encodedTrack": track}))
        .await;
    assert_eq!(c.next_event().await["type"], "TrackStartEvent");
}

/// The same track metadata pointing at another URL.
fn track_with_url(encoded: &str, url: &str) -> String {
    use quaver_control::track::codec::{decode_base64, encode_base64};
    let mut blob = decode_base64(encoded).unwrap();
    blob.identifier = url.to_owned();
    blob.uri = Some(url.to_owned());
    encode_base64(&blob).unwrap()
}

#[tokio::test]
async fn disabled_sources_are_not_tried() {
    let node = TestNode::start_custom(fast_config(), |audio| {
        audio.http = None;
        audio.local = None;
    })
    .await;
    let media = MediaServer::start().await;
    let r = load(&node, &media.url("/media/sine.mp3")).await;
    assert_eq!(r, json!({"loadType": "empty", "data": null}));
    assert_eq!(
        media.stats.requests.load(Ordering::Relaxed),
        0,
        "the disabled HTTP source made no request"
    );
    let r = load(&node, &media_id("sine.mp3")).await;
    assert_eq!(r["loadType"], "empty");
    assert_eq!(node.get("/v4/info").await.1["sourceManagers"], json!([]));
}

/// A server that answers every request with the bytes `respond` gives for its path,
/// then closes the connection: for responses no well-behaved HTTP stack would send.
async fn raw_server(respond: fn(&str) -> Vec<u8>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&request);
                let path = text.split(' ').nth(1).unwrap_or("/").to_owned();
                let _ = socket.write_all(&respond(&path)).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    base
}

fn hostile(path: &str) -> Vec<u8> {
    let mp3 = std::fs::read(media_dir().join("sine.mp3")).unwrap();
    let head = |headers: &str| format!("HTTP/1.1 200 OK\r\nConnection: close\r\n{headers}\r\n");
    let mut out = match path {
        // 2^40: sized naively, one load allocates 1 TiB and aborts the node.
        "/icy-huge" => head(
            "Content-Type: audio/mpeg\r\nicy-name: Huge Radio\r\nicy-metaint: 1099511627776\r\n",
        ),
        "/icy-negative" => {
            head("Content-Type: audio/mpeg\r\nicy-name: Odd Radio\r\nicy-metaint: -5\r\n")
        }
        // Claims 2^62 bytes and sends a few kilobytes.
        "/lying-length" => {
            head("Content-Type: audio/mpeg\r\nContent-Length: 4611686018427387904\r\n")
        }
        "/huge-header" => head(&format!("Content-Type: audio/mpeg\r\nX-Pad: {}\r\n", "a".repeat(1 << 20))),
        "/error" => "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into(),
        "/list.m3u" => {
            return b"HTTP/1.1 200 OK\r\nContent-Type: audio/x-mpegurl\r\nConnection: close\r\n\r\n#EXTM3U\n#EXTINF:-1,Listed radio\n/icy-huge\n".to_vec()
        }
        _ => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into(),
    }
    .into_bytes();
    if out.starts_with(b"HTTP/1.1 200") {
        out.extend_from_slice(&mp3);
    }
    out
}

#[tokio::test]
async fn sizes_the_network_chooses_are_bounded_and_statuses_worded_as_lavaplayer() {
    let node = TestNode::start().await;
    let base = raw_server(hostile).await;
    let url = |p: &str| format!("{base}{p}");

    // An absurd icy-metaint is ignored (no title from metadata), the stream still loads.
    for (path, name) in [("/icy-huge", "Huge Radio"), ("/icy-negative", "Odd Radio")] {
        let r = load(&node, &url(path)).await;
        assert_eq!(r["loadType"], "track", "{path}: {r}");
        assert_eq!(r["data"]["info"]["isStream"], true);
        assert_eq!(r["data"]["info"]["title"], name, "{path}");
    }
    // The same URL through a playlist entry and through a player PATCH.
    let r = load(&node, &url("/list.m3u")).await;
    assert_eq!(r["loadType"], "playlist", "{r}");
    assert_eq!(r["data"]["tracks"][0]["info"]["title"], "Huge Radio");
    let mut client = node.connect().await;
    let (status, p) = node
        .patch(
            &node.player_path(&client, GUILD),
            json!({"track": {"identifier": url("/icy-huge")}}),
        )
        .await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(
        client.wait_event("TrackStartEvent").await["track"]["info"]["title"],
        "Huge Radio"
    );

    // A lying Content-Length is a load result either way, never a dead node.
    let r = load(&node, &url("/lying-length")).await;
    assert!(
        matches!(r["loadType"].as_str(), Some("track" | "error")),
        "{r}"
    );
    // A 1 MiB header is refused by the HTTP client, not buffered.
    let r = load(&node, &url("/huge-header")).await;
    assert_eq!(r["loadType"], "error", "{r}");
    assert_eq!(r["data"]["message"], "Connecting to the URL failed.");
    assert_eq!(r["data"]["severity"], "suspicious");

    // lavaplayer's wording: 404 is no match, other statuses "not playable".
    let r = load(&node, &url("/nothing-here")).await;
    assert_eq!(r["loadType"], "empty", "{r}");
    let r = load(&node, &url("/error")).await;
    assert_eq!(r["loadType"], "error", "{r}");
    assert_eq!(r["data"]["message"], "That URL is not playable.");
    assert_eq!(r["data"]["severity"], "common");
    assert_eq!(
        r["data"]["cause"],
        "com.sedmelluq.discord.lavaplayer.tools.FriendlyException: That URL is not playable."
    );
    let trace = r["data"]["causeStackTrace"].as_str().unwrap();
    assert!(trace.contains("Status code 500"), "{trace}");
    let r = load(&node, "http://exa mple.com/a b.mp3").await;
    assert_eq!(
        (r["loadType"].as_str(), r["data"]["message"].as_str()),
        (Some("error"), Some("Not a valid URL."))
    );

    // The node is still there.
    let (status, _) = node.get("/v4/info").await;
    assert_eq!(status, 200);
}
