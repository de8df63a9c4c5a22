//! A fake Discord voice server on loopback that plays Discord's side of a voice
//! connection for Quaver's client, and records every protocol violation it sees.
//!
//! What it does and checks follows `shared/reference/discord-voice.md` §1–4 and §7.1–7.2:
//! - **Gateway (v8, `wss://` with a test CA, or plain `ws://`)**, one tokio task per
//!   WebSocket: Hello first, then
//!   Identify (or Resume), Ready, Select Protocol → Session Description, heartbeats,
//!   Speaking. Server JSON messages carry `"seq"` and replayable ones go into a per-session
//!   buffer that a Resume replays.
//! - **UDP**, one socket for every guild, read by one std thread that busy-polls while
//!   traffic flows (a receiver blocked in `recv` costs the sender a cross-CPU wake-up).
//!   It answers IP discovery, learns source address → guild there, and opens and checks
//!   every RTP packet (§3.2 receiver recipe).
//!
//! Violations land in [`ConnectionView::errors`] (or [`FakeDiscord::stray_errors`] when
//! no guild is known yet):
//! - gateway: a request other than `/?v=8`; a first message other than Identify/Resume
//!   (closes 4003); undecodable JSON (4002); a second Identify (4005); an unknown op
//!   (4001; client ops 1, 3, 5, 7, 23, 31 and binary 26, 28 are known); Identify
//!   `server_id`/`user_id`/`session_id` not as registered (4004; a wrong token alone
//!   closes 4004 without an error, being how tests script it); Select Protocol with a
//!   protocol other than `udp` (4012), an unoffered mode (4016), an address/port other
//!   than the discovery datagram's source, before discovery, or twice; heartbeats that
//!   are not `{t, seq_ack}` or ack a seq never sent; Resume without `seq_ack`; Speaking
//!   without numeric flags, with another SSRC, or with `delay` ≠ 0.
//! - UDP, per RTP packet: authentication failure; version ≠ 2; PT ≠ 120; P, X or CC
//!   set; SSRC ≠ Ready's; seq not +1, timestamp not +960, nonce trailer (big-endian) not
//!   +1 from the previous packet of the session; payload neither `F8 FF FE` nor a
//!   well-framed Opus packet of 960 samples (TOC, then libopus unless
//!   `decode_payloads` is off); RTP before Session Description; RTP not announced by a
//!   non-zero Speaking within [`SPEAKING_GRACE`] (judged by order of arrival, not by
//!   when the fake processed the op: see [`SpeakingCheck`]); datagrams from an address that did
//!   no IP discovery. 8-byte datagrams count as keepalives.
//!
//! Hello and Resumed carry no `seq`; every other server message does (binary ones as a
//! `u16` prefix, §1.2), and all but heartbeat ACKs are kept for replay.
//!
//! **DAVE tier** (§5.3, §7.3; [`FakeDiscordOptions::dave`]): op 4 announces version 1
//! to a client whose Identify allows it and op 25 follows with the fake's external
//! sender. Fake channel members (`davey` sessions owned by the fake, see `dave.rs`)
//! form the MLS group with the client, and scripts ([`FakeDiscord::dave_join`] and its
//! siblings) drive joins, leaves, downgrades, upgrades and a corrupted commit, each
//! returning once op 22 executed it. The receive thread decrypts every DAVE media frame
//! with every fake member. Violations: key packages other than ciphersuite 2 with the
//! bot's basic credential, commits that do not parse or cannot be processed, ops 23/31
//! for transitions not in flight, binary DAVE ops without DAVE, DAVE frames a member
//! cannot decrypt, plain Opus after a transition to version 1 executed with a fake
//! member present, and DAVE frames after one to version 0. "After" is by order, not by
//! milliseconds: the old kind (or key) is an error once the new one was seen, and
//! otherwise only 2 s after the transition (`SWITCH_LIMIT` in `dave.rs`).
//!
//! State lives per guild behind one mutex ([`GuildState`]): the [`ConnectionView`] a test
//! reads, the current voice session (SSRC, key, replay buffer, receive continuity) and a
//! handle for scripting the guild's current WebSocket. A voice session starts at each
//! accepted Identify and survives Resumes; the view accumulates across sessions.

mod dave;
mod gateway;
mod tls;
mod udp;

#[allow(unused_imports)] // Not every test crate runs a node over TLS.
pub use self::tls::test_ca_file;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use quaver_engine::codec::FrameDecoder;
use quaver_engine::opus::OpusDecoder;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::Message;

use self::dave::{Dave, ExternalSenderKey};
use self::gateway::accept_loop;
use self::udp::{udp_socket, Cipher, Receiver};

/// The AES-256-GCM transport mode (§3.2).
pub const MODE_AES: &str = "aead_aes256_gcm_rtpsize";
/// The XChaCha20-Poly1305 transport mode (§3.2); Discord always offers it.
pub const MODE_XCHACHA: &str = "aead_xchacha20_poly1305_rtpsize";
/// The Opus silence frame a client sends five of before it stops (§4).
pub const SILENCE: [u8; 3] = [0xF8, 0xFF, 0xFE];

/// Samples per channel in one 20 ms Opus frame at 48 kHz.
const FRAME_SAMPLES: usize = quaver_engine::audio::FRAME_SAMPLES as usize;
/// The largest Opus packet decodes to 120 ms of stereo; room for it lets a wrong frame
/// size be reported as such instead of as a decode failure.
const MAX_PCM: usize = 6 * FRAME_SAMPLES * 2;
/// Slack allowed between a Speaking op and RTP, which travel on different sockets:
/// RTP may arrive this much before the Speaking that announces it, or after the
/// Speaking 0 that ends it, without counting as a violation.
const SPEAKING_GRACE: Duration = Duration::from_millis(100);
/// Replayable messages kept per session for Resume.
const REPLAY_LIMIT: usize = 1024;
/// How long a DAVE script waits for the client's part of a transition.
const DAVE_WAIT: Duration = Duration::from_secs(5);

/// How the fake behaves; `Default` is a well-behaved Discord.
#[derive(Debug, Clone)]
pub struct FakeDiscordOptions {
    /// Modes offered in Ready (default: both current AEAD modes).
    pub modes: Vec<String>,
    /// Hello's `heartbeat_interval` in ms, sent as a float (default 41250.0).
    pub heartbeat_interval_ms: f64,
    /// Close 4017 when Identify's `max_dave_protocol_version` is 0 or absent (default false).
    pub require_dave: bool,
    /// Answer heartbeats with op 6 (default true; false stalls the ACKs).
    pub ack_heartbeats: bool,
    /// After Ready, also send ops 12, 18, 20, 11 and 13, which a client must ignore
    /// (default false).
    pub send_unknown_ops: bool,
    /// Check every audio payload fully (default true): decode it with libopus, have
    /// the fake DAVE members decrypt DAVE frames, and keep the payloads. With false
    /// (light checking, for benchmarks with thousands of connections, where that
    /// would outrun the one receive thread), only the Opus TOC of plain frames is
    /// checked (RFC 6716 §3.1: valid framing, 960 samples), DAVE frames only for
    /// their trailer, and [`ReceivedPacket::opus`] stays empty.
    pub decode_payloads: bool,
    /// Offer DAVE (version 1) to clients whose Identify has `max_dave_protocol_version`
    /// ≥ 1 (default false: op 4 always says 0). Clients that do not offer it still get
    /// version 0, as in a Stage channel, unless `require_dave` closes them.
    pub dave: bool,
    /// With `dave`: user ids of fake members already in the channel, with their group
    /// formed, when the client identifies (default none: the client is first). They are
    /// announced by op 11 after Ready and add the client once its key package arrives
    /// (op 30 Welcome, op 23, op 22).
    pub dave_members_before: Vec<u64>,
    /// Serve the gateway over TLS (default true, as Discord does): the endpoint is a
    /// bare `127.0.0.1:PORT`, which a client turns into `wss://`, and the certificate
    /// chains to the test CA in [`test_ca_file`], which a node must be told to trust.
    /// False serves plain `ws://` (the endpoint says so; the node then needs
    /// `allowInsecureEndpoints`).
    pub tls: bool,
}

impl Default for FakeDiscordOptions {
    fn default() -> Self {
        FakeDiscordOptions {
            modes: vec![MODE_AES.to_owned(), MODE_XCHACHA.to_owned()],
            heartbeat_interval_ms: 41250.0,
            require_dave: false,
            ack_heartbeats: true,
            send_unknown_ops: false,
            decode_payloads: true,
            dave: false,
            dave_members_before: Vec::new(),
            tls: true,
        }
    }
}

/// One RTP packet the fake opened, as the client sent it.
#[derive(Clone)]
pub struct ReceivedPacket {
    pub seq: u16,
    pub timestamp: u32,
    /// The transport nonce trailer, read big-endian.
    pub nonce: u32,
    pub ssrc: u32,
    /// The decrypted payload: an Opus packet, or [`SILENCE`]. For a DAVE frame, the
    /// Opus packet a fake member decrypted, or empty if none could.
    pub opus: Vec<u8>,
    /// When the receive thread read the datagram.
    pub arrived: Instant,
    pub silence: bool,
    /// The payload was a DAVE (end-to-end encrypted) frame rather than plain Opus.
    pub dave: bool,
}

impl fmt::Debug for ReceivedPacket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "#{} ts={} nonce={} {} bytes{}{}",
            self.seq,
            self.timestamp,
            self.nonce,
            self.opus.len(),
            if self.silence { " (silence)" } else { "" },
            if self.dave { " (DAVE)" } else { "" }
        )
    }
}

/// Everything the fake saw for one guild, across its WebSockets and voice sessions.
#[derive(Clone)]
pub struct ConnectionView {
    pub guild_id: u64,
    /// The `v` query parameter of the latest WebSocket that identified or resumed
    /// (a path other than `/` or a version other than 8 is an error).
    pub gateway_version: Option<u32>,
    /// Identify ops received (accepted or not).
    pub identifies: u32,
    /// Resumes accepted.
    pub resumes: u32,
    /// From the latest Identify.
    pub max_dave_protocol_version: Option<u64>,
    /// The mode chosen by the latest Select Protocol of the current session.
    pub mode: Option<String>,
    /// The current session's SSRC (0 before the first accepted Identify).
    pub ssrc: u32,
    /// Every Speaking op: flags and when it was read.
    pub speaking: Vec<(u64, Instant)>,
    pub heartbeats: u32,
    /// When each heartbeat was read, for cadence checks.
    pub heartbeat_at: Vec<Instant>,
    pub last_seq_ack: Option<i64>,
    /// Opened audio and silence packets, in arrival order (continuing across resumes).
    pub packets: Vec<ReceivedPacket>,
    pub keepalives: u32,
    /// Every protocol violation detected; a correct client leaves this empty.
    pub errors: Vec<String>,
    /// Close codes the fake sent (scripted or for a violation).
    pub closed_with: Vec<u16>,
    /// Close codes the client sent (1005 for a close frame without a code).
    pub client_closed_with: Vec<u16>,
    /// The DAVE protocol version in force as the fake sees it: what op 4 announced,
    /// then what each executed transition (op 22 sent) switched to.
    pub dave_protocol_version: u16,
    /// The MLS epoch of the group put in force by the last executed transition (`None`
    /// before one to version 1 and after one to version 0).
    pub dave_epoch: Option<u64>,
    /// Key packages (binary op 26) received.
    pub dave_key_packages: u32,
    /// Commits (binary op 28) received.
    pub dave_commits: u32,
    /// Invalid commit/welcome reports (op 31) received.
    pub dave_invalid_commits: u32,
    /// Executed transitions (op 22 sent) as (transition id, protocol version).
    pub dave_transitions: Vec<(u16, u16)>,
}

impl ConnectionView {
    fn new(guild_id: u64) -> Self {
        ConnectionView {
            guild_id,
            gateway_version: None,
            identifies: 0,
            resumes: 0,
            max_dave_protocol_version: None,
            mode: None,
            ssrc: 0,
            speaking: Vec::new(),
            heartbeats: 0,
            heartbeat_at: Vec::new(),
            last_seq_ack: None,
            packets: Vec::new(),
            keepalives: 0,
            errors: Vec::new(),
            closed_with: Vec::new(),
            client_closed_with: Vec::new(),
            dave_protocol_version: 0,
            dave_epoch: None,
            dave_key_packages: 0,
            dave_commits: 0,
            dave_invalid_commits: 0,
            dave_transitions: Vec::new(),
        }
    }

    /// Decodes every non-silence packet in order (DAVE frames as decrypted, skipping
    /// those no fake member opened) with one fresh Opus decoder and returns the left
    /// channel.
    pub fn decode_left(&self) -> Vec<i16> {
        let mut decoder = OpusDecoder::new().expect("an Opus decoder");
        let mut pcm = vec![0i16; MAX_PCM];
        let mut left = Vec::new();
        for packet in self.audio_packets().filter(|p| !p.opus.is_empty()) {
            if let Ok(n) = decoder.decode(&packet.opus, &mut pcm) {
                left.extend(pcm[..n * 2].iter().step_by(2));
            }
        }
        left
    }

    /// The packets that carry audio (not silence).
    pub fn audio_packets(&self) -> impl Iterator<Item = &ReceivedPacket> {
        self.packets.iter().filter(|p| !p.silence)
    }
}

impl fmt::Debug for ConnectionView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let silence = self.packets.iter().filter(|p| p.silence).count();
        let dave_frames = self.packets.iter().filter(|p| p.dave).count();
        let flags: Vec<u64> = self.speaking.iter().map(|s| s.0).collect();
        f.debug_struct("ConnectionView")
            .field("guild_id", &self.guild_id)
            .field("gateway_version", &self.gateway_version)
            .field("identifies", &self.identifies)
            .field("resumes", &self.resumes)
            .field("max_dave_protocol_version", &self.max_dave_protocol_version)
            .field("mode", &self.mode)
            .field("ssrc", &self.ssrc)
            .field("speaking", &flags)
            .field("heartbeats", &self.heartbeats)
            .field("last_seq_ack", &self.last_seq_ack)
            .field("packets", &self.packets.len())
            .field("silence_packets", &silence)
            .field("last_packet", &self.packets.last())
            .field("keepalives", &self.keepalives)
            .field("errors", &self.errors)
            .field("closed_with", &self.closed_with)
            .field("client_closed_with", &self.client_closed_with)
            .field("dave_protocol_version", &self.dave_protocol_version)
            .field("dave_epoch", &self.dave_epoch)
            .field("dave_frames", &dave_frames)
            .field("dave_key_packages", &self.dave_key_packages)
            .field("dave_commits", &self.dave_commits)
            .field("dave_invalid_commits", &self.dave_invalid_commits)
            .field("dave_transitions", &self.dave_transitions)
            .finish()
    }
}

/// A running fake voice server. Dropping it stops the receive thread and every task.
pub struct FakeDiscord {
    shared: Arc<Shared>,
    ws_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    receiver: Option<JoinHandle<()>>,
    shutdown: watch::Sender<bool>,
}

impl fmt::Debug for FakeDiscord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeDiscord")
            .field("ws", &self.ws_addr)
            .field("udp_port", &self.shared.udp_port)
            .finish()
    }
}

impl FakeDiscord {
    /// Binds the gateway on `127.0.0.1:0` and one UDP socket on `127.0.0.1:0`.
    pub async fn start(options: FakeDiscordOptions) -> FakeDiscord {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ws_addr = listener.local_addr().unwrap();
        let socket = udp_socket();
        let shared = Arc::new(Shared {
            options,
            udp_port: socket.local_addr().unwrap().port(),
            registrations: Mutex::default(),
            guilds: Mutex::default(),
            ssrcs: Mutex::default(),
            stray: Mutex::default(),
            counter: AtomicU64::new(1),
            dave_sender: Arc::new(ExternalSenderKey::new()),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let receiver = {
            let mut receiver = Receiver::new(shared.clone(), socket);
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("fake-discord-udp".into())
                .spawn(move || receiver.run(&stop))
                .unwrap()
        };
        let (shutdown, watch) = watch::channel(false);
        tokio::spawn(accept_loop(shared.clone(), listener, watch));
        FakeDiscord {
            shared,
            ws_addr,
            stop,
            receiver: Some(receiver),
            shutdown,
        }
    }

    /// The voice state's endpoint: `127.0.0.1:PORT` over TLS (a client makes it
    /// `wss://…/?v=8`), else `ws://127.0.0.1:PORT` (the client appends `/?v=8`).
    pub fn endpoint(&self) -> String {
        if self.shared.options.tls {
            self.ws_addr.to_string()
        } else {
            format!("ws://{}", self.ws_addr)
        }
    }

    /// A Lavalink voice state (`token`, `endpoint`, `sessionId`, `channelId`) for
    /// `guild_id`, registering what its Identify must carry. Each call makes a new
    /// token and session id; only the latest registration identifies.
    pub fn voice_state(&self, guild_id: u64, user_id: u64) -> Value {
        let n = self.shared.counter.fetch_add(1, Ordering::Relaxed);
        let registration = Registration {
            user_id,
            session_id: format!("sess-{guild_id}-{n}"),
            token: format!("tok-{guild_id}-{n}"),
        };
        let state = json!({
            "token": registration.token,
            "endpoint": self.endpoint(),
            "sessionId": registration.session_id,
            "channelId": channel_id(guild_id).to_string(),
        });
        lock(&self.shared.registrations).insert(guild_id, registration);
        state
    }

    /// A snapshot of what the fake saw for `guild_id`, if anything connected for it.
    pub fn connection(&self, guild_id: u64) -> Option<ConnectionView> {
        let guild = self.shared.find_guild(guild_id)?;
        let mut state = guild.lock();
        state.settle(Instant::now());
        Some(state.view.clone())
    }

    /// Violations that could not be tied to a guild (e.g. a datagram from an address
    /// that never did IP discovery, or a WebSocket that never named its guild).
    pub fn stray_errors(&self) -> Vec<String> {
        lock(&self.shared.stray).clone()
    }

    /// Datagrams the kernel dropped because the fake's receive queue was full (from
    /// `/proc/net/udp`; `None` where that is unavailable). Non-zero means the receive
    /// thread fell behind, and packet gaps are the fake's fault, not the client's.
    pub fn kernel_drops(&self) -> Option<u64> {
        let table = std::fs::read_to_string("/proc/net/udp").ok()?;
        let port = format!(":{:04X}", self.shared.udp_port);
        let line = table.lines().skip(1).find(|line| {
            line.split_whitespace()
                .nth(1)
                .is_some_and(|local| local.ends_with(&port))
        })?;
        line.split_whitespace().last()?.parse().ok()
    }

    /// Polls until `f` holds for `guild_id`'s view and returns that view; panics with
    /// the last view on timeout.
    pub async fn wait_for<F: Fn(&ConnectionView) -> bool>(
        &self,
        guild_id: u64,
        timeout: Duration,
        f: F,
    ) -> ConnectionView {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(guild) = self.shared.find_guild(guild_id) {
                let mut state = guild.lock();
                state.settle(Instant::now());
                if f(&state.view) {
                    return state.view.clone();
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "fake Discord: guild {guild_id}: condition not met within {timeout:?}; \
                     view: {:#?}; stray: {:?}; kernel drops: {:?}",
                    self.connection(guild_id),
                    self.stray_errors(),
                    self.kernel_drops()
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Closes `guild_id`'s current WebSocket with `code` and `reason`.
    pub async fn close(&self, guild_id: u64, code: u16, reason: &str) {
        self.script(guild_id, |done| {
            Script::Close(code, reason.to_owned(), done)
        })
        .await
    }

    /// Drops `guild_id`'s current TCP connection without a close frame (the client
    /// sees 1006).
    pub async fn drop_tcp(&self, guild_id: u64) {
        self.script(guild_id, Script::DropTcp).await
    }

    /// DAVE: fake member `user_id` joins the channel. The fake sends op 11 and an
    /// external Add proposal for the member's key package (op 27 append; other fake
    /// members store it too), expects op 28 (commit + Welcome), announces the commit
    /// (op 29) while the fake members process it and the new member joins by the
    /// Welcome, expects op 23, and sends op 22. Waits for a transition in flight first.
    pub async fn dave_join(&self, guild_id: u64, user_id: u64) {
        self.dave_script(guild_id, "dave_join", |dave| dave.join(user_id))
            .await
    }

    /// DAVE: fake member `user_id` leaves: op 13, an external Remove proposal (op 27
    /// append; the remaining members store it), op 28 (commit) expected, op 29 while
    /// the remaining members process it, op 23 expected, op 22.
    pub async fn dave_leave(&self, guild_id: u64, user_id: u64) {
        self.dave_script(guild_id, "dave_leave", |dave| dave.leave(user_id))
            .await
    }

    /// DAVE: downgrade to version 0: op 21 `{protocol_version: 0, transition_id}`, op
    /// 23 expected, op 22. The client must then send plain Opus.
    pub async fn dave_downgrade(&self, guild_id: u64) {
        self.dave_script(guild_id, "dave_downgrade", |dave| Ok(dave.downgrade()))
            .await
    }

    /// DAVE: back to version 1: op 24 `{protocol_version: 1, epoch: 1}`; the client
    /// must answer with a new key package (op 26); the fake members re-form a group
    /// that adds it (op 30 Welcome), op 23 expected, op 22. Needs a fake member.
    pub async fn dave_upgrade(&self, guild_id: u64) {
        self.dave_script(guild_id, "dave_upgrade", |dave| dave.upgrade())
            .await
    }

    /// DAVE: the next op 29 to the client carries a corrupted commit. The script that
    /// sends it then expects op 31 with its transition id and a new key package (op
    /// 26), and recovers: the fake members remove the client's stale leaf and add it
    /// back (op 30 Welcome), op 23 expected, op 22.
    pub fn dave_corrupt_next_commit(&self, guild_id: u64) {
        let guild = self.shared.find_guild(guild_id);
        let mut state = guild.as_ref().map(|g| g.lock());
        let dave = state
            .as_mut()
            .and_then(|s| s.session.as_mut())
            .and_then(|s| s.dave.as_mut());
        dave.unwrap_or_else(|| panic!("fake Discord: guild {guild_id} has no DAVE session"))
            .corrupt_next_commit();
    }

    /// Waits for the guild's DAVE session to be idle, starts a transition with `start`,
    /// sends its messages, and waits until op 22 executed it.
    async fn dave_script(
        &self,
        guild_id: u64,
        what: &str,
        start: impl FnOnce(&mut Dave) -> Result<Vec<Outgoing>, String>,
    ) {
        let deadline = Instant::now() + DAVE_WAIT;
        let mut start = Some(start);
        let (messages, before) = self
            .dave_poll(guild_id, what, deadline, |dave| {
                if !dave.is_idle() {
                    return None;
                }
                let start = start.take().expect("started once");
                let before = dave.completed;
                Some(start(dave).map(|messages| (messages, before)))
            })
            .await;
        self.script(guild_id, |done| Script::Send(messages, done))
            .await;
        self.dave_poll(guild_id, what, deadline, |dave| {
            (dave.completed > before && dave.is_idle()).then_some(Ok(()))
        })
        .await;
    }

    /// Polls `f` on the guild's DAVE session until it returns something; panics with
    /// the view on a recorded DAVE failure, an `Err`, or at `deadline`.
    async fn dave_poll<T>(
        &self,
        guild_id: u64,
        what: &str,
        deadline: Instant,
        mut f: impl FnMut(&mut Dave) -> Option<Result<T, String>>,
    ) -> T {
        loop {
            let outcome = self.shared.find_guild(guild_id).and_then(|guild| {
                let mut state = guild.lock();
                let dave = state.session.as_mut()?.dave.as_mut()?;
                match dave.failure.take() {
                    Some(failure) => Some(Err(failure)),
                    None => f(dave),
                }
            });
            let failure = match outcome {
                Some(Ok(value)) => return value,
                Some(Err(failure)) => failure,
                None if Instant::now() >= deadline => format!("not done within {DAVE_WAIT:?}"),
                None => {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    continue;
                }
            };
            panic!(
                "fake Discord: guild {guild_id}: {what}: {failure}; view: {:#?}",
                self.connection(guild_id)
            );
        }
    }

    async fn script(&self, guild_id: u64, make: impl FnOnce(oneshot::Sender<()>) -> Script) {
        let gateway = self
            .shared
            .find_guild(guild_id)
            .and_then(|g| g.lock().gateway.as_ref().map(|(_, tx)| tx.clone()));
        let Some(gateway) = gateway else {
            panic!("fake Discord: guild {guild_id} has no open voice gateway connection");
        };
        let (done, finished) = oneshot::channel();
        let sent = gateway.send(make(done)).is_ok();
        let finished = tokio::time::timeout(Duration::from_secs(5), finished).await;
        assert!(
            sent && matches!(finished, Ok(Ok(()))),
            "fake Discord: guild {guild_id}: the gateway connection went away before the scripted action"
        );
    }
}

impl Drop for FakeDiscord {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.shutdown.send(true);
        if let Some(receiver) = self.receiver.take() {
            let _ = receiver.join();
        }
    }
}

// ---------------------------------------------------------------------------------
// Shared state
// ---------------------------------------------------------------------------------

struct Shared {
    options: FakeDiscordOptions,
    udp_port: u16,
    registrations: Mutex<HashMap<u64, Registration>>,
    guilds: Mutex<HashMap<u64, Arc<Guild>>>,
    /// Current sessions by SSRC, for IP discovery.
    ssrcs: Mutex<HashMap<u32, Arc<Guild>>>,
    stray: Mutex<Vec<String>>,
    /// Numbers tokens and WebSocket connections.
    counter: AtomicU64,
    /// The gateway's MLS external sender, for every DAVE session.
    dave_sender: Arc<ExternalSenderKey>,
}

impl Shared {
    fn find_guild(&self, id: u64) -> Option<Arc<Guild>> {
        lock(&self.guilds).get(&id).cloned()
    }

    fn guild(&self, id: u64) -> Arc<Guild> {
        lock(&self.guilds)
            .entry(id)
            .or_insert_with(|| {
                Arc::new(Guild {
                    state: Mutex::new(GuildState {
                        view: ConnectionView::new(id),
                        session: None,
                        gateway: None,
                    }),
                })
            })
            .clone()
    }

    fn stray(&self, error: String) {
        lock(&self.stray).push(error);
    }

    /// A random non-zero SSRC no current session uses, registered for `guild`.
    fn new_ssrc(&self, guild: &Arc<Guild>, old: Option<u32>) -> u32 {
        let mut ssrcs = lock(&self.ssrcs);
        if let Some(old) = old {
            ssrcs.remove(&old);
        }
        loop {
            let ssrc: u32 = rand::random();
            if ssrc != 0 && !ssrcs.contains_key(&ssrc) {
                ssrcs.insert(ssrc, guild.clone());
                return ssrc;
            }
        }
    }
}

/// The voice channel [`FakeDiscord::voice_state`] puts `guild_id`'s bot in; also the
/// DAVE group id.
fn channel_id(guild_id: u64) -> u64 {
    guild_id.wrapping_add(1)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What a guild's Identify must carry, from [`FakeDiscord::voice_state`].
struct Registration {
    user_id: u64,
    session_id: String,
    token: String,
}

struct Guild {
    state: Mutex<GuildState>,
}

impl Guild {
    fn lock(&self) -> MutexGuard<'_, GuildState> {
        lock(&self.state)
    }
}

struct GuildState {
    view: ConnectionView,
    session: Option<Session>,
    /// The WebSocket that identified or resumed last: its id and script channel.
    gateway: Option<(u64, mpsc::UnboundedSender<Script>)>,
}

impl GuildState {
    fn error(&mut self, error: String) {
        self.view.errors.push(error);
    }

    /// Has RTP that is unannounced past the grace period decided: the guild's gateway
    /// is asked to read its socket once more ([`Script::Probe`]), which records the
    /// error if no Speaking op is there; with no gateway left, it is an error now.
    /// (The receive thread already asked for such a read when the RTP arrived; this
    /// covers a gateway that took over since.)
    fn settle(&mut self, now: Instant) {
        let Some(session) = self.session.as_mut() else {
            return;
        };
        if !session.speaking.overdue(now) {
            return;
        }
        let probed = self
            .gateway
            .as_ref()
            .is_some_and(|(_, tx)| tx.send(Script::Probe(now)).is_ok());
        if !probed {
            if let Some(error) = session.speaking.drained(now) {
                self.error(error);
            }
        }
    }

    /// The guild's gateway began a read at `began` that found nothing more to read.
    fn drained(&mut self, began: Instant) {
        if let Some(error) = self
            .session
            .as_mut()
            .and_then(|s| s.speaking.drained(began))
        {
            self.error(error);
        }
    }
}

/// One voice session: from an accepted Identify, through any Resumes.
struct Session {
    session_id: String,
    token: String,
    ssrc: u32,
    /// The seq of the last stamped server message.
    last_seq: i64,
    /// Replayable messages (seq, message), oldest first.
    replay: VecDeque<(i64, Message)>,
    /// Source address of the IP discovery request.
    udp_source: Option<SocketAddr>,
    cipher: Option<Cipher>,
    speaking: SpeakingCheck,
    /// seq, timestamp and nonce of the last packet, for continuity.
    last_packet: Option<(u16, u32, u32)>,
    decoder: Option<OpusDecoder>,
    /// The DAVE tier, when this session negotiated it.
    dave: Option<Dave>,
}

impl Session {
    fn new(session_id: String, token: String, ssrc: u32) -> Self {
        Session {
            session_id,
            token,
            ssrc,
            last_seq: 0,
            replay: VecDeque::new(),
            udp_source: None,
            cipher: None,
            speaking: SpeakingCheck::default(),
            last_packet: None,
            decoder: None,
            dave: None,
        }
    }

    /// Stamps the next seq on `{op, d}`; keeps it for Resume if `replayable`.
    fn stamp(&mut self, op: u8, d: Value, replayable: bool) -> Message {
        self.last_seq += 1;
        let text = json!({ "op": op, "d": d, "seq": self.last_seq }).to_string();
        let message = Message::text(text);
        if replayable {
            self.keep(message.clone());
        }
        message
    }

    /// Stamps and keeps a replayable JSON or binary message; a binary one carries the
    /// seq as a big-endian `u16` prefix (§1.2).
    fn stamp_outgoing(&mut self, outgoing: Outgoing) -> Message {
        match outgoing {
            Outgoing::Json(op, d) => self.stamp(op, d, true),
            Outgoing::Binary(op, payload) => {
                self.last_seq += 1;
                let seq = (self.last_seq as u16).to_be_bytes();
                let message = Message::binary([&seq[..], &[op], &payload].concat());
                self.keep(message.clone());
                message
            }
        }
    }

    fn keep(&mut self, message: Message) {
        if self.replay.len() == REPLAY_LIMIT {
            self.replay.pop_front();
        }
        self.replay.push_back((self.last_seq, message));
    }
}

/// A server message before it is stamped with a seq.
enum Outgoing {
    Json(u8, Value),
    /// A binary message: opcode and payload.
    Binary(u8, Vec<u8>),
}

/// "Speaking with non-zero flags before RTP", allowing [`SPEAKING_GRACE`] for the
/// race between the WebSocket and UDP paths.
///
/// The check compares the order of events, never when the fake got round to
/// processing a message: RTP is unannounced when, more than the grace after it
/// arrived, the gateway found its socket empty without having read a non-zero
/// Speaking op (see [`SpeakingCheck::drained`]). A gateway task busy elsewhere (MLS
/// work in a debug build, a starved CPU) only reads the op later; it still finds it
/// before the socket runs dry, so its lateness is not the client's.
#[derive(Default)]
struct SpeakingCheck {
    on: bool,
    /// When Speaking last went from non-zero to 0.
    off_at: Option<Instant>,
    /// The first packet that arrived while Speaking was 0 and is not yet explained.
    unannounced: Option<Instant>,
    /// An error was already recorded for the current unannounced run.
    reported: bool,
}

impl SpeakingCheck {
    /// A Speaking op, read at `now`.
    fn on_op(&mut self, flags: u64, now: Instant) {
        let was_on = self.on;
        self.on = flags != 0;
        if self.on {
            self.off_at = None;
            self.reported = false;
            self.unannounced = None;
        } else if was_on {
            self.off_at = Some(now);
        }
    }

    /// RTP that arrived at `at`; returns when the gateway must read its socket to
    /// decide it, if it starts an unannounced run.
    fn on_rtp(&mut self, at: Instant) -> Option<Instant> {
        let just_ended = self
            .off_at
            .is_some_and(|off| at.saturating_duration_since(off) <= SPEAKING_GRACE);
        if self.on || just_ended || self.reported || self.unannounced.is_some() {
            return None;
        }
        self.unannounced = Some(at);
        Some(at + SPEAKING_GRACE + Duration::from_millis(1))
    }

    /// The gateway began a read at `began` that found no complete message: every
    /// byte the client had sent on the WebSocket before `began` has been read. If RTP
    /// arrived more than the grace before that and no Speaking op came, none had been
    /// sent in time.
    fn drained(&mut self, began: Instant) -> Option<String> {
        let first = self.unannounced?;
        let waited = began.saturating_duration_since(first);
        (waited > SPEAKING_GRACE).then(|| {
            self.unannounced = None;
            self.reported = true;
            format!(
                "RTP without a non-zero Speaking op (none had arrived {waited:?} after the packet)"
            )
        })
    }

    /// Unannounced RTP is past the grace at `now`: a read of the WebSocket now
    /// decides it.
    fn overdue(&self, now: Instant) -> bool {
        self.unannounced
            .is_some_and(|first| now.saturating_duration_since(first) > SPEAKING_GRACE)
    }
}

/// A scripted action for a guild's current WebSocket; the sender is told when done.
enum Script {
    Close(u16, String, oneshot::Sender<()>),
    DropTcp(oneshot::Sender<()>),
    /// Stamp and send these (replayable) messages.
    Send(Vec<Outgoing>, oneshot::Sender<()>),
    /// Read the socket once more at this instant or soon after (see
    /// [`SpeakingCheck`]).
    Probe(Instant),
}
