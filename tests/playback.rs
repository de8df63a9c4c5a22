//! Audio end to end: a client PATCHes a track and a voice state; the real engine
//! decodes, encodes and "sends" into a capture standing in for the voice transport;
//! the test decodes the captured Opus and checks what a listener would hear.

mod common;

use std::time::Duration;

use common::*;
use quaver_engine::codec::FrameDecoder;
use quaver_engine::opus::OpusDecoder;
use serde_json::{json, Value};

const GUILD: &str = "300000000000000001";

fn voice() -> Value {
    json!({"token": "t", "endpoint": "voice.example", "sessionId": "s", "channelId": "1"})
}

/// Decodes captured packets; returns the left channel.
fn decode(packets: &[Vec<u8>]) -> Vec<i16> {
    let mut dec = OpusDecoder::new().unwrap();
    let mut pcm = vec![0i16; 1920];
    let mut left = Vec::new();
    for p in packets {
        dec.decode(p, &mut pcm).unwrap();
        left.extend(pcm.iter().step_by(2));
    }
    left
}

fn frequency(left: &[i16]) -> f32 {
    let body = &left[left.len() / 10..left.len() * 9 / 10];
    let crossings = body.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
    crossings as f32 / 2.0 / (body.len() as f32 / 48_000.0)
}

fn peak(left: &[i16]) -> i16 {
    left[left.len() / 4..left.len() * 3 / 4]
        .iter()
        .map(|s| s.saturating_abs())
        .max()
        .unwrap_or(0)
}

/// Plays `track` on a connected player and waits for its end event.
async fn play_to_end(node: &TestNode, c: &mut Client, body: Value) -> (Value, Vec<Vec<u8>>) {
    let path = node.player_path(c, GUILD);
    node.patch(&path, json!({"voice": voice()})).await;
    let (status, p) = node.patch(&path, body).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(c.next_event().await["type"], "TrackStartEvent");
    let end = tokio::time::timeout(Duration::from_secs(15), c.next_event())
        .await
        .expect("track ended");
    (end, node.captures.take(GUILD))
}

#[tokio::test]
async fn every_format_plays_a_1khz_sine_of_the_right_length_over_http() {
    let node = TestNode::start().await;
    let media = common::media_server::MediaServer::start().await;
    let mut c = node.connect().await;
    for file in [
        "sine.mp3",
        "sine.flac",
        "sine.ogg",
        "sine.m4a",
        "sine.opus",
        "sine.webm",
    ] {
        let url = media
            .url(&format!("/media/{file}"))
            .replace(':', "%3A")
            .replace('/', "%2F");
        let (_, loaded) = node.get(&format!("/v4/loadtracks?identifier={url}")).await;
        assert_eq!(loaded["loadType"], "track", "{file}: {loaded}");
        let track = loaded["data"]["encoded"].as_str().unwrap().to_owned();
        let (end, packets) = play_to_end(&node, &mut c, json!({"encodedTrack": track})).await;
        assert_eq!(
            (end["type"].as_str(), end["reason"].as_str()),
            (Some("TrackEndEvent"), Some("finished")),
            "{file}: {end}"
        );
        assert!(
            (98..=104).contains(&packets.len()),
            "{file}: {} packets for 2 s",
            packets.len()
        );
        let hz = frequency(&decode(&packets));
        assert!((hz - 1000.0).abs() < 15.0, "{file}: {hz} Hz");
        let pos = end["track"]["info"]["position"].as_i64().unwrap();
        assert!(
            (1_960..=2_080).contains(&pos),
            "{file}: position from frames sent: {pos}"
        );
    }
}

#[tokio::test]
async fn opus_passes_through_until_volume_changes() {
    let node = TestNode::start().await;
    let mut c = node.connect().await;
    let opus = local_track("sine.opus", "opus", 2_000, 0, false);
    let (_, first) = play_to_end(&node, &mut c, json!({"encodedTrack": opus})).await;
    let (_, second) = play_to_end(&node, &mut c, json!({"encodedTrack": opus})).await;
    assert_eq!(
        first, second,
        "passthrough forwards the file's packets unchanged"
    );
    let (_, quieter) =
        play_to_end(&node, &mut c, json!({"encodedTrack": opus, "volume": 50})).await;
    assert_ne!(first, quieter, "volume 50 re-encodes");
    let loud = peak(&decode(&first)) as f32;
    let soft = peak(&decode(&quieter)) as f32;
    assert!(
        (soft / loud - 0.4169).abs() < 0.05,
        "volume 50 is ×0.4169: {}",
        soft / loud
    );
}

#[tokio::test]
async fn pause_seek_and_end_time() {
    let node = TestNode::start().await;
    let mut c = node.connect().await;
    let path = node.player_path(&c, GUILD);
    node.patch(&path, json!({"voice": voice()})).await;
    node.patch(
        &path,
        json!({"encodedTrack": local_track("sine.flac", "f", 2_000, 0, false)}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    node.patch(&path, json!({"paused": true})).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let at_pause = node.get(&path).await.1["state"]["position"]
        .as_i64()
        .unwrap();
    let before = node.captures.take(GUILD).len();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        node.captures.take(GUILD).is_empty(),
        "no frames while paused"
    );
    assert_eq!(
        node.get(&path).await.1["state"]["position"]
            .as_i64()
            .unwrap(),
        at_pause,
        "position frozen"
    );
    assert!(
        (300..=700).contains(&at_pause) && (15..=35).contains(&before),
        "{at_pause} ms, {before} packets"
    );
    // Seek to 1.0 s and resume: the rest of the track is 1 s, 50 frames.
    node.patch(&path, json!({"position": 1_000, "paused": false}))
        .await;
    let end = tokio::time::timeout(Duration::from_secs(5), c.next_op("event"))
        .await
        .unwrap();
    let end = if end["type"] == "TrackStartEvent" {
        c.next_event().await
    } else {
        end
    };
    assert_eq!(end["reason"], "finished");
    let rest = node.captures.take(GUILD).len();
    assert!(
        (48..=53).contains(&rest),
        "{rest} packets after seeking to 1 s of 2 s"
    );

    // endTime stops at the marker with `finished`.
    let (end, packets) = play_to_end(
        &node,
        &mut c,
        json!({"encodedTrack": local_track("sine.mp3", "m", 2_000, 0, false), "endTime": 600}),
    )
    .await;
    assert_eq!(end["reason"], "finished");
    assert!(
        (25..=40).contains(&packets.len()),
        "{} packets before a 600 ms end marker",
        packets.len()
    );
}

#[tokio::test]
async fn a_track_no_source_can_play_fails_to_load() {
    let node = TestNode::start().await;
    let mut c = node.connect().await;
    let path = node.player_path(&c, GUILD);
    node.patch(&path, json!({"voice": voice(), "encodedTrack": Y3}))
        .await;
    assert_eq!(
        c.next_event().await["type"],
        "TrackStartEvent",
        "start is sent when play is requested"
    );
    let ex = c.next_event().await;
    assert_eq!(ex["type"], "TrackExceptionEvent");
    assert_eq!(ex["exception"]["severity"], "common");
    assert!(ex["exception"]["message"]
        .as_str()
        .unwrap()
        .contains("youtube"));
    let end = c.next_event().await;
    assert_eq!(
        (end["type"].as_str(), end["reason"].as_str()),
        (Some("TrackEndEvent"), Some("loadFailed"))
    );
    assert_eq!(node.get(&path).await.1["track"], Value::Null);
}

#[tokio::test]
async fn local_files_load_with_their_tags() {
    let node = TestNode::start().await;
    let id = media_id("sine.mp3");
    let (status, r) = node
        .get(&format!(
            "/v4/loadtracks?identifier={}",
            id.replace('/', "%2F")
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(r["loadType"], "track", "{r}");
    let info = &r["data"]["info"];
    assert_eq!(
        (info["title"].as_str(), info["author"].as_str()),
        (Some("Sine 1k"), Some("Quaver Tests"))
    );
    assert_eq!(info["sourceName"], "local");
    assert_eq!(r["data"]["pluginInfo"], json!({"probeInfo": "mp3"}));
    let length = info["length"].as_i64().unwrap();
    assert!((1_950..=2_100).contains(&length), "{length}");
    let (_, info) = node.get("/v4/info").await;
    assert_eq!(info["sourceManagers"], json!(["local", "http"]));
}

#[tokio::test]
async fn an_active_filter_switches_opus_to_transcoding() {
    let node = TestNode::start().await;
    let mut c = node.connect().await;
    let opus = local_track("sine.opus", "opus", 2_000, 0, false);
    let (_, plain) = play_to_end(&node, &mut c, json!({"encodedTrack": opus})).await;
    let (_, filtered) = play_to_end(
        &node,
        &mut c,
        json!({"encodedTrack": opus, "filters": {"timescale": {"speed": 1.1}}}),
    )
    .await;
    assert_ne!(plain, filtered, "an active filter re-encodes");
    let (_, inactive) = play_to_end(
        &node,
        &mut c,
        json!({"encodedTrack": opus, "filters": {"timescale": {}}}),
    )
    .await;
    assert_eq!(
        plain, inactive,
        "a filter at its defaults is inactive: passthrough"
    );
}
