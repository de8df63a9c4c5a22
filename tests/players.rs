//! The player PATCH/GET/DELETE semantics of Lavalink 4.2, driven over HTTP with a
//! live WebSocket session receiving the events.

mod common;

use std::time::Duration;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

const GUILD: &str = "817327181659111454";

fn stream_track() -> String {
    local_track("sine.mp3", "Radio", i64::MAX, 0, true)
}

#[tokio::test]
async fn lazy_creation_and_defaults() {
    let node = TestNode::start().await;
    let mut c = node.connect().await;
    let path = node.player_path(&c, GUILD);
    let (status, body) = node.get(&path).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (404, Some("Player not found"))
    );
    assert_eq!(
        node.get(&format!("/v4/sessions/{}/players", c.session_id))
            .await
            .1,
        json!([])
    );

    let (status, p) = node.patch(&path, json!({})).await;
    assert_eq!(status, 200, "PATCH answers 200 with the player");
    assert_eq!(p["guildId"], GUILD);
    assert_eq!(p["track"], Value::Null);
    assert_eq!(
        (p["volume"].as_i64(), p["paused"].as_bool()),
        (Some(100), Some(false))
    );
    assert_eq!(p["state"]["position"], 0);
    assert_eq!(
        (
            p["state"]["connected"].as_bool(),
            p["state"]["ping"].as_i64()
        ),
        (Some(false), Some(-1))
    );
    assert_eq!(
        p["voice"],
        json!({"token": "", "endpoint": "", "sessionId": "", "channelId": null})
    );
    assert_eq!(p["filters"], json!({}));
    let (_, list) = node
        .get(&format!("/v4/sessions/{}/players", c.session_id))
        .await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(node.get("/v4/stats").await.1["players"], 1);
    // DELETE is 204 whether or not the player exists.
    assert_eq!(node.delete(&path).await, 204);
    assert_eq!(node.delete(&path).await, 204);
    assert_eq!(node.get(&path).await.0, 404);
    assert!(c
        .try_next_json(Duration::from_millis(200))
        .await
        .is_none_or(|m| m["op"] != "event"));
}

#[tokio::test]
async fn play_replace_stop_events_in_order() {
    let node = TestNode::start().await;
    let mut c = node.connect().await;
    let path = node.player_path(&c, GUILD);
    let (status, p) = node
        .patch(
            &path,
            json!({"track": {"encoded": track_p(), "userData": {"requester": 42}}}),
        )
        .await;
    assert_eq!(status, 200, "{p}");
    // The blob's trailer position is honoured: track P starts at 2:39.58.
    assert_eq!(p["state"]["position"], 159580);
    assert_eq!(p["track"]["info"]["position"], 159580);
    assert_eq!(p["track"]["userData"], json!({"requester": 42}));
    assert_eq!(
        p["track"]["encoded"],
        track_p(),
        "v3 re-encoding with the same position is byte-identical"
    );

    let start = c.next_event().await;
    assert_eq!(start["type"], "TrackStartEvent");
    assert_eq!(start["guildId"], GUILD);
    assert_eq!(start["track"]["info"]["title"], "Track P");
    let upd = c.next_op("playerUpdate").await;
    assert_eq!(upd["guildId"], GUILD);
    assert_eq!(upd["state"]["position"], 159580);
    assert_eq!(node.get("/v4/stats").await.1["playingPlayers"], 1);

    // Replacing: TrackEnd(replaced) for the old track, then TrackStart.
    let (_, p) = node
        .patch(&path, json!({"encodedTrack": track_a(), "position": 1000}))
        .await;
    assert_eq!(p["state"]["position"], 1000);
    let end = c.next_event().await;
    assert_eq!(
        (end["type"].as_str(), end["reason"].as_str()),
        (Some("TrackEndEvent"), Some("replaced"))
    );
    assert_eq!(end["track"]["info"]["identifier"], media_id("sine.ogg"));
    let start = c.next_event().await;
    assert_eq!(start["type"], "TrackStartEvent");
    assert_eq!(start["track"]["info"]["identifier"], media_id("sine.mp3"));
    assert_eq!(
        start["track"]["userData"],
        json!({}),
        "userData belongs to the track it was given with"
    );

    // encoded: null stops with `stopped`.
    let (_, p) = node.patch(&path, json!({"track": {"encoded": null}})).await;
    assert_eq!(p["track"], Value::Null);
    let end = c.next_event().await;
    assert_eq!(
        (end["type"].as_str(), end["reason"].as_str()),
        (Some("TrackEndEvent"), Some("stopped"))
    );
    // Stopping an idle player emits nothing.
    node.patch(&path, json!({"encodedTrack": null})).await;
    // DELETE of a playing player ends its track with `stopped`.
    node.patch(&path, json!({"encodedTrack": track_b()})).await;
    assert_eq!(c.next_event().await["type"], "TrackStartEvent");
    assert_eq!(node.delete(&path).await, 204);
    let end = c.next_event().await;
    assert_eq!(
        (end["type"].as_str(), end["reason"].as_str()),
        (Some("TrackEndEvent"), Some("stopped"))
    );
    assert_eq!(end["track"]["pluginInfo"], json!({"probeInfo": "flac"}));
}

#[tokio::test]
async fn pause_volume_no_replace_user_data() {
    let node = TestNode::start().await;
    let mut c = node.connect().await;
    let path = node.player_path(&c, GUILD);
    // Paused is applied before play and reset by a new track unless given.
    let (_, p) = node.patch(&path, json!({"paused": true})).await;
    assert_eq!(p["paused"], true);
    let (_, p) = node.patch(&path, json!({"encodedTrack": track_a()})).await;
    assert_eq!(p["paused"], false, "a new track un-pauses");
    let (_, p) = node
        .patch(&path, json!({"encodedTrack": track_a(), "paused": true}))
        .await;
    assert_eq!(p["paused"], true);
    assert_eq!(
        node.get("/v4/stats").await.1["playingPlayers"],
        0,
        "paused players are not playing"
    );
    // Volume clamps silently.
    assert_eq!(
        node.patch(&path, json!({"volume": 2000})).await.1["volume"],
        1000
    );
    assert_eq!(
        node.patch(&path, json!({"volume": -5})).await.1["volume"],
        0
    );
    // noReplace with a track playing: the track, pause and position stay; volume applies.
    let (_, p) = node
        .patch(
            &format!("{path}?noReplace=true"),
            json!({"encodedTrack": track_p(), "volume": 55, "paused": false}),
        )
        .await;
    assert_eq!(p["track"]["info"]["identifier"], media_id("sine.mp3"));
    assert_eq!(
        (p["volume"].as_i64(), p["paused"].as_bool()),
        (Some(55), Some(true))
    );
    // userData without a new track replaces the playing track's.
    let (_, p) = node
        .patch(&path, json!({"track": {"userData": {"a": [1, 2]}}}))
        .await;
    assert_eq!(p["track"]["userData"], json!({"a": [1, 2]}));
    // noReplace on an idle player plays.
    let other = node.player_path(&c, "1");
    let (_, p) = node
        .patch(
            &format!("{other}?noReplace=true"),
            json!({"encodedTrack": track_p()}),
        )
        .await;
    assert_eq!(p["track"]["info"]["identifier"], media_id("sine.ogg"));
    let (status, _) = node
        .patch(&format!("{other}?noReplace=maybe"), json!({}))
        .await;
    assert_eq!(status, 400);
    let _ = c.next_event().await;
}

#[tokio::test]
async fn seek_end_time_and_streams() {
    let node = TestNode::start().await;
    let mut c = node.connect().await;
    let path = node.player_path(&c, GUILD);
    node.patch(&path, json!({"encodedTrack": track_a(), "endTime": 50_000}))
        .await;
    assert_eq!(c.next_event().await["type"], "TrackStartEvent");
    let (_, p) = node.patch(&path, json!({"position": 30_000})).await;
    assert_eq!(p["state"]["position"], 30_000);
    assert_eq!(
        node.patch(&path, json!({"position": -10})).await.1["state"]["position"],
        0,
        "negative seek means 0"
    );
    // An end marker at or before the position is ignored; a later one replaces the old.
    node.patch(&path, json!({"position": 40_000})).await;
    node.patch(&path, json!({"endTime": 10_000})).await;
    node.patch(&path, json!({"endTime": null})).await;
    node.patch(&path, json!({"endTime": 45_000})).await;
    // Seeking past the marker ends the track with `finished`.
    let (_, p) = node.patch(&path, json!({"position": 46_000})).await;
    assert_eq!(p["track"], Value::Null);
    let end = c.next_event().await;
    assert_eq!(
        (end["type"].as_str(), end["reason"].as_str()),
        (Some("TrackEndEvent"), Some("finished"))
    );
    assert_eq!(end["track"]["info"]["position"], 46_000);

    // Streams ignore seeks without an error.
    let radio = stream_track();
    let (_, p) = node.patch(&path, json!({"encodedTrack": radio})).await;
    assert_eq!(p["track"]["info"]["length"], i64::MAX);
    assert_eq!(p["track"]["info"]["isSeekable"], false);
    let (status, p) = node.patch(&path, json!({"position": 5000})).await;
    assert_eq!((status, p["state"]["position"].as_i64()), (200, Some(0)));
}

#[tokio::test]
async fn filters_replace_the_chain() {
    let mut cfg = fast_config();
    cfg.disabled_filters = vec!["karaoke".into()];
    let node = TestNode::start_with(cfg).await;
    let c = node.connect().await;
    let path = node.player_path(&c, GUILD);
    let (_, p) = node.patch(&path, json!({"filters": {"timescale": {"speed": 1.2}, "volume": 0.5, "equalizer": [{"band": 0, "gain": 0.2}, {"band": 14}]}})).await;
    assert_eq!(
        p["filters"],
        json!({"volume": 0.5, "equalizer": [{"band": 0, "gain": 0.2}, {"band": 14, "gain": 1.0}], "timescale": {"speed": 1.2, "pitch": 1.0, "rate": 1.0}})
    );
    // A PATCH replaces the whole chain; null removes.
    let (_, p) = node
        .patch(
            &path,
            json!({"filters": {"lowPass": {}, "timescale": null}}),
        )
        .await;
    assert_eq!(p["filters"], json!({"lowPass": {"smoothing": 20.0}}));
    let (status, body) = node.patch(&path, json!({"filters": {"karaoke": {}}})).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (
            400,
            Some("Following filters are disabled in the config: karaoke")
        )
    );
    let (status, body) = node
        .patch(
            &path,
            json!({"filters": {"equalizer": [{"band": 15, "gain": 0.1}]}}),
        )
        .await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(
        node.get(&path).await.1["filters"],
        json!({"lowPass": {"smoothing": 20.0}}),
        "failed PATCH kept the chain"
    );
    let (status, _) = node
        .patch(&path, json!({"filters": {"volume": null}}))
        .await;
    assert_eq!(status, 400);
    let (status, _) = node.patch(&path, json!({"filters": null})).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn voice_state_is_validated_and_stored() {
    let node = TestNode::start().await;
    let c = node.connect().await;
    let path = node.player_path(&c, GUILD);
    let voice = json!({"token": "tok", "endpoint": "us-east1.discord.media", "sessionId": "sess", "channelId": "123"});
    let (status, p) = node.patch(&path, json!({"voice": voice})).await;
    assert_eq!(status, 200);
    assert_eq!(p["voice"], voice);
    let msg = "token, endpoint, sessionId and channelId must be provided in voice state";
    for bad in [
        json!({"token": "tok", "endpoint": "e", "sessionId": "s"}),
        json!({"token": "", "endpoint": "e", "sessionId": "s", "channelId": "1"}),
        json!({"token": "t", "endpoint": " ", "sessionId": "s", "channelId": "1"}),
        json!({"token": "t", "endpoint": "e", "sessionId": "s", "channelId": null}),
    ] {
        let (status, body) = node.patch(&path, json!({"voice": bad})).await;
        assert_eq!(
            (status, body["message"].as_str()),
            (400, Some(msg)),
            "{bad}"
        );
    }
    let (status, _) = node
        .patch(
            &path,
            json!({"voice": {"token": 1, "endpoint": "e", "sessionId": "s", "channelId": "1"}}),
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn bad_input_gets_lavalink_errors_and_keeps_the_session() {
    let node = TestNode::start().await;
    let mut c = node.connect().await;
    let path = node.player_path(&c, GUILD);
    let cases: Vec<(Value, u16, Option<&str>)> = vec![
        (
            json!({"track": {"encoded": track_a()}, "encodedTrack": track_a()}),
            400,
            Some("Cannot specify both track and encodedTrack/identifier"),
        ),
        (
            json!({"track": {"encoded": track_a(), "identifier": "x"}}),
            400,
            Some("Cannot specify both encodedTrack and identifier"),
        ),
        (
            json!({"encodedTrack": track_a(), "identifier": "x"}),
            400,
            Some("Cannot specify both encodedTrack and identifier"),
        ),
        (
            json!({"endTime": 0}),
            400,
            Some("End time must be greater than 0"),
        ),
        (
            json!({"identifier": "ytsearch:anything"}),
            400,
            Some("No matches found for identifier"),
        ),
        (json!({"encodedTrack": "bm90IGEgdHJhY2s="}), 500, None),
        (json!({"volume": "50"}), 400, None),
        (json!({"volume": 1.5}), 400, None),
        (json!({"paused": "yes"}), 400, None),
        (json!({"position": null}), 400, None),
        (json!({"track": null}), 400, None),
        (json!({"track": {"identifier": null}}), 400, None),
        (json!([1, 2]), 400, None),
    ];
    for (body, status, message) in cases {
        let (got, res) = node.patch(&path, body.clone()).await;
        assert_eq!(got, status, "{body} → {res}");
        assert_eq!(res["status"], status);
        assert_eq!(res["path"], path.as_str());
        if let Some(m) = message {
            assert_eq!(res["message"], m, "{body}");
        }
    }
    // Malformed JSON, missing body, wrong content type, bad snowflakes.
    let raw = |b: &'static str| {
        node.req(Method::PATCH, &path)
            .header("Content-Type", "application/json")
            .body(b)
    };
    assert_eq!(send(raw("{\"volume\":")).await.0, 400);
    assert_eq!(send(raw("")).await.0, 400);
    assert_eq!(send(node.req(Method::PATCH, &path).body("{}")).await.0, 415);
    for guild in ["abc", "0", "-5", "99999999999999999999"] {
        let p = node.player_path(&c, guild);
        let (status, body) = node.patch(&p, json!({})).await;
        assert_eq!(status, 400, "{guild}: {body}");
    }
    // The session and its socket survived all of it.
    let (status, _) = node.patch(&path, json!({"encodedTrack": track_a()})).await;
    assert_eq!(status, 200);
    assert_eq!(c.next_event().await["type"], "TrackStartEvent");
}

#[tokio::test]
async fn player_updates_and_cleanup_without_voice() {
    let mut cfg = fast_config();
    cfg.player_update_interval = Duration::from_millis(300);
    cfg.cleanup_threshold = Duration::from_millis(1500);
    let node = TestNode::start_with(cfg).await;
    let mut c = node.connect().await;
    let path = node.player_path(&c, GUILD);
    node.patch(&path, json!({"encodedTrack": track_a()})).await;
    assert_eq!(c.next_event().await["type"], "TrackStartEvent");
    // Periodic updates while playing; no voice connection means no frames pulled,
    // so the position stays where it started.
    let mut updates = 0;
    let end = loop {
        let m = c.next_json().await;
        match m["op"].as_str() {
            Some("playerUpdate") => {
                assert_eq!(m["state"]["position"], 0);
                updates += 1;
            }
            Some("event") => break m,
            _ => {}
        }
    };
    assert!(
        updates >= 3,
        "updates every 300 ms before the 1.5 s cleanup: {updates}"
    );
    // Lavaplayer's cleanup: nobody pulled audio, the track ends with `cleanup`.
    assert_eq!(
        (end["type"].as_str(), end["reason"].as_str()),
        (Some("TrackEndEvent"), Some("cleanup"))
    );
    assert_eq!(node.get(&path).await.1["track"], Value::Null);
    // After the end, updates stop.
    assert!(c
        .try_next_json(Duration::from_millis(800))
        .await
        .is_none_or(|m| m["op"] != "playerUpdate"));
}
