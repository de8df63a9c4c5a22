//! The fake's UDP side: one socket, one busy-polling std thread; IP discovery (§2),
//! keepalives, and opening and checking every RTP packet (§3, §7.2).

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::Aes256Gcm;
use chacha20poly1305::XChaCha20Poly1305;
use quaver_engine::codec::FrameDecoder;
use quaver_engine::opus::OpusDecoder;

use super::dave::Frame;
use super::{
    lock, Guild, GuildState, ReceivedPacket, Script, Session, Shared, FRAME_SAMPLES, MAX_PCM,
    MODE_AES, MODE_XCHACHA, SILENCE,
};

/// The fixed RTP header without CSRCs or extension.
const RTP_HEADER: usize = 12;
/// The AEAD tag both modes append.
const TAG: usize = 16;
/// The transport nonce counter appended after the tag.
const TRAILER: usize = 4;
/// IP discovery request and response size (§2).
const DISCOVERY_LEN: usize = 74;
/// UDP keepalive size (discord.js style: u32 counter + 4 zero bytes).
const KEEPALIVE_LEN: usize = 8;
/// RTP payload type for Opus.
const OPUS_PT: u8 = 120;
/// How long the receive thread keeps spinning after the last datagram; after that it
/// naps 1 ms at a time (a napping thread is not woken by a send, so it costs the
/// sender nothing; it only delays the first arrival stamp after a quiet spell).
const SPIN_AFTER_TRAFFIC: Duration = Duration::from_secs(2);
/// Receive buffer asked for (the kernel caps it at `net.core.rmem_max`, 4 MiB on this
/// machine kind): room for bursts while the receive thread is descheduled.
const RECEIVE_BUFFER: usize = 4 << 20;

/// Receive buffer asked for past `rmem_max` where the process may (root, or
/// `CAP_NET_ADMIN`): with thousands of connections, 4 MiB is about 30 ms of traffic,
/// less than a scheduling hiccup of the receive thread on a shared core.
const FORCED_RECEIVE_BUFFER: usize = 64 << 20;

/// `SO_RCVBUFFORCE`; silently nothing where not permitted.
fn force_receive_buffer(socket: &socket2::Socket, bytes: usize) {
    use std::os::fd::AsRawFd;
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: a valid socket fd and a pointer to a c_int of the size passed.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// The one non-blocking UDP socket on `127.0.0.1:0`, with a large receive buffer.
pub(super) fn udp_socket() -> UdpSocket {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    let _ = socket.set_recv_buffer_size(RECEIVE_BUFFER);
    force_receive_buffer(&socket, FORCED_RECEIVE_BUFFER);
    socket.set_nonblocking(true).unwrap();
    let any_port: SocketAddr = "127.0.0.1:0".parse().unwrap();
    socket.bind(&any_port.into()).unwrap();
    socket.into()
}

/// A negotiated transport cipher (§3.2).
pub(super) enum Cipher {
    Aes(Box<Aes256Gcm>),
    XChaCha(Box<XChaCha20Poly1305>),
}

impl Cipher {
    pub(super) fn new(mode: &str, key: &[u8; 32]) -> Option<Cipher> {
        match mode {
            MODE_AES => Some(Cipher::Aes(Box::new(Aes256Gcm::new(key.into())))),
            MODE_XCHACHA => Some(Cipher::XChaCha(Box::new(XChaCha20Poly1305::new(
                key.into(),
            )))),
            _ => None,
        }
    }

    /// Decrypts `body` in place: the AEAD nonce is the 4 trailer bytes followed by zeros.
    fn open(&self, aad: &[u8], body: &mut [u8], tag: &[u8], trailer: &[u8]) -> bool {
        match self {
            Cipher::Aes(cipher) => {
                let mut nonce = [0u8; 12];
                nonce[..TRAILER].copy_from_slice(trailer);
                cipher
                    .decrypt_in_place_detached(&nonce.into(), aad, body, tag.into())
                    .is_ok()
            }
            Cipher::XChaCha(cipher) => {
                let mut nonce = [0u8; 24];
                nonce[..TRAILER].copy_from_slice(trailer);
                cipher
                    .decrypt_in_place_detached(&nonce.into(), aad, body, tag.into())
                    .is_ok()
            }
        }
    }
}

/// Datagrams read per `recvmmsg` call.
const BATCH: usize = 64;

/// Buffers for one `recvmmsg` call: with thousands of connections one syscall per
/// datagram would cost the receive thread more than it can spare.
struct Batch {
    buffers: Box<[[u8; 2048]; BATCH]>,
    addresses: Box<[libc::sockaddr_storage; BATCH]>,
    iovecs: Box<[libc::iovec; BATCH]>,
    headers: Box<[libc::mmsghdr; BATCH]>,
}

// SAFETY: the raw pointers in `iovecs` and `headers` point into the batch's own boxes.
unsafe impl Send for Batch {}

impl Batch {
    fn new() -> Self {
        fn zeroed<T>() -> T {
            // SAFETY: used only for plain C structs, for which all-zero is valid.
            unsafe { std::mem::zeroed() }
        }
        let mut batch = Batch {
            buffers: Box::new([[0; 2048]; BATCH]),
            addresses: Box::new(zeroed()),
            iovecs: Box::new(zeroed()),
            headers: Box::new(zeroed()),
        };
        for i in 0..BATCH {
            batch.iovecs[i] = libc::iovec {
                iov_base: batch.buffers[i].as_mut_ptr().cast(),
                iov_len: 2048,
            };
        }
        batch
    }

    /// Reads up to [`BATCH`] datagrams without blocking; how many.
    fn receive(&mut self, socket: &UdpSocket) -> std::io::Result<usize> {
        use std::os::fd::AsRawFd;
        for i in 0..BATCH {
            let header = &mut self.headers[i].msg_hdr;
            header.msg_name = (&mut self.addresses[i] as *mut libc::sockaddr_storage).cast();
            header.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
            header.msg_iov = &mut self.iovecs[i];
            header.msg_iovlen = 1;
        }
        // SAFETY: every header points at a live buffer and address slot of this batch.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                self.headers.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// Datagram `i` of the last [`Self::receive`] and its source (IPv4: the fake binds
    /// 127.0.0.1).
    fn datagram(&mut self, i: usize) -> (&mut [u8], SocketAddr) {
        let len = self.headers[i].msg_len as usize;
        // SAFETY: the kernel wrote a sockaddr_in for this IPv4 socket.
        let address = unsafe {
            *(&self.addresses[i] as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>()
        };
        let ip = std::net::Ipv4Addr::from(u32::from_be(address.sin_addr.s_addr));
        let source = SocketAddr::from((ip, u16::from_be(address.sin_port)));
        (&mut self.buffers[i][..len], source)
    }
}

/// The receive thread's state: the socket and the addresses learned at discovery.
pub(super) struct Receiver {
    shared: Arc<Shared>,
    socket: UdpSocket,
    peers: HashMap<SocketAddr, Arc<Guild>>,
    pcm: Vec<i16>,
}

impl Receiver {
    pub(super) fn new(shared: Arc<Shared>, socket: UdpSocket) -> Self {
        Receiver {
            shared,
            socket,
            peers: HashMap::new(),
            pcm: vec![0; MAX_PCM],
        }
    }

    pub(super) fn run(&mut self, stop: &AtomicBool) {
        let mut batch = Batch::new();
        let mut last_traffic = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            match batch.receive(&self.socket) {
                Ok(count) => {
                    let arrived = Instant::now();
                    last_traffic = arrived;
                    for i in 0..count {
                        let (data, source) = batch.datagram(i);
                        self.datagram(data, source, arrived);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if last_traffic.elapsed() < SPIN_AFTER_TRAFFIC {
                        for _ in 0..64 {
                            std::hint::spin_loop();
                        }
                        std::thread::yield_now();
                    } else {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                // ICMP errors from earlier sends surface here; nothing to do.
                Err(_) => {}
            }
        }
    }

    fn datagram(&mut self, data: &mut [u8], source: SocketAddr, arrived: Instant) {
        if data.len() == DISCOVERY_LEN && data[..2] == [0, 1] {
            return self.discovery(data, source);
        }
        let Some(guild) = self.peers.get(&source) else {
            let ssrc = (data.len() >= RTP_HEADER)
                .then(|| u32::from_be_bytes(data[8..12].try_into().unwrap()));
            let error = format!(
                "{} bytes from {source}, which did no IP discovery",
                data.len()
            );
            match ssrc.and_then(|s| lock(&self.shared.ssrcs).get(&s).cloned()) {
                Some(guild) => guild.lock().error(error),
                None => self.shared.stray(error),
            }
            return;
        };
        let mut state = guild.lock();
        if data.len() == KEEPALIVE_LEN {
            state.view.keepalives += 1;
            return;
        }
        let decode = self.shared.options.decode_payloads;
        rtp(&mut state, data, arrived, decode, &mut self.pcm);
    }

    /// Answers IP discovery (§2) and learns `source` for the SSRC's guild.
    fn discovery(&mut self, data: &[u8], source: SocketAddr) {
        let ssrc = u32::from_be_bytes(data[4..8].try_into().unwrap());
        let Some(guild) = lock(&self.shared.ssrcs).get(&ssrc).cloned() else {
            return self.shared.stray(format!(
                "IP discovery from {source} for unknown SSRC {ssrc}"
            ));
        };
        {
            let mut state = guild.lock();
            if data[2..4] != [0, 70] {
                state.error(format!(
                    "IP discovery length field {:?}, expected 70",
                    &data[2..4]
                ));
            }
            if let Some(session) = state.session.as_mut().filter(|s| s.ssrc == ssrc) {
                session.udp_source = Some(source);
            }
        }
        self.peers.insert(source, guild);
        let mut reply = [0u8; DISCOVERY_LEN];
        reply[..2].copy_from_slice(&2u16.to_be_bytes());
        reply[2..4].copy_from_slice(&70u16.to_be_bytes());
        reply[4..8].copy_from_slice(&ssrc.to_be_bytes());
        let ip = source.ip().to_string();
        reply[8..8 + ip.len()].copy_from_slice(ip.as_bytes());
        reply[72..].copy_from_slice(&source.port().to_be_bytes());
        let _ = self.socket.send_to(&reply, source);
    }
}

/// Names a packet in error messages; formatted only when an error is recorded, so the
/// receive path does not allocate per packet.
struct At(u16);

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RTP seq {}", self.0)
    }
}

/// Opens and checks one RTP packet (§3, §7.2) and records it.
fn rtp(state: &mut GuildState, data: &mut [u8], arrived: Instant, decode: bool, pcm: &mut [i16]) {
    let GuildState {
        view,
        session,
        gateway,
    } = state;
    let errors = &mut view.errors;
    let Some(session) = session.as_mut() else {
        return errors.push("RTP before Identify".into());
    };
    if data.len() < RTP_HEADER + TAG + TRAILER {
        return errors.push(format!(
            "a {}-byte datagram is too short for RTP",
            data.len()
        ));
    }
    let version = data[0] >> 6;
    let padding = data[0] & 0x20 != 0;
    let extension = data[0] & 0x10 != 0;
    let csrcs = usize::from(data[0] & 0x0F);
    let pt = data[1] & 0x7F;
    let seq = u16::from_be_bytes([data[2], data[3]]);
    let timestamp = u32::from_be_bytes(data[4..8].try_into().unwrap());
    let ssrc = u32::from_be_bytes(data[8..12].try_into().unwrap());
    let trailer: [u8; TRAILER] = data[data.len() - TRAILER..].try_into().unwrap();
    let nonce = u32::from_be_bytes(trailer);
    let at = At(seq);
    if version != 2 {
        errors.push(format!("{at}: version {version}, expected 2"));
    }
    if pt != OPUS_PT {
        errors.push(format!("{at}: payload type {pt}, expected {OPUS_PT}"));
    }
    if padding || extension || csrcs != 0 {
        errors.push(format!(
            "{at}: P={} X={} CC={csrcs}, expected none of them",
            u8::from(padding),
            u8::from(extension)
        ));
    }
    if ssrc != session.ssrc {
        errors.push(format!("{at}: SSRC {ssrc}, expected {}", session.ssrc));
    }
    if let Some((last_seq, last_ts, last_nonce)) = session.last_packet {
        if seq != last_seq.wrapping_add(1) {
            errors.push(format!(
                "{at} follows seq {last_seq}, expected {}",
                last_seq.wrapping_add(1)
            ));
        }
        if timestamp != last_ts.wrapping_add(FRAME_SAMPLES as u32) {
            errors.push(format!(
                "{at}: timestamp {timestamp} follows {last_ts}, expected +{FRAME_SAMPLES}"
            ));
        }
        if nonce != last_nonce.wrapping_add(1) {
            errors.push(format!(
                "{at}: nonce {nonce} follows {last_nonce}, expected +1"
            ));
        }
    }
    session.last_packet = Some((seq, timestamp, nonce));
    if let Some(probe) = session.speaking.on_rtp(arrived) {
        if let Some((_, gateway)) = gateway {
            let _ = gateway.send(Script::Probe(probe));
        }
    }

    let Some(cipher) = &session.cipher else {
        return errors.push(format!("{at} before Session Description"));
    };
    let aad_len = RTP_HEADER + 4 * csrcs + if extension { 4 } else { 0 };
    if data.len() < aad_len + TAG + TRAILER {
        return errors.push(format!(
            "{at}: {} bytes cannot hold header, tag and nonce",
            data.len()
        ));
    }
    let sealed_end = data.len() - TRAILER;
    let (aad, rest) = data[..sealed_end].split_at_mut(aad_len);
    let (body, tag) = rest.split_at_mut(rest.len() - TAG);
    if !cipher.open(aad, body, tag, &trailer) {
        return errors.push(format!(
            "{at}: authentication failed ({})",
            view.mode.as_deref().unwrap_or("?")
        ));
    }
    let mut payload: &[u8] = body;
    if extension {
        let words = usize::from(u16::from_be_bytes([aad[aad_len - 2], aad[aad_len - 1]]));
        payload = payload.get(4 * words..).unwrap_or_default();
    }
    if padding {
        let pad = usize::from(payload.last().copied().unwrap_or(0));
        payload = &payload[..payload.len().saturating_sub(pad)];
    }
    let silence = payload == SILENCE;
    let frame = match session.dave.as_mut() {
        Some(dave) if !silence => dave.open_frame(payload, arrived, &at, errors, decode),
        _ => Frame::Plain,
    };
    let (opus, dave, opened) = match frame {
        // Light checking (load tests) keeps no payloads.
        Frame::Plain if !decode => (Vec::new(), false, true),
        Frame::Plain => (payload.to_vec(), false, true),
        Frame::Decrypted(opus) => (opus, true, true),
        Frame::Unopened => (Vec::new(), true, false),
    };
    if !silence && opened {
        let opus = if dave { &opus[..] } else { payload };
        if let Some(error) = check_opus(session, opus, decode, pcm) {
            errors.push(format!("{at}: {error}"));
        }
    }
    view.packets.push(ReceivedPacket {
        seq,
        timestamp,
        nonce,
        ssrc,
        opus,
        arrived,
        silence,
        dave,
    });
}

/// Why `payload` is not one 20 ms Opus frame, if it is not: its TOC first, then (if
/// `decode`) libopus with the session's decoder.
fn check_opus(
    session: &mut Session,
    payload: &[u8],
    decode: bool,
    pcm: &mut [i16],
) -> Option<String> {
    match toc_samples(payload) {
        None => return Some("payload is neither silence nor a well-framed Opus packet".into()),
        Some(FRAME_SAMPLES) => {}
        Some(n) => {
            return Some(format!(
                "Opus packet of {n} samples, expected {FRAME_SAMPLES}"
            ))
        }
    }
    if !decode {
        return None;
    }
    let decoder = session
        .decoder
        .get_or_insert_with(|| OpusDecoder::new().expect("an Opus decoder"));
    match decoder.decode(payload, pcm) {
        Ok(FRAME_SAMPLES) => None,
        Ok(n) => Some(format!(
            "Opus packet decodes to {n} samples, expected {FRAME_SAMPLES}"
        )),
        Err(_) => Some("libopus cannot decode the payload".into()),
    }
}

/// Samples per channel at 48 kHz that an Opus packet carries, from its TOC byte and
/// frame count (RFC 6716 §3.1–3.2); `None` if the framing is invalid.
fn toc_samples(packet: &[u8]) -> Option<usize> {
    let toc = *packet.first()?;
    let config = usize::from(toc >> 3);
    let per_frame = match config {
        // SILK: 10, 20, 40, 60 ms.
        0..=11 => [480, 960, 1920, 2880][config % 4],
        // Hybrid: 10, 20 ms.
        12..=15 => [480, 960][config % 2],
        // CELT: 2.5, 5, 10, 20 ms.
        _ => [120, 240, 480, 960][config % 4],
    };
    let frames = match toc & 3 {
        0 => 1,
        1 if packet.len() % 2 == 1 => 2,
        1 => return None,
        2 => 2,
        _ => match usize::from(*packet.get(1)? & 0x3F) {
            0 => return None,
            n => n,
        },
    };
    let samples = frames * per_frame;
    (samples <= 6 * FRAME_SAMPLES).then_some(samples)
}
