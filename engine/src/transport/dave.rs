//! DAVE media encryption of outgoing Opus frames, on the tick thread.
//!
//! The MLS side of DAVE (key packages, proposals, commits, welcomes, transitions) runs
//! in the control plane. What crosses into the engine is one 16-byte secret per epoch:
//! the [`SenderKey`], which the control plane exports from the MLS group as
//! `MLS-Exporter("Discord Secure Frames v0", our user id as u64 little-endian, 16)`.
//! From it this module derives, without allocating, the per-generation AES-128-GCM keys
//! of DAVE's hash ratchet (MLS `ExpandWithLabel` with labels "key" and "secret",
//! context = generation as u32 big-endian), and turns each Opus frame into a DAVE
//! frame in place:
//!
//! ```text
//! | ciphertext (all of the Opus frame) | 8-byte tag | ULEB128 nonce | supplemental size | FA FA |
//! ```
//!
//! The nonce is a 32-bit counter that starts at 1 for each new key domain (a new
//! epoch's secret) and continues when the same secret is installed again; its top byte
//! is the ratchet generation. The AES-GCM nonce is 8 zero bytes followed by the counter
//! as little-endian u32 (note: the opposite end from the transport nonce), the AAD is
//! empty (Opus frames have no unencrypted ranges) and the tag is the first 8 bytes of
//! the GCM tag. Opus silence frames (`F8 FF FE`) are never encrypted.

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes128Gcm, KeyInit};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::voice_output::OPUS_SILENCE;

/// Truncated AES-GCM tag length in a DAVE frame.
pub const DAVE_TAG_LEN: usize = 8;

/// The marker every DAVE frame ends with.
pub const DAVE_MARKER: [u8; 2] = [0xFA, 0xFA];

/// The most bytes a DAVE frame adds to an Opus frame: tag, a 5-byte ULEB128 nonce,
/// the supplemental size byte and the marker.
pub const DAVE_OVERHEAD: usize = DAVE_TAG_LEN + 5 + 1 + DAVE_MARKER.len();

/// Bits of the nonce below the generation byte.
const GENERATION_SHIFT: u32 = 24;

/// The sender secret of one epoch, exported from the MLS group by the control plane.
/// `Copy` and fixed-size, so it travels through the command queue without allocating.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SenderKey(pub [u8; 16]);

impl std::fmt::Debug for SenderKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.write_str("SenderKey(..)")
    }
}

/// Why a frame could not be encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DaveError {
    /// The buffer cannot hold the frame plus [`DAVE_OVERHEAD`].
    #[error("buffer too small for a DAVE frame")]
    BufferTooSmall,
    /// AES-GCM refused the frame (longer than GCM allows; cannot happen for Opus).
    #[error("AES-GCM encryption failed")]
    Cipher,
}

/// `ExpandWithLabel(secret, "MLS 1.0 " + label, generation as u32 BE, N)` for N ≤ 32,
/// which is one HMAC-SHA256 block of HKDF-Expand (RFC 9420 §8, as MLS++ computes it
/// for secrets of any length). Writes `out.len()` bytes.
fn expand_with_label(secret: &[u8], label: &str, generation: u32, out: &mut [u8]) {
    debug_assert!(out.len() <= 32 && label.len() <= 32);
    // KDFLabel { uint16 length; opaque label<V>; opaque context<V> } then the HKDF
    // block counter 0x01. Every length here is < 64, so each varint is one byte.
    let mut info = [0u8; 2 + 1 + 8 + 32 + 1 + 4 + 1];
    let mut n = 0;
    let mut put = |bytes: &[u8]| {
        info[n..n + bytes.len()].copy_from_slice(bytes);
        n += bytes.len();
    };
    put(&(out.len() as u16).to_be_bytes());
    put(&[(8 + label.len()) as u8]);
    put(b"MLS 1.0 ");
    put(label.as_bytes());
    put(&[4]);
    put(&generation.to_be_bytes());
    put(&[1]);
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key size");
    mac.update(&info[..n]);
    let block = mac.finalize().into_bytes();
    out.copy_from_slice(&block[..out.len()]);
}

/// DAVE's per-sender hash ratchet, walked forward one generation at a time.
#[derive(Clone)]
struct Ratchet {
    /// The secret of generation `generation` (16 bytes for generation 0, 32 after).
    secret: [u8; 32],
    secret_len: usize,
    generation: u32,
}

impl Ratchet {
    fn new(key: &SenderKey) -> Self {
        let mut secret = [0u8; 32];
        secret[..16].copy_from_slice(&key.0);
        Ratchet {
            secret,
            secret_len: 16,
            generation: 0,
        }
    }

    /// The AES-128 key of the current generation.
    fn key(&self) -> [u8; 16] {
        let mut key = [0u8; 16];
        expand_with_label(
            &self.secret[..self.secret_len],
            "key",
            self.generation,
            &mut key,
        );
        key
    }

    /// Moves to the next generation (the old secret is overwritten).
    fn advance(&mut self) {
        let mut next = [0u8; 32];
        expand_with_label(
            &self.secret[..self.secret_len],
            "secret",
            self.generation,
            &mut next,
        );
        self.secret = next;
        self.secret_len = 32;
        self.generation = self.generation.wrapping_add(1);
    }
}

/// Encrypts one sender's Opus frames as DAVE frames; lives in the voice output.
pub struct DaveEncryptor {
    /// The installed secret: its identity decides whether a new install restarts
    /// the nonce.
    domain: SenderKey,
    ratchet: Ratchet,
    cipher: Aes128Gcm,
    /// The last nonce used (0 = none yet).
    nonce: u32,
}

impl std::fmt::Debug for DaveEncryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DaveEncryptor")
            .field("generation", &self.ratchet.generation)
            .field("nonce", &self.nonce)
            .finish_non_exhaustive()
    }
}

impl DaveEncryptor {
    /// An encryptor for `key`, at generation 0 with no nonce used.
    pub fn new(key: SenderKey) -> Self {
        let ratchet = Ratchet::new(&key);
        let cipher = Aes128Gcm::new(&ratchet.key().into());
        DaveEncryptor {
            domain: key,
            ratchet,
            cipher,
            nonce: 0,
        }
    }

    /// Installs the secret of a (possibly) new epoch. The same secret again keeps the
    /// nonce sequence, so a repeated install never reuses a nonce; a new one starts
    /// over at generation 0. Allocation-free.
    pub fn install(&mut self, key: SenderKey) {
        if key != self.domain {
            *self = DaveEncryptor::new(key);
        }
    }

    /// The last nonce used (0 before the first frame).
    pub fn nonce(&self) -> u32 {
        self.nonce
    }

    /// Turns the `len` bytes at the start of `buf` into a DAVE frame in place and
    /// returns its length. Silence frames are left as they are.
    pub fn encrypt_in_place(&mut self, buf: &mut [u8], len: usize) -> Result<usize, DaveError> {
        if buf[..len] == OPUS_SILENCE {
            return Ok(len);
        }
        if buf.len() < len + DAVE_OVERHEAD {
            return Err(DaveError::BufferTooSmall);
        }
        self.nonce = self.nonce.wrapping_add(1).max(1);
        let generation = self.nonce >> GENERATION_SHIFT;
        // Generations only move forward: one step per 2^24 frames (93 hours).
        while self.ratchet.generation & 0xFF != generation {
            self.ratchet.advance();
            self.cipher = Aes128Gcm::new(&self.ratchet.key().into());
        }
        let mut nonce = [0u8; 12];
        nonce[8..].copy_from_slice(&self.nonce.to_le_bytes());
        let tag = self
            .cipher
            .encrypt_in_place_detached(&nonce.into(), &[], &mut buf[..len])
            .map_err(|_| DaveError::Cipher)?;
        let mut at = len;
        buf[at..at + DAVE_TAG_LEN].copy_from_slice(&tag[..DAVE_TAG_LEN]);
        at += DAVE_TAG_LEN;
        let nonce_len = write_uleb128(u64::from(self.nonce), &mut buf[at..]);
        at += nonce_len;
        // Supplemental size: tag, nonce, (no) ranges, this byte and the marker.
        buf[at] = (DAVE_TAG_LEN + nonce_len + 1 + DAVE_MARKER.len()) as u8;
        at += 1;
        buf[at..at + 2].copy_from_slice(&DAVE_MARKER);
        Ok(at + 2)
    }
}

/// Writes `value` as ULEB128 at the start of `out`; returns the bytes written.
fn write_uleb128(mut value: u64, out: &mut [u8]) -> usize {
    let mut n = 0;
    loop {
        let byte = (value & 0x7F) as u8;
        value >>= 7;
        if value == 0 {
            out[n] = byte;
            return n + 1;
        }
        out[n] = byte | 0x80;
        n += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hash-ratchet vector libdave and davey test against: base secret → the
    /// generation-0 key and nonce.
    const BASE: [u8; 16] = [
        206, 221, 97, 177, 184, 161, 202, 105, 4, 101, 84, 40, 44, 247, 11, 123,
    ];

    #[test]
    fn ratchet_matches_the_reference_vector() {
        let ratchet = Ratchet::new(&SenderKey(BASE));
        assert_eq!(
            ratchet.key(),
            [117, 48, 249, 169, 148, 94, 45, 46, 6, 208, 101, 31, 123, 42, 134, 75]
        );
        let mut nonce = [0u8; 12];
        expand_with_label(&BASE, "nonce", 0, &mut nonce);
        assert_eq!(nonce, [48, 30, 95, 75, 116, 9, 15, 152, 94, 114, 107, 178]);
    }

    #[test]
    fn frame_layout_and_nonce_sequence() {
        let mut dave = DaveEncryptor::new(SenderKey(BASE));
        let opus = [0xFCu8, 1, 2, 3, 4, 5, 6, 7, 8, 9];
        let mut buf = [0u8; 64];
        buf[..opus.len()].copy_from_slice(&opus);
        let len = dave.encrypt_in_place(&mut buf, opus.len()).unwrap();
        // 10 ciphertext + 8 tag + 1 nonce byte + 1 size + 2 marker.
        assert_eq!(len, 22);
        assert_ne!(&buf[..10], &opus[..], "encrypted");
        assert_eq!(buf[18], 1, "the first nonce is 1");
        assert_eq!(buf[19], 12, "supplemental size = 8 + 1 + 1 + 2");
        assert_eq!(&buf[20..22], &DAVE_MARKER);

        // Reopen with the full-tag cipher: the truncated tag is the GCM tag's prefix.
        let mut nonce = [0u8; 12];
        nonce[8..].copy_from_slice(&1u32.to_le_bytes());
        let key = Ratchet::new(&SenderKey(BASE)).key();
        let mut check = opus;
        let tag = Aes128Gcm::new(&key.into())
            .encrypt_in_place_detached(&nonce.into(), &[], &mut check)
            .unwrap();
        assert_eq!(&buf[..10], &check[..]);
        assert_eq!(&buf[10..18], &tag[..8]);

        // Same secret again: the sequence continues; a new one restarts.
        dave.install(SenderKey(BASE));
        buf[..opus.len()].copy_from_slice(&opus);
        dave.encrypt_in_place(&mut buf, opus.len()).unwrap();
        assert_eq!(dave.nonce(), 2);
        dave.install(SenderKey([7; 16]));
        assert_eq!(dave.nonce(), 0);
    }

    #[test]
    fn silence_passes_and_small_buffers_fail() {
        let mut dave = DaveEncryptor::new(SenderKey(BASE));
        let mut buf = [0u8; 20];
        buf[..3].copy_from_slice(&OPUS_SILENCE);
        assert_eq!(dave.encrypt_in_place(&mut buf, 3), Ok(3));
        assert_eq!(&buf[..3], &OPUS_SILENCE);
        assert_eq!(dave.nonce(), 0, "silence uses no nonce");
        buf[..10].fill(1);
        assert_eq!(
            dave.encrypt_in_place(&mut buf[..12], 10),
            Err(DaveError::BufferTooSmall)
        );
    }

    #[test]
    fn generations_follow_the_nonce_top_byte() {
        let mut dave = DaveEncryptor::new(SenderKey(BASE));
        dave.nonce = (1 << GENERATION_SHIFT) - 1;
        let mut buf = [1u8; 40];
        let len = dave.encrypt_in_place(&mut buf, 10).unwrap();
        assert_eq!(dave.ratchet.generation, 1);
        // 2^24 takes four ULEB128 bytes.
        assert_eq!(len, 10 + 8 + 4 + 1 + 2);
        let mut expected = Ratchet::new(&SenderKey(BASE));
        expected.advance();
        assert_eq!(dave.ratchet.key(), expected.key());
    }

    #[test]
    fn uleb128() {
        let mut out = [0u8; 5];
        assert_eq!(write_uleb128(1, &mut out), 1);
        assert_eq!(write_uleb128(127, &mut out), 1);
        assert_eq!(write_uleb128(128, &mut out), 2);
        assert_eq!(&out[..2], &[0x80, 0x01]);
        assert_eq!(write_uleb128(u64::from(u32::MAX), &mut out), 5);
    }
}
