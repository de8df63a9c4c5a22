//! Tests of the fake Discord voice server itself, driven by a minimal hand-written
//! voice client (WebSocket + UDP + its own transport sealing).

mod common;

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU16;
use std::time::Duration;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::Aes256Gcm;
use chacha20poly1305::XChaCha20Poly1305;
use common::fake_discord::{
    ConnectionView, FakeDiscord, FakeDiscordOptions, ReceivedPacket, MODE_AES, MODE_XCHACHA,
    SILENCE,
};
use davey::{DaveSession, ProposalsOperationType};
use futures_util::{SinkExt, StreamExt};
use quaver_engine::audio::{FRAME_SAMPLES, SAMPLE_RATE};
use quaver_engine::codec::{FrameDecoder, FrameEncoder};
use quaver_engine::opus::{OpusDecoder, OpusEncoder};
use serde_json::{json, Value};
use tokio::net::{TcpStream, UdpSocket};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const USER: u64 = 170_939_974_227_591_168;
const WAIT: Duration = Duration::from_secs(5);
const TONE_HZ: f64 = 1000.0;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Plain `ws://`: this hand-written client's WebSocket has no TLS (the node's tests
/// cover the fake's `wss://`).
fn fast() -> FakeDiscordOptions {
    FakeDiscordOptions {
        heartbeat_interval_ms: 250.0,
        tls: false,
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
        Self::ready_with(fake, guild, 1).await
    }

    /// [`Self::ready`] with Identify's `max_dave_protocol_version`.
    async fn ready_with(fake: &FakeDiscord, guild: u64, max_dave: u64) -> VoiceClient {
        let voice = fake.voice_state(guild, USER);
        let mut ws = open(fake).await;
        let hello = try_next(&mut ws, WAIT).await.unwrap();
        assert_eq!(hello["op"], 8);
        assert!(hello["d"]["heartbeat_interval"].is_f64(), "{hello}");
        assert!(hello.get("seq").is_none(), "Hello carries no seq");
        ws.send(identify(guild, &voice, &voice["token"], max_dave))
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
        self.send_select(mode).await;
        let description = self.next_op(4).await;
        assert_eq!(description["d"]["dave_protocol_version"], 0);
        self.describe(&description["d"]);
    }

    async fn send_select(&mut self, mode: &str) {
        let local = self.udp.local_addr().unwrap();
        self.send_op(
            1,
            json!({
                "protocol": "udp",
                "data": { "address": local.ip().to_string(), "port": local.port(), "mode": mode },
            }),
        )
        .await;
    }

    /// Takes the mode and key of Session Description's `d`.
    fn describe(&mut self, d: &Value) {
        let mode = d["mode"].as_str().unwrap();
        let key: Vec<u8> = d["secret_key"]
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
    assert_eq!(view.audio_packets().count(), 20);
    if !decode_payloads {
        // Light checking keeps no payloads.
        assert!(view.packets.iter().all(|p| p.opus.is_empty()));
        return;
    }
    assert_eq!(view.packets[24].opus, SILENCE);

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

// ---------------------------------------------------------------------------------
// DAVE tier, driven by a client that runs the bot's side with davey
// ---------------------------------------------------------------------------------

const MEMBER_A: u64 = 300_000_000_000_000_001;
const MEMBER_B: u64 = 300_000_000_000_000_002;
const DAVE_VERSION: NonZeroU16 = NonZeroU16::MIN;

fn dave_fake(members_before: &[u64]) -> FakeDiscordOptions {
    FakeDiscordOptions {
        dave: true,
        dave_members_before: members_before.to_vec(),
        ..fast()
    }
}

/// A server message: JSON, or binary `[u16 seq][op][payload]`.
enum Incoming {
    Json(Value),
    Binary { seq: u16, op: u8, payload: Vec<u8> },
}

/// The next server message, or `None` on close, error or after `wait`.
async fn next_incoming(ws: &mut Ws, wait: Duration) -> Option<Incoming> {
    loop {
        match tokio::time::timeout(wait, ws.next()).await.ok()?? {
            Ok(Message::Text(text)) => {
                return Some(Incoming::Json(serde_json::from_str(&text).unwrap()))
            }
            Ok(Message::Binary(bytes)) => {
                assert!(bytes.len() >= 3, "a {}-byte binary message", bytes.len());
                return Some(Incoming::Binary {
                    seq: u16::from_be_bytes([bytes[0], bytes[1]]),
                    op: bytes[2],
                    payload: bytes[3..].to_vec(),
                });
            }
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

fn transition_id(d: &Value) -> u16 {
    u16::try_from(d["transition_id"].as_u64().unwrap()).unwrap()
}

/// A voice client that runs the bot's side of DAVE with davey, the way a client
/// library wires it (discord-voice.md §5.3), one server message at a time.
struct DaveClient {
    client: VoiceClient,
    channel_id: u64,
    session: DaveSession,
    /// Users announced by ops 11 and 13; proposals and Welcomes may name only them
    /// and the bot.
    recognized: HashSet<u64>,
    /// The protocol version in force: op 4's, then each executed transition's.
    version: u16,
    /// Transitions answered with op 23 but not executed: id → protocol version.
    pending: HashMap<u16, u16>,
    /// Transitions executed (op 22 for a pending one).
    executed: usize,
    /// Op 31s sent.
    invalid_sent: usize,
    /// Binary ops received, in order.
    binary_ops: Vec<u8>,
}

impl DaveClient {
    /// Identifies (max DAVE version 1), selects AES-GCM and handles everything up to
    /// op 4, and op 25 if op 4 offered DAVE.
    async fn connect(fake: &FakeDiscord, guild: u64) -> DaveClient {
        let mut client = VoiceClient::ready(fake, guild).await;
        client.send_select(MODE_AES).await;
        let channel_id = client.voice["channelId"].as_str().unwrap().parse().unwrap();
        let mut dave = DaveClient {
            client,
            channel_id,
            session: DaveSession::new(DAVE_VERSION, USER, channel_id, None).unwrap(),
            recognized: HashSet::new(),
            version: 0,
            pending: HashMap::new(),
            executed: 0,
            invalid_sent: 0,
            binary_ops: Vec::new(),
        };
        dave.pump_until(|c| {
            c.client.sealer.is_some() && (c.version == 0 || c.binary_ops.contains(&25))
        })
        .await;
        dave
    }

    /// Handles server messages until `done` holds.
    async fn pump_until(&mut self, done: impl Fn(&Self) -> bool) {
        while !done(self) {
            let incoming = next_incoming(&mut self.client.ws, WAIT)
                .await
                .expect("a server message");
            self.handle(incoming).await;
        }
    }

    async fn handle(&mut self, incoming: Incoming) {
        match incoming {
            Incoming::Json(message) => {
                if let Some(seq) = message["seq"].as_i64() {
                    self.client.seq = seq;
                }
                self.handle_json(message["op"].as_u64().unwrap(), &message["d"])
                    .await;
            }
            Incoming::Binary { seq, op, payload } => {
                self.client.seq = i64::from(seq);
                self.binary_ops.push(op);
                self.handle_binary(op, &payload).await;
            }
        }
    }

    async fn handle_json(&mut self, op: u64, d: &Value) {
        let user = |id: &Value| id.as_str().unwrap().parse::<u64>().unwrap();
        match op {
            4 => {
                self.client.describe(d);
                self.version = d["dave_protocol_version"].as_u64().unwrap() as u16;
            }
            11 => self
                .recognized
                .extend(d["user_ids"].as_array().unwrap().iter().map(user)),
            13 => {
                self.recognized.remove(&user(&d["user_id"]));
            }
            21 => {
                let version = d["protocol_version"].as_u64().unwrap() as u16;
                self.prepare(transition_id(d), version).await;
            }
            22 => {
                let tid = transition_id(d);
                self.session.execute_transition(tid).unwrap();
                if let Some(version) = self.pending.remove(&tid) {
                    self.version = version;
                    self.executed += 1;
                }
            }
            24 if d["epoch"] == 1 => {
                let version = d["protocol_version"].as_u64().unwrap() as u16;
                let version = NonZeroU16::new(version).unwrap();
                self.session
                    .reinit(version, USER, self.channel_id, None)
                    .unwrap();
                self.send_key_package().await;
            }
            _ => {}
        }
    }

    async fn handle_binary(&mut self, op: u8, payload: &[u8]) {
        let ids: Vec<u64> = self.recognized.iter().copied().chain([USER]).collect();
        match op {
            25 => {
                self.session.set_external_sender(payload).unwrap();
                self.send_key_package().await;
            }
            27 => {
                let kind = match payload[0] {
                    0 => ProposalsOperationType::APPEND,
                    _ => ProposalsOperationType::REVOKE,
                };
                let commit = self
                    .session
                    .process_proposals(kind, &payload[1..], Some(&ids))
                    .unwrap();
                if let Some(commit) = commit {
                    let welcome = commit.welcome.unwrap_or_default();
                    self.send_binary(28, &[commit.commit, welcome].concat())
                        .await;
                }
            }
            29 | 30 => {
                let tid = u16::from_be_bytes([payload[0], payload[1]]);
                let processed = if op == 29 {
                    self.session.process_commit(&payload[2..]).map_err(drop)
                } else {
                    let welcome = self.session.process_welcome(&payload[2..], Some(&ids));
                    welcome.map(|()| true).map_err(drop)
                };
                match processed {
                    Ok(true) => self.prepare(tid, 1).await,
                    Ok(false) => {}
                    Err(()) => self.invalid(tid).await,
                }
            }
            _ => {}
        }
    }

    /// Prepares a transition and answers op 23 (tid 0 applies at once).
    async fn prepare(&mut self, tid: u16, version: u16) {
        self.session.prepare_transition(tid, version).unwrap();
        if tid == 0 {
            self.version = version;
            return;
        }
        self.pending.insert(tid, version);
        self.client
            .send_op(23, json!({ "transition_id": tid }))
            .await;
    }

    /// Op 31, a local reset and a new key package.
    async fn invalid(&mut self, tid: u16) {
        self.invalid_sent += 1;
        self.client
            .send_op(31, json!({ "transition_id": tid }))
            .await;
        self.session
            .reinit(DAVE_VERSION, USER, self.channel_id, None)
            .unwrap();
        self.send_key_package().await;
    }

    async fn send_key_package(&mut self) {
        let package = self.session.create_key_package().unwrap();
        self.send_binary(26, &package).await;
    }

    async fn send_binary(&mut self, op: u8, payload: &[u8]) {
        let message = Message::binary([&[op][..], payload].concat());
        self.client.ws.send(message).await.unwrap();
    }

    /// An Opus packet as the bot sends it: end-to-end encrypted while DAVE is in
    /// force and davey has a key, else plain.
    fn frame(&mut self, opus: &[u8]) -> Vec<u8> {
        if self.version != 0 && self.session.can_encrypt() {
            self.session.encrypt_opus(opus).unwrap().into_owned()
        } else {
            opus.to_vec()
        }
    }

    /// Speaking 1, `frames` packets of a sine, five silence frames, speaking 0.
    async fn play(&mut self, frames: usize) {
        self.client.speaking(1).await;
        for packet in sine_packets(frames) {
            let payload = self.frame(&packet);
            self.client.send_rtp(&payload, false).await;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        for _ in 0..5 {
            self.client.send_rtp(&SILENCE, false).await;
        }
        self.client.speaking(0).await;
    }
}

/// Decodes `packets` in order with one fresh decoder; the left channel.
fn decode_left(packets: &[ReceivedPacket]) -> Vec<i16> {
    let mut decoder = OpusDecoder::new().unwrap();
    let mut pcm = vec![0i16; 6 * FRAME_SAMPLES as usize * 2];
    let mut left = Vec::new();
    for packet in packets {
        let n = decoder.decode(&packet.opus, &mut pcm).unwrap();
        left.extend(pcm[..n * 2].iter().step_by(2));
    }
    left
}

/// Waits until the fake holds `total` packets, of which the last are one
/// [`DaveClient::play`] of `frames`; checks they are DAVE frames if `dave` (else
/// plain), that their Opus decodes to the sine, and that nothing was a violation.
async fn check_played(
    fake: &FakeDiscord,
    guild: u64,
    total: usize,
    frames: usize,
    dave: bool,
) -> ConnectionView {
    let view = fake
        .wait_for(guild, WAIT, |v| v.packets.len() == total)
        .await;
    assert_clean(fake, &view);
    let (audio, silence) = view.packets[total - frames - 5..].split_at(frames);
    assert!(
        audio.iter().all(|p| p.dave == dave && !p.silence),
        "expected {frames} {} frames: {audio:?}",
        if dave { "DAVE" } else { "plain" }
    );
    assert!(silence.iter().all(|p| p.silence && !p.dave), "{silence:?}");
    let left = decode_left(audio);
    assert_eq!(left.len(), frames * FRAME_SAMPLES as usize);
    let hz = frequency(&left);
    assert!((hz - TONE_HZ).abs() < TONE_HZ * 0.02, "decoded {hz} Hz");
    view
}

#[tokio::test]
async fn dave_bot_first_then_a_member_joins() {
    let fake = FakeDiscord::start(dave_fake(&[])).await;
    let guild = 7001;
    let mut bot = DaveClient::connect(&fake, guild).await;
    assert_eq!((bot.version, &bot.binary_ops[..]), (1, &[25][..]));
    fake.wait_for(guild, WAIT, |v| v.dave_key_packages == 1)
        .await;

    // Alone in a pending group, the bot sends plain Opus.
    bot.play(5).await;
    check_played(&fake, guild, 10, 5, false).await;

    tokio::join!(
        fake.dave_join(guild, MEMBER_A),
        bot.pump_until(|c| c.executed == 1)
    );
    assert_eq!(bot.binary_ops, [25, 27, 29]);
    assert!(bot.recognized.contains(&MEMBER_A));
    let view = fake.connection(guild).unwrap();
    assert_eq!(view.dave_protocol_version, 1);
    assert_eq!(view.dave_epoch, Some(1));
    assert_eq!(view.dave_transitions, [(1, 1)]);
    assert_eq!((view.dave_key_packages, view.dave_commits), (1, 1));

    bot.play(20).await;
    let view = check_played(&fake, guild, 35, 20, true).await;
    assert_eq!(view.decode_left().len(), 25 * FRAME_SAMPLES as usize);
}

#[tokio::test]
async fn dave_members_before_add_the_bot_and_one_leaves() {
    let fake = FakeDiscord::start(dave_fake(&[MEMBER_A, MEMBER_B])).await;
    let guild = 7002;
    let mut bot = DaveClient::connect(&fake, guild).await;
    assert_eq!(bot.recognized, HashSet::from([MEMBER_A, MEMBER_B]));
    bot.pump_until(|c| c.executed == 1).await;
    assert_eq!(bot.binary_ops, [25, 30]);
    let view = fake.connection(guild).unwrap();
    assert_eq!(
        view.dave_epoch,
        Some(2),
        "the members' group, then the bot's Add"
    );
    assert_eq!(view.dave_transitions, [(1, 1)]);
    assert_eq!((view.dave_key_packages, view.dave_commits), (1, 0));
    // Both members must decrypt every frame (a failure would be an error).
    bot.play(20).await;
    check_played(&fake, guild, 25, 20, true).await;

    tokio::join!(
        fake.dave_leave(guild, MEMBER_B),
        bot.pump_until(|c| c.executed == 2)
    );
    assert_eq!(bot.binary_ops, [25, 30, 27, 29]);
    assert!(!bot.recognized.contains(&MEMBER_B));
    let view = fake.connection(guild).unwrap();
    assert_eq!((view.dave_epoch, view.dave_commits), (Some(3), 1));
    bot.play(20).await;
    check_played(&fake, guild, 50, 20, true).await;

    // With the last member gone the bot still encrypts; nobody can check those frames.
    tokio::join!(
        fake.dave_leave(guild, MEMBER_A),
        bot.pump_until(|c| c.executed == 3)
    );
    bot.play(5).await;
    let view = fake.wait_for(guild, WAIT, |v| v.packets.len() == 60).await;
    assert_clean(&fake, &view);
    assert!(view.packets[50..55]
        .iter()
        .all(|p| p.dave && p.opus.is_empty()));
}

#[tokio::test]
async fn dave_downgrade_then_upgrade() {
    let fake = FakeDiscord::start(dave_fake(&[MEMBER_A])).await;
    let guild = 7003;
    let mut bot = DaveClient::connect(&fake, guild).await;
    bot.pump_until(|c| c.executed == 1).await;
    assert_eq!(fake.connection(guild).unwrap().dave_epoch, Some(1));
    bot.play(10).await;
    check_played(&fake, guild, 15, 10, true).await;

    tokio::join!(
        fake.dave_downgrade(guild),
        bot.pump_until(|c| c.executed == 2)
    );
    assert_eq!(bot.version, 0);
    let view = fake.connection(guild).unwrap();
    assert_eq!((view.dave_protocol_version, view.dave_epoch), (0, None));
    assert_eq!(view.dave_transitions, [(1, 1), (2, 0)]);
    bot.play(10).await;
    check_played(&fake, guild, 30, 10, false).await;

    tokio::join!(
        fake.dave_upgrade(guild),
        bot.pump_until(|c| c.executed == 3)
    );
    assert_eq!(bot.version, 1);
    let view = fake.connection(guild).unwrap();
    assert_eq!((view.dave_protocol_version, view.dave_epoch), (1, Some(1)));
    assert_eq!(view.dave_key_packages, 2);
    assert_eq!(view.dave_transitions, [(1, 1), (2, 0), (3, 1)]);
    bot.play(10).await;
    check_played(&fake, guild, 45, 10, true).await;
}

#[tokio::test]
async fn dave_a_corrupted_commit_is_recovered() {
    let fake = FakeDiscord::start(dave_fake(&[])).await;
    let guild = 7004;
    let mut bot = DaveClient::connect(&fake, guild).await;
    fake.dave_corrupt_next_commit(guild);
    tokio::join!(
        fake.dave_join(guild, MEMBER_A),
        bot.pump_until(|c| c.executed == 1)
    );
    assert_eq!(bot.invalid_sent, 1);
    assert_eq!(bot.binary_ops, [25, 27, 29, 30]);
    let view = fake.connection(guild).unwrap();
    assert_eq!(view.dave_invalid_commits, 1);
    assert_eq!((view.dave_key_packages, view.dave_commits), (2, 1));
    assert_eq!(
        view.dave_transitions,
        [(2, 1)],
        "transition 1 was corrupted"
    );
    assert_eq!(
        view.dave_epoch,
        Some(2),
        "the bot's commit, then remove + re-add"
    );
    bot.play(20).await;
    check_played(&fake, guild, 25, 20, true).await;
}

/// A Speaking op the fake's gateway reads late because its task was busy (here: the
/// single test thread blocked, as MLS work in a debug build blocks it) still
/// announces RTP that arrived meanwhile: the check orders arrivals, and the op was in
/// the socket before the RTP came.
#[tokio::test]
async fn speaking_read_late_by_a_busy_gateway_is_no_error() {
    let fake = FakeDiscord::start(fast()).await;
    let guild = 2003;
    let mut client = VoiceClient::connect(&fake, guild, MODE_XCHACHA).await;
    client.speaking(1).await;
    for packet in sine_packets(3) {
        client.send_rtp(&packet, false).await;
    }
    // Nothing else runs on this (current-thread) runtime meanwhile, the fake's
    // gateway included; its UDP thread stamps the packets as they come.
    std::thread::sleep(Duration::from_millis(400));
    fake.wait_for(guild, WAIT, |v| {
        v.packets.len() == 3 && v.speaking.len() == 1
    })
    .await;
    // Past the grace, with the gateway's socket read to the end since.
    tokio::time::sleep(Duration::from_millis(300)).await;
    fake.connection(guild);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_clean(&fake, &fake.connection(guild).unwrap());
}

/// A Speaking op the client sends well after its RTP is an error, though nobody
/// polled the fake in between.
#[tokio::test]
async fn speaking_sent_late_is_an_error() {
    let fake = FakeDiscord::start(fast()).await;
    let guild = 2004;
    let mut client = VoiceClient::connect(&fake, guild, MODE_XCHACHA).await;
    for packet in sine_packets(3) {
        client.send_rtp(&packet, false).await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    client.speaking(1).await;
    let view = fake
        .wait_for(guild, WAIT, |v| {
            v.speaking.len() == 1 && !v.errors.is_empty()
        })
        .await;
    assert_eq!(view.errors.len(), 1, "{:#?}", view.errors);
    assert!(view.errors[0].contains("Speaking"), "{:#?}", view.errors);
}

/// After a DAVE frame showed the bot switched, a plain frame and a frame the member
/// cannot open are errors, however soon after the transition they come.
#[tokio::test]
async fn dave_plain_and_tampered_frames_are_errors() {
    let fake = FakeDiscord::start(dave_fake(&[MEMBER_A])).await;
    let guild = 7005;
    let mut bot = DaveClient::connect(&fake, guild).await;
    bot.pump_until(|c| c.executed == 1).await;

    let packets = sine_packets(3);
    bot.client.speaking(1).await;
    let good = bot.frame(&packets[0]);
    bot.client.send_rtp(&good, false).await;
    bot.client.send_rtp(&packets[1], false).await;
    let mut tampered = bot.frame(&packets[2]);
    tampered[0] ^= 0x01;
    bot.client.send_rtp(&tampered, false).await;
    bot.client.send_op(23, json!({ "transition_id": 77 })).await;
    let view = fake
        .wait_for(guild, WAIT, |v| v.packets.len() == 3 && v.errors.len() >= 3)
        .await;
    assert_eq!(view.errors.len(), 3, "{:#?}", view.errors);
    // The UDP thread and the gateway task record independently: any order.
    for expected in ["plain Opus", "cannot decrypt", "op 23"] {
        assert_eq!(
            view.errors.iter().filter(|e| e.contains(expected)).count(),
            1,
            "{expected}: {:#?}",
            view.errors
        );
    }
    let kinds: Vec<bool> = view.packets.iter().map(|p| p.dave).collect();
    assert_eq!(kinds, [true, false, true]);
}

/// Before the first frame of the new kind, old ones are the client's scheduling, not
/// an error; a client that never switches is caught by the gross limit (2 s).
#[tokio::test]
async fn dave_plain_frames_are_tolerated_until_the_switch_limit() {
    let fake = FakeDiscord::start(dave_fake(&[MEMBER_A])).await;
    let guild = 7008;
    let mut bot = DaveClient::connect(&fake, guild).await;
    bot.pump_until(|c| c.executed == 1).await;
    let packets = sine_packets(2);
    bot.client.speaking(1).await;
    bot.client.send_rtp(&packets[0], false).await;
    let view = fake.wait_for(guild, WAIT, |v| v.packets.len() == 1).await;
    assert!(view.errors.is_empty(), "{:#?}", view.errors);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    bot.client.send_rtp(&packets[1], false).await;
    let view = fake
        .wait_for(guild, WAIT, |v| {
            v.packets.len() == 2 && !v.errors.is_empty()
        })
        .await;
    assert_eq!(view.errors.len(), 1, "{:#?}", view.errors);
    assert!(
        view.errors[0].contains("plain Opus frame still"),
        "{:#?}",
        view.errors
    );
}

#[tokio::test]
async fn dave_is_not_offered_to_a_client_without_it() {
    let fake = FakeDiscord::start(dave_fake(&[MEMBER_A])).await;
    let guild = 7006;
    let mut client = VoiceClient::ready_with(&fake, guild, 0).await;
    client.select(MODE_AES).await;
    assert!(
        next_incoming(&mut client.ws, Duration::from_millis(300))
            .await
            .is_none(),
        "no op 11 or 25 without DAVE"
    );
    client.play(5).await;
    let view = fake.wait_for(guild, WAIT, |v| v.packets.len() == 10).await;
    assert_clean(&fake, &view);
    assert_eq!(view.dave_protocol_version, 0);
    assert!(view.packets.iter().all(|p| !p.dave));
}

#[tokio::test]
async fn dave_binary_messages_are_replayed_on_resume() {
    let fake = FakeDiscord::start(dave_fake(&[MEMBER_A])).await;
    let guild = 7007;
    let mut bot = DaveClient::connect(&fake, guild).await;
    bot.pump_until(|c| c.executed == 1).await;
    let last_seq = bot.client.seq;

    fake.drop_tcp(guild).await;
    assert!(next_incoming(&mut bot.client.ws, WAIT).await.is_none());
    bot.client.ws = open(&fake).await;
    assert_eq!(try_next(&mut bot.client.ws, WAIT).await.unwrap()["op"], 8);
    let resume = json!({
        "server_id": guild.to_string(),
        "session_id": bot.client.voice["sessionId"],
        "token": bot.client.voice["token"],
        "seq_ack": 1,
    });
    bot.client.send_op(7, resume).await;
    assert_eq!(try_next(&mut bot.client.ws, WAIT).await.unwrap()["op"], 9);
    let mut replayed = Vec::new();
    while let Some(message) = next_incoming(&mut bot.client.ws, Duration::from_millis(300)).await {
        replayed.push(match message {
            Incoming::Json(m) => (m["op"].as_u64().unwrap() as u8, m["seq"].as_i64().unwrap()),
            Incoming::Binary { seq, op, .. } => (op, i64::from(seq)),
        });
    }
    let ops: Vec<u8> = replayed.iter().map(|r| r.0).collect();
    assert_eq!(ops, [11, 4, 25, 30, 22]);
    let seqs: Vec<i64> = replayed.iter().map(|r| r.1).collect();
    assert_eq!(seqs, (2..=last_seq).collect::<Vec<_>>());
    assert_clean(&fake, &fake.connection(guild).unwrap());
}
