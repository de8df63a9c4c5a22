//! Corrupt local files through the real node (one decode thread): a panic in the
//! decoder gives a load `error`, or ends its track with a `fault` exception, and the
//! next track still plays. The files (`tests/media/corrupt/`) each make symphonia panic.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const GUILD: &str = "300000000000000011";

fn voice() -> Value {
    json!({"token": "t", "endpoint": "voice.example", "sessionId": "s", "channelId": "1"})
}

fn query(id: &str) -> String {
    id.replace('%', "%25")
        .replace('/', "%2F")
        .replace(':', "%3A")
}

#[tokio::test]
async fn loading_a_file_the_prober_panics_on_gives_an_error_result() {
    let node = TestNode::start().await;
    for file in [
        "corrupt/seek-past-end.webm",
        "corrupt/invalid-position.webm",
    ] {
        let (status, loaded) = tokio::time::timeout(
            Duration::from_secs(20),
            node.get(&format!(
                "/v4/loadtracks?identifier={}",
                query(&media_id(file))
            )),
        )
        .await
        .expect("the load answered");
        assert_eq!(status, 200, "{file}: {loaded}");
        assert_eq!(loaded["loadType"], "error", "{file}: {loaded}");
        assert!(
            loaded["data"]["message"]
                .as_str()
                .unwrap()
                .contains("panicked"),
            "{file}: {loaded}"
        );
    }
    // The node still loads good files.
    let (_, loaded) = node
        .get(&format!(
            "/v4/loadtracks?identifier={}",
            query(&media_id("sine.mp3"))
        ))
        .await;
    assert_eq!(loaded["loadType"], "track", "{loaded}");
}

/// Plays `track` and returns its exception and end events.
async fn play_failing(node: &TestNode, c: &mut Client, track: String) -> (Value, Value) {
    let path = node.player_path(c, GUILD);
    let (status, p) = node.patch(&path, json!({"encodedTrack": track})).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(c.next_event().await["type"], "TrackStartEvent");
    let ex = tokio::time::timeout(Duration::from_secs(20), c.next_event())
        .await
        .expect("an exception event");
    let end = tokio::time::timeout(Duration::from_secs(20), c.next_event())
        .await
        .expect("an end event");
    (ex, end)
}

#[tokio::test]
async fn a_panicking_decoder_ends_its_track_and_the_next_track_plays() {
    let node = TestNode::start().await;
    let mut c = node.connect().await;
    let path = node.player_path(&c, GUILD);
    node.patch(&path, json!({"voice": voice()})).await;
    for (file, panic, reason) in [
        // Panics while opening: before any audio.
        (
            "corrupt/seek-past-end.webm",
            "EBML header must be read",
            "loadFailed",
        ),
        (
            "corrupt/invalid-position.webm",
            "invalid position",
            "loadFailed",
        ),
        // Panics at its 11th AAC frame, after the first audio went out.
        ("corrupt/aac-max-sfb.m4a", "index out of bounds", "finished"),
    ] {
        let track = local_track(file, "Corrupt", 2_000, 0, false);
        let (ex, end) = play_failing(&node, &mut c, track).await;
        assert_eq!(ex["type"], "TrackExceptionEvent", "{file}: {ex}");
        assert_eq!(ex["exception"]["severity"], "fault", "{file}: {ex}");
        assert_eq!(
            ex["exception"]["message"], "Something broke when playing the track.",
            "{file}: {ex}"
        );
        assert!(
            ex["exception"]["cause"].as_str().unwrap().contains(panic),
            "{file}: the cause carries the panic: {ex}"
        );
        assert_eq!(
            (end["type"].as_str(), end["reason"].as_str()),
            (Some("TrackEndEvent"), Some(reason)),
            "{file}: {end}"
        );
    }
    // The node's one decode thread survived all three panics.
    node.captures.take(GUILD);
    let (status, p) = node.patch(&path, json!({"encodedTrack": track_a()})).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(c.next_event().await["type"], "TrackStartEvent");
    let end = tokio::time::timeout(Duration::from_secs(20), c.next_event())
        .await
        .expect("the good track ended");
    assert_eq!(
        (end["type"].as_str(), end["reason"].as_str()),
        (Some("TrackEndEvent"), Some("finished")),
        "{end}"
    );
    let packets = node.captures.take(GUILD).len();
    assert!(packets >= 90, "2 s of audio played: {packets} packets");
}
