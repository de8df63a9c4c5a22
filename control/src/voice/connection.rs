//! The tokio driver of a voice connection: a WebSocket to the voice server, UDP
//! discovery, and the hand-over of the transport to the engine. All protocol
//! decisions are the [`VoiceGateway`]'s; this file only moves bytes and time.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use quaver_engine::output::PacketOutput;
use tokio::net::UdpSocket;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use super::close::CloseAction;
use super::dave::DaveStatus;
use super::gateway::{GatewayEvent, Transmit, VoiceGateway, VoiceInfo};
use super::speaking::{SpeakingWatch, Watched};
use crate::media::{DaveState, VoiceConnector, VoiceHandle, VoiceLink, VoiceRequest};

/// Reconnection attempts (resume or identify) before giving up and reporting.
const MAX_ATTEMPTS: u32 = 5;
/// UDP discovery: tries, each waiting this long for the answer.
const DISCOVERY_TRIES: u32 = 10;
const DISCOVERY_WAIT: Duration = Duration::from_secs(1);

/// What the engine needs to send a connection's audio.
#[derive(Debug)]
pub struct TransportParams {
    /// The discovered UDP socket, connected to the voice server.
    pub socket: std::net::UdpSocket,
    /// Negotiated encryption mode.
    pub mode: String,
    /// Transport key.
    pub key: [u8; 32],
    /// Our SSRC.
    pub ssrc: u32,
    /// To be bumped (after the store) every time the returned speaking flag changes:
    /// the watcher scans the flags only when it moved.
    pub speaking_changes: Arc<AtomicU64>,
}

/// A transport: the engine output, and the flag it raises while audio flows.
pub type Transport = (Box<dyn PacketOutput>, Arc<AtomicBool>);

/// Builds the engine-side transport for a ready session.
pub type TransportFactory = Arc<dyn Fn(TransportParams) -> Result<Transport, String> + Send + Sync>;

/// Connects players to Discord voice servers.
#[derive(Clone)]
pub struct DiscordVoice {
    /// Accept `ws://host:port` endpoints (tests against a local fake server).
    pub allow_insecure: bool,
    /// TLS for `wss://` endpoints: `Ok(None)` trusts the bundled web PKI roots only
    /// (tungstenite's own connector); `Ok(Some)` adds the operator's extra CAs (see
    /// [`tls_config`]); `Err` is why those could not be loaded, and every connection
    /// then fails with it rather than quietly trusting less or more than configured.
    pub tls: Result<Option<Arc<rustls::ClientConfig>>, String>,
    /// `max_dave_protocol_version` to advertise.
    pub dave_version: u8,
    /// Builds the engine transport.
    pub transport: TransportFactory,
    /// Wakes a connection when its output starts or stops speaking.
    pub speaking: SpeakingWatch,
}

impl std::fmt::Debug for DiscordVoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscordVoice")
            .field("allow_insecure", &self.allow_insecure)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct Status {
    connected: AtomicBool,
    ping_ms: AtomicI64,
    dave: parking_lot::Mutex<Option<DaveState>>,
}

#[derive(Debug)]
struct Handle {
    status: Arc<Status>,
    task: tokio::task::AbortHandle,
}

impl VoiceHandle for Handle {
    fn is_connected(&self) -> bool {
        self.status.connected.load(Ordering::Relaxed)
    }
    fn ping_ms(&self) -> Option<i64> {
        Some(self.status.ping_ms.load(Ordering::Relaxed)).filter(|&p| p >= 0)
    }
    fn dave(&self) -> Option<DaveState> {
        *self.status.dave.lock()
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl VoiceConnector for DiscordVoice {
    fn connect(&self, request: VoiceRequest, link: VoiceLink) -> Box<dyn VoiceHandle> {
        let status = Arc::new(Status {
            connected: AtomicBool::new(false),
            ping_ms: AtomicI64::new(-1),
            dave: parking_lot::Mutex::new(None),
        });
        let task = tokio::spawn(supervise(self.clone(), request, link, status.clone()));
        Box::new(Handle {
            status,
            task: task.abort_handle(),
        })
    }
}

/// The TLS client configuration for voice gateways: the web PKI roots (what Discord's
/// certificates chain to) plus the CA certificates in `extra_ca_files` (PEM; every
/// certificate in each file). Operators behind a TLS-intercepting proxy need these,
/// and tests use them to trust their fake voice server; nothing is trusted beyond the
/// web PKI unless named here. `Ok(None)` when there are none.
pub fn tls_config(
    extra_ca_files: &[std::path::PathBuf],
) -> Result<Option<Arc<rustls::ClientConfig>>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    if extra_ca_files.is_empty() {
        return Ok(None);
    }
    let mut roots = crate::tls::web_pki_roots();
    for path in extra_ca_files {
        let shown = path.display();
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("extra CA certificates {shown}: {e}"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("extra CA certificates {shown}: {e}"))?;
        if certs.is_empty() {
            return Err(format!(
                "extra CA certificates {shown}: no PEM certificate in it"
            ));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| format!("extra CA certificates {shown}: {e}"))?;
        }
    }
    Ok(Some(Arc::new(crate::tls::client_config(roots)?)))
}

/// The WebSocket URL for an endpoint, or why it is refused.
pub fn gateway_url(endpoint: &str, allow_insecure: bool) -> Result<String, String> {
    let endpoint = endpoint.trim_end_matches('/');
    if let Some(rest) = endpoint.strip_prefix("ws://") {
        return if allow_insecure {
            Ok(format!("ws://{rest}/?v=8"))
        } else {
            Err(
                "insecure voice endpoints are disabled (quaver.voice.allowInsecureEndpoints)"
                    .into(),
            )
        };
    }
    if endpoint.contains("://") {
        return Err(format!("unexpected scheme in voice endpoint {endpoint}"));
    }
    Ok(format!("wss://{endpoint}/?v=8"))
}

/// The voice gateway's socket buffers. Its messages are small JSON ops and DAVE MLS
/// messages of a few KiB, and a node holds one such socket per player, so tungstenite's
/// 128 KiB read and write buffers (a quarter MiB per player) would dominate the node's
/// memory; larger messages still arrive whole (they are assembled separately).
fn gateway_socket_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0)
}

/// Why a socket ended.
struct Ended {
    code: u16,
    reason: String,
    by_remote: bool,
}

/// State that survives reconnects: the gateway session and the engine transport.
struct Conn {
    guild: crate::ids::GuildId,
    gateway: VoiceGateway,
    udp: Option<UdpSocket>,
    speaking: Option<Arc<Watched>>,
    announced: bool,
    /// A ready output waiting for its Speaking op to be sent.
    unattached: Option<Box<dyn PacketOutput>>,
}

/// Runs a connection and makes sure its end is reported whatever the cause: [`run`]
/// reports the ends it decides on, and a panic (a bug, or input nobody validated)
/// still leaves the player `connected: false`, detached, and its client with a
/// `WebSocketClosedEvent` instead of a silent, stuck player. An abort (the player was
/// destroyed or moved on) is no end to report.
async fn supervise(
    voice: DiscordVoice,
    request: VoiceRequest,
    link: VoiceLink,
    status: Arc<Status>,
) {
    use futures_util::FutureExt;
    let guild = request.guild;
    let ran = std::panic::AssertUnwindSafe(run(voice, request, &link, &status))
        .catch_unwind()
        .await;
    if let Err(panic) = ran {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        tracing::error!(%guild, panic = %what, "voice connection task failed");
        status.connected.store(false, Ordering::Relaxed);
        report(
            &link,
            Ended {
                code: TASK_FAILED,
                reason: format!("voice connection failed: {what}"),
                by_remote: false,
            },
        );
    }
}

/// The close code reported when the connection task itself failed: 4000, as for our
/// other protocol failures (Discord's "unknown error", never sent by it as a close).
const TASK_FAILED: u16 = 4000;

async fn run(voice: DiscordVoice, request: VoiceRequest, link: &VoiceLink, status: &Status) {
    let url = match gateway_url(&request.voice.endpoint, voice.allow_insecure) {
        Ok(u) => u,
        Err(reason) => return link.closed(4000, reason, false),
    };
    // Lavalink 4.2 requires the channel id (checked when the voice state arrives);
    // without a numeric one there is no MLS group, so DAVE is not advertised.
    let channel_id = request
        .voice
        .channel_id
        .as_deref()
        .and_then(|c| c.trim().parse::<u64>().ok());
    let info = VoiceInfo {
        guild_id: request.guild.0.get(),
        user_id: request.user_id,
        session_id: request.voice.session_id.clone(),
        token: request.voice.token.clone(),
        max_dave_protocol_version: if channel_id.is_some() {
            voice.dave_version
        } else {
            0
        },
        channel_id: channel_id.unwrap_or(0),
    };
    let mut conn = Conn {
        guild: request.guild,
        gateway: VoiceGateway::new(info),
        udp: None,
        speaking: None,
        announced: false,
        unattached: None,
    };
    let connector = match &voice.tls {
        Ok(tls) => tls.clone().map(tokio_tungstenite::Connector::Rustls),
        Err(reason) => return link.closed(4000, reason.clone(), false),
    };
    let mut resume = false;
    let mut attempt = 0u32;
    loop {
        let ended = match tokio::time::timeout(
            Duration::from_secs(10),
            tokio_tungstenite::connect_async_tls_with_config(
                &url,
                Some(gateway_socket_config()),
                true,
                connector.clone(),
            ),
        )
        .await
        {
            Ok(Ok((ws, _))) => {
                conn.gateway.on_open(std::time::Instant::now(), resume);
                drive(ws, &mut conn, &voice, link, status).await
            }
            Ok(Err(e)) => Ended {
                code: 1006,
                reason: format!("cannot connect: {e}"),
                by_remote: false,
            },
            Err(_) => Ended {
                code: 1006,
                reason: "connecting timed out".into(),
                by_remote: false,
            },
        };
        status.connected.store(false, Ordering::Relaxed);
        let action = conn.gateway.on_close(ended.code);
        tracing::debug!(guild = %request.guild, code = ended.code, reason = %ended.reason, ?action, "voice socket closed");
        attempt += 1;
        match action {
            CloseAction::Report => return report(link, ended),
            _ if attempt > MAX_ATTEMPTS => return report(link, ended),
            CloseAction::Resume => resume = true,
            CloseAction::Identify => {
                resume = false;
                conn.udp = None;
                conn.speaking = None;
                conn.announced = false;
                conn.unattached = None;
                link.detach();
            }
        }
        tokio::time::sleep(backoff(attempt)).await;
    }
}

fn report(link: &VoiceLink, ended: Ended) {
    link.detach();
    link.closed(ended.code, ended.reason, ended.by_remote);
}

/// 0.5 s, 1 s, 2 s … capped at 10 s, each with up to 50 % random jitter.
fn backoff(attempt: u32) -> Duration {
    use rand::RngExt;
    let base = Duration::from_millis(500 * (1u64 << attempt.min(5).saturating_sub(1)))
        .min(Duration::from_secs(10));
    base + base.mul_f64(rand::rng().random_range(0.0..0.5))
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn drive(
    mut ws: Ws,
    conn: &mut Conn,
    voice: &DiscordVoice,
    link: &VoiceLink,
    status: &Status,
) -> Ended {
    loop {
        if let Err(e) = flush(&mut ws, &mut conn.gateway).await {
            return Ended {
                code: 1006,
                reason: e,
                by_remote: false,
            };
        }
        while let Some(event) = conn.gateway.poll_event() {
            if let Some(ended) = on_event(event, conn, voice, link, status).await {
                let frame = CloseFrame {
                    code: CloseCode::from(ended.code),
                    reason: ended.reason.clone().into(),
                };
                let _ = ws.close(Some(frame)).await;
                return ended;
            }
            let flushed = flush(&mut ws, &mut conn.gateway).await;
            // Attached even if the socket just died: the transport stays valid for a
            // resume, and a fresh Identify detaches it.
            if let Some(output) = conn.unattached.take() {
                link.attach(output);
                status.connected.store(true, Ordering::Relaxed);
            }
            if let Err(e) = flushed {
                return Ended {
                    code: 1006,
                    reason: e,
                    by_remote: false,
                };
            }
        }
        if let Some(ping) = conn.gateway.ping() {
            status
                .ping_ms
                .store(ping.as_millis() as i64, Ordering::Relaxed);
        }
        let deadline = conn.gateway.poll_timeout().map(Instant::from_std);
        let watched = conn.speaking.clone();
        let speaking_changed = async {
            match &watched {
                Some(w) => w.changed().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(t))) => conn.gateway.handle_text(std::time::Instant::now(), &t),
                Some(Ok(Message::Binary(b))) => conn.gateway.handle_binary(std::time::Instant::now(), &b),
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = frame.map_or((1005, String::new()), |f| (u16::from(f.code), f.reason.to_string()));
                    return Ended { code, reason, by_remote: true };
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Ended { code: 1006, reason: e.to_string(), by_remote: true },
                None => return Ended { code: 1006, reason: String::new(), by_remote: true },
            },
            _ = async { tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)).await }, if deadline.is_some() => {
                conn.gateway.handle_timeout(std::time::Instant::now());
            }
            () = speaking_changed => {
                let now = conn.speaking.as_ref().is_some_and(|s| s.speaking());
                if now != conn.announced {
                    conn.announced = now;
                    conn.gateway.speaking(u8::from(now));
                }
            }
        }
    }
}

async fn flush(ws: &mut Ws, gateway: &mut VoiceGateway) -> Result<(), String> {
    while let Some(transmit) = gateway.poll_transmit() {
        let message = match transmit {
            Transmit::Text(text) => Message::Text(text.into()),
            Transmit::Binary(bytes) => Message::Binary(bytes.into()),
        };
        ws.send(message).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Handles one gateway event; `Some` ends the socket.
async fn on_event(
    event: GatewayEvent,
    conn: &mut Conn,
    voice: &DiscordVoice,
    link: &VoiceLink,
    status: &Status,
) -> Option<Ended> {
    match event {
        GatewayEvent::Discover { addr, ssrc } => match discover(addr, ssrc).await {
            Ok((socket, external)) => {
                conn.udp = Some(socket);
                conn.gateway.discovered(std::time::Instant::now(), external);
                None
            }
            Err(reason) => Some(Ended {
                code: 4000,
                reason,
                by_remote: false,
            }),
        },
        GatewayEvent::SessionReady {
            mode,
            secret_key,
            ssrc,
        } => {
            let socket = conn.udp.take()?.into_std().ok()?;
            match (voice.transport)(TransportParams {
                socket,
                mode,
                key: secret_key,
                ssrc,
                speaking_changes: voice.speaking.changes(),
            }) {
                Ok((output, speaking)) => {
                    // Discord wants a Speaking op before the first packet: the output
                    // goes to the engine only after this op is on the wire.
                    conn.gateway.speaking(1);
                    conn.announced = true;
                    conn.speaking = Some(voice.speaking.watch(speaking));
                    conn.unattached = Some(output);
                    None
                }
                Err(reason) => Some(Ended {
                    code: 4000,
                    reason,
                    by_remote: false,
                }),
            }
        }
        GatewayEvent::Resumed => {
            status.connected.store(true, Ordering::Relaxed);
            link.updated();
            None
        }
        GatewayEvent::SenderKey(key) => {
            link.set_sender_key(key);
            None
        }
        GatewayEvent::Dave(DaveStatus {
            protocol_version,
            epoch,
            encrypting,
        }) => {
            tracing::info!(guild = %conn.guild, protocol_version, ?epoch, encrypting, "DAVE state");
            *status.dave.lock() = Some(DaveState {
                protocol_version,
                epoch,
                encrypting,
            });
            None
        }
        GatewayEvent::DaveRecovered(what) => {
            tracing::warn!(guild = %conn.guild, "DAVE: {what}");
            None
        }
        GatewayEvent::Dead => Some(Ended {
            code: 1006,
            reason: "heartbeats were not acknowledged".into(),
            by_remote: false,
        }),
        GatewayEvent::Failed(reason) => {
            tracing::warn!(%reason, "voice gateway protocol error");
            Some(Ended {
                code: 4000,
                reason,
                by_remote: false,
            })
        }
    }
}

/// UDP IP discovery: our external address as the voice server sees it.
async fn discover(server: SocketAddr, ssrc: u32) -> Result<(UdpSocket, SocketAddr), String> {
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().unwrap_or(server)
    } else {
        "[::]:0".parse().unwrap_or(server)
    };
    let socket = UdpSocket::bind(bind)
        .await
        .map_err(|e| format!("UDP bind failed: {e}"))?;
    socket
        .connect(server)
        .await
        .map_err(|e| format!("UDP connect failed: {e}"))?;
    let mut request = [0u8; 74];
    request[0..2].copy_from_slice(&1u16.to_be_bytes());
    request[2..4].copy_from_slice(&70u16.to_be_bytes());
    request[4..8].copy_from_slice(&ssrc.to_be_bytes());
    let mut answer = [0u8; 128];
    for _ in 0..DISCOVERY_TRIES {
        socket
            .send(&request)
            .await
            .map_err(|e| format!("UDP discovery send failed: {e}"))?;
        let Ok(Ok(n)) = tokio::time::timeout(DISCOVERY_WAIT, socket.recv(&mut answer)).await else {
            continue;
        };
        if let Some(addr) = parse_discovery(&answer[..n], ssrc) {
            return Ok((socket, addr));
        }
    }
    Err("UDP IP discovery got no answer".into())
}

/// Parses a 74-byte discovery response for `ssrc`.
pub fn parse_discovery(b: &[u8], ssrc: u32) -> Option<SocketAddr> {
    if b.len() < 74 || b[0..2] != 2u16.to_be_bytes() || b[4..8] != ssrc.to_be_bytes() {
        return None;
    }
    let ip_bytes = &b[8..72];
    let end = ip_bytes
        .iter()
        .position(|&c| c == 0)
        .unwrap_or(ip_bytes.len());
    let ip = std::str::from_utf8(&ip_bytes[..end]).ok()?.parse().ok()?;
    let port = u16::from_be_bytes([b[72], b[73]]);
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_schemes() {
        assert_eq!(
            gateway_url("sweetwater-12345.discord.media:2048", false).unwrap(),
            "wss://sweetwater-12345.discord.media:2048/?v=8"
        );
        assert_eq!(
            gateway_url("ws://127.0.0.1:9000", true).unwrap(),
            "ws://127.0.0.1:9000/?v=8"
        );
        assert!(
            gateway_url("ws://127.0.0.1:9000", false).is_err(),
            "insecure endpoints need the test switch"
        );
        assert!(gateway_url("https://x", true).is_err());
    }

    #[test]
    fn extra_ca_files_are_loaded_or_refused_with_the_reason() {
        assert!(
            tls_config(&[]).unwrap().is_none(),
            "no extra CA: tungstenite's default"
        );
        let dir = std::env::temp_dir().join(format!("quaver-ca-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let err = tls_config(std::slice::from_ref(&missing)).unwrap_err();
        assert!(err.contains("missing.pem"), "{err}");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = tls_config(std::slice::from_ref(&empty)).unwrap_err();
        assert!(err.contains("no PEM certificate"), "{err}");
        let garbage = dir.join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert!(
            tls_config(&[garbage]).is_err(),
            "not a parsable certificate"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn discovery_answers_parse() {
        let mut b = [0u8; 74];
        b[0..2].copy_from_slice(&2u16.to_be_bytes());
        b[2..4].copy_from_slice(&70u16.to_be_bytes());
        b[4..8].copy_from_slice(&77u32.to_be_bytes());
        b[8..17].copy_from_slice(b"127.0.0.1");
        b[72..74].copy_from_slice(&50_000u16.to_be_bytes());
        assert_eq!(
            parse_discovery(&b, 77),
            Some("127.0.0.1:50000".parse().unwrap())
        );
        assert_eq!(parse_discovery(&b, 78), None, "another SSRC");
        assert_eq!(parse_discovery(&b[..70], 77), None, "short");
    }

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        assert!(
            backoff(1) >= Duration::from_millis(500) && backoff(1) <= Duration::from_millis(750)
        );
        assert!(backoff(3) >= Duration::from_secs(2));
        assert!(backoff(50) <= Duration::from_secs(15));
    }
}
