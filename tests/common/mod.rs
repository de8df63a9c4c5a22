//! Shared test harness: a real Quaver control plane on a loopback port, an HTTP
//! client and a WebSocket client that speak to it like a Lavalink client library.

#![allow(dead_code)]

pub mod fake_discord;
pub mod media_server;
pub mod node_process;

use std::time::Duration;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use quaver::server::{AudioSetup, Running};
use quaver_control::ids::GuildId;
use quaver_control::media::{MediaSettings, VoiceConnector, VoiceHandle, VoiceLink, VoiceRequest};
use quaver_control::ControlConfig;
use quaver_engine::output::{capture, Captured, PacketOutput};
use quaver_engine::EngineConfig;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

pub const PASSWORD: &str = "youshallnotpass";
pub const USER_ID: &str = "170939974227591168";

/// Test vectors from reference/lavalink-protocol.md §7.1.
pub const Y3: &str = "QAAA2QMAPFJpY2sgQXN0bGV5IC0gTmV2ZXIgR29ubmEgR2l2ZSBZb3UgVXAgKE9mZmljaWFsIE11c2ljIFZpZGVvKQALUmljayBBc3RsZXkAAAAAAANACAALZFF3NHc5V2dYY1EAAQAraHR0cHM6Ly93d3cueW91dHViZS5jb20vd2F0Y2g/dj1kUXc0dzlXZ1hjUQEANGh0dHBzOi8vaS55dGltZy5jb20vdmkvZFF3NHc5V2dYY1EvbWF4cmVzZGVmYXVsdC5qcGcAAAd5b3V0dWJlAAAAAAAAAAA=";
pub const P3: &str = "QAAAxAMAEU5vc2VibGVlZCBTZWN0aW9uABtTaWdodGxlc3MgaW4gU2hhZG93IC0gVG9waWMAAAAAAAJxAAALTFdNUi1rY3dHLTgAAQAraHR0cHM6Ly93d3cueW91dHViZS5jb20vd2F0Y2g/dj1MV01SLWtjd0ctOAEAOmh0dHBzOi8vaS55dGltZy5jb20vdmlfd2VicC9MV01SLWtjd0ctOC9tYXhyZXNkZWZhdWx0LndlYnAAAAd5b3V0dWJlAAAAAAACb1w=";
pub const H3: &str = "QAAAjQMAC0RlYXRoIG9mIE1lAApTQUlOVCBQSE5YAAAAAAAAdVgAKGh0dHBzOi8vd3d3Lm1ib3hkcml2ZS5jb20vc3RhcnRtdXNpYy5tcDMAAQAoaHR0cHM6Ly93d3cubWJveGRyaXZlLmNvbS9zdGFydG11c2ljLm1wMwAAAARodHRwAANtcDMAAAAAAAAAAA==";

/// The project's test media (2 s of a 1 kHz sine in every format).
pub fn media_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/media"))
        .canonicalize()
        .unwrap()
}

/// Stands in for the voice transport: a player with a voice state sends its packets
/// into a capture that the test reads.
#[derive(Default)]
pub struct Captures {
    by_guild: Mutex<HashMap<GuildId, Captured>>,
}

/// A capture "connection": connected at once.
#[derive(Debug)]
struct Captured_;

impl VoiceHandle for Captured_ {
    fn is_connected(&self) -> bool {
        true
    }
    fn ping_ms(&self) -> Option<i64> {
        Some(0)
    }
}

impl VoiceConnector for Captures {
    fn connect(&self, request: VoiceRequest, link: VoiceLink) -> Box<dyn VoiceHandle> {
        let (out, captured) = capture(1 << 22);
        self.by_guild
            .lock()
            .unwrap()
            .insert(request.guild, captured);
        link.attach(Box::new(out) as Box<dyn PacketOutput>);
        Box::new(Captured_)
    }
}

impl Captures {
    /// Packets captured for a guild since the last call.
    pub fn take(&self, guild: &str) -> Vec<Vec<u8>> {
        let guild: GuildId = guild.parse().unwrap();
        self.by_guild
            .lock()
            .unwrap()
            .get_mut(&guild)
            .map(|c| c.drain())
            .unwrap_or_default()
    }
}

/// A small engine for tests: one tick thread that sleeps (no spinning on shared cores).
pub fn test_audio(outputs: Arc<Captures>) -> AudioSetup {
    AudioSetup {
        engine: EngineConfig {
            threads: 1,
            cpus: vec![],
            realtime_priority: None,
            max_players: 64,
            spin: Duration::ZERO,
        },
        decode_threads: 1,
        media: MediaSettings {
            opus_quality: 5,
            buffer_ms: 1000,
            stuck_threshold_ms: 10_000,
            resample: quaver_engine::decode::pcm::ResampleQuality::Low,
        },
        voice: outputs,
        local: Some(vec![media_dir()]),
        http: Some(quaver_control::sources::http::HttpTimeouts {
            connect: Duration::from_secs(2),
            socket: Duration::from_secs(2),
        }),
        io_threads: 1,
    }
}

/// A node under test: in this process ([`Running`]), or the real `quaver` binary as
/// a child process ([`TestNode::start_binary`]).
pub struct TestNode {
    /// The in-process node (`None` for the binary).
    pub running: Option<Running>,
    /// The child process, killed on drop.
    process: Option<node_process::NodeProcess>,
    pub addr: std::net::SocketAddr,
    pub captures: Arc<Captures>,
    pub base: String,
    pub http: reqwest::Client,
}

/// Control settings with short timers so tests run in seconds.
pub fn fast_config() -> ControlConfig {
    ControlConfig {
        player_update_interval: Duration::from_secs(1),
        stats_interval: Duration::from_secs(60),
        cleanup_threshold: Duration::from_secs(60),
        ..ControlConfig::default()
    }
}

impl TestNode {
    pub async fn start() -> TestNode {
        Self::start_with(fast_config()).await
    }

    pub async fn start_with(config: ControlConfig) -> TestNode {
        Self::start_with_stuck(config, 10_000).await
    }

    /// A node whose tracks count as stuck after `stuck_ms` without audio.
    pub async fn start_with_stuck(config: ControlConfig, stuck_ms: u64) -> TestNode {
        Self::start_custom(config, |audio| audio.media.stuck_threshold_ms = stuck_ms).await
    }

    /// A node with adjusted audio settings.
    pub async fn start_custom(
        config: ControlConfig,
        adjust: impl FnOnce(&mut AudioSetup),
    ) -> TestNode {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let captures = Arc::new(Captures::default());
        let mut audio = test_audio(captures.clone());
        adjust(&mut audio);
        let running = Running::serve(config, audio, listener).await.unwrap();
        let addr = running.local_addr();
        let base = format!("http://{addr}");
        TestNode {
            running: Some(running),
            process: None,
            addr,
            captures,
            base,
            http: {
                quaver_control::tls::install_crypto_provider();
                reqwest::Client::new()
            },
        }
    }

    /// Starts the real `quaver` binary (the build cargo made for this test run) on a
    /// free loopback port, with the test media as its local root, `ws://` voice
    /// endpoints allowed, the fake Discord's test CA trusted for `wss://` ones
    /// (`quaver.voice.extraCaCertificates`) and one tick thread; `env` adds environment
    /// overrides (e.g.
    /// `QUAVER_VOICE_DAVE=false`). Its log goes to a file ([`Self::log`]).
    pub async fn start_binary(env: &[(&str, &str)]) -> TestNode {
        let roots = media_dir();
        let ca = fake_discord::test_ca_file();
        let config = |port: u16| {
            format!(
                "server:\n  port: {port}\n  address: 127.0.0.1\n\
                 lavalink:\n  server:\n    password: \"{PASSWORD}\"\n    playerUpdateInterval: 1\n    sources:\n      local: true\n\
                 logging:\n  level:\n    root: INFO\n    lavalink: DEBUG\n\
                 quaver:\n  engine:\n    threads: 1\n    spinUs: 0\n  decode:\n    threads: 1\n  voice:\n    allowInsecureEndpoints: true\n    extraCaCertificates: [\"{}\"]\n  sources:\n    localRoots: [\"{}\"]\n",
                ca.display(),
                roots.display()
            )
        };
        let process = node_process::NodeProcess::start(config, env, None, PASSWORD).await;
        let (addr, base) = (process.addr, process.base.clone());
        TestNode {
            running: None,
            process: Some(process),
            addr,
            captures: Arc::default(),
            base,
            http: {
                quaver_control::tls::install_crypto_provider();
                reqwest::Client::new()
            },
        }
    }

    /// The binary's process id (`None` for an in-process node).
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|p| p.pid)
    }

    /// What the binary logged so far (empty for an in-process node).
    pub fn log(&self) -> String {
        self.process
            .as_ref()
            .map(node_process::NodeProcess::log)
            .unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// An authenticated request builder.
    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .header("Authorization", PASSWORD)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        send(self.req(reqwest::Method::GET, path)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        send(self.req(reqwest::Method::PATCH, path).json(&body)).await
    }

    pub async fn delete(&self, path: &str) -> u16 {
        self.req(reqwest::Method::DELETE, path)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// Opens a Lavalink WebSocket session and reads its `ready`.
    pub async fn connect(&self) -> Client {
        let (client, ready) = self.connect_with(None).await;
        assert_eq!(ready["resumed"], false);
        client
    }

    /// Opens a WebSocket, optionally resuming; returns the client and its `ready`.
    pub async fn connect_with(&self, resume: Option<&str>) -> (Client, Value) {
        let mut req = format!("ws://{}/v4/websocket", self.addr)
            .into_client_request()
            .unwrap();
        let h = req.headers_mut();
        h.insert("Authorization", HeaderValue::from_static(PASSWORD));
        h.insert("User-Id", HeaderValue::from_static(USER_ID));
        h.insert("Client-Name", HeaderValue::from_static("quaver-tests/1.0"));
        if let Some(id) = resume {
            h.insert("Session-Id", HeaderValue::from_str(id).unwrap());
        }
        let (ws, res) = tokio_tungstenite::connect_async(req).await.unwrap();
        let resumed_header = res
            .headers()
            .get("Session-Resumed")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let mut client = Client {
            ws,
            session_id: String::new(),
            resumed_header,
        };
        let ready = client.next_json().await;
        assert_eq!(ready["op"], "ready", "first message is ready: {ready}");
        client.session_id = ready["sessionId"].as_str().unwrap().to_owned();
        (client, ready)
    }

    pub fn player_path(&self, client: &Client, guild: &str) -> String {
        format!("/v4/sessions/{}/players/{guild}", client.session_id)
    }
}

pub async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    assert_eq!(
        res.headers()
            .get("Lavalink-Api-Version")
            .map(|v| v.to_str().unwrap()),
        Some("4")
    );
    let text = res.text().await.unwrap();
    let json = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, json)
}

/// A connected Lavalink client.
pub struct Client {
    pub ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    pub session_id: String,
    pub resumed_header: String,
}

impl Client {
    /// The next JSON message (5 s limit).
    pub async fn next_json(&mut self) -> Value {
        self.try_next_json(Duration::from_secs(5))
            .await
            .expect("expected a message")
    }

    /// The next JSON message within `wait`, or `None`.
    pub async fn try_next_json(&mut self, wait: Duration) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout(wait, self.ws.next())
                .await
                .ok()??
                .ok()?;
            match msg {
                Message::Text(t) => return Some(serde_json::from_str(&t).unwrap()),
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// The next message whose `op` is not `stats` or `playerUpdate`.
    pub async fn next_event(&mut self) -> Value {
        loop {
            let m = self.next_json().await;
            if m["op"] == "event" {
                return m;
            }
        }
    }

    /// The next event of type `kind` (others are skipped); panics after 15 s.
    pub async fn wait_event(&mut self, kind: &str) -> Value {
        loop {
            let e = tokio::time::timeout(Duration::from_secs(15), self.next_event())
                .await
                .expect(kind);
            if e["type"] == kind {
                return e;
            }
        }
    }

    /// Like [`Self::wait_event`], for an event that may take up to `within` to come
    /// (e.g. after the voice connection's reconnect attempts).
    pub async fn wait_event_within(&mut self, kind: &str, within: Duration) -> Value {
        let wait = async {
            loop {
                let Some(m) = self.try_next_json(within).await else {
                    panic!("the session closed before a {kind}");
                };
                if m["op"] == "event" && m["type"] == kind {
                    return m;
                }
            }
        };
        tokio::time::timeout(within, wait).await.expect(kind)
    }

    /// The next message with the given `op`.
    pub async fn next_op(&mut self, op: &str) -> Value {
        loop {
            let m = self.next_json().await;
            if m["op"] == op {
                return m;
            }
        }
    }
}

/// An encoded local-source track for a file in the test media, with a given title,
/// stated length and start position.
pub fn local_track(
    file: &str,
    title: &str,
    length_ms: i64,
    position_ms: i64,
    is_stream: bool,
) -> String {
    use quaver_control::track::codec::{encode_base64, SourceData, TrackBlob};
    let path = media_dir().join(file).to_string_lossy().into_owned();
    let probe = match file.rsplit('.').next() {
        Some("flac") => "flac",
        Some("ogg") | Some("opus") => "ogg",
        Some("webm") => "matroska/webm",
        Some("m4a") => "mp4",
        _ => "mp3",
    };
    encode_base64(&TrackBlob {
        version: 3,
        title: title.into(),
        author: "Quaver Tests".into(),
        length_ms,
        identifier: path.clone(),
        is_stream,
        uri: Some(path),
        artwork_url: None,
        isrc: None,
        source_name: "local".into(),
        source_data: SourceData::Probe(probe.into()),
        position_ms,
    })
    .unwrap()
}

/// An encoded HTTP-source track for `url`, as a load of it would give (`probe` is
/// lavaplayer's container name: `mp3`, `ogg`, `flac`, …).
pub fn http_track(url: &str, probe: &str, length_ms: i64) -> String {
    use quaver_control::track::codec::{encode_base64, SourceData, TrackBlob};
    encode_base64(&TrackBlob {
        version: 3,
        title: "Unknown title".into(),
        author: "Unknown artist".into(),
        length_ms,
        identifier: url.into(),
        is_stream: false,
        uri: Some(url.into()),
        artwork_url: None,
        isrc: None,
        source_name: "http".into(),
        source_data: SourceData::Probe(probe.into()),
        position_ms: 0,
    })
    .unwrap()
}

/// Track A: sine.mp3, stated as 5 minutes long.
pub fn track_a() -> String {
    local_track("sine.mp3", "Track A", 300_000, 0, false)
}

/// Track B: sine.flac.
pub fn track_b() -> String {
    local_track("sine.flac", "Track B", 300_000, 0, false)
}

/// Track P: sine.ogg, starting at 2:39.58 (a blob with a position trailer).
pub fn track_p() -> String {
    local_track("sine.ogg", "Track P", 300_000, 159_580, false)
}

/// The identifier (path) of a test media file.
pub fn media_id(file: &str) -> String {
    media_dir().join(file).to_string_lossy().into_owned()
}
