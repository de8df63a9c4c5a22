//! REST routes, authentication and error bodies, over real HTTP.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

fn assert_error(body: &Value, status: u16, message: &str, path: &str) {
    assert_eq!(body["status"], status, "{body}");
    assert_eq!(body["message"], message, "{body}");
    assert_eq!(body["path"], path, "{body}");
    assert!(
        body["timestamp"].as_u64().unwrap() > 1_600_000_000_000,
        "epoch ms: {body}"
    );
    assert!(body["error"].is_string());
    assert!(body.get("trace").is_none(), "no trace unless asked: {body}");
}

#[tokio::test]
async fn authentication_and_headers() {
    let node = TestNode::start().await;
    let bare = |path: &str| node.http.get(node.url(path));
    // Missing → 401, wrong → 403, both with empty bodies and the API header.
    for (req, status) in [
        (bare("/v4/info"), 401),
        (bare("/v4/info").header("Authorization", "nope"), 403),
        (bare("/version"), 401),
        (
            bare("/v4/stats").header("Authorization", "Bearer youshallnotpass"),
            403,
        ),
    ] {
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), status);
        assert_eq!(res.headers()["Lavalink-Api-Version"], "4");
        assert!(res.text().await.unwrap().is_empty());
    }
    // Unknown paths: 404 JSON without any auth check.
    let (status, body) = send(bare("/v4/nope")).await;
    assert_eq!(status, 404);
    assert_error(&body, 404, "No endpoint GET /v4/nope.", "/v4/nope");
    // No trailing-slash matching.
    assert_eq!(send(node.req(Method::GET, "/v4/info/")).await.0, 404);
    // Known path, wrong method: 405 after authentication.
    let (status, body) = send(node.req(Method::POST, "/v4/info")).await;
    assert_eq!(status, 405);
    assert_eq!(body["message"], "Method 'POST' is not supported.");
    assert_eq!(
        send(bare("/v4/info").header("Authorization", "x")).await.0,
        403
    );
    // The old v3 paths answer 200 with an empty body after auth.
    assert_eq!(send(node.req(Method::GET, "/")).await, (200, Value::Null));
    assert_eq!(
        send(node.req(Method::GET, "/v3/websocket")).await,
        (200, Value::Null)
    );
    assert_eq!(send(bare("/")).await.0, 401);
}

#[tokio::test]
async fn version_info_and_stats() {
    let node = TestNode::start().await;
    let res = node.req(Method::GET, "/version").send().await.unwrap();
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(res.text().await.unwrap(), "4.2.2");

    let (status, info) = node.get("/v4/info").await;
    assert_eq!(status, 200);
    let v = &info["version"];
    assert_eq!(v.as_object().unwrap().len(), 5, "no build field: {v}");
    assert_eq!(
        (
            v["semver"].as_str(),
            v["major"].as_u64(),
            v["preRelease"].as_str()
        ),
        (Some("4.2.2"), Some(4), Some(""))
    );
    assert!(info["buildTime"].is_u64());
    assert!(info["git"]["commitTime"].is_u64());
    assert!(info["jvm"].is_string() && info["lavaplayer"].is_string());
    assert_eq!(
        info["sourceManagers"],
        json!(["local", "http"]),
        "the test node enables local and http, http last"
    );
    assert_eq!(
        info["filters"],
        json!([
            "volume",
            "equalizer",
            "karaoke",
            "timescale",
            "tremolo",
            "vibrato",
            "distortion",
            "rotation",
            "channelMix",
            "lowPass"
        ])
    );
    assert_eq!(info["plugins"], json!([]));

    let (status, stats) = node.get("/v4/stats").await;
    assert_eq!(status, 200);
    let keys: Vec<_> = stats.as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        keys,
        [
            "frameStats",
            "players",
            "playingPlayers",
            "uptime",
            "memory",
            "cpu"
        ],
        "REST stats carry frameStats for strict client schemas"
    );
    assert_eq!(stats["frameStats"], Value::Null);
    assert!(stats["memory"]["used"].as_u64().unwrap() > 0);
    assert!(stats["cpu"]["cores"].as_u64().unwrap() >= 1);
    assert!(stats["cpu"]["systemLoad"].is_f64() && stats["cpu"]["lavalinkLoad"].is_f64());
}

#[tokio::test]
async fn disabled_filters_leave_info() {
    let mut cfg = fast_config();
    cfg.disabled_filters = vec!["karaoke".into(), "lowPass".into()];
    let node = TestNode::start_with(cfg).await;
    let (_, info) = node.get("/v4/info").await;
    assert_eq!(
        info["filters"],
        json!([
            "volume",
            "equalizer",
            "timescale",
            "tremolo",
            "vibrato",
            "distortion",
            "rotation",
            "channelMix"
        ])
    );
}

#[tokio::test]
async fn trace_only_when_asked() {
    let node = TestNode::start().await;
    let (_, body) = node.get("/v4/sessions/nope/players?trace=true").await;
    assert!(body["trace"]
        .as_str()
        .unwrap()
        .contains("Session not found"));
    let keys: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        keys,
        ["timestamp", "status", "error", "trace", "message", "path"]
    );
    let (_, body) = node.get("/v4/sessions/nope/players?trace=false").await;
    assert!(body.get("trace").is_none());
}

#[tokio::test]
async fn identifiers_no_source_claims_are_empty() {
    let node = TestNode::start().await;
    let (status, body) = node.get("/v4/loadtracks").await;
    assert_eq!(status, 400);
    assert_error(
        &body,
        400,
        "Required parameter 'identifier' is not present.",
        "/v4/loadtracks",
    );
    for id in [
        "ytsearch:never%20gonna",
        "just%20some%20words",
        "scsearch:x",
    ] {
        let (status, body) = node.get(&format!("/v4/loadtracks?identifier={id}")).await;
        assert_eq!(
            (status, body),
            (200, json!({"loadType": "empty", "data": null}))
        );
    }
}

#[tokio::test]
async fn decode_track_vectors_and_errors() {
    let node = TestNode::start().await;
    let enc = |s: &str| {
        s.replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D")
    };
    let (status, t) = node
        .get(&format!("/v4/decodetrack?encodedTrack={}", enc(P3)))
        .await;
    assert_eq!(status, 200);
    assert_eq!(t["encoded"], P3, "decodetrack echoes its input");
    assert_eq!(t["info"]["title"], "Nosebleed Section");
    assert_eq!(t["info"]["position"], 159580);
    assert_eq!(t["info"]["isSeekable"], true);
    assert_eq!(
        t["info"]["artworkUrl"],
        "https://i.ytimg.com/vi_webp/LWMR-kcwG-8/maxresdefault.webp"
    );
    assert_eq!(t["info"]["isrc"], Value::Null);
    assert_eq!(t["pluginInfo"], json!({}));
    assert_eq!(t["userData"], json!({}));
    let info_keys: Vec<_> = t["info"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        info_keys,
        [
            "identifier",
            "isSeekable",
            "author",
            "length",
            "isStream",
            "position",
            "title",
            "uri",
            "sourceName",
            "artworkUrl",
            "isrc"
        ]
    );
    // The Lavalink.py alias, and the HTTP source's probe info.
    let (status, t) = node
        .get(&format!("/v4/decodetrack?track={}", enc(H3)))
        .await;
    assert_eq!(status, 200);
    assert_eq!(t["pluginInfo"], json!({"probeInfo": "mp3"}));
    assert_eq!(t["info"]["sourceName"], "http");

    let (status, body) = node.get("/v4/decodetrack").await;
    assert_eq!(status, 400);
    assert_error(&body, 400, "No track to decode provided", "/v4/decodetrack");
    for garbage in ["%21%21%21", "QAAA", "AAAAAA%3D%3D", "QAAAjQMAC0RlYXRo"] {
        let (status, body) = node
            .get(&format!("/v4/decodetrack?encodedTrack={garbage}"))
            .await;
        assert_eq!(status, 500, "{garbage}: {body}");
        assert_eq!(body["status"], 500);
        assert!(!body["message"].as_str().unwrap().is_empty());
    }
    let deezer = "QAACDgMACk5vIERpZ2dpdHkAC0JsYWNrc3RyZWV0AAAAAAAEo4AABjkxNjQ5NgABAB9odHRwczovL2RlZXplci5jb20vdHJhY2svOTE2NDk2AQBpaHR0cHM6Ly9lLWNkbnMtaW1hZ2VzLmR6Y2RuLm5ldC9pbWFnZXMvY292ZXIvZGFlN2EyNjViNzlmYjcxMjc4Y2RlMjUwNDg0OWQ2ZjcvMTAwMHgxMDAwLTAwMDAwMC04MC0wLTAuanBnAQAMVVNJUjE5NjAwOTc4AAZkZWV6ZXIBAChObyBEaWdnaXR5OiBUaGUgVmVyeSBCZXN0IE9mIEJsYWNrc3RyZWV0AQAjaHR0cHM6Ly93d3cuZGVlemVyLmNvbS9hbGJ1bS8xMDMyNTQBACJodHRwczovL3d3dy5kZWV6ZXIuY29tL2FydGlzdC8xODYxAQBqaHR0cHM6Ly9lLWNkbnMtaW1hZ2VzLmR6Y2RuLm5ldC9pbWFnZXMvYXJ0aXN0L2YxNmNhYzM2ZmVjMzkxZjczN2I3ZDQ4MmY1YWM3M2UzLzEwMDB4MTAwMC0wMDAwMDAtODAtMC0wLmpwZwEAT2h0dHBzOi8vY2RuLXByZXZpZXctYS5kemNkbi5uZXQvc3RyZWFtL2MtYTE1Yjg1NzFhYTYyMDBjMDQ0YmY1OWM3NmVkOTEyN2MtNi5tcDMAAAAAAAAAAAA=";
    let (status, body) = node
        .get(&format!("/v4/decodetrack?encodedTrack={}", enc(deezer)))
        .await;
    assert_eq!(status, 500);
    assert_eq!(
        body["message"],
        "Failed to decode track due to a mismatching version or missing source manager"
    );

    let (status, list) = send(
        node.req(Method::POST, "/v4/decodetracks")
            .json(&json!([Y3, H3])),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(list[0]["info"]["author"], "Rick Astley");
    assert_eq!(list[1]["encoded"], H3);
    let (status, body) = send(node.req(Method::POST, "/v4/decodetracks").json(&json!([]))).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("No tracks to decode provided"))
    );
    let (status, _) = send(
        node.req(Method::POST, "/v4/decodetracks")
            .json(&json!([Y3, "zz"])),
    )
    .await;
    assert_eq!(status, 500);
    let (status, _) = send(
        node.req(Method::POST, "/v4/decodetracks")
            .json(&json!({"a": 1})),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = send(node.req(Method::POST, "/v4/decodetracks").body("[]")).await;
    assert_eq!(status, 415, "bodies need Content-Type: application/json");
}

#[tokio::test]
async fn route_planner_is_unconfigured() {
    let node = TestNode::start().await;
    let res = node
        .req(Method::GET, "/v4/routeplanner/status")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert!(res.text().await.unwrap().is_empty());
    let (status, body) = send(node.req(Method::POST, "/v4/routeplanner/free/all")).await;
    assert_error(
        &body,
        500,
        "Can't access disabled route planner",
        "/v4/routeplanner/free/all",
    );
    assert_eq!(status, 500);
    let req = node
        .req(Method::POST, "/v4/routeplanner/free/address")
        .json(&json!({"address": "1.2.3.4"}));
    assert_eq!(send(req).await.0, 500);
}

#[tokio::test]
async fn unknown_sessions_are_404() {
    let node = TestNode::start().await;
    let path = "/v4/sessions/abcdefghijklmnop/players/817327181659111454";
    for (method, p) in [
        (Method::GET, "/v4/sessions/abcdefghijklmnop/players"),
        (Method::GET, path),
        (Method::PATCH, path),
        (Method::DELETE, path),
        (Method::PATCH, "/v4/sessions/abcdefghijklmnop"),
    ] {
        let (status, body) = send(node.req(method.clone(), p).json(&json!({}))).await;
        assert_eq!(status, 404, "{method} {p}");
        assert_error(&body, 404, "Session not found", p);
    }
}

/// `GET /quaver/engine` reports each tick thread's own accounting; authenticated.
#[tokio::test]
async fn engine_report_per_tick_thread() {
    let node = TestNode::start().await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (status, body) = node.get("/quaver/engine?reset=true").await;
    assert_eq!(status, 200, "{body}");
    let threads = body["threads"].as_array().expect("threads");
    assert_eq!(threads.len(), 1, "the test engine has one tick thread");
    assert!(threads[0]["ticks"].as_u64().unwrap() >= 5, "{body}");
    assert_eq!(threads[0]["framesNulled"], 0);
    assert!(threads[0]["latenessP99Us"].is_number());
    let res = node
        .http
        .get(node.url("/quaver/engine"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}
