//! Where a player's packets go. The tick produces packets into a batch; after the
//! deadline the runner hands each to its player's output, which must never block.

use rtrb::{Consumer, Producer, RingBuffer};

/// Result of one non-blocking send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOutcome {
    /// The packet left.
    Sent,
    /// The socket buffer was full; the packet was dropped.
    WouldBlock,
    /// The send failed; the packet was dropped.
    Failed,
}

/// The largest datagram an output frames: RTP header, the largest Opus packet, DAVE's
/// trailer and the transport seal.
pub const MAX_DATAGRAM: usize = crate::transport::MAX_PACKET;

/// The buffer an output frames its datagram in. One per tick thread, lent to each
/// output in turn: with thousands of players per thread, a buffer of its own per
/// output would be cold on every packet, and writing a cold buffer costs a cache miss
/// per 64 bytes; the shared one stays in L1.
#[derive(Debug)]
pub struct DatagramBuf(pub [u8; MAX_DATAGRAM]);

impl DatagramBuf {
    /// A zeroed buffer.
    pub fn new() -> Box<Self> {
        Box::new(DatagramBuf([0; MAX_DATAGRAM]))
    }
}

/// A player's packet destination.
pub trait PacketOutput: Send {
    /// Sends one Opus packet (the output adds any transport framing, in `buf`). Must
    /// not block, allocate or lock.
    fn send(&mut self, opus: &[u8], buf: &mut DatagramBuf) -> SendOutcome;
    /// Audio stopped (pause, stop, end): the output may send its end-of-speech frames.
    fn audio_stopped(&mut self) {}
    /// Called on every tick in which this output got no packet, after the deadline like
    /// [`send`](Self::send), so an output can pace its own traffic (trailing silence,
    /// keepalives) by ticks. Same rules as `send`.
    fn tick_idle(&mut self, _buf: &mut DatagramBuf) {}
    /// Installs (`Some`) or removes (`None`) the DAVE sender key: from the next packet
    /// on, audio frames are end-to-end encrypted with it, or sent as plain Opus. The
    /// control plane sends it on the exact transition the voice gateway executes.
    /// Outputs without DAVE ignore it. Same rules as `send`.
    fn set_sender_key(&mut self, _key: Option<crate::transport::SenderKey>) {}
    /// Asks the CPU to start loading the state the next [`send`](Self::send) touches,
    /// without reading it: the tick calls this a few packets ahead, so the cache misses
    /// of thousands of cold outputs overlap instead of stalling one after another.
    fn prefetch(&self) {}
}

/// Discards every packet (a player without a voice connection).
#[derive(Debug, Default)]
pub struct NullOutput;

impl PacketOutput for NullOutput {
    fn send(&mut self, _: &[u8], _: &mut DatagramBuf) -> SendOutcome {
        SendOutcome::Sent
    }
}

/// Captures packets into a preallocated ring for tests and measurements.
#[derive(Debug)]
pub struct CaptureOutput {
    ring: Producer<u8>,
}

/// The reading side of a [`CaptureOutput`].
#[derive(Debug)]
pub struct Captured {
    ring: Consumer<u8>,
}

/// A capture output holding up to `capacity` bytes of packets.
pub fn capture(capacity: usize) -> (CaptureOutput, Captured) {
    let (p, c) = RingBuffer::new(capacity);
    (CaptureOutput { ring: p }, Captured { ring: c })
}

impl PacketOutput for CaptureOutput {
    fn send(&mut self, opus: &[u8], _: &mut DatagramBuf) -> SendOutcome {
        let Ok(mut chunk) = self.ring.write_chunk(2 + opus.len()) else {
            return SendOutcome::WouldBlock;
        };
        let len = (opus.len() as u16).to_le_bytes();
        let (a, b) = chunk.as_mut_slices();
        for (d, s) in a
            .iter_mut()
            .chain(b.iter_mut())
            .zip(len.iter().chain(opus.iter()))
        {
            *d = *s;
        }
        chunk.commit_all();
        SendOutcome::Sent
    }
}

impl Captured {
    /// Takes every captured packet.
    pub fn drain(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while self.ring.slots() >= 2 {
            let Ok(chunk) = self.ring.read_chunk(2) else {
                break;
            };
            let (a, b) = chunk.as_slices();
            let bytes: Vec<u8> = a.iter().chain(b.iter()).copied().collect();
            let len = u16::from_le_bytes([bytes[0], bytes[1]]) as usize;
            let Ok(chunk) = self.ring.read_chunk(2 + len) else {
                break;
            };
            let (a, b) = chunk.as_slices();
            out.push(a.iter().chain(b.iter()).skip(2).copied().collect());
            chunk.commit_all();
        }
        out
    }
}
