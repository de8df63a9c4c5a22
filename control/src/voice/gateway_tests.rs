use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::close::CloseAction;
use super::gateway::{GatewayEvent, Transmit, VoiceGateway, VoiceInfo};

fn info() -> VoiceInfo {
    VoiceInfo {
        guild_id: 42,
        user_id: 7,
        session_id: "sess".into(),
        token: "tok".into(),
        max_dave_protocol_version: 0,
        channel_id: 43,
    }
}

fn sent(g: &mut VoiceGateway) -> Vec<Value> {
    std::iter::from_fn(|| g.poll_transmit())
        .map(|t| match t {
            Transmit::Text(t) => serde_json::from_str(&t).unwrap(),
            Transmit::Binary(b) => panic!("unexpected binary frame {b:?}"),
        })
        .collect()
}

/// Runs a full handshake; returns the gateway and the time.
fn connected(modes: &[&str]) -> (VoiceGateway, Instant) {
    let t0 = Instant::now();
    let mut g = VoiceGateway::new(info());
    g.on_open(t0, false);
    let identify = sent(&mut g);
    assert_eq!(identify[0]["op"], 0);
    assert_eq!(
        identify[0]["d"],
        json!({"server_id": "42", "user_id": "7", "session_id": "sess", "token": "tok", "max_dave_protocol_version": 0})
    );
    g.handle_text(t0, r#"{"op":8,"d":{"heartbeat_interval":41250.5}}"#);
    let ready = json!({"op":2,"seq":1,"d":{"ssrc":1234,"ip":"127.0.0.1","port":5000,"modes":modes,"heartbeat_interval":1}});
    g.handle_text(t0, &ready.to_string());
    assert_eq!(
        g.poll_event(),
        Some(GatewayEvent::Discover {
            addr: "127.0.0.1:5000".parse().unwrap(),
            ssrc: 1234
        })
    );
    g.discovered(t0, "10.1.2.3:6000".parse().unwrap());
    (g, t0)
}

#[test]
fn handshake_prefers_aes_and_reports_the_session() {
    let (mut g, t0) = connected(&[
        "xsalsa20_poly1305",
        "aead_xchacha20_poly1305_rtpsize",
        "aead_aes256_gcm_rtpsize",
    ]);
    let select = sent(&mut g);
    assert_eq!(
        select[0]["d"],
        json!({"protocol": "udp", "data": {"address": "10.1.2.3", "port": 6000, "mode": "aead_aes256_gcm_rtpsize"}})
    );
    let key: Vec<u8> = (0..32).collect();
    g.handle_text(t0, &json!({"op":4,"seq":2,"d":{"mode":"aead_aes256_gcm_rtpsize","secret_key":key,"dave_protocol_version":0}}).to_string());
    match g.poll_event() {
        Some(GatewayEvent::SessionReady {
            mode,
            secret_key,
            ssrc,
        }) => {
            assert_eq!(
                (mode.as_str(), secret_key[31], ssrc),
                ("aead_aes256_gcm_rtpsize", 31, 1234)
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(g.is_connected());
    g.speaking(1);
    assert_eq!(
        sent(&mut g)[0],
        json!({"op":5,"d":{"speaking":1,"delay":0,"ssrc":1234}})
    );
}

#[test]
fn xchacha_when_it_is_the_only_mode_and_failure_without_any() {
    let (mut g, _) = connected(&["aead_xchacha20_poly1305_rtpsize"]);
    assert_eq!(
        sent(&mut g)[0]["d"]["data"]["mode"],
        "aead_xchacha20_poly1305_rtpsize"
    );
    let (mut g, _) = connected(&["xsalsa20_poly1305_lite"]);
    assert!(sent(&mut g).is_empty(), "never an xsalsa mode");
    assert!(matches!(g.poll_event(), Some(GatewayEvent::Failed(_))));
}

#[test]
fn heartbeats_carry_seq_ack_and_measure_ping() {
    let (mut g, t0) = connected(&["aead_aes256_gcm_rtpsize"]);
    sent(&mut g);
    let every = Duration::from_secs_f64(41.2505);
    assert_eq!(g.poll_timeout(), Some(t0 + every), "fractional interval");
    g.handle_binary(t0, &[0, 9, 25, 1, 2]);
    g.handle_timeout(t0 + every);
    let beat = sent(&mut g);
    assert_eq!(beat[0]["op"], 3);
    assert_eq!(beat[0]["d"]["seq_ack"], 9, "binary seq counts");
    let nonce = beat[0]["d"]["t"].clone();
    g.handle_text(
        t0 + every + Duration::from_millis(30),
        &json!({"op":6,"d":{"t":nonce}}).to_string(),
    );
    assert_eq!(g.ping(), Some(Duration::from_millis(30)));
    // Unknown and DAVE ops are ignored without failing.
    for op in [10, 11, 12, 13, 14, 15, 18, 20, 21, 24, 99] {
        g.handle_text(t0, &json!({"op": op, "seq": 20, "d": {"x": 1}}).to_string());
    }
    assert_eq!(g.poll_event(), None);
}

#[test]
fn unanswered_heartbeats_mean_a_dead_connection() {
    let (mut g, t0) = connected(&["aead_aes256_gcm_rtpsize"]);
    let every = Duration::from_secs_f64(41.2505);
    for n in 1..=3 {
        g.handle_timeout(t0 + every * n);
        assert_eq!(g.poll_event(), None, "{n} beats, not yet dead");
    }
    g.handle_timeout(t0 + every * 4);
    assert_eq!(g.poll_event(), Some(GatewayEvent::Dead));
}

#[test]
fn resume_after_a_drop_then_identify_if_it_fails() {
    let (mut g, t0) = connected(&["aead_aes256_gcm_rtpsize"]);
    g.handle_text(
        t0,
        &json!({"op":4,"seq":5,"d":{"mode":"aead_aes256_gcm_rtpsize","secret_key":vec![1u8; 32]}})
            .to_string(),
    );
    sent(&mut g);
    while g.poll_event().is_some() {}
    assert_eq!(g.on_close(1006), CloseAction::Resume);
    g.on_open(t0, true);
    assert_eq!(
        sent(&mut g)[0],
        json!({"op":7,"d":{"server_id":"42","session_id":"sess","token":"tok","seq_ack":5}})
    );
    g.handle_text(t0, r#"{"op":8,"d":{"heartbeat_interval":1000}}"#);
    g.handle_text(t0, r#"{"op":9,"d":null}"#);
    assert_eq!(g.poll_event(), Some(GatewayEvent::Resumed));
    assert_eq!(g.ssrc(), Some(1234), "SSRC kept");
    // A second drop, and the resume is refused: identify from scratch.
    g.on_close(1006);
    g.on_open(t0, true);
    sent(&mut g);
    assert_eq!(g.on_close(4006), CloseAction::Report);
    assert_eq!(
        g.on_close(4015),
        CloseAction::Identify,
        "a failed resume falls back to identify once"
    );
}

#[test]
fn arbitrary_frames_never_panic() {
    let mut g = VoiceGateway::new(info());
    let now = Instant::now();
    g.on_open(now, false);
    let mut x: u64 = 0x9E3779B97F4A7C15;
    let samples = [
        r#"{"op":2,"d":{"ssrc":-1,"ip":"x","port":99999}}"#,
        r#"{"op":4,"d":{"mode":"aead_aes256_gcm_rtpsize","secret_key":[1,2]}}"#,
        r#"{"op":8,"d":{"heartbeat_interval":"soon"}}"#,
        r#"{"op":6,"d":12}"#,
        r#"{"op":"two"}"#,
        "[]",
        "",
    ];
    for s in samples {
        g.handle_text(now, s);
    }
    for _ in 0..5_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 64) as usize;
        let bytes: Vec<u8> = (0..len).map(|i| (x >> (i % 56)) as u8).collect();
        g.handle_binary(now, &bytes);
        g.handle_text(now, &String::from_utf8_lossy(&bytes));
        g.handle_timeout(now + Duration::from_millis(x % 100_000));
    }
    while g.poll_event().is_some() {}
}

/// Hello's interval arrives as any JSON number: values no `Duration` (or `Instant`)
/// holds, zero, negatives and absurd lengths are a protocol failure the driver
/// reports, never a panic; tiny ones are raised to the floor, absent ones default.
#[test]
fn hello_intervals_are_checked() {
    let hello = |interval: &str| {
        let mut g = VoiceGateway::new(info());
        let now = Instant::now();
        g.on_open(now, false);
        sent(&mut g);
        let text = format!(r#"{{"op":8,"d":{{"heartbeat_interval":{interval}}}}}"#);
        g.handle_text(now, &text);
        (g.poll_event(), g.poll_timeout().map(|t| t - now))
    };
    for bad in [
        "1e300",
        "1.8e19",
        "18446744073709551615",
        "1.7976931348623157e308",
        "-1",
        "-1e300",
        "0",
        "0.0",
        "600001",
        "\"soon\"",
        "[1]",
    ] {
        let (event, timeout) = hello(bad);
        assert!(
            matches!(&event, Some(GatewayEvent::Failed(r)) if r.contains("heartbeat_interval")),
            "{bad}: {event:?}"
        );
        assert_eq!(timeout, None, "{bad}: no heartbeat scheduled");
    }
    assert_eq!(hello("1"), (None, Some(Duration::from_millis(50))));
    assert_eq!(hello("1e-300"), (None, Some(Duration::from_millis(50))));
    assert_eq!(hello("600000"), (None, Some(Duration::from_secs(600))));
    assert_eq!(hello("null"), (None, Some(Duration::from_millis(41_250))));
}

/// Ready with port 0, and DAVE versions above what we offered, are protocol failures.
#[test]
fn ready_port_zero_and_unoffered_dave_versions_fail() {
    let mut g = VoiceGateway::new(info());
    let now = Instant::now();
    g.on_open(now, false);
    let ready = json!({"op":2,"d":{"ssrc":1,"ip":"127.0.0.1","port":0,"modes":["aead_aes256_gcm_rtpsize"]}});
    g.handle_text(now, &ready.to_string());
    assert!(matches!(g.poll_event(), Some(GatewayEvent::Failed(_))));

    let mut g = VoiceGateway::new(VoiceInfo {
        max_dave_protocol_version: 1,
        ..info()
    });
    g.on_open(now, false);
    let ready = json!({"op":2,"d":{"ssrc":1,"ip":"127.0.0.1","port":5000,"modes":["aead_aes256_gcm_rtpsize"]}});
    g.handle_text(now, &ready.to_string());
    assert!(matches!(
        g.poll_event(),
        Some(GatewayEvent::Discover { .. })
    ));
    g.discovered(now, "10.1.2.3:6000".parse().unwrap());
    let session = json!({"op":4,"d":{"mode":"aead_aes256_gcm_rtpsize","secret_key":vec![0u8; 32],"dave_protocol_version":65536}});
    g.handle_text(now, &session.to_string());
    let events: Vec<_> = std::iter::from_fn(|| g.poll_event()).collect();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, GatewayEvent::Failed(r) if r.contains("DAVE version 65536"))),
        "{events:?}"
    );
}
