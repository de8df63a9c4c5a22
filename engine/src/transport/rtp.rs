//! The 12-byte RTP header Discord expects, and the per-connection counters that
//! advance with every packet sent (audio and silence alike).

use std::hash::{BuildHasher, Hasher};

use crate::audio::FRAME_SAMPLES;

/// Length of the RTP header we send: no CSRCs, no extension.
pub const RTP_HEADER_LEN: usize = 12;

/// First header byte: version 2, no padding, no extension, no CSRCs.
pub const RTP_VERSION_BYTE: u8 = 0x80;

/// Second header byte: marker clear, payload type 120 (Discord's Opus).
pub const RTP_PAYLOAD_TYPE_OPUS: u8 = 0x78;

/// The RTP timestamp advance per packet: one 20 ms frame at 48 kHz.
pub const TIMESTAMP_STEP: u32 = FRAME_SAMPLES;

/// The counters of one voice connection's RTP stream.
///
/// `seq` and `timestamp` go into the header; `nonce` is the transport encryption
/// counter appended to each packet. All three advance by one packet per
/// [`advance`](Self::advance) and wrap. The nonce must never repeat under one key, so
/// a resumed connection keeps its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpState {
    /// The synchronisation source from the gateway's Ready.
    pub ssrc: u32,
    /// Sequence number of the next packet.
    pub seq: u16,
    /// RTP timestamp of the next packet, in 48 kHz samples.
    pub timestamp: u32,
    /// Transport nonce of the next packet.
    pub nonce: u32,
}

impl RtpState {
    /// A stream for `ssrc` starting at unpredictable sequence, timestamp and nonce
    /// values (a cheap seed, not a cryptographic one: RTP only asks that they differ
    /// between streams).
    pub fn new(ssrc: u32) -> Self {
        let seed = seed();
        RtpState {
            ssrc,
            seq: seed as u16,
            timestamp: (seed >> 16) as u32,
            nonce: (seed >> 48) as u32 ^ (seed as u32).rotate_left(13),
        }
    }

    /// A stream starting at explicit values (tests, or continuing a stream).
    pub const fn with_values(ssrc: u32, seq: u16, timestamp: u32, nonce: u32) -> Self {
        RtpState {
            ssrc,
            seq,
            timestamp,
            nonce,
        }
    }

    /// The header of the next packet.
    pub fn header(&self) -> [u8; RTP_HEADER_LEN] {
        let mut h = [0u8; RTP_HEADER_LEN];
        h[0] = RTP_VERSION_BYTE;
        h[1] = RTP_PAYLOAD_TYPE_OPUS;
        h[2..4].copy_from_slice(&self.seq.to_be_bytes());
        h[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        h[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        h
    }

    /// Moves on to the next packet: sequence +1, timestamp +960, nonce +1, wrapping.
    pub fn advance(&mut self) {
        self.seq = self.seq.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(TIMESTAMP_STEP);
        self.nonce = self.nonce.wrapping_add(1);
    }
}

/// 64 unpredictable bits: std's hasher keys come from the OS once per thread and
/// change per `RandomState`; the clock adds variation between processes.
fn seed() -> u64 {
    let mut h = std::hash::RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.write_u128(nanos);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_bytes() {
        let s = RtpState::with_values(0x0102_0304, 0xA1B2, 0xC1C2_C3C4, 7);
        assert_eq!(
            s.header(),
            [0x80, 0x78, 0xA1, 0xB2, 0xC1, 0xC2, 0xC3, 0xC4, 0x01, 0x02, 0x03, 0x04]
        );
    }

    #[test]
    fn advance_steps_and_wraps() {
        let mut s = RtpState::with_values(1, u16::MAX, u32::MAX - 959, u32::MAX);
        s.advance();
        assert_eq!((s.seq, s.timestamp, s.nonce), (0, 0, 0));
        s.advance();
        assert_eq!((s.seq, s.timestamp, s.nonce), (1, 960, 1));
        assert_eq!(s.ssrc, 1);
        assert_eq!(&s.header()[2..8], &[0, 1, 0, 0, 0x03, 0xC0]);
    }

    #[test]
    fn random_starts_differ() {
        let a = RtpState::new(5);
        let b = RtpState::new(5);
        assert_eq!(a.ssrc, 5);
        assert_ne!((a.seq, a.timestamp, a.nonce), (b.seq, b.timestamp, b.nonce));
    }
}
