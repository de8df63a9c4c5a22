//! Transport encryption in the `rtpsize` layout, sealed and opened in place:
//!
//! ```text
//! | RTP header (AAD) | ciphertext | 16-byte tag | 4-byte nonce counter, big-endian |
//! ```
//!
//! The AEAD nonce is the 4 counter bytes followed by zeros: 12 bytes for AES-256-GCM,
//! 24 for XChaCha20-Poly1305. Sealing touches only the caller's buffer, so the tick
//! thread can seal without allocating.

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit};
use chacha20poly1305::XChaCha20Poly1305;

use super::mode::EncryptionMode;
use super::rtp::RTP_HEADER_LEN;

/// Length of the AEAD tag.
pub const TAG_LEN: usize = 16;

/// Length of the nonce counter appended after the tag.
pub const NONCE_SUFFIX_LEN: usize = 4;

/// Bytes sealing adds after the payload.
pub const SEAL_OVERHEAD: usize = TAG_LEN + NONCE_SUFFIX_LEN;

/// Why a packet could not be sealed or opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The buffer cannot hold header, payload, tag and nonce.
    #[error("buffer too small for header, payload, tag and nonce")]
    BufferTooSmall,
    /// A received packet is shorter than its header plus tag and nonce.
    #[error("packet too short to be a sealed RTP packet")]
    Truncated,
    /// A received packet failed authentication (wrong key, mode, nonce or tampering).
    #[error("packet failed authentication")]
    Authentication,
}

/// One connection's transport cipher: the negotiated mode with its expanded key.
pub struct TransportCipher {
    mode: EncryptionMode,
    aead: Aead,
}

enum Aead {
    Aes(Aes256Gcm),
    XChaCha(XChaCha20Poly1305),
}

impl std::fmt::Debug for TransportCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("TransportCipher")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl TransportCipher {
    /// A cipher for `mode` with the 32-byte `secret_key` from Session Description.
    pub fn new(mode: EncryptionMode, key: [u8; 32]) -> Self {
        let aead = match mode {
            EncryptionMode::Aes256GcmRtpsize => Aead::Aes(Aes256Gcm::new(&key.into())),
            EncryptionMode::XChaCha20Poly1305Rtpsize => {
                Aead::XChaCha(XChaCha20Poly1305::new(&key.into()))
            }
        };
        TransportCipher { mode, aead }
    }

    /// The negotiated mode.
    pub fn mode(&self) -> EncryptionMode {
        self.mode
    }

    /// Seals a packet in place. `packet` holds the RTP header in its first 12 bytes and
    /// `payload_len` payload bytes after it; the payload is encrypted with the header as
    /// AAD, then the tag and `nonce` (big-endian) are written after it. Returns the
    /// sealed packet's length.
    pub fn seal_in_place(
        &self,
        packet: &mut [u8],
        payload_len: usize,
        nonce: u32,
    ) -> Result<usize, CryptoError> {
        let total = RTP_HEADER_LEN + payload_len + SEAL_OVERHEAD;
        if packet.len() < total {
            return Err(CryptoError::BufferTooSmall);
        }
        let suffix = nonce.to_be_bytes();
        let (body, trailer) = packet.split_at_mut(RTP_HEADER_LEN + payload_len);
        let (header, payload) = body.split_at_mut(RTP_HEADER_LEN);
        let tag = self.encrypt(suffix, header, payload)?;
        trailer[..TAG_LEN].copy_from_slice(&tag);
        trailer[TAG_LEN..SEAL_OVERHEAD].copy_from_slice(&suffix);
        Ok(total)
    }

    /// Opens a received packet in place and returns its payload. The AAD is the RTP
    /// header with any CSRCs and extension preamble; the nonce is the last 4 bytes and
    /// the tag the 16 before them. An encrypted extension body and RTP padding are
    /// stripped from the returned payload.
    pub fn open_in_place<'a>(&self, packet: &'a mut [u8]) -> Result<&'a mut [u8], CryptoError> {
        let aad_len = aad_len(packet).ok_or(CryptoError::Truncated)?;
        let body_end = packet
            .len()
            .checked_sub(SEAL_OVERHEAD)
            .filter(|&end| end >= aad_len)
            .ok_or(CryptoError::Truncated)?;
        let extension = packet[0] & 0x10 != 0;
        let padded = packet[0] & 0x20 != 0;
        let (body, trailer) = packet.split_at_mut(body_end);
        let (aad, payload) = body.split_at_mut(aad_len);
        let mut suffix = [0u8; NONCE_SUFFIX_LEN];
        suffix.copy_from_slice(&trailer[TAG_LEN..]);
        self.decrypt(suffix, aad, payload, &trailer[..TAG_LEN])?;
        let mut start = 0;
        if extension {
            let words = u16::from_be_bytes([aad[aad_len - 2], aad[aad_len - 1]]) as usize;
            start = words * 4;
        }
        let mut end = payload.len();
        if padded {
            let pad = payload.last().copied().unwrap_or(0) as usize;
            end = end.saturating_sub(pad);
        }
        if start > end {
            return Err(CryptoError::Truncated);
        }
        Ok(&mut payload[start..end])
    }

    fn encrypt(
        &self,
        suffix: [u8; 4],
        aad: &[u8],
        payload: &mut [u8],
    ) -> Result<[u8; TAG_LEN], CryptoError> {
        let tag = match &self.aead {
            Aead::Aes(c) => c.encrypt_in_place_detached(&gcm_nonce(suffix).into(), aad, payload),
            Aead::XChaCha(c) => {
                c.encrypt_in_place_detached(&xchacha_nonce(suffix).into(), aad, payload)
            }
        };
        // Only inputs beyond the ciphers' length limits (gigabytes) fail to seal.
        tag.map(Into::into).map_err(|_| CryptoError::BufferTooSmall)
    }

    fn decrypt(
        &self,
        suffix: [u8; 4],
        aad: &[u8],
        payload: &mut [u8],
        tag: &[u8],
    ) -> Result<(), CryptoError> {
        let mut t = [0u8; TAG_LEN];
        t.copy_from_slice(tag);
        let t = t.into();
        match &self.aead {
            Aead::Aes(c) => {
                c.decrypt_in_place_detached(&gcm_nonce(suffix).into(), aad, payload, &t)
            }
            Aead::XChaCha(c) => {
                c.decrypt_in_place_detached(&xchacha_nonce(suffix).into(), aad, payload, &t)
            }
        }
        .map_err(|_| CryptoError::Authentication)
    }
}

/// AES-256-GCM's 12-byte nonce: the counter bytes, then zeros.
fn gcm_nonce(suffix: [u8; 4]) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(&suffix);
    n
}

/// XChaCha20-Poly1305's 24-byte nonce: the counter bytes, then zeros.
fn xchacha_nonce(suffix: [u8; 4]) -> [u8; 24] {
    let mut n = [0u8; 24];
    n[..4].copy_from_slice(&suffix);
    n
}

/// Length of the unencrypted part of a received RTP packet (the `rtpsize` AAD): the
/// fixed header, 4 bytes per CSRC, and the 4-byte extension preamble when X is set.
fn aad_len(packet: &[u8]) -> Option<usize> {
    let first = *packet.first()?;
    let csrcs = (first & 0x0F) as usize;
    let extension = if first & 0x10 != 0 { 4 } else { 0 };
    let len = RTP_HEADER_LEN + 4 * csrcs + extension;
    (packet.len() >= len).then_some(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::rtp::RtpState;

    const KEY: [u8; 32] = [7; 32];
    const MODES: [EncryptionMode; 2] = EncryptionMode::PREFERENCE;

    /// A sealed packet of `payload` under `state`, in a buffer of exactly its length.
    fn sealed(cipher: &TransportCipher, state: &RtpState, payload: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; RTP_HEADER_LEN + payload.len() + SEAL_OVERHEAD];
        buf[..RTP_HEADER_LEN].copy_from_slice(&state.header());
        buf[RTP_HEADER_LEN..][..payload.len()].copy_from_slice(payload);
        let n = cipher
            .seal_in_place(&mut buf, payload.len(), state.nonce)
            .unwrap();
        assert_eq!(n, buf.len());
        buf
    }

    #[test]
    fn seal_open_round_trip() {
        let payload: Vec<u8> = (0..160u8).collect();
        for mode in MODES {
            let cipher = TransportCipher::new(mode, KEY);
            let state = RtpState::with_values(42, 1, 960, 0x0102_0304);
            let mut packet = sealed(&cipher, &state, &payload);
            assert_eq!(&packet[..RTP_HEADER_LEN], &state.header(), "{mode}");
            assert_ne!(&packet[RTP_HEADER_LEN..][..160], &payload[..], "{mode}");
            assert_eq!(cipher.open_in_place(&mut packet).unwrap(), &payload[..]);
        }
    }

    #[test]
    fn aead_nonce_is_the_counter_then_zeros() {
        // Decrypt with the crates directly and a nonce built by hand, so the layout is
        // checked independently of `open_in_place`.
        let payload = [0xF8, 0xFF, 0xFE];
        let state = RtpState::with_values(9, 2, 3, 0xAABB_CCDD);
        for mode in MODES {
            let cipher = TransportCipher::new(mode, KEY);
            let packet = sealed(&cipher, &state, &payload);
            let (body, trailer) = packet.split_at(packet.len() - SEAL_OVERHEAD);
            assert_eq!(&trailer[TAG_LEN..], &[0xAA, 0xBB, 0xCC, 0xDD]);
            let (aad, ct) = body.split_at(RTP_HEADER_LEN);
            let mut pt = ct.to_vec();
            let tag = aes_gcm::Tag::clone_from_slice(&trailer[..TAG_LEN]);
            let ok = match mode {
                EncryptionMode::Aes256GcmRtpsize => {
                    let mut n = [0u8; 12];
                    n[..4].copy_from_slice(&[0xAA, 0xBB, 0xCC, 0xDD]);
                    Aes256Gcm::new(&KEY.into()).decrypt_in_place_detached(
                        &n.into(),
                        aad,
                        &mut pt,
                        &tag,
                    )
                }
                EncryptionMode::XChaCha20Poly1305Rtpsize => {
                    let mut n = [0u8; 24];
                    n[..4].copy_from_slice(&[0xAA, 0xBB, 0xCC, 0xDD]);
                    XChaCha20Poly1305::new(&KEY.into()).decrypt_in_place_detached(
                        &n.into(),
                        aad,
                        &mut pt,
                        &tag,
                    )
                }
            };
            assert!(ok.is_ok(), "{mode}");
            assert_eq!(pt, payload);
        }
    }

    #[test]
    fn nonce_suffix_is_big_endian_and_counts_up() {
        for mode in MODES {
            let cipher = TransportCipher::new(mode, KEY);
            let mut state = RtpState::with_values(1, 0, 0, 0x0000_00FF);
            let mut suffixes = vec![];
            for _ in 0..3 {
                let p = sealed(&cipher, &state, &[1, 2, 3]);
                suffixes.push(u32::from_be_bytes(p[p.len() - 4..].try_into().unwrap()));
                state.advance();
            }
            assert_eq!(suffixes, [0xFF, 0x100, 0x101], "{mode}");
        }
    }

    #[test]
    fn tampering_fails_to_open() {
        for mode in MODES {
            let cipher = TransportCipher::new(mode, KEY);
            let state = RtpState::with_values(5, 6, 7, 8);
            let good = sealed(&cipher, &state, &[9; 40]);
            // Every byte is covered: header (AAD), ciphertext, tag and nonce.
            for i in 0..good.len() {
                let mut p = good.clone();
                p[i] ^= 0x01;
                if i == 0 {
                    // Bit 0 of byte 0 is a CSRC count: the AAD grows, still a failure.
                    assert!(cipher.open_in_place(&mut p).is_err(), "{mode} byte {i}");
                    continue;
                }
                assert_eq!(
                    cipher.open_in_place(&mut p),
                    Err(CryptoError::Authentication),
                    "{mode} byte {i}"
                );
            }
            let other = TransportCipher::new(mode, [8; 32]);
            assert_eq!(
                other.open_in_place(&mut good.clone()),
                Err(CryptoError::Authentication)
            );
        }
    }

    #[test]
    fn short_buffers_are_errors() {
        let cipher = TransportCipher::new(EncryptionMode::Aes256GcmRtpsize, KEY);
        let mut buf = [0u8; RTP_HEADER_LEN + 10 + SEAL_OVERHEAD - 1];
        assert_eq!(
            cipher.seal_in_place(&mut buf, 10, 0),
            Err(CryptoError::BufferTooSmall)
        );
        let mut tiny = [0x80u8; RTP_HEADER_LEN + SEAL_OVERHEAD - 1];
        assert_eq!(cipher.open_in_place(&mut tiny), Err(CryptoError::Truncated));
        assert_eq!(cipher.open_in_place(&mut []), Err(CryptoError::Truncated));
    }

    #[test]
    fn opens_packets_with_an_extension() {
        // What Discord sends to receivers: X=1, a one-word 0xBEDE extension whose body
        // is encrypted with the payload and stripped after opening.
        let cipher = TransportCipher::new(EncryptionMode::XChaCha20Poly1305Rtpsize, KEY);
        let mut header = RtpState::with_values(3, 4, 5, 6).header();
        header[0] |= 0x10;
        let mut p = header.to_vec();
        p.extend_from_slice(&[0xBE, 0xDE, 0x00, 0x01]);
        let aad_len = p.len();
        p.extend_from_slice(&[0x10, 0xAA, 0, 0, 0xF8, 0xFF, 0xFE]);
        let plain_len = p.len() - aad_len;
        let mut tag_nonce = [0u8; SEAL_OVERHEAD];
        tag_nonce[TAG_LEN..].copy_from_slice(&6u32.to_be_bytes());
        let (aad, body) = p.split_at_mut(aad_len);
        let tag = cipher.encrypt(6u32.to_be_bytes(), aad, body).unwrap();
        tag_nonce[..TAG_LEN].copy_from_slice(&tag);
        p.extend_from_slice(&tag_nonce);
        assert_eq!(plain_len, 7);
        assert_eq!(cipher.open_in_place(&mut p).unwrap(), &[0xF8, 0xFF, 0xFE]);
    }
}
