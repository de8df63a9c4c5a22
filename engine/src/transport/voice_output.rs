//! The output of a player with a voice connection: seals each Opus packet as RTP and
//! sends it with one non-blocking `send` on a connected UDP socket.
//!
//! Besides audio it keeps the stream well-formed when audio stops (five Opus silence
//! frames, then "not speaking") and keeps the UDP path open while idle (a keepalive
//! datagram every 5 s). Everything runs on the tick thread without allocating,
//! locking, blocking or logging; the control plane watches [`VoiceOutputStats`] and
//! the `speaking` flag.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use super::crypto::{TransportCipher, SEAL_OVERHEAD};
use super::dave::{DaveEncryptor, SenderKey, DAVE_OVERHEAD};
use super::rtp::{RtpState, RTP_HEADER_LEN};
use crate::audio::FRAMES_PER_SECOND;
use crate::output::{DatagramBuf, PacketOutput, SendOutcome};
use crate::prefetch::prefetch_ref;
use crate::ring::MAX_OPUS_PACKET;

/// The Opus frame Discord expects as silence: a 20 ms CELT frame with no energy.
pub const OPUS_SILENCE: [u8; 3] = [0xF8, 0xFF, 0xFE];

/// Silence frames sent after audio stops, so receivers stop interpolating.
pub const SILENCE_FRAMES: u8 = 5;

/// Ticks between UDP keepalives: 5 s.
pub const KEEPALIVE_TICKS: u32 = 5 * FRAMES_PER_SECOND;

/// Length of a UDP keepalive: a little-endian u32 counter and four zero bytes.
pub const KEEPALIVE_LEN: usize = 8;

/// The largest datagram a [`VoiceOutput`] sends.
pub const MAX_PACKET: usize = RTP_HEADER_LEN + MAX_OPUS_PACKET + DAVE_OVERHEAD + SEAL_OVERHEAD;

/// Counters one voice output publishes; all only grow.
#[derive(Debug, Default)]
pub struct VoiceOutputStats {
    /// Audio packets that left (silence frames not included).
    pub packets_sent: AtomicU64,
    /// Of those, the ones that left DAVE-encrypted.
    pub dave_packets_sent: AtomicU64,
    /// Silence frames that left.
    pub silence_sent: AtomicU64,
    /// Keepalives that left.
    pub keepalives_sent: AtomicU64,
    /// Datagrams dropped because the socket buffer was full.
    pub would_block: AtomicU64,
    /// Datagrams dropped because the send failed (e.g. ICMP port unreachable), or
    /// audio packets that could not be sealed (oversized).
    pub errors: AtomicU64,
}

/// This thread's copies of the [`VoiceOutputStats`] counters. The engine is their
/// only writer, so it counts here and publishes each new value with a plain store: a
/// `fetch_add` on a cold shared line stalls the tick for the whole miss (a locked
/// instruction waits for the line), a store retires at once and completes in the
/// background.
#[derive(Debug, Default)]
struct Counts {
    packets_sent: u64,
    dave_packets_sent: u64,
    silence_sent: u64,
    keepalives_sent: u64,
    would_block: u64,
    errors: u64,
}

/// Counts one more in `local` and publishes it to `shared`.
fn bump(local: &mut u64, shared: &AtomicU64) {
    *local += 1;
    shared.store(*local, Ordering::Relaxed);
}

/// A [`PacketOutput`] that speaks Discord's voice transport on one connected socket.
///
/// The layout is fixed (`repr(C)`) so that everything a packet touches besides the
/// ciphers sits in the first cache line, and the datagram is framed in the tick
/// thread's shared [`DatagramBuf`], not in a buffer of each output's own: with
/// thousands of players per tick thread each output is cold when its turn comes, and
/// every extra line is a cache miss per packet. [`PacketOutput::prefetch`] loads the
/// lines a packet will touch ahead of time.
#[derive(Debug)]
#[repr(C)]
pub struct VoiceOutput {
    rtp: RtpState,
    /// Ticks since the last keepalive.
    ticks: u32,
    keepalive: u32,
    /// Silence frames still to send.
    silence_left: u8,
    /// Whether audio frames are DAVE-encrypted now.
    dave_on: bool,
    /// This thread's copy of `speaking`, so a packet reads no shared line.
    speaking_now: bool,
    socket: mio::net::UdpSocket,
    stats: Arc<VoiceOutputStats>,
    speaking: Arc<AtomicBool>,
    /// Bumped after every change of `speaking`, so the control plane's watcher can
    /// skip looking at thousands of flags in a tick where none changed.
    speaking_changes: Option<Arc<AtomicU64>>,
    counts: Counts,
    cipher: TransportCipher,
    /// DAVE media encryption; kept when DAVE is switched off, so that installing the
    /// same secret again continues its nonce sequence instead of reusing nonces.
    dave: Option<DaveEncryptor>,
}

impl VoiceOutput {
    /// An output on `socket`, which the control plane has bound and connected to the
    /// voice server's UDP address (after IP discovery). The socket is made non-blocking
    /// here.
    pub fn new(
        socket: std::net::UdpSocket,
        cipher: TransportCipher,
        rtp: RtpState,
    ) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        Ok(VoiceOutput {
            socket: mio::net::UdpSocket::from_std(socket),
            cipher,
            rtp,
            dave: None,
            dave_on: false,
            speaking_now: false,
            counts: Counts::default(),
            stats: Arc::default(),
            speaking: Arc::default(),
            speaking_changes: None,
            silence_left: 0,
            ticks: 0,
            keepalive: 0,
        })
    }

    /// The published counters.
    pub fn stats(&self) -> Arc<VoiceOutputStats> {
        self.stats.clone()
    }

    /// True while audio flows or trailing silence is pending; false once the silence
    /// after a stop has been sent. The control plane mirrors it in Speaking (op 5).
    pub fn speaking(&self) -> Arc<AtomicBool> {
        self.speaking.clone()
    }

    /// Has every change of [`Self::speaking`] counted in `changes` (shared by all the
    /// outputs one watcher watches), after the flag is stored.
    pub fn count_speaking_changes(&mut self, changes: Arc<AtomicU64>) {
        self.speaking_changes = Some(changes);
    }

    /// Stores the speaking flag and counts the change.
    fn set_speaking(&mut self, now: bool) {
        self.speaking_now = now;
        self.speaking.store(now, Ordering::Release);
        if let Some(changes) = &self.speaking_changes {
            changes.fetch_add(1, Ordering::Release);
        }
    }

    /// The counters the next packet will carry.
    pub fn rtp_state(&self) -> RtpState {
        self.rtp
    }

    /// Whether audio frames are DAVE-encrypted now.
    pub fn dave_active(&self) -> bool {
        self.dave_on
    }

    /// DAVE-encrypts (when a key is installed) and seals `payload` in `buf` as the
    /// next RTP packet, then sends it.
    fn send_rtp(&mut self, payload: &[u8], buf: &mut DatagramBuf) -> SendOutcome {
        if payload.len() > MAX_OPUS_PACKET {
            bump(&mut self.counts.errors, &self.stats.errors);
            return SendOutcome::Failed;
        }
        let buf = &mut buf.0;
        buf[..RTP_HEADER_LEN].copy_from_slice(&self.rtp.header());
        buf[RTP_HEADER_LEN..][..payload.len()].copy_from_slice(payload);
        let framed = match &mut self.dave {
            Some(dave) if self.dave_on => {
                dave.encrypt_in_place(&mut buf[RTP_HEADER_LEN..], payload.len())
            }
            _ => Ok(payload.len()),
        };
        let sealed = framed.map_err(|_| ()).and_then(|len| {
            self.cipher
                .seal_in_place(buf, len, self.rtp.nonce)
                .map_err(|_| ())
        });
        // Sent or not, these counters are used up: a dropped packet reads as loss to the
        // receiver, and a nonce is never reused.
        self.rtp.advance();
        match sealed {
            Ok(len) => self.send_datagram(&buf[..len]),
            Err(()) => {
                bump(&mut self.counts.errors, &self.stats.errors);
                SendOutcome::Failed
            }
        }
    }

    /// Sends `datagram` without blocking, counting drops.
    fn send_datagram(&mut self, datagram: &[u8]) -> SendOutcome {
        match self.socket.send(datagram) {
            Ok(_) => SendOutcome::Sent,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                bump(&mut self.counts.would_block, &self.stats.would_block);
                SendOutcome::WouldBlock
            }
            Err(_) => {
                bump(&mut self.counts.errors, &self.stats.errors);
                SendOutcome::Failed
            }
        }
    }

    /// Counts a tick and sends the keepalive when one is due.
    fn count_tick(&mut self, buf: &mut DatagramBuf) {
        self.ticks += 1;
        if self.ticks < KEEPALIVE_TICKS {
            return;
        }
        self.ticks = 0;
        let datagram = &mut buf.0[..KEEPALIVE_LEN];
        datagram[..4].copy_from_slice(&self.keepalive.to_le_bytes());
        datagram[4..].fill(0);
        self.keepalive = self.keepalive.wrapping_add(1);
        if self.send_datagram(datagram) == SendOutcome::Sent {
            bump(
                &mut self.counts.keepalives_sent,
                &self.stats.keepalives_sent,
            );
        }
    }
}

impl PacketOutput for VoiceOutput {
    fn send(&mut self, opus: &[u8], buf: &mut DatagramBuf) -> SendOutcome {
        self.silence_left = 0;
        if !self.speaking_now {
            self.set_speaking(true);
        }
        let outcome = self.send_rtp(opus, buf);
        if outcome == SendOutcome::Sent {
            bump(&mut self.counts.packets_sent, &self.stats.packets_sent);
            if self.dave_on && opus != OPUS_SILENCE {
                bump(
                    &mut self.counts.dave_packets_sent,
                    &self.stats.dave_packets_sent,
                );
            }
        }
        self.count_tick(buf);
        outcome
    }

    /// Schedules the trailing silence, unless nothing was said since the last one.
    fn audio_stopped(&mut self) {
        if self.speaking_now {
            self.silence_left = SILENCE_FRAMES;
        }
    }

    fn tick_idle(&mut self, buf: &mut DatagramBuf) {
        if self.silence_left > 0 {
            self.silence_left -= 1;
            if self.send_rtp(&OPUS_SILENCE, buf) == SendOutcome::Sent {
                bump(&mut self.counts.silence_sent, &self.stats.silence_sent);
            }
            if self.silence_left == 0 {
                self.set_speaking(false);
            }
        }
        self.count_tick(buf);
    }

    fn prefetch(&self) {
        // Addresses only: reading a field here (say, whether DAVE is on) would stall
        // on the very miss this is meant to start early.
        prefetch_ref(self, std::mem::offset_of!(VoiceOutput, cipher));
        prefetch_ref(&self.cipher, std::mem::size_of::<TransportCipher>());
        prefetch_ref(&self.dave, std::mem::size_of::<Option<DaveEncryptor>>());
    }

    fn set_sender_key(&mut self, key: Option<SenderKey>) {
        self.dave_on = key.is_some();
        match (&mut self.dave, key) {
            (Some(dave), Some(key)) => dave.install(key),
            (dave @ None, Some(key)) => *dave = Some(DaveEncryptor::new(key)),
            (_, None) => {}
        }
    }
}
