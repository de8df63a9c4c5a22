//! The Discord voice gateway (v8) as a state machine without IO: the driver feeds it
//! frames, timeouts and discovery results, and takes out frames to send, events and
//! the next deadline. Time is a parameter, so every rule is testable without sockets.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::close::CloseAction;
use super::dave::{Dave, DaveOut, DaveStatus};
use quaver_engine::transport::SenderKey;

/// Transport modes in order of preference; xsalsa modes are never chosen.
pub const MODES: [&str; 2] = ["aead_aes256_gcm_rtpsize", "aead_xchacha20_poly1305_rtpsize"];

/// Heartbeats that may go unacknowledged before the connection counts as dead.
const MAX_MISSED_ACKS: u32 = 3;
/// Hello's `heartbeat_interval` (ms) when absent; Discord sends 41 250 or so.
const DEFAULT_HEARTBEAT_MS: f64 = 41_250.0;
/// Shorter intervals are raised to this (a voice server has no business asking for a
/// heartbeat every millisecond; we stay polite, not obedient).
const MIN_HEARTBEAT_MS: f64 = 50.0;
/// Longer intervals are a protocol error: a heartbeat is also how we notice a dead
/// socket, and an interval of hours (or 1e300 ms, which no `Duration` holds) would
/// leave a silent player connected forever.
const MAX_HEARTBEAT_MS: f64 = 600_000.0;

/// Who we are and where we connect, from the Lavalink voice state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoiceInfo {
    /// Guild id (`server_id`).
    pub guild_id: u64,
    /// The bot's user id.
    pub user_id: u64,
    /// Voice session id.
    pub session_id: String,
    /// Voice token.
    pub token: String,
    /// DAVE protocol version to advertise (0 = none).
    pub max_dave_protocol_version: u8,
    /// The voice channel: DAVE's MLS group id.
    pub channel_id: u64,
}

/// A gateway message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    /// A JSON text frame.
    Text(String),
    /// A binary frame (`[opcode][payload]`, DAVE ops 26 and 28).
    Binary(Vec<u8>),
}

/// What the gateway tells its driver.
#[derive(Debug, Clone, PartialEq)]
pub enum GatewayEvent {
    /// Ready arrived: do UDP discovery against `addr` with `ssrc`.
    Discover {
        /// Voice server UDP address.
        addr: SocketAddr,
        /// Our SSRC.
        ssrc: u32,
    },
    /// Session Description arrived: audio may flow.
    SessionReady {
        /// Negotiated mode name.
        mode: String,
        /// Transport key.
        secret_key: [u8; 32],
        /// Our SSRC.
        ssrc: u32,
    },
    /// A resume completed (Resumed received).
    Resumed,
    /// The connection is dead (missed heartbeat ACKs): reconnect per the close policy.
    Dead,
    /// From now on the engine encrypts audio with this DAVE sender key (`None`:
    /// plain Opus). Comes on the exact transition the server executes.
    SenderKey(Option<SenderKey>),
    /// DAVE's state changed.
    Dave(DaveStatus),
    /// DAVE recovered from an error (the driver logs it).
    DaveRecovered(String),
    /// A protocol error on our side; the driver closes and reports.
    Failed(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Socket open, Identify sent, waiting for Ready.
    Identifying,
    /// Resume sent, waiting for Resumed.
    Resuming,
    /// Ready seen, UDP discovery in progress.
    Discovering,
    /// Select Protocol sent, waiting for Session Description.
    Selecting,
    /// Audio may flow.
    Connected,
}

/// The voice gateway state machine for one connection (it survives resumes).
#[derive(Debug)]
pub struct VoiceGateway {
    info: VoiceInfo,
    phase: Phase,
    heartbeat_every: Option<Duration>,
    next_heartbeat: Option<Instant>,
    nonce: u64,
    sent_at: Option<(u64, Instant)>,
    missed_acks: u32,
    ping: Option<Duration>,
    seq_ack: i64,
    ssrc: Option<u32>,
    offered_modes: Vec<String>,
    mode: Option<String>,
    key: Option<[u8; 32]>,
    ready_seen: bool,
    /// DAVE, when we advertise it.
    dave: Option<Dave>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<GatewayEvent>,
}

impl VoiceGateway {
    /// A gateway for a voice state; call [`Self::on_open`] once the socket is open.
    pub fn new(info: VoiceInfo) -> Self {
        let dave =
            (info.max_dave_protocol_version > 0).then(|| Dave::new(info.user_id, info.channel_id));
        VoiceGateway {
            info,
            phase: Phase::Identifying,
            heartbeat_every: None,
            next_heartbeat: None,
            nonce: 0,
            sent_at: None,
            missed_acks: 0,
            ping: None,
            seq_ack: -1,
            ssrc: None,
            offered_modes: Vec::new(),
            mode: None,
            key: None,
            ready_seen: false,
            dave,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Whether a Ready was ever received (a resume is possible).
    pub fn can_resume(&self) -> bool {
        self.ready_seen && self.key.is_some()
    }

    /// Whether audio may flow.
    pub fn is_connected(&self) -> bool {
        self.phase == Phase::Connected
    }

    /// Last heartbeat round trip.
    pub fn ping(&self) -> Option<Duration> {
        self.ping
    }

    /// Our SSRC, once Ready arrived.
    pub fn ssrc(&self) -> Option<u32> {
        self.ssrc
    }

    /// A (new) socket is open: identify, or resume if `resume` and a session exists.
    pub fn on_open(&mut self, _now: Instant, resume: bool) {
        self.heartbeat_every = None;
        self.next_heartbeat = None;
        self.sent_at = None;
        self.missed_acks = 0;
        let i = &self.info;
        if resume && self.can_resume() {
            self.phase = Phase::Resuming;
            self.push(json!({"op": 7, "d": {
                "server_id": i.guild_id.to_string(),
                "session_id": i.session_id,
                "token": i.token,
                "seq_ack": self.seq_ack,
            }}));
        } else {
            self.phase = Phase::Identifying;
            self.ready_seen = false;
            if let Some(dave) = &mut self.dave {
                dave.restart();
            }
            self.key = None;
            self.seq_ack = -1;
            self.push(json!({"op": 0, "d": {
                "server_id": i.guild_id.to_string(),
                "user_id": i.user_id.to_string(),
                "session_id": i.session_id,
                "token": i.token,
                "max_dave_protocol_version": i.max_dave_protocol_version,
            }}));
        }
    }

    /// A JSON text frame from the server.
    pub fn handle_text(&mut self, now: Instant, text: &str) {
        let Ok(msg) = serde_json::from_str::<Value>(text) else {
            return self
                .events
                .push_back(GatewayEvent::Failed("unparsable gateway payload".into()));
        };
        if let Some(seq) = msg.get("seq").and_then(Value::as_i64) {
            self.seq_ack = seq;
        }
        let op = msg.get("op").and_then(Value::as_u64);
        let d = msg.get("d").unwrap_or(&Value::Null);
        match op {
            Some(8) => self.on_hello(now, d),
            Some(2) => self.on_ready(d),
            Some(4) => self.on_session_description(d),
            Some(6) => self.on_heartbeat_ack(now, d),
            Some(9) if self.phase == Phase::Resuming => {
                self.phase = Phase::Connected;
                self.events.push_back(GatewayEvent::Resumed);
            }
            Some(op @ (11 | 13 | 21 | 22 | 24)) => self.on_dave_text(op, d),
            // Speaking from others and undocumented ops: nothing to do here. Never fail
            // on an unknown op.
            _ => {}
        }
        self.drain_dave();
    }

    /// DAVE's JSON ops (and the client list it validates proposals against).
    fn on_dave_text(&mut self, op: u64, d: &Value) {
        let Some(dave) = &mut self.dave else {
            return;
        };
        let uint = |key: &str| d.get(key).and_then(Value::as_u64);
        let id = |v: &Value| v.as_str().and_then(|s| s.parse::<u64>().ok());
        let small = |key: &str| uint(key).and_then(|v| u16::try_from(v).ok());
        let max = self.info.max_dave_protocol_version;
        // A version above what we offered is one we cannot speak: such an op is dropped.
        let version = || uint("protocol_version").and_then(|v| dave_version(v, max));
        match op {
            11 => {
                let ids = d.get("user_ids").and_then(Value::as_array);
                dave.on_clients_connect(ids.into_iter().flatten().filter_map(id));
            }
            13 => {
                if let Some(user) = d.get("user_id").and_then(id) {
                    dave.on_client_disconnect(user);
                }
            }
            21 => {
                if let (Some(version), Some(tid)) = (version(), small("transition_id")) {
                    dave.on_prepare_transition(version, tid);
                }
            }
            22 => {
                if let Some(tid) = small("transition_id") {
                    dave.on_execute_transition(tid);
                }
            }
            24 => {
                if let (Some(version), Some(epoch)) = (version(), uint("epoch")) {
                    if let Err(e) = dave.on_prepare_epoch(version, epoch) {
                        self.events.push_back(GatewayEvent::Failed(e.to_string()));
                    }
                }
            }
            _ => {}
        }
    }

    /// Moves DAVE's outputs to the transmit and event queues.
    fn drain_dave(&mut self) {
        let Some(dave) = &mut self.dave else {
            return;
        };
        while let Some(out) = dave.poll() {
            match out {
                DaveOut::Text(v) => self.transmits.push_back(Transmit::Text(v.to_string())),
                DaveOut::Binary(b) => self.transmits.push_back(Transmit::Binary(b)),
                DaveOut::SenderKey(key) => self.events.push_back(GatewayEvent::SenderKey(key)),
                DaveOut::Status(status) => self.events.push_back(GatewayEvent::Dave(status)),
                DaveOut::Recovered(what) => {
                    self.events.push_back(GatewayEvent::DaveRecovered(what))
                }
            }
        }
    }

    /// DAVE's state, when we advertise it.
    pub fn dave_status(&self) -> Option<DaveStatus> {
        self.dave.as_ref().map(Dave::status)
    }

    /// A binary frame from the server: `[u16 BE seq][opcode][payload]` (DAVE ops).
    pub fn handle_binary(&mut self, _now: Instant, frame: &[u8]) {
        let [hi, lo, op, payload @ ..] = frame else {
            return;
        };
        self.seq_ack = i64::from(u16::from_be_bytes([*hi, *lo]));
        if let Some(dave) = &mut self.dave {
            dave.on_binary(*op, payload);
        }
        self.drain_dave();
    }

    /// UDP discovery found our external address: select the protocol.
    pub fn discovered(&mut self, _now: Instant, external: SocketAddr) {
        if self.phase != Phase::Discovering {
            return;
        }
        let Some(mode) = MODES
            .iter()
            .find(|m| self.offered_modes.iter().any(|o| o == *m))
        else {
            return self.events.push_back(GatewayEvent::Failed(
                "the voice server offers no supported encryption mode".into(),
            ));
        };
        self.phase = Phase::Selecting;
        self.push(json!({"op": 1, "d": {
            "protocol": "udp",
            "data": {"address": external.ip().to_string(), "port": external.port(), "mode": mode},
        }}));
    }

    /// Sends a Speaking op with `flags` (1 = microphone, 0 = stopped).
    pub fn speaking(&mut self, flags: u8) {
        if let Some(ssrc) = self.ssrc {
            self.push(json!({"op": 5, "d": {"speaking": flags, "delay": 0, "ssrc": ssrc}}));
        }
    }

    /// Time passed: send a heartbeat when due; declare the connection dead after too
    /// many unanswered ones.
    pub fn handle_timeout(&mut self, now: Instant) {
        let (Some(at), Some(every)) = (self.next_heartbeat, self.heartbeat_every) else {
            return;
        };
        if now < at {
            return;
        }
        if self.sent_at.is_some() {
            self.missed_acks += 1;
            if self.missed_acks >= MAX_MISSED_ACKS {
                self.next_heartbeat = None;
                return self.events.push_back(GatewayEvent::Dead);
            }
        }
        self.nonce = self.nonce.wrapping_add(1) & ((1 << 53) - 1);
        self.sent_at = Some((self.nonce, now));
        self.push(json!({"op": 3, "d": {"t": self.nonce, "seq_ack": self.seq_ack}}));
        self.next_heartbeat = Some(at + every);
    }

    /// The next instant [`Self::handle_timeout`] wants to run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_heartbeat
    }

    /// The next frame to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the driver.
    pub fn poll_event(&mut self) -> Option<GatewayEvent> {
        self.events.pop_front()
    }

    /// The socket closed with `code`: what the driver should do, given whether this
    /// session could be resumed.
    pub fn on_close(&mut self, code: u16) -> CloseAction {
        self.next_heartbeat = None;
        if self.phase == Phase::Resuming {
            // A failed resume falls back to the full flow once.
            return match CloseAction::for_code(code, true) {
                CloseAction::Resume => CloseAction::Identify,
                other => other,
            };
        }
        CloseAction::for_code(code, self.can_resume())
    }

    fn on_hello(&mut self, now: Instant, d: &Value) {
        let every = match heartbeat_interval(d.get("heartbeat_interval")) {
            Ok(every) => every,
            Err(reason) => return self.events.push_back(GatewayEvent::Failed(reason)),
        };
        self.heartbeat_every = Some(every);
        self.next_heartbeat = now.checked_add(every);
    }

    fn on_ready(&mut self, d: &Value) {
        let ssrc = d
            .get("ssrc")
            .and_then(Value::as_u64)
            .and_then(|s| u32::try_from(s).ok());
        let ip = d
            .get("ip")
            .and_then(Value::as_str)
            .and_then(|ip| ip.parse().ok());
        let port = d
            .get("port")
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok());
        let port = port.filter(|&p| p != 0);
        let (Some(ssrc), Some(ip), Some(port)) = (ssrc, ip, port) else {
            return self
                .events
                .push_back(GatewayEvent::Failed("malformed Ready".into()));
        };
        self.offered_modes = d
            .get("modes")
            .and_then(Value::as_array)
            .map(|m| {
                m.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        self.ssrc = Some(ssrc);
        self.ready_seen = true;
        self.phase = Phase::Discovering;
        self.events.push_back(GatewayEvent::Discover {
            addr: SocketAddr::new(ip, port),
            ssrc,
        });
    }

    fn on_session_description(&mut self, d: &Value) {
        let mode = d.get("mode").and_then(Value::as_str).map(str::to_owned);
        let key: Option<Vec<u8>> = d.get("secret_key").and_then(Value::as_array).map(|k| {
            k.iter()
                .filter_map(Value::as_u64)
                .filter_map(|b| u8::try_from(b).ok())
                .collect()
        });
        let (Some(mode), Some(key), Some(ssrc)) = (mode, key, self.ssrc) else {
            return self
                .events
                .push_back(GatewayEvent::Failed("malformed Session Description".into()));
        };
        let Ok(secret_key) = <[u8; 32]>::try_from(key.as_slice()) else {
            return self.events.push_back(GatewayEvent::Failed(
                "the secret key is not 32 bytes".into(),
            ));
        };
        if !MODES.contains(&mode.as_str()) {
            return self
                .events
                .push_back(GatewayEvent::Failed(format!("unsupported mode {mode}")));
        }
        self.mode = Some(mode.clone());
        self.key = Some(secret_key);
        self.phase = Phase::Connected;
        self.events.push_back(GatewayEvent::SessionReady {
            mode,
            secret_key,
            ssrc,
        });
        let version = d
            .get("dave_protocol_version")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        if let Some(dave) = &mut self.dave {
            let Some(version) = dave_version(version, self.info.max_dave_protocol_version) else {
                return self.events.push_back(GatewayEvent::Failed(format!(
                    "Session Description chose DAVE version {version}, above the {} we offered",
                    self.info.max_dave_protocol_version
                )));
            };
            if let Err(e) = dave.on_session_description(version) {
                self.events.push_back(GatewayEvent::Failed(e.to_string()));
            }
        }
    }

    fn on_heartbeat_ack(&mut self, now: Instant, d: &Value) {
        let t = d.get("t").and_then(Value::as_u64).or_else(|| d.as_u64());
        if let Some((nonce, at)) = self.sent_at {
            if t == Some(nonce) {
                self.ping = Some(now.saturating_duration_since(at));
                self.sent_at = None;
                self.missed_acks = 0;
            }
        }
    }

    fn push(&mut self, v: Value) {
        self.transmits.push_back(Transmit::Text(v.to_string()));
    }
}

/// Hello's heartbeat interval, checked: JSON numbers reach us as any `f64` (or not at
/// all), and `Duration::from_secs_f64` panics on what does not fit.
fn heartbeat_interval(value: Option<&Value>) -> Result<Duration, String> {
    let ms = match value {
        None | Some(Value::Null) => DEFAULT_HEARTBEAT_MS,
        Some(v) => v
            .as_f64()
            .ok_or_else(|| format!("Hello heartbeat_interval {v} is not a number"))?,
    };
    if !ms.is_finite() || ms <= 0.0 || ms > MAX_HEARTBEAT_MS {
        return Err(format!(
            "Hello heartbeat_interval {ms} ms is outside (0, {MAX_HEARTBEAT_MS}]"
        ));
    }
    Ok(Duration::from_secs_f64(ms.max(MIN_HEARTBEAT_MS) / 1000.0))
}

/// A DAVE protocol version the server chose, if it is one we offered (0 always is).
fn dave_version(version: u64, offered: u8) -> Option<u16> {
    u16::try_from(version)
        .ok()
        .filter(|&v| v <= u16::from(offered))
}
