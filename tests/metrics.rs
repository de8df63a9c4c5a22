//! `metrics.prometheus.*`: the endpoint serves Lavalink's gauges and counters, the
//! `process_*` set and the engine's own figures, read by a Prometheus text parser; it
//! is authenticated unless its path was configured, and absent unless enabled.

mod common;

use std::collections::HashSet;

use common::{media_id, TestNode, PASSWORD};
use prometheus_parse::{Scrape, Value as Sample};
use serde_json::json;

/// Lavalink 4's ten gauges.
const LAVALINK_GAUGES: [&str; 10] = [
    "lavalink_players_total",
    "lavalink_playing_players_total",
    "lavalink_uptime_milliseconds",
    "lavalink_memory_free_bytes",
    "lavalink_memory_used_bytes",
    "lavalink_memory_allocated_bytes",
    "lavalink_memory_reservable_bytes",
    "lavalink_cpu_cores",
    "lavalink_cpu_system_load_percentage",
    "lavalink_cpu_lavalink_load_percentage",
];

const PROCESS: [&str; 6] = [
    "process_cpu_seconds_total",
    "process_start_time_seconds",
    "process_open_fds",
    "process_max_fds",
    "process_virtual_memory_bytes",
    "process_resident_memory_bytes",
];

async fn get(node: &TestNode, path: &str, auth: bool) -> (u16, String, String) {
    let mut req = reqwest::Client::new().get(format!("{}{path}", node.base));
    if auth {
        req = req.header("Authorization", PASSWORD);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let ctype = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, ctype, res.text().await.unwrap())
}

fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text")
}

fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(k).is_some_and(|l| l == *v))
        })
        .map(|s| match &s.value {
            Sample::Counter(v) | Sample::Gauge(v) | Sample::Untyped(v) => *v,
            Sample::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            Sample::Summary(_) => f64::NAN,
        })
}

#[tokio::test]
async fn the_default_endpoint_serves_every_family_behind_the_password() {
    let node = TestNode::start_binary(&[("METRICS_PROMETHEUS_ENABLED", "true")]).await;
    let (status, _, _) = get(&node, "/metrics", false).await;
    assert_eq!(status, 401, "/metrics is authenticated unless configured");
    // One load and one play, to be counted.
    let id = media_id("sine.mp3").replace('/', "%2F");
    let (status, loaded) = node.get(&format!("/v4/loadtracks?identifier={id}")).await;
    assert_eq!(status, 200);
    assert_eq!(loaded["loadType"], "track", "{loaded}");
    let (_, missing) = node
        .get("/v4/loadtracks?identifier=%2Fno%2Fsuch%2Ffile.mp3")
        .await;
    let missing_type = missing["loadType"].as_str().unwrap().to_owned();
    let c = node.connect().await;
    let path = node.player_path(&c, "500000000000000001");
    let (status, body) = node
        .patch(&path, json!({"encodedTrack": loaded["data"]["encoded"]}))
        .await;
    assert_eq!(status, 200, "{body}");

    // Scraped once the tick thread has ticked (a debug build's engine takes a moment
    // to start).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let (text, scrape) = loop {
        let (status, ctype, text) = get(&node, "/metrics", true).await;
        assert_eq!(status, 200);
        assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
        let scrape = parse(&text);
        if value(&scrape, "quaver_ticks_total", &[("thread", "0")]).unwrap() > 0.0 {
            break (text, scrape);
        }
        assert!(std::time::Instant::now() < deadline, "no tick: {text}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let names: HashSet<&str> = scrape.samples.iter().map(|s| s.metric.as_str()).collect();
    for name in LAVALINK_GAUGES.iter().chain(&PROCESS) {
        assert!(names.contains(name), "{name} missing from:\n{text}");
    }
    assert_eq!(value(&scrape, "lavalink_players_total", &[]), Some(1.0));
    assert_eq!(
        value(&scrape, "lavalink_playing_players_total", &[]),
        Some(1.0)
    );
    assert!(value(&scrape, "lavalink_cpu_cores", &[]).unwrap() >= 1.0);
    assert!(value(&scrape, "process_resident_memory_bytes", &[]).unwrap() > 1e6);
    assert!(value(&scrape, "process_open_fds", &[]).unwrap() > 3.0);
    assert_eq!(
        value(
            &scrape,
            "lavalink_track_load_results_total",
            &[("source", "local"), ("result", "track")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &scrape,
            "lavalink_track_load_results_total",
            &[("source", "none"), ("result", &missing_type)]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &scrape,
            "lavalink_tracks_played_total",
            &[("source", "local")]
        ),
        Some(1.0),
        "{text}"
    );
    // The player has no voice connection.
    assert_eq!(
        value(
            &scrape,
            "quaver_voice_connections",
            &[("state", "disconnected")]
        ),
        Some(1.0),
        "{text}"
    );
    // Both loads were timed.
    assert_eq!(
        value(&scrape, "quaver_load_seconds_count", &[]),
        Some(2.0),
        "{text}"
    );
    // The node logs at INFO when it starts.
    assert!(
        value(&scrape, "logback_appender_total", &[("level", "info")]).unwrap_or(0.0) >= 1.0,
        "{text}"
    );
    // The engine's tick thread: every tick counted once in each histogram.
    let lateness = scrape
        .samples
        .iter()
        .find(|s| s.metric == "quaver_tick_lateness_seconds")
        .expect("the lateness histogram");
    let Sample::Histogram(buckets) = &lateness.value else {
        panic!("not a histogram: {:?}", lateness.value)
    };
    assert!(buckets.len() >= 12, "{buckets:?}");
    assert!(
        buckets.windows(2).all(|w| w[0].count <= w[1].count),
        "cumulative: {buckets:?}"
    );
    let count = value(
        &scrape,
        "quaver_tick_lateness_seconds_count",
        &[("thread", "0")],
    )
    .unwrap();
    assert_eq!(
        buckets.last().unwrap().count,
        count,
        "the +Inf bucket holds every tick: {buckets:?}"
    );
    assert!(count > 0.0);
    for name in [
        "quaver_tick_busy_seconds_count",
        "quaver_packets_sent_total",
        "quaver_frames_nulled_total",
        "quaver_players",
    ] {
        assert!(names.contains(name), "{name} missing from:\n{text}");
    }
}

#[tokio::test]
async fn a_configured_endpoint_is_open_and_the_default_path_is_not_served() {
    let node = TestNode::start_binary(&[
        ("METRICS_PROMETHEUS_ENABLED", "true"),
        ("METRICS_PROMETHEUS_ENDPOINT", "/internal/metrics"),
    ])
    .await;
    let (status, _, text) = get(&node, "/internal/metrics", false).await;
    assert_eq!(status, 200, "{text}");
    assert!(parse(&text)
        .samples
        .iter()
        .any(|s| s.metric == "lavalink_uptime_milliseconds"));
    let (status, _, _) = get(&node, "/metrics", true).await;
    assert_eq!(status, 404, "only the configured path serves metrics");
}

#[tokio::test]
async fn metrics_are_off_unless_enabled() {
    let node = TestNode::start_binary(&[]).await;
    let (status, _, _) = get(&node, "/metrics", true).await;
    assert_eq!(status, 404);
}
