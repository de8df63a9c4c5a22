//! Tests of the fake Discord voice server itself, driven by a minimal hand-written
//! voice client (WebSocket + UDP + its own transport sealing).

mod common;

use std::time::Duration;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::Aes256Gcm;
use chacha20poly1305::XChaCha20Poly1305;
use common::fake_discord::{
    ConnectionView, FakeDiscord, FakeDiscordOptions, MODE_AES, MODE_XCHACHA, SILENCE,
};
use futures_util::{SinkExt, StreamExt};
use quaver_engine::audio::{FRAME_SAMPLES, SAMPLE_RATE};
use quaver_engine::codec::FrameEncoder;
use quaver_engine::opus::OpusEncoder;
use serde_json::{json, Value};
use tokio::net::{TcpStream, UdpSocket};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const USER: u64 = 170_939_974_227_591_168;
const WAIT: Duration = Duration::from_secs(5);
const TONE_HZ: f64 = 1000.0;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn fast() -> FakeDiscordOptions {
    FakeDiscordOptions {
        heartbeat_interval_ms: 250.0,
        ..FakeDiscordOptions::default()
    }
}

async fn open(fake: &FakeDiscord) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(format!("{}/?v=8", fake.endpoint()))
        .await
        .unwrap();
    ws
}

/// The next JSON message, or `None` on close, error or after `wait`.
async fn try_next(ws: &mut Ws, wait: Duration) -> Option<Value> {
    loop {
        match tokio::time::timeout(wait, ws.next()).await.ok()?? {
            Ok(Message::Text(text)) => return Some(serde_json::from_str(&text).unwrap()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// Reads until the server's close frame and returns its code.
async fn close_code(ws: &mut Ws) -> u16 {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
            Some(Ok(Message::Close(frame))) => return frame.map_or(1005, |f| u16::from(f.code)),
            Some(Ok(_)) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

/// Transport sealing per the sender side of discord-voice.md §3.2.
enum Sealer {
    Aes(Box<Aes256Gcm>),
    XChaCha(Box<XChaCha20Poly1305>),
}

impl Sealer {
    fn new(mode: &str, key: &[u8]) -> Sealer {
        match mode {
            MODE_AES => Sealer::Aes(Box::new(Aes256Gcm::new_from_slice(key).unwrap())),
            MODE_XCHACHA => {
                Sealer::XChaCha(Box::new(XChaCha20Poly1305::new_from_slice(key).unwrap()))
            }
            other => panic!("no sealer for {other}"),
        }
    }

    /// Encrypts `body` in place and returns the tag.
    fn seal(&self, header: &[u8], body: &mut [u8], nonce: u32) -> Vec<u8> {
        match self {
            Sealer::Aes(c) => {
                let mut n = [0u8; 12];
                n[..4].copy_from_slice(&nonce.to_be_bytes());
                let tag = c
                    .encrypt_in_place_detached(&n.into(), header, body)
                    .unwrap();
                tag.to_vec()
            }
            Sealer::XChaCha(c) => {
                let mut n = [0u8; 24];
                n[..4].copy_from_slice(&nonce.to_be_bytes());
                let tag = c
                    .encrypt_in_place_detached(&n.into(), header, body)
                    .unwrap();
                tag.to_vec()
            }
        }
    }
}

/// A minimal voice client for one guild.
struct VoiceClient {
    voice: Value,
    ws: Ws,
    /// The last server seq seen.
    seq: i64,
    ssrc: u32,
    udp: UdpSocket,
    sealer: Option<Sealer>,
    rtp_seq: u16,
    timestamp: u32,
    nonce: u32,
}

impl VoiceClient {
    /// Hello → Identify → Ready → IP discovery; stops before Select Protocol.
    async fn ready(fake: &FakeDiscord, guild: u64) -> VoiceClient {
        let voice = fake.voice_state(guild, USER);
        let mut ws = open(fake).await;
        let hello = try_next(&mut ws, WAIT).await.unwrap();
        assert_eq!(hello["op"], 8);
        assert!(hello["d"]["heartbeat_interval"].is_f64(), "{hello}");
        assert!(hello.get("seq").is_none(), "Hello carries no seq");
        ws.send(identify(guild, &voice, &voice["token"], 1))
            .await
            .unwrap();
        let ready = try_next(&mut ws, WAIT).await.unwrap();
        assert_eq!(ready["op"], 2, "{ready}");
        let ssrc = ready["d"]["ssrc"].as_u64().unwrap() as u32;
        assert_ne!(ssrc, 0);
        let server = format!(
            "{}:{}",
            ready["d"]["ip"].as_str().unwrap(),
            ready["d"]["port"]
        );

        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        udp.connect(&server).await.unwrap();
        let mut request = [0u8; 74];
        request[..2].copy_from_slice(&1u16.to_be_bytes());
        request[2..4].copy_from_slice(&70u16.to_be_bytes());
        request[4..8].copy_from_slice(&ssrc.to_be_bytes());
        udp.send(&request).await.unwrap();
        let mut response = [0u8; 128];
        let n = tokio::time::timeout(WAIT, udp.recv(&mut response))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 74);
        assert_eq!(
            response[..8],
            [0, 2, 0, 70, request[4], request[5], request[6], request[7]]
        );
        let ip_end = 8 + response[8..72].iter().position(|&b| b == 0).unwrap();
        let ip = std::str::from_utf8(&response[8..ip_end]).unwrap();
        let port = u16::from_be_bytes([response[72], response[73]]);
        let local = udp.local_addr().unwrap();
        assert_eq!((ip, port), (local.ip().to_string().as_str(), local.port()));

        VoiceClient {
            voice,
            ws,
            seq: ready["seq"].as_i64().unwrap(),
            ssrc,
            udp,
            sealer: None,
            rtp_seq: 65_530,
            timestamp: u32::MAX - 2000,
            nonce: u32::MAX - 3,
        }
    }

    /// The whole handshake through Session Description.
    async fn connect(fake: &FakeDiscord, guild: u64, mode: &str) -> VoiceClient {
        let mut client = Self::ready(fake, guild).await;
        client.select(mode).await;
        client
    }

    async fn select(&mut self, mode: &str) {
        let local = self.udp.local_addr().unwrap();
        self.send_op(
            1,
            json!({
                "protocol": "udp",
                "data": { "address": local.ip().to_string(), "port": local.port(), "mode": mode },
            }),
        )
        .await;
        let description = self.next_op(4).await;
        assert_eq!(description["d"]["mode"], mode);
        assert_eq!(description["d"]["dave_protocol_version"], 0);
        let key: Vec<u8> = description["d"]["secret_key"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u8)
            .collect();
        assert_eq!(key.len(), 32);
        self.sealer = Some(Sealer::new(mode, &key));
    }

    async fn send_op(&mut self, op: u8, d: Value) {
        let text = json!({ "op": op, "d": d }).to_string();
        self.ws.send(Message::text(text)).await.unwrap();
    }

    /// The next message with `op`, skipping (and seq-tracking) everything else.
    async fn next_op(&mut self, op: u64) -> Value {
        loop {
            let message = try_next(&mut self.ws, WAIT)
                .await
                .unwrap_or_else(|| panic!("connection ended while waiting for op {op}"));
            if let Some(seq) = message["seq"].as_i64() {
                self.seq = seq;
            }
            if message["op"] == op {
                return message;
            }
        }
    }

    async fn speaking(&mut self, flags: u64) {
        let ssrc = self.ssrc;
        self.send_op(5, json!({ "speaking": flags, "delay": 0, "ssrc": ssrc }))
            .await;
    }

    /// Sends one sealed RTP packet and advances seq, timestamp and nonce.
    async fn send_rtp(&mut self, payload: &[u8], corrupt_tag: bool) {
        let mut packet = vec![0x80, 0x78];
        packet.extend_from_slice(&self.rtp_seq.to_be_bytes());
        packet.extend_from_slice(&self.timestamp.to_be_bytes());
        packet.extend_from_slice(&self.ssrc.to_be_bytes());
        let mut body = payload.to_vec();
        let mut tag = self
            .sealer
            .as_ref()
            .unwrap()
            .seal(&packet, &mut body, self.nonce);
        if corrupt_tag {
            tag[3] ^= 0x40;
        }
        packet.extend_from_slice(&body);
        packet.extend_from_slice(&tag);
        packet.extend_from_slice(&self.nonce.to_be_bytes());
        self.udp.send(&packet).await.unwrap();
        self.rtp_seq = self.rtp_seq.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(FRAME_SAMPLES);
        self.nonce = self.nonce.wrapping_add(1);
    }

    /// Speaking 1, `frames` packets of a sine, five silence frames, speaking 0.
    async fn play(&mut self, frames: usize) {
        self.speaking(1).await;
        for packet in sine_packets(frames) {
            self.send_rtp(&packet, false).await;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        for _ in 0..5 {
            self.send_rtp(&SILENCE, false).await;
        }
        self.speaking(0).await;
    }
}

fn identify(guild: u64, voice: &Value, token: &Value, max_dave: u64) -> Message {
    let identify = json!({
        "op": 0,
        "d": {
            "server_id": guild.to_string(),
            "user_id": USER.to_string(),
            "session_id": voice["sessionId"],
            "token": token,
            "max_dave_protocol_version": max_dave,
        },
    });
    Message::text(identify.to_string())
}

/// Opus packets of a continuous stereo sine.
fn sine_packets(frames: usize) -> Vec<Vec<u8>> {
    let mut encoder = OpusEncoder::new(10).unwrap();
    let mut out = [0u8; 1275];
    (0..frames)
        .map(|frame| {
            let pcm: Vec<i16> = (0..FRAME_SAMPLES as usize)
                .flat_map(|i| {
                    let t = (frame * FRAME_SAMPLES as usize + i) as f64 / SAMPLE_RATE as f64;
                    let s = ((t * TONE_HZ * std::f64::consts::TAU).sin() * 12_000.0) as i16;
                    [s, s]
                })
                .collect();
            let n = encoder.encode(&pcm, &mut out).unwrap();
            out[..n].to_vec()
        })
        .collect()
}

/// Frequency from upward zero crossings, skipping the codec's start-up.
fn frequency(samples: &[i16]) -> f64 {
    let steady = &samples[2 * FRAME_SAMPLES as usize..];
    let crossings = steady.windows(2).filter(|w| w[0] < 0 && w[1] >= 0).count();
    crossings as f64 * SAMPLE_RATE as f64 / steady.len() as f64
}

fn assert_clean(fake: &FakeDiscord, view: &ConnectionView) {
    assert!(view.errors.is_empty(), "errors: {:#?}", view.errors);
    assert!(
        fake.stray_errors().is_empty(),
        "stray: {:?}",
        fake.stray_errors()
    );
}

async fn stream_round_trip(mode: &str, guild: u64, decode_payloads: bool) {
    let fake = FakeDiscord::start(FakeDiscordOptions {
        send_unknown_ops: true,
        decode_payloads,
        ..fast()
    })
    .await;
    let mut client = VoiceClient::connect(&fake, guild, mode).await;
    let seq = client.seq;
    client
        .send_op(3, json!({ "t": 1_700_000_000_123u64, "seq_ack": seq }))
        .await;
    let ack = client.next_op(6).await;
    assert_eq!(ack["d"]["t"], 1_700_000_000_123u64);

    client.play(20).await;
    client.udp.send(&[1, 0, 0, 0, 0, 0, 0, 0]).await.unwrap();
    let view = fake
        .wait_for(guild, WAIT, |v| {
            v.packets.len() == 25 && v.speaking.len() == 2 && v.keepalives == 1
        })
        .await;

    assert_clean(&fake, &view);
    assert_eq!(view.gateway_version, Some(8));
    assert_eq!((view.identifies, view.resumes), (1, 0));
    assert_eq!(view.max_dave_protocol_version, Some(1));
    assert_eq!(view.mode.as_deref(), Some(mode));
    assert_eq!(view.ssrc, client.ssrc);
    assert_eq!((view.heartbeats, view.last_seq_ack), (1, Some(seq)));
    let flags: Vec<u64> = view.speaking.iter().map(|s| s.0).collect();
    assert_eq!(flags, [1, 0]);
    assert!(view.packets.iter().all(|p| p.ssrc == client.ssrc));
    let seqs: Vec<u16> = view.packets.iter().map(|p| p.seq).collect();
    let expected: Vec<u16> = (0..25u16).map(|i| 65_530u16.wrapping_add(i)).collect();
    assert_eq!(seqs, expected, "seq wraps through 65535 to 0");
    let silence: Vec<bool> = view.packets.iter().map(|p| p.silence).collect();
    assert_eq!(silence[..20], [false; 20]);
    assert_eq!(silence[20..], [true; 5]);
    assert_eq!(view.packets[24].opus, SILENCE);
    assert_eq!(view.audio_packets().count(), 20);

    let left = view.decode_left();
    assert_eq!(left.len(), 20 * FRAME_SAMPLES as usize);
    let hz = frequency(&left);
    assert!((hz - TONE_HZ).abs() < TONE_HZ * 0.02, "decoded {hz} Hz");
}

#[tokio::test]
async fn an_aes_gcm_stream_is_opened_and_checked() {
    stream_round_trip(MODE_AES, 1001, true).await;
}

#[tokio::test]
async fn an_xchacha_stream_is_opened_and_checked() {
    stream_round_trip(MODE_XCHACHA, 1002, true).await;
}

#[tokio::test]
async fn the_toc_check_alone_passes_a_real_stream() {
    stream_round_trip(MODE_AES, 1003, false).await;
}

#[tokio::test]
async fn a_skipped_seq_and_a_corrupt_tag_are_errors() {
    let fake = FakeDiscord::start(fast()).await;
    let guild = 2001;
    let mut client = VoiceClient::connect(&fake, guild, MODE_AES).await;
    client.speaking(1).await;
    let packets = sine_packets(6);
    for packet in &packets[..3] {
        client.send_rtp(packet, false).await;
    }
    client.rtp_seq = client.rtp_seq.wrapping_add(1);
    client.send_rtp(&packets[3], false).await;
    client.send_rtp(&packets[4], true).await;
    client.send_rtp(&packets[5], false).await;
    // A SILK 60 ms frame: valid Opus, wrong duration.
    client.send_rtp(&[0x18, 0xAB, 0xCD], false).await;

    let view = fake
        .wait_for(guild, WAIT, |v| v.packets.len() == 6 && v.errors.len() >= 3)
        .await;
    assert_eq!(view.errors.len(), 3, "{:#?}", view.errors);
    assert!(
        view.errors[2].contains("2880 samples"),
        "{}",
        view.errors[2]
    );
    assert!(view.errors[0].contains("follows seq"), "{}", view.errors[0]);
    assert!(
        view.errors[1].contains("authentication failed"),
        "{}",
        view.errors[1]
    );
}

#[tokio::test]
async fn rtp_without_speaking_is_an_error() {
    let fake = FakeDiscord::start(fast()).await;
    let guild = 2002;
    let mut client = VoiceClient::connect(&fake, guild, MODE_XCHACHA).await;
    for packet in sine_packets(3) {
        client.send_rtp(&packet, false).await;
    }
    let view = fake.wait_for(guild, WAIT, |v| !v.errors.is_empty()).await;
    assert!(view.errors[0].contains("Speaking"), "{:#?}", view.errors);
}

#[tokio::test]
async fn a_select_protocol_address_other_than_discovery_is_an_error() {
    let fake = FakeDiscord::start(fast()).await;
    let guild = 2003;
    let mut client = VoiceClient::ready(&fake, guild).await;
    let local = client.udp.local_addr().unwrap();
    let select = json!({
        "protocol": "udp",
        "data": { "address": "127.0.0.1", "port": local.port() ^ 1, "mode": MODE_AES },
    });
    client.send_op(1, select).await;
    client.next_op(4).await;
    let view = fake.connection(guild).unwrap();
    assert_eq!(view.errors.len(), 1, "{:#?}", view.errors);
    assert!(
        view.errors[0].contains("discovery came from"),
        "{}",
        view.errors[0]
    );
}

#[tokio::test]
async fn a_bad_token_closes_4004() {
    let fake = FakeDiscord::start(fast()).await;
    let guild = 3001;
    let voice = fake.voice_state(guild, USER);
    let mut ws = open(&fake).await;
    ws.send(identify(guild, &voice, &json!("tok-wrong"), 1))
        .await
        .unwrap();
    assert_eq!(close_code(&mut ws).await, 4004);
    let view = fake.connection(guild).unwrap();
    assert_eq!(view.closed_with, [4004]);
    assert_clean(&fake, &view);
}

#[tokio::test]
async fn a_dave_channel_closes_4017_without_dave() {
    let fake = FakeDiscord::start(FakeDiscordOptions {
        require_dave: true,
        ..fast()
    })
    .await;
    let guild = 3002;
    let voice = fake.voice_state(guild, USER);
    let mut ws = open(&fake).await;
    ws.send(identify(guild, &voice, &voice["token"], 0))
        .await
        .unwrap();
    assert_eq!(close_code(&mut ws).await, 4017);
    let view = fake.connection(guild).unwrap();
    assert_eq!(view.closed_with, [4017]);
    assert_eq!(view.max_dave_protocol_version, Some(0));

    // Advertising DAVE passes the check.
    let client = VoiceClient::ready(&fake, guild).await;
    assert_eq!(fake.connection(guild).unwrap().ssrc, client.ssrc);
}

#[tokio::test]
async fn a_resume_after_a_tcp_drop_replays_and_keeps_the_stream() {
    let fake = FakeDiscord::start(FakeDiscordOptions {
        send_unknown_ops: true,
        ..fast()
    })
    .await;
    let guild = 4001;
    let mut client = VoiceClient::connect(&fake, guild, MODE_AES).await;
    let ready_seq = 1;
    let seq = client.seq;
    client.send_op(3, json!({ "t": 7, "seq_ack": seq })).await;
    client.next_op(6).await;
    client.play(10).await;
    fake.wait_for(guild, WAIT, |v| {
        v.packets.len() == 15 && v.speaking.len() == 2
    })
    .await;

    fake.drop_tcp(guild).await;
    assert!(try_next(&mut client.ws, WAIT).await.is_none());
    client.ws = open(&fake).await;
    assert_eq!(try_next(&mut client.ws, WAIT).await.unwrap()["op"], 8);
    let resume = json!({
        "server_id": guild.to_string(),
        "session_id": client.voice["sessionId"],
        "token": client.voice["token"],
        "seq_ack": ready_seq,
    });
    client.send_op(7, resume).await;
    let resumed = try_next(&mut client.ws, WAIT).await.unwrap();
    assert_eq!(resumed["op"], 9, "{resumed}");
    let mut replayed = Vec::new();
    while let Some(message) = try_next(&mut client.ws, Duration::from_millis(300)).await {
        replayed.push((
            message["op"].as_u64().unwrap(),
            message["seq"].as_i64().unwrap(),
        ));
    }
    let ops: Vec<u64> = replayed.iter().map(|r| r.0).collect();
    assert_eq!(
        ops,
        [12, 18, 20, 11, 13, 4],
        "everything after Ready but the heartbeat ACK"
    );
    assert!(replayed.windows(2).all(|w| w[0].1 < w[1].1));
    assert!(replayed[0].1 > ready_seq);

    client.play(10).await;
    let view = fake
        .wait_for(guild, WAIT, |v| {
            v.packets.len() == 30 && v.speaking.len() == 4
        })
        .await;
    assert_clean(&fake, &view);
    assert_eq!((view.identifies, view.resumes), (1, 1));
    assert_eq!(view.ssrc, client.ssrc);
    assert!(view.packets.iter().all(|p| p.ssrc == client.ssrc));
    let first = &view.packets[0];
    for (i, p) in view.packets.iter().enumerate() {
        assert_eq!(p.seq, first.seq.wrapping_add(i as u16));
        assert_eq!(p.nonce, first.nonce.wrapping_add(i as u32));
    }
}

#[tokio::test]
async fn gateway_violations_close_with_their_codes() {
    let fake = FakeDiscord::start(fast()).await;

    // A heartbeat before Identify.
    let mut ws = open(&fake).await;
    ws.send(Message::text(
        json!({ "op": 3, "d": { "t": 1, "seq_ack": -1 } }).to_string(),
    ))
    .await
    .unwrap();
    assert_eq!(close_code(&mut ws).await, 4003);
    assert_eq!(fake.stray_errors().len(), 1);

    // A second Identify, an unknown op, a dead mode and a non-UDP protocol.
    let cases: [(u64, Value, u16); 4] = [
        (0, Value::Null, 4005),
        (99, json!({}), 4001),
        (
            1,
            json!({ "protocol": "udp", "data": { "address": "127.0.0.1", "port": 1, "mode": "xsalsa20_poly1305" } }),
            4016,
        ),
        (1, json!({ "protocol": "webrtc", "data": {} }), 4012),
    ];
    let guild = 5001;
    for (op, d, code) in cases {
        let mut client = VoiceClient::ready(&fake, guild).await;
        if op == 0 {
            let token = client.voice["token"].clone();
            client
                .ws
                .send(identify(guild, &client.voice, &token, 1))
                .await
                .unwrap();
        } else {
            client.send_op(op as u8, d).await;
        }
        assert_eq!(close_code(&mut client.ws).await, code);
        let view = fake.connection(guild).unwrap();
        assert_eq!(view.closed_with.last(), Some(&code));
        assert!(view.errors.last().unwrap().contains(&code.to_string()));
    }

    // DAVE client ops are known; a scripted close reaches the client.
    let mut client = VoiceClient::connect(&fake, 5002, MODE_AES).await;
    client.send_op(23, json!({ "transition_id": 0 })).await;
    client.send_op(3, json!({ "t": 2, "seq_ack": 1 })).await;
    client.next_op(6).await;
    fake.close(5002, 4014, "Disconnected").await;
    assert_eq!(close_code(&mut client.ws).await, 4014);
    let view = fake.connection(5002).unwrap();
    assert_eq!(view.closed_with, [4014]);
    assert!(view.errors.is_empty(), "{:#?}", view.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_connections_share_one_udp_socket() {
    let fake = std::sync::Arc::new(FakeDiscord::start(fast()).await);
    let packets = std::sync::Arc::new(sine_packets(5));
    let clients = (0..50u64).map(|i| {
        let (fake, packets) = (fake.clone(), packets.clone());
        tokio::spawn(async move {
            let mode = if i % 2 == 0 { MODE_AES } else { MODE_XCHACHA };
            let mut client = VoiceClient::connect(&fake, 6000 + i, mode).await;
            client.speaking(1).await;
            for packet in packets.iter() {
                client.send_rtp(packet, false).await;
            }
            client
        })
    });
    let clients = futures_util::future::join_all(clients).await;
    for (i, client) in clients.into_iter().enumerate() {
        let client = client.unwrap();
        let view = fake
            .wait_for(6000 + i as u64, WAIT, |v| v.packets.len() == 5)
            .await;
        assert_clean(&fake, &view);
        assert!(view.packets.iter().all(|p| p.ssrc == client.ssrc));
    }
    assert_eq!(fake.kernel_drops().unwrap_or(0), 0);
}
