//! The fake's voice gateway: one tokio task per WebSocket (§1, §7.1).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

use super::dave::{Dave, Input};
use super::udp::Cipher;
use super::{channel_id, lock, Guild, GuildState, Outgoing, Script, Session, Shared};

/// What the connection loop does after a message.
enum Flow {
    Continue,
    /// Send a close frame with this code and reason, then end.
    Close(u16, String),
    /// End without a close frame.
    Drop,
}

/// The client went away while we were sending.
struct Gone;

pub(super) async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve(shared.clone(), stream, shutdown.clone()));
            }
            _ = shutdown.changed() => return,
        }
    }
}

async fn serve(shared: Arc<Shared>, stream: TcpStream, shutdown: watch::Receiver<bool>) {
    if shared.options.tls {
        // A client that gives up on the handshake (an untrusted CA) just goes away.
        if let Ok(Ok(stream)) = tokio::time::timeout(
            Duration::from_secs(10),
            super::tls::acceptor().accept(stream),
        )
        .await
        {
            serve_ws(shared, stream, shutdown).await;
        }
    } else {
        serve_ws(shared, stream, shutdown).await;
    }
}

/// A TCP connection, or TLS over one: what the gateway reads from, and the socket
/// whose kernel queue [`nothing_queued`] asks about.
trait Socket: AsyncRead + AsyncWrite + Unpin {
    fn tcp(&self) -> &TcpStream;
}

impl Socket for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl Socket for tokio_rustls::server::TlsStream<TcpStream> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0
    }
}

async fn serve_ws<S: Socket>(shared: Arc<Shared>, stream: S, shutdown: watch::Receiver<bool>) {
    let mut uri = None;
    // The callback's error type is tungstenite's, not ours to shrink.
    #[allow(clippy::result_large_err)]
    let capture = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        uri = Some(request.uri().clone());
        Ok(response)
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, capture).await else {
        return;
    };
    let uri = uri.expect("the handshake saw a request");
    let version = uri.query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("v="))
            .and_then(|v| v.parse().ok())
    });
    let (scripts_tx, scripts) = mpsc::unbounded_channel();
    let id = shared.counter.fetch_add(1, Ordering::Relaxed);
    let mut gateway = Gateway {
        shared,
        ws,
        id,
        path: uri.path().to_owned(),
        version,
        guild: None,
        scripts_tx,
    };
    gateway.run(scripts, shutdown).await;
    gateway.detach();
}

/// The next message from the client. A read that finds no complete message and an
/// empty kernel receive queue tells the guild when it began
/// ([`GuildState::drained`]): everything the client sent before then has been read,
/// which is what the Speaking check orders RTP against. (Tokio's `Pending` alone
/// proves nothing: it answers from readiness cached at the runtime's last I/O turn,
/// without asking the kernel.)
async fn next_message<S: Socket>(
    ws: &mut WebSocketStream<S>,
    guild: Option<&Arc<Guild>>,
) -> Option<Result<Message, tungstenite::Error>> {
    std::future::poll_fn(|cx| {
        let began = Instant::now();
        let poll = ws.poll_next_unpin(cx);
        if let (Poll::Pending, Some(guild)) = (&poll, guild) {
            if nothing_queued(ws.get_ref().tcp()) {
                guild.lock().drained(began);
            }
        }
        poll
    })
    .await
}

/// The kernel holds no unread byte for `stream` (or the peer closed it).
fn nothing_queued(stream: &TcpStream) -> bool {
    let mut byte = [std::mem::MaybeUninit::uninit()];
    // Tokio's sockets are non-blocking: an empty queue answers `WouldBlock`.
    match socket2::SockRef::from(stream).peek(&mut byte) {
        Ok(n) => n == 0,
        Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
    }
}

/// One WebSocket connection.
struct Gateway<S> {
    shared: Arc<Shared>,
    ws: WebSocketStream<S>,
    id: u64,
    /// The request path and its `v` query parameter.
    path: String,
    version: Option<u32>,
    /// Set by an accepted Identify or Resume.
    guild: Option<Arc<Guild>>,
    scripts_tx: mpsc::UnboundedSender<Script>,
}

impl<S: Socket> Gateway<S> {
    async fn run(
        &mut self,
        mut scripts: mpsc::UnboundedReceiver<Script>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let interval = self.shared.options.heartbeat_interval_ms;
        let hello = json!({ "op": 8, "d": { "heartbeat_interval": interval } });
        if self.send(Message::text(hello.to_string())).await.is_err() {
            return;
        }
        let mut probe_at: Option<Instant> = None;
        loop {
            let (flow, done) = tokio::select! {
                message = next_message(&mut self.ws, self.guild.as_ref()) => match message {
                    Some(Ok(message)) => (self.handle(message).await.unwrap_or(Flow::Drop), None),
                    Some(Err(_)) | None => return,
                },
                Some(script) = scripts.recv() => match script {
                    Script::Close(code, reason, done) => (Flow::Close(code, reason), Some(done)),
                    Script::DropTcp(done) => (Flow::Drop, Some(done)),
                    Script::Probe(at) => {
                        probe_at = Some(probe_at.map_or(at, |t: Instant| t.min(at)));
                        (Flow::Continue, None)
                    }
                    Script::Send(messages, done) => {
                        let sent = self.send_outgoing(messages).await;
                        let _ = done.send(());
                        (if sent.is_ok() { Flow::Continue } else { Flow::Drop }, None)
                    }
                },
                // Waking is all a probe needs: the next turn reads the socket.
                _ = tokio::time::sleep_until(probe_at.unwrap_or_else(Instant::now).into()),
                    if probe_at.is_some() => {
                    probe_at = None;
                    (Flow::Continue, None)
                }
                _ = shutdown.changed() => (Flow::Drop, None),
            };
            match flow {
                Flow::Continue => {}
                Flow::Close(code, reason) => {
                    self.close(code, reason, done).await;
                    return;
                }
                Flow::Drop => {
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                    return;
                }
            }
        }
    }

    /// Sends a close frame, records it, and waits briefly for the client's reply.
    async fn close(&mut self, code: u16, reason: String, done: Option<oneshot::Sender<()>>) {
        if let Some(guild) = &self.guild {
            guild.lock().view.closed_with.push(code);
        }
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        };
        let _ = self.ws.send(Message::Close(Some(frame))).await;
        if let Some(done) = done {
            let _ = done.send(());
        }
        let drain = async { while let Some(Ok(_)) = self.ws.next().await {} };
        let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
    }

    /// Stops being the guild's current connection, unless a newer one took over.
    fn detach(&self) {
        if let Some(guild) = &self.guild {
            let mut state = guild.lock();
            if state.gateway.as_ref().is_some_and(|(id, _)| *id == self.id) {
                state.gateway = None;
            }
        }
    }

    async fn send(&mut self, message: Message) -> Result<(), Gone> {
        self.ws.send(message).await.map_err(|_| Gone)
    }

    /// Stamps and sends `{op, d}` on the current session.
    async fn send_stamped(&mut self, op: u8, d: Value, replayable: bool) -> Result<(), Gone> {
        let message = self.with_session(|session| session.stamp(op, d, replayable));
        self.send(message).await
    }

    /// Stamps and sends replayable messages, one by one, on the current session.
    async fn send_outgoing(&mut self, messages: Vec<Outgoing>) -> Result<(), Gone> {
        for outgoing in messages {
            let message = self.with_session(|session| session.stamp_outgoing(outgoing));
            self.send(message).await?;
        }
        Ok(())
    }

    fn with_session<T>(&self, f: impl FnOnce(&mut Session) -> T) -> T {
        let guild = self
            .guild
            .as_ref()
            .expect("stamped messages follow Identify");
        let mut state = guild.lock();
        f(state.session.as_mut().expect("a session after Identify"))
    }

    /// Feeds a client DAVE op to the session's DAVE tier and sends its answers. Binary
    /// ops on a session without DAVE are violations; JSON ops 23 and 31 are ignored
    /// there.
    async fn dave(&mut self, op: u8, input: Input<'_>) -> Result<Flow, Gone> {
        let answers = {
            let guild = self.guild.as_ref().expect("identified");
            let mut state = guild.lock();
            let GuildState { view, session, .. } = &mut *state;
            match session.as_mut().and_then(|s| s.dave.as_mut()) {
                Some(dave) => dave.handle(view, input, Instant::now()),
                None => {
                    if matches!(input, Input::KeyPackage(_) | Input::CommitWelcome(_)) {
                        view.errors
                            .push(format!("binary DAVE op {op} on a session without DAVE"));
                    }
                    Vec::new()
                }
            }
        };
        self.send_outgoing(answers).await?;
        Ok(Flow::Continue)
    }

    /// Records a violation on the guild (or as stray before Identify) and closes.
    fn violation(&self, code: u16, reason: &str, detail: String) -> Flow {
        let error = format!("gateway close {code} ({reason}): {detail}");
        match &self.guild {
            Some(guild) => guild.lock().error(error),
            None => self.shared.stray(error),
        }
        Flow::Close(code, reason.to_owned())
    }

    async fn handle(&mut self, message: Message) -> Result<Flow, Gone> {
        match message {
            Message::Text(text) => {
                let parsed: Option<(u64, Value)> = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| Some((v["op"].as_u64()?, v["d"].clone())));
                match parsed {
                    Some((op, d)) => self.dispatch(op, d).await,
                    None => Ok(self.violation(4002, "Failed to decode payload", text.to_string())),
                }
            }
            Message::Binary(bytes) => match (self.guild.is_some(), bytes.split_first()) {
                (false, _) => Ok(self.violation(
                    4003,
                    "Not authenticated",
                    "binary message before Identify".into(),
                )),
                (true, Some((26, payload))) => self.dave(26, Input::KeyPackage(payload)).await,
                (true, Some((28, payload))) => self.dave(28, Input::CommitWelcome(payload)).await,
                (true, op) => Ok(self.violation(
                    4001,
                    "Unknown opcode",
                    format!("binary op {:?}", op.map(|o| o.0)),
                )),
            },
            Message::Close(frame) => {
                let code = frame.map_or(1005, |f| u16::from(f.code));
                if let Some(guild) = &self.guild {
                    guild.lock().view.client_closed_with.push(code);
                }
                Ok(Flow::Continue)
            }
            _ => Ok(Flow::Continue),
        }
    }

    async fn dispatch(&mut self, op: u64, d: Value) -> Result<Flow, Gone> {
        if self.guild.is_none() {
            return match op {
                0 => self.identify(d).await,
                7 => self.resume(d).await,
                _ => Ok(self.violation(
                    4003,
                    "Not authenticated",
                    format!("op {op} before Identify"),
                )),
            };
        }
        match op {
            0 => Ok(self.violation(4005, "Already authenticated", "second Identify".into())),
            7 => Ok(self.violation(
                4005,
                "Already authenticated",
                "Resume on an identified connection".into(),
            )),
            1 => self.select_protocol(d).await,
            3 => self.heartbeat(d).await,
            5 => Ok(self.speaking(d)),
            23 => self.dave(23, Input::TransitionReady(&d)).await,
            31 => self.dave(31, Input::InvalidCommitWelcome(&d)).await,
            _ => Ok(self.violation(4001, "Unknown opcode", format!("op {op}"))),
        }
    }

    fn note_version(&self, state: &mut GuildState) {
        state.view.gateway_version = self.version;
        if self.path != "/" || self.version != Some(8) {
            state.error(format!(
                "gateway request path {:?} with version {:?}, expected \"/?v=8\"",
                self.path, self.version
            ));
        }
    }

    async fn identify(&mut self, d: Value) -> Result<Flow, Gone> {
        self.attach(|gateway| gateway.accept_identify(&d)).await
    }

    async fn resume(&mut self, d: Value) -> Result<Flow, Gone> {
        self.attach(|gateway| gateway.accept_resume(&d)).await
    }

    /// Runs an Identify or Resume check; on success becomes the guild's current
    /// connection and sends the answers.
    async fn attach(
        &mut self,
        accept: impl FnOnce(&Self) -> Result<(Arc<Guild>, Vec<Message>), Flow>,
    ) -> Result<Flow, Gone> {
        let (guild, messages) = match accept(self) {
            Ok(accepted) => accepted,
            Err(flow) => return Ok(flow),
        };
        guild.lock().gateway = Some((self.id, self.scripts_tx.clone()));
        self.guild = Some(guild);
        for message in messages {
            self.send(message).await?;
        }
        Ok(Flow::Continue)
    }

    /// Checks an Identify (§7.1 step 2) and starts a session: Ready, the DAVE members
    /// already in the channel (op 11) and, if asked, the ops a client must ignore.
    fn accept_identify(&self, d: &Value) -> Result<(Arc<Guild>, Vec<Message>), Flow> {
        let Some(guild_id) = d["server_id"].as_str().and_then(|s| s.parse::<u64>().ok()) else {
            self.shared
                .stray(format!("Identify without a numeric server_id: {d}"));
            return Err(Flow::Close(4004, "Authentication failed".into()));
        };
        let guild = self.shared.guild(guild_id);
        let registration = lock(&self.shared.registrations)
            .get(&guild_id)
            .map(|r| (r.user_id, r.session_id.clone(), r.token.clone()));
        let mut state = guild.lock();
        state.view.identifies += 1;
        let max_dave = d["max_dave_protocol_version"].as_u64();
        state.view.max_dave_protocol_version = max_dave;
        self.note_version(&mut state);

        let user_id = d["user_id"].as_str().and_then(|s| s.parse::<u64>().ok());
        let session_id = d["session_id"].as_str().unwrap_or_default();
        let token = d["token"].as_str().unwrap_or_default();
        let refusal = match &registration {
            None => Some(format!(
                "Identify for guild {guild_id}, which has no voice state"
            )),
            Some((user, _, _)) if user_id != Some(*user) => Some(format!(
                "Identify user_id {}, expected {user}",
                d["user_id"]
            )),
            Some((_, session, _)) if session != session_id => Some(format!(
                "Identify session_id {session_id:?}, expected {session:?}"
            )),
            // A wrong token is how tests script 4004, so it is no violation.
            _ => None,
        };
        let token_ok = registration.as_ref().is_some_and(|r| r.2 == token);
        if refusal.is_some() || !token_ok {
            if let Some(error) = refusal {
                state.error(error);
            }
            state.view.closed_with.push(4004);
            return Err(Flow::Close(4004, "Authentication failed".into()));
        }
        if self.shared.options.require_dave && max_dave.unwrap_or(0) == 0 {
            state.view.closed_with.push(4017);
            return Err(Flow::Close(4017, "E2EE/DAVE protocol required".into()));
        }

        let old = state.session.as_ref().map(|s| s.ssrc);
        let ssrc = self.shared.new_ssrc(&guild, old);
        let mut session = Session::new(session_id.to_owned(), token.to_owned(), ssrc);
        let ready = json!({
            "ssrc": ssrc,
            "ip": "127.0.0.1",
            "port": self.shared.udp_port,
            "modes": self.shared.options.modes,
            "heartbeat_interval": 1,
        });
        let mut texts = vec![session.stamp(2, ready, true)];
        if self.shared.options.dave && max_dave.unwrap_or(0) >= 1 {
            let (dave, after_ready) = Dave::new(
                self.shared.dave_sender.clone(),
                user_id.expect("checked above"),
                channel_id(guild_id),
                &self.shared.options.dave_members_before,
            );
            texts.extend(after_ready.into_iter().map(|m| session.stamp_outgoing(m)));
            session.dave = Some(dave);
        }
        if self.shared.options.send_unknown_ops {
            let user = (guild_id ^ 0x5EED).to_string();
            for (op, d) in [
                (
                    12,
                    json!({ "audio_ssrc": ssrc ^ 1, "video_ssrc": 0, "rtx_ssrc": 0 }),
                ),
                (18, json!({ "flags": 2, "user_id": user })),
                (20, json!({ "platform": 0, "user_id": user })),
                (11, json!({ "user_ids": [user] })),
                (13, json!({ "user_id": user })),
            ] {
                texts.push(session.stamp(op, d, true));
            }
        }
        state.session = Some(session);
        state.view.ssrc = ssrc;
        state.view.mode = None;
        drop(state);
        Ok((guild, texts))
    }

    /// Checks a Resume (§1.5) against the guild's session: Resumed, then every
    /// replayable message after `seq_ack`.
    fn accept_resume(&self, d: &Value) -> Result<(Arc<Guild>, Vec<Message>), Flow> {
        let invalid = || Flow::Close(4006, "Session no longer valid".into());
        let guild = d["server_id"]
            .as_str()
            .and_then(|s| s.parse::<u64>().ok())
            .and_then(|id| self.shared.find_guild(id));
        let Some(guild) = guild else {
            self.shared
                .stray(format!("Resume for an unknown guild: {d}"));
            return Err(invalid());
        };
        let mut state = guild.lock();
        let matches = state.session.as_ref().is_some_and(|s| {
            d["session_id"].as_str() == Some(&s.session_id) && d["token"].as_str() == Some(&s.token)
        });
        if !matches {
            state.view.closed_with.push(4006);
            return Err(invalid());
        }
        self.note_version(&mut state);
        let GuildState { view, session, .. } = &mut *state;
        let session = session.as_mut().expect("checked above");
        let seq_ack = d["seq_ack"].as_i64().unwrap_or_else(|| {
            view.errors.push(format!("v8 Resume without seq_ack: {d}"));
            -1
        });
        if seq_ack > session.last_seq {
            view.errors.push(format!(
                "Resume seq_ack {seq_ack} beyond the last seq sent ({})",
                session.last_seq
            ));
        }
        let oldest = session
            .replay
            .front()
            .map_or(session.last_seq + 1, |(seq, _)| *seq);
        if seq_ack + 1 < oldest {
            view.closed_with.push(4006);
            return Err(invalid());
        }
        view.resumes += 1;
        let mut texts = vec![Message::text(json!({ "op": 9, "d": null }).to_string())];
        let missed = session.replay.iter().filter(|(seq, _)| *seq > seq_ack);
        texts.extend(missed.map(|(_, message)| message.clone()));
        drop(state);
        Ok((guild, texts))
    }

    async fn select_protocol(&mut self, d: Value) -> Result<Flow, Gone> {
        if d["protocol"].as_str() != Some("udp") {
            return Ok(self.violation(4012, "Unknown protocol", format!("Select Protocol {d}")));
        }
        let data = &d["data"];
        let mode = data["mode"].as_str().unwrap_or_default().to_owned();
        if !self.shared.options.modes.contains(&mode) {
            return Ok(self.violation(
                4016,
                "Unknown encryption mode",
                format!("mode {:?}", data["mode"]),
            ));
        }
        let key: [u8; 32] = rand::random();
        let (d4, external_sender) = {
            let guild = self.guild.as_ref().expect("identified");
            let mut state = guild.lock();
            let GuildState { view, session, .. } = &mut *state;
            let session = session.as_mut().expect("a session after Identify");
            let claimed = (data["address"].as_str(), data["port"].as_u64());
            match session.udp_source {
                None => view
                    .errors
                    .push("Select Protocol before IP discovery".into()),
                Some(source) => {
                    let ip = source.ip().to_string();
                    if claimed != (Some(ip.as_str()), Some(u64::from(source.port()))) {
                        view.errors.push(format!(
                            "Select Protocol address {}:{}, but discovery came from {source}",
                            data["address"], data["port"]
                        ));
                    }
                }
            }
            if session.cipher.is_some() {
                view.errors
                    .push("a second Select Protocol in one session".into());
            }
            session.cipher = Cipher::new(&mode, &key);
            if session.cipher.is_none() {
                view.errors.push(format!(
                    "offered mode {mode:?} is not one the fake can open"
                ));
            }
            view.mode = Some(mode.clone());
            let external_sender = session.dave.as_ref().map(Dave::external_sender);
            view.dave_protocol_version = u16::from(external_sender.is_some());
            let d4 = json!({
                "mode": mode,
                "secret_key": key,
                "dave_protocol_version": view.dave_protocol_version,
            });
            (d4, external_sender)
        };
        self.send_stamped(4, d4, true).await?;
        self.send_outgoing(external_sender.into_iter().collect())
            .await?;
        Ok(Flow::Continue)
    }

    async fn heartbeat(&mut self, d: Value) -> Result<Flow, Gone> {
        let now = Instant::now();
        let t = {
            let guild = self.guild.as_ref().expect("identified");
            let mut state = guild.lock();
            state.view.heartbeats += 1;
            state.view.heartbeat_at.push(now);
            let last_seq = state.session.as_ref().map_or(0, |s| s.last_seq);
            if !d.is_object() {
                state.error(format!("heartbeat d must be {{t, seq_ack}} in v8, got {d}"));
                d.clone()
            } else {
                match d["seq_ack"].as_i64() {
                    None => state.error(format!("v8 heartbeat without seq_ack: {d}")),
                    Some(ack) => {
                        state.view.last_seq_ack = Some(ack);
                        if ack > last_seq {
                            state.error(format!(
                                "heartbeat seq_ack {ack} beyond the last seq sent ({last_seq})"
                            ));
                        }
                    }
                }
                d["t"].clone()
            }
        };
        if self.shared.options.ack_heartbeats {
            self.send_stamped(6, json!({ "t": t }), false).await?;
        }
        Ok(Flow::Continue)
    }

    fn speaking(&mut self, d: Value) -> Flow {
        let now = Instant::now();
        let guild = self.guild.as_ref().expect("identified");
        let mut state = guild.lock();
        let GuildState { view, session, .. } = &mut *state;
        let session = session.as_mut().expect("a session after Identify");
        let Some(flags) = d["speaking"].as_u64() else {
            view.errors
                .push(format!("Speaking without numeric flags: {d}"));
            return Flow::Continue;
        };
        view.speaking.push((flags, now));
        if d["ssrc"].as_u64() != Some(u64::from(session.ssrc)) {
            view.errors.push(format!(
                "Speaking ssrc {}, expected {}",
                d["ssrc"], session.ssrc
            ));
        }
        if d["delay"].as_u64() != Some(0) {
            view.errors
                .push(format!("Speaking delay {}, bots must send 0", d["delay"]));
        }
        session.speaking.on_op(flags, now);
        Flow::Continue
    }
}
