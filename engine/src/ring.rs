//! Per-player frame rings: the decoder thread writes 20 ms frames ahead of time, the
//! tick thread reads one per tick. Wait-free on both sides (an `rtrb` byte ring).
//!
//! A ring carries records: a 1-byte kind, a 4-byte epoch, a 2-byte payload length,
//! then the payload. Opus packets stay their natural size, so a passthrough player
//! buffers seconds of audio in a few tens of kilobytes. The epoch lets a seek
//! invalidate everything already queued without the reader and writer meeting: the
//! reader skips records from an older epoch.

use rtrb::{Consumer, Producer, RingBuffer};

use crate::codec::FrameEncoder;
use crate::prefetch::prefetch;

/// Largest Opus packet Discord accepts in one RTP payload, in bytes.
pub const MAX_OPUS_PACKET: usize = 1275;

/// Bytes of one PCM frame: 960 samples × 2 channels × 2 bytes.
pub const PCM_FRAME_BYTES: usize = crate::audio::FRAME_SAMPLES_INTERLEAVED * 2;

const HEADER: usize = 1 + 4 + 2;

/// What a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordKind {
    /// One Opus packet, sent as is (passthrough).
    Opus = 1,
    /// One 20 ms frame of 48 kHz stereo interleaved i16 PCM, native endian.
    Pcm = 2,
    /// The source ended normally after the previous record.
    End = 3,
    /// The source failed after the previous record; the payload is an error code the
    /// control plane resolves.
    Failed = 4,
}

impl RecordKind {
    fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            1 => RecordKind::Opus,
            2 => RecordKind::Pcm,
            3 => RecordKind::End,
            4 => RecordKind::Failed,
            _ => return None,
        })
    }
}

/// Creates a ring holding `capacity` bytes of records.
pub fn frame_ring(capacity: usize) -> (FrameWriter, FrameReader) {
    let (p, c) = RingBuffer::new(capacity.max(HEADER + PCM_FRAME_BYTES));
    let (ep, ec) = RingBuffer::new(1);
    (
        FrameWriter {
            inner: p,
            encoder: ep,
        },
        FrameReader {
            inner: c,
            encoder: ec,
            next_at: 0,
        },
    )
}

/// The decoder's end of a ring.
pub struct FrameWriter {
    inner: Producer<u8>,
    /// Hands the tick an Opus encoder for PCM records (see [`Self::offer_encoder`]).
    encoder: Producer<Box<dyn FrameEncoder>>,
}

impl std::fmt::Debug for FrameWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameWriter")
            .field("free", &self.inner.slots())
            .finish_non_exhaustive()
    }
}

/// Why a record was not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteError {
    /// Not enough free space now; try again after the reader caught up.
    Full,
    /// The payload is larger than a record can hold.
    TooLarge,
}

impl FrameWriter {
    /// Free bytes right now.
    pub fn free(&self) -> usize {
        self.inner.slots()
    }

    /// Bytes a record with `payload_len` bytes occupies.
    pub fn record_size(payload_len: usize) -> usize {
        HEADER + payload_len
    }

    /// Appends one record, or nothing if it does not fit.
    pub fn write(
        &mut self,
        kind: RecordKind,
        epoch: u32,
        payload: &[u8],
    ) -> Result<(), WriteError> {
        let len = u16::try_from(payload.len()).map_err(|_| WriteError::TooLarge)?;
        let total = HEADER + payload.len();
        let chunk = self
            .inner
            .write_chunk(total)
            .map_err(|_| WriteError::Full)?;
        let mut header = [0u8; HEADER];
        header[0] = kind as u8;
        header[1..5].copy_from_slice(&epoch.to_le_bytes());
        header[5..7].copy_from_slice(&len.to_le_bytes());
        let mut chunk = chunk;
        let (a, b) = chunk.as_mut_slices();
        copy_into(a, b, &header, payload);
        chunk.commit_all();
        Ok(())
    }

    /// Whether the reader was dropped (the player is gone).
    pub fn is_abandoned(&self) -> bool {
        self.inner.is_abandoned()
    }

    /// Passes an encoder to the tick, which cannot allocate one, before the first
    /// PCM record: a player is created without codecs (an Opus passthrough player
    /// never needs the ~50 KB of an encoder), and takes this one the first time a
    /// PCM record finds it without. Holds one; `Err` gives back a second.
    pub fn offer_encoder(
        &mut self,
        encoder: Box<dyn FrameEncoder>,
    ) -> Result<(), Box<dyn FrameEncoder>> {
        self.encoder
            .push(encoder)
            .map_err(|rtrb::PushError::Full(e)| e)
    }
}

/// Copies `header` then `payload` across the two halves of a ring chunk.
fn copy_into(a: &mut [u8], b: &mut [u8], header: &[u8], payload: &[u8]) {
    let mut at = 0;
    for src in [header, payload] {
        write_at(a, b, at, src);
        at += src.len();
    }
}

/// Writes `src` at offset `at` of the logical buffer `a ++ b`, with slice copies.
fn write_at(a: &mut [u8], b: &mut [u8], at: usize, src: &[u8]) {
    let in_a = a.len().saturating_sub(at).min(src.len());
    if in_a > 0 {
        a[at..at + in_a].copy_from_slice(&src[..in_a]);
    }
    let rest = &src[in_a..];
    if !rest.is_empty() {
        let off = at + in_a - a.len();
        b[off..off + rest.len()].copy_from_slice(rest);
    }
}

/// Reads `dst.len()` bytes at offset `at` of the logical buffer `a ++ b`.
fn read_at(a: &[u8], b: &[u8], at: usize, dst: &mut [u8]) {
    let in_a = a.len().saturating_sub(at).min(dst.len());
    if in_a > 0 {
        dst[..in_a].copy_from_slice(&a[at..at + in_a]);
    }
    let rest = dst.len() - in_a;
    if rest > 0 {
        let off = at + in_a - a.len();
        dst[in_a..].copy_from_slice(&b[off..off + rest]);
    }
}

/// A record read from the ring, borrowed into the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// What it is.
    pub kind: RecordKind,
    /// The epoch it was written in.
    pub epoch: u32,
    /// Payload length in the caller's buffer.
    pub len: usize,
}

/// The tick thread's end of a ring.
pub struct FrameReader {
    inner: Consumer<u8>,
    /// See [`FrameWriter::offer_encoder`]; one left here is dropped with the reader,
    /// off the tick.
    encoder: Consumer<Box<dyn FrameEncoder>>,
    /// Address of the next record's first byte as of the last read (0 before the
    /// first), only ever used as a prefetch hint; an integer, not a pointer, because
    /// it is never dereferenced.
    next_at: usize,
}

impl std::fmt::Debug for FrameReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameReader")
            .field("queued", &self.inner.slots())
            .finish_non_exhaustive()
    }
}

impl FrameReader {
    /// The encoder the writer offered, if any. Wait-free, no allocation: a record
    /// written after the offer is only read after it, so a PCM record never arrives
    /// before its encoder.
    pub fn take_encoder(&mut self) -> Option<Box<dyn FrameEncoder>> {
        self.encoder.pop().ok()
    }

    /// Pops the next record into `buf` (which must hold `PCM_FRAME_BYTES`); `None`
    /// when the ring holds no complete record. Never blocks or allocates.
    pub fn read(&mut self, buf: &mut [u8]) -> Option<Record> {
        let avail = self.inner.slots();
        if avail < HEADER {
            return None;
        }
        let mut header = [0u8; HEADER];
        // Peek only: an uncommitted chunk consumes nothing, so the header is
        // consumed together with its payload below.
        let peek = self.inner.read_chunk(HEADER).ok()?;
        let (a, b) = peek.as_slices();
        read_at(a, b, 0, &mut header);
        let len = u16::from_le_bytes([header[5], header[6]]) as usize;
        if avail < HEADER + len {
            return None;
        }
        let chunk = self.inner.read_chunk(HEADER + len).ok()?;
        let (a, b) = chunk.as_slices();
        let n = len.min(buf.len());
        read_at(a, b, HEADER, &mut buf[..n]);
        let end = if b.is_empty() { a } else { b };
        self.next_at = end.as_ptr() as usize + end.len();
        chunk.commit_all();
        let kind = RecordKind::from_u8(header[0])?;
        let epoch = u32::from_le_bytes([header[1], header[2], header[3], header[4]]);
        Some(Record {
            kind,
            epoch,
            len: n,
        })
    }

    /// Bytes queued right now.
    pub fn queued(&self) -> usize {
        self.inner.slots()
    }

    /// Starts loading what the next [`Self::read`] touches: the ring's shared indexes
    /// and the start of the next record (written by a decode thread on another core).
    pub fn prefetch(&self) {
        let ring = self.inner.buffer();
        prefetch(ring as *const RingBuffer<u8>, std::mem::size_of_val(ring));
        if self.next_at != 0 {
            prefetch(self.next_at as *const u8, PREFETCH_RECORD_BYTES);
        }
    }
}

/// How much of the next record [`FrameReader::prefetch`] loads: header and a typical
/// Opus packet (128 kbit/s is 320 bytes per 20 ms).
const PREFETCH_RECORD_BYTES: usize = 320;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_across_the_wrap() {
        let (mut w, mut r) = frame_ring(HEADER + PCM_FRAME_BYTES + 100);
        let mut buf = vec![0u8; PCM_FRAME_BYTES];
        for i in 0..1000u32 {
            let payload: Vec<u8> = (0..(i % 300) as u8).collect();
            w.write(RecordKind::Opus, i, &payload).unwrap();
            let rec = r.read(&mut buf).unwrap();
            assert_eq!(
                (rec.kind, rec.epoch, rec.len),
                (RecordKind::Opus, i, payload.len())
            );
            assert_eq!(&buf[..rec.len], &payload[..]);
        }
        assert_eq!(r.read(&mut buf), None);
    }

    #[test]
    fn full_ring_refuses_and_partial_records_are_invisible() {
        let (mut w, mut r) = frame_ring(HEADER + PCM_FRAME_BYTES);
        let pcm = vec![7u8; PCM_FRAME_BYTES];
        w.write(RecordKind::Pcm, 0, &pcm).unwrap();
        assert_eq!(w.write(RecordKind::End, 0, &[]), Err(WriteError::Full));
        let mut buf = vec![0u8; PCM_FRAME_BYTES];
        assert_eq!(r.read(&mut buf).unwrap().kind, RecordKind::Pcm);
        assert!(buf.iter().all(|&b| b == 7));
        w.write(RecordKind::End, 3, &[]).unwrap();
        assert_eq!(
            r.read(&mut buf),
            Some(Record {
                kind: RecordKind::End,
                epoch: 3,
                len: 0
            })
        );
        assert_eq!(
            w.write(RecordKind::Opus, 0, &vec![0; 70_000]),
            Err(WriteError::TooLarge)
        );
    }
}
