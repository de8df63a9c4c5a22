//! A network source's compressed bytes, shared between the task that fetches them
//! (async, on the control plane's I/O threads) and the decode job that reads them
//! (a decode-pool thread), so that no thread ever waits for the network.
//!
//! The bytes live in a small cache of fixed-size blocks keyed by their offset in the
//! file, filled by one connection at a time:
//!
//! - **Reading never blocks.** A read of cached bytes copies them; a read of anything
//!   else records where the reader wants to be, asks the fetcher for it, and fails
//!   with [`ErrorKind::WouldBlock`](std::io::ErrorKind::WouldBlock). The job then
//!   parks (see [`StreamBuffer::poll_ready`]) and retries the whole operation when
//!   the bytes are there: opening and seeking replay from their start (the blocks
//!   they already touched are still cached, so each retry gets further), and
//!   decoding only starts a visit once a margin of bytes is cached ahead, so a
//!   packet is never cut by a missing block.
//! - **Seeking is free where the bytes are.** A seek inside the cache, or a short way
//!   past what the connection has delivered ([`SKIP_THROUGH`], as lavaplayer reads
//!   through forward skips), opens no connection; anything else reconnects with a
//!   `Range` request at the first missing byte.
//! - **Read-ahead is bounded** by `readahead` bytes past the reader (the
//!   `frameBufferDurationMs` of audio at the track's bitrate). Blocks behind the
//!   reader are evicted least recently used first, except while an operation is
//!   replaying (opening or a seek), when up to [`OP_BLOCKS`] are kept for it.
//!
//! This file is the sans-IO core: [`StreamBuffer::plan`] tells the fetcher what to do
//! next, [`StreamBuffer::store`] takes what a connection delivered, and the fetcher
//! reports connections opening and ending. The locks here are only ever taken by the
//! fetcher and a decode thread, never by a tick thread.

use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;

use parking_lot::Mutex;
use symphonia::core::io::MediaSource;

/// Size of one cached block.
pub const BLOCK: usize = 16 * 1024;
/// How far past the connection's position a wanted byte may be and still be read
/// through on the same connection (lavaplayer's forward-skip limit).
pub const SKIP_THROUGH: u64 = 512 * 1024;
/// Bytes cached ahead of the reader before a decode visit starts (or all that is
/// left of the file): a visit decodes a few frames, far less than this.
pub const LOW_WATER: usize = 32 * 1024;
/// Bytes cached before an open (or seek) is tried: replaying one is cheap, so it is
/// tried as soon as a little has arrived.
pub const OPEN_MARGIN: usize = 4 * 1024;
/// When the server has sent nothing for this long, the job uses the bytes it has
/// even below the margin (the last packet may then be cut and is resynced): a
/// stalled server still gets its first seconds played, and then its
/// `TrackStuckEvent`.
pub const STALL_GRACE: std::time::Duration = std::time::Duration::from_millis(200);
/// Blocks kept while an open or seek replays (a few regions of the file: the head,
/// an index at the end, the steps of a bisection).
pub const OP_BLOCKS: usize = 64;
/// Smallest read-ahead, in bytes.
pub const MIN_READAHEAD: usize = 4 * BLOCK;

/// Largest read-ahead, in bytes.
pub const MAX_READAHEAD: usize = 4 << 20;
/// Bitrate assumed for the read-ahead of a stream whose bitrate cannot be worked out
/// (a live stream, or no length): 320 kb/s.
const FALLBACK_BYTES_PER_MS: u64 = 40;

/// How much to read ahead, in audio time: turned into bytes from the track's average
/// bitrate once the server states the body's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readahead {
    /// Audio to hold ahead of the reader (`frameBufferDurationMs`).
    pub ms: u64,
    /// The track's duration, when known (not for live streams).
    pub track_ms: Option<u64>,
}

impl Readahead {
    /// The read-ahead in bytes for a body of `length` bytes.
    pub fn bytes(&self, length: Option<u64>) -> usize {
        let bytes = match (length, self.track_ms) {
            (Some(len), Some(track)) if track > 0 => {
                (u128::from(len) * u128::from(self.ms) / u128::from(track)) as u64
            }
            _ => self.ms.saturating_mul(FALLBACK_BYTES_PER_MS),
        };
        (bytes.min(MAX_READAHEAD as u64) as usize).max(MIN_READAHEAD)
    }
}

/// A callback that wakes someone (the fetcher, or the decode job's thread).
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// What the first response said about the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamHead {
    /// Total length in bytes, when the server states it.
    pub length: Option<u64>,
    /// Whether `Range` requests can reach any offset.
    pub seekable: bool,
}

/// What the fetcher should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Open a connection at this offset (replacing any current one).
    Connect(u64),
    /// Keep reading the current connection.
    Read,
    /// Nothing to fetch now: wait until woken.
    Wait,
    /// The reader is gone or the stream failed: stop.
    Stop,
}

struct Block {
    index: u64,
    data: Vec<u8>,
    used: u64,
}

struct Inner {
    head: Option<StreamHead>,
    blocks: Vec<Block>,
    /// Storage of the last evicted block, reused before allocating.
    spare: Option<Vec<u8>>,
    clock: u64,
    /// The reader's position.
    pos: u64,
    /// Where a starved read wanted to be; cleared once a read there succeeds.
    want: Option<u64>,
    /// A read found no bytes since the job last asked.
    starved: bool,
    /// End of the body, once known.
    end: Option<u64>,
    /// No more bytes will come, and why.
    error: Option<String>,
    /// The job is gone.
    closed: bool,
    /// The job waits for [`StreamBuffer::poll_ready`] to become true.
    parked: bool,
    /// The margin the parked job waits for.
    margin: usize,
    /// When bytes last arrived, or the fetcher last started asking for more (time it
    /// spent idle with a full read-ahead is not a stall).
    last_arrival: std::time::Instant,
    /// The fetcher's last plan was to wait.
    idle: bool,
    stall_grace: std::time::Duration,
    job_waker: Option<Waker>,
    readahead: usize,
    /// Resizes `readahead` from the body's length once known.
    sizing: Option<Readahead>,
    /// An open or seek is replaying: keep up to [`OP_BLOCKS`].
    in_op: bool,
}

/// The shared compressed bytes of one network stream. See the module docs.
pub struct StreamBuffer {
    inner: Mutex<Inner>,
    wake_fetcher: Waker,
}

impl std::fmt::Debug for StreamBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let i = self.inner.lock();
        f.debug_struct("StreamBuffer")
            .field("head", &i.head)
            .field("pos", &i.pos)
            .field("blocks", &i.blocks.len())
            .field("end", &i.end)
            .field("error", &i.error)
            .finish_non_exhaustive()
    }
}

impl Inner {
    fn block(&self, index: u64) -> Option<usize> {
        self.blocks.iter().position(|b| b.index == index)
    }

    /// Where the fetcher should fill from: the starved read's target, else the reader.
    fn target(&self) -> u64 {
        self.want.unwrap_or(self.pos)
    }

    /// The first byte at or after `at` that is not cached.
    fn first_missing(&self, at: u64) -> u64 {
        let mut p = at;
        loop {
            let index = p / BLOCK as u64;
            match self.block(index) {
                Some(i) => {
                    let end = index * BLOCK as u64 + self.blocks[i].data.len() as u64;
                    if end <= p {
                        return p;
                    }
                    p = end;
                    if self.blocks[i].data.len() < BLOCK {
                        return p;
                    }
                }
                None => return p,
            }
        }
    }

    /// Whether the job can make progress at its target without starving: `margin`
    /// bytes are there (or the rest of the file), or the server stalled with some.
    fn ready(&self) -> bool {
        if self.error.is_some() || self.closed {
            return true;
        }
        if self.head.is_none() {
            return false;
        }
        let at = self.target();
        let missing = self.first_missing(at);
        if self.end.is_some_and(|end| missing >= end) {
            return true;
        }
        let ahead = (missing - at) as usize;
        ahead >= self.margin.min(self.readahead / 2)
            || (ahead > 0 && !self.idle && self.last_arrival.elapsed() >= self.stall_grace)
    }

    fn cap(&self) -> usize {
        let steady = self.readahead.div_ceil(BLOCK) + 2;
        if self.in_op {
            steady.max(OP_BLOCKS)
        } else {
            steady
        }
    }

    /// Blocks the fetcher must not evict: from the target's block to the end of the
    /// read-ahead.
    fn protected(&self, index: u64) -> bool {
        let at = self.target();
        let first = at / BLOCK as u64;
        let last = (at + self.readahead as u64) / BLOCK as u64;
        (first..=last).contains(&index)
    }

    /// Makes room for one more block; `false` when every block is protected.
    fn make_room(&mut self) -> bool {
        while self.blocks.len() >= self.cap() {
            let victim = self
                .blocks
                .iter()
                .enumerate()
                .filter(|(_, b)| !self.protected(b.index))
                .min_by_key(|(_, b)| b.used)
                .map(|(i, _)| i);
            let Some(i) = victim else { return false };
            let mut data = self.blocks.swap_remove(i).data;
            data.clear();
            self.spare = Some(data);
        }
        true
    }

    /// Frees blocks beyond the steady cap (after an operation finished).
    fn trim(&mut self) {
        self.make_room();
        self.spare = None;
    }

    /// What the fetcher should do next (see [`StreamBuffer::plan`]).
    fn plan(&self, connection: Option<u64>) -> Plan {
        if self.closed || self.error.is_some() {
            return Plan::Stop;
        }
        let Some(head) = self.head else {
            return match connection {
                Some(_) => Plan::Read,
                None => Plan::Connect(0),
            };
        };
        let target = self.target();
        let missing = self.first_missing(target);
        if self.end.is_some_and(|end| missing >= end) {
            return Plan::Wait;
        }
        if missing >= target + self.readahead as u64 {
            return Plan::Wait;
        }
        match connection {
            // Read through a short skip; a stream without ranges can only go forward.
            Some(c) if c <= missing && (missing < c + SKIP_THROUGH || !head.seekable) => Plan::Read,
            // Blocks fill from their start: a missing block is fetched whole. (Without
            // ranges the fetcher cannot do this and fails the stream.)
            _ if self.block(missing / BLOCK as u64).is_some() => Plan::Connect(missing),
            _ => Plan::Connect(missing / BLOCK as u64 * BLOCK as u64),
        }
    }

    fn wake_job(&mut self) -> Option<Waker> {
        if self.parked && self.ready() {
            self.parked = false;
            return self.job_waker.clone();
        }
        None
    }
}

impl StreamBuffer {
    /// An empty stream that reads ahead `readahead` bytes; `wake_fetcher` is called
    /// (with no lock held) whenever the fetcher may have something new to do.
    pub fn new(readahead: usize, wake_fetcher: Waker) -> StreamBuffer {
        Self::build(readahead, None, wake_fetcher)
    }

    /// An empty stream whose read-ahead is `readahead` worth of audio (in bytes from
    /// the track's average bitrate once the first response states the length).
    pub fn sized(readahead: Readahead, wake_fetcher: Waker) -> StreamBuffer {
        Self::build(readahead.bytes(None), Some(readahead), wake_fetcher)
    }

    fn build(readahead: usize, sizing: Option<Readahead>, wake_fetcher: Waker) -> StreamBuffer {
        StreamBuffer {
            inner: Mutex::new(Inner {
                head: None,
                blocks: Vec::new(),
                spare: None,
                clock: 0,
                pos: 0,
                want: None,
                starved: false,
                end: None,
                error: None,
                closed: false,
                parked: false,
                margin: LOW_WATER,
                last_arrival: std::time::Instant::now(),
                idle: false,
                stall_grace: STALL_GRACE,
                job_waker: None,
                readahead: readahead.max(MIN_READAHEAD),
                sizing,
                in_op: false,
            }),
            wake_fetcher,
        }
    }

    // ---- the decode job's side ----

    /// Sets how long a silent server counts as stalled ([`STALL_GRACE`] by default;
    /// tests that must not depend on timing set it out of reach).
    pub fn set_stall_grace(&self, grace: std::time::Duration) {
        self.inner.lock().stall_grace = grace;
    }

    /// Sets what wakes the job after [`poll_ready`](Self::poll_ready) said no.
    pub fn set_job_waker(&self, waker: Waker) {
        self.inner.lock().job_waker = Some(waker);
    }

    /// A reader from the start of the body (each open attempt takes a fresh one).
    pub fn reader(self: &Arc<Self>) -> StreamReader {
        self.inner.lock().pos = 0;
        StreamReader {
            buffer: self.clone(),
        }
    }

    /// Whether the job can go on: the head is known and `margin` bytes (or the rest
    /// of the file) are cached at the position it needs, or the server stalled after
    /// sending some, or the stream failed. When not, the job is parked, and the job
    /// waker is called once it can go on (a stall is noticed by the job's thread
    /// looking again).
    pub fn poll_ready(&self, margin: usize) -> bool {
        let mut i = self.inner.lock();
        i.margin = margin;
        let ready = i.ready();
        i.parked = !ready;
        ready
    }

    /// Whether a read starved since the last call (the operation must be retried).
    pub fn take_starved(&self) -> bool {
        std::mem::take(&mut self.inner.lock().starved)
    }

    /// An open or seek starts replaying: keep what it reads until [`end_op`](Self::end_op).
    pub fn begin_op(&self) {
        let mut i = self.inner.lock();
        i.in_op = true;
        i.starved = false;
    }

    /// The operation completed: back to the steady read-ahead.
    pub fn end_op(&self) {
        let mut i = self.inner.lock();
        i.in_op = false;
        i.want = None;
        i.trim();
        drop(i);
        (self.wake_fetcher)();
    }

    /// What the server said, once connected.
    pub fn head(&self) -> Option<StreamHead> {
        self.inner.lock().head
    }

    /// Why the stream failed, if it did.
    pub fn error(&self) -> Option<String> {
        self.inner.lock().error.clone()
    }

    /// How much audio a forward seek can read through without a new connection:
    /// what is cached ahead of the reader plus [`SKIP_THROUGH`], at the track's
    /// average bitrate (`None` when that is unknown).
    pub fn read_through_ms(&self) -> Option<u64> {
        let i = self.inner.lock();
        let sizing = i.sizing?;
        let (Some(length), Some(track_ms)) = (i.head?.length, sizing.track_ms) else {
            return None;
        };
        if length == 0 || track_ms == 0 {
            return None;
        }
        let ahead = i.first_missing(i.pos) - i.pos;
        Some(((ahead + SKIP_THROUGH) as u128 * track_ms as u128 / length as u128) as u64)
    }

    /// Bytes held in the cache (for memory accounting and tests).
    pub fn cached_bytes(&self) -> usize {
        self.inner
            .lock()
            .blocks
            .iter()
            .map(|b| b.data.capacity())
            .sum()
    }

    /// The job is gone: the fetcher stops.
    pub fn close(&self) {
        let mut i = self.inner.lock();
        i.closed = true;
        i.job_waker = None;
        i.blocks.clear();
        i.spare = None;
        drop(i);
        (self.wake_fetcher)();
    }

    // ---- the fetcher's side ----

    /// What to do next, given the offset of the open connection's next byte.
    pub fn plan(&self, connection: Option<u64>) -> Plan {
        let mut i = self.inner.lock();
        let plan = i.plan(connection);
        let idle = plan == Plan::Wait;
        if i.idle && !idle {
            i.last_arrival = std::time::Instant::now();
        }
        i.idle = idle;
        plan
    }

    /// A connection opened; the first one also brings the head.
    pub fn connected(&self, head: StreamHead) {
        let mut i = self.inner.lock();
        i.last_arrival = std::time::Instant::now();
        if i.head.is_none() {
            i.head = Some(head);
            i.end = head.length;
            if let Some(sizing) = i.sizing {
                i.readahead = sizing.bytes(head.length);
            }
        }
        let waker = i.wake_job();
        drop(i);
        if let Some(w) = waker {
            w();
        }
    }

    /// Takes bytes a connection delivered at offset `at`; returns how many were
    /// consumed (stored or skipped). Fewer than given means the cache is full of
    /// bytes still ahead of the reader: call again after the fetcher is woken.
    pub fn store(&self, at: u64, bytes: &[u8]) -> usize {
        let mut i = self.inner.lock();
        if i.closed {
            return bytes.len();
        }
        i.last_arrival = std::time::Instant::now();
        let target = i.target();
        let from = i.first_missing(target) / BLOCK as u64 * BLOCK as u64;
        let mut done = 0;
        while done < bytes.len() {
            let p = at + done as u64;
            let rest = bytes.len() - done;
            if p < from {
                done += (from - p).min(rest as u64) as usize;
                continue;
            }
            let index = p / BLOCK as u64;
            let offset = (p % BLOCK as u64) as usize;
            let span = (BLOCK - offset).min(rest);
            let slot = match i.block(index) {
                Some(b) => b,
                None if offset == 0 => {
                    if !i.make_room() {
                        break;
                    }
                    let data = i.spare.take().unwrap_or_else(|| Vec::with_capacity(BLOCK));
                    i.blocks.push(Block {
                        index,
                        data,
                        used: 0,
                    });
                    i.blocks.len() - 1
                }
                // Mid-block without the block (evicted meanwhile): drop to its end.
                None => {
                    done += span;
                    continue;
                }
            };
            i.clock += 1;
            let clock = i.clock;
            let block = &mut i.blocks[slot];
            block.used = clock;
            let have = block.data.len();
            if offset < have {
                // Already cached (a reconnect re-delivered it).
                done += (have - offset).min(span);
            } else if offset == have {
                block.data.extend_from_slice(&bytes[done..done + span]);
                done += span;
            } else {
                done += span;
            }
        }
        let waker = i.wake_job();
        drop(i);
        if let Some(w) = waker {
            w();
        }
        done
    }

    /// The connection's body ended cleanly at `at`. With a stated length, an early
    /// end is a dropped connection (`false`: reconnect if you can); without one, the
    /// stream is over.
    pub fn body_ended(&self, at: u64) -> bool {
        let mut i = self.inner.lock();
        let complete = match i.end {
            Some(end) => at >= end,
            None => {
                i.end = Some(at);
                true
            }
        };
        let waker = i.wake_job();
        drop(i);
        if let Some(w) = waker {
            w();
        }
        complete
    }

    /// No more bytes will come: reads past the cache fail with `message`.
    pub fn fail(&self, message: String) {
        let mut i = self.inner.lock();
        if i.error.is_none() {
            i.error = Some(message);
        }
        let waker = i.wake_job();
        drop(i);
        if let Some(w) = waker {
            w();
        }
    }

    fn read_at(&self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let mut i = self.inner.lock();
        let pos = i.pos;
        if i.end.is_some_and(|end| pos >= end) {
            return Ok(0);
        }
        let index = pos / BLOCK as u64;
        let offset = (pos % BLOCK as u64) as usize;
        if let Some(slot) = i.block(index) {
            i.clock += 1;
            let clock = i.clock;
            let block = &mut i.blocks[slot];
            if offset < block.data.len() {
                block.used = clock;
                let n = (block.data.len() - offset).min(out.len());
                out[..n].copy_from_slice(&block.data[offset..offset + n]);
                i.pos += n as u64;
                if i.want == Some(pos) {
                    i.want = None;
                }
                // Crossing into the next block frees room behind the reader.
                let crossed = i.pos / BLOCK as u64 != index;
                drop(i);
                if crossed {
                    (self.wake_fetcher)();
                }
                return Ok(n);
            }
        }
        if let Some(e) = &i.error {
            return Err(io::Error::other(e.clone()));
        }
        i.want = Some(pos);
        i.starved = true;
        drop(i);
        (self.wake_fetcher)();
        Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            "the network has not delivered these bytes yet",
        ))
    }
}

/// The decode job's ownership of a [`StreamBuffer`]: dropping it (the job ended or
/// was never started) closes the stream, which stops its fetcher.
#[derive(Debug)]
pub struct StreamInput(Arc<StreamBuffer>);

impl StreamInput {
    /// Owns `buffer` for a job.
    pub fn new(buffer: Arc<StreamBuffer>) -> StreamInput {
        StreamInput(buffer)
    }

    /// The shared buffer.
    pub fn buffer(&self) -> &Arc<StreamBuffer> {
        &self.0
    }
}

impl Drop for StreamInput {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// The decode job's view of a [`StreamBuffer`]: `Read + Seek` that never blocks.
#[derive(Debug)]
pub struct StreamReader {
    buffer: Arc<StreamBuffer>,
}

impl Read for StreamReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.buffer.read_at(out)
    }
}

impl Seek for StreamReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let mut i = self.buffer.inner.lock();
        let target = match to {
            SeekFrom::Start(p) => p as i64,
            SeekFrom::Current(d) => i.pos as i64 + d,
            SeekFrom::End(d) => {
                i.end
                    .or(i.head.and_then(|h| h.length))
                    .ok_or_else(|| io::Error::other("unknown length"))? as i64
                    + d
            }
        };
        let target =
            u64::try_from(target).map_err(|_| io::Error::other("seek before the start"))?;
        if target != i.pos && !i.head.is_some_and(|h| h.seekable) {
            let cached = i
                .block(target / BLOCK as u64)
                .is_some_and(|b| (target % BLOCK as u64) < i.blocks[b].data.len() as u64);
            if !cached {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "the server does not support range requests",
                ));
            }
        }
        i.pos = target;
        drop(i);
        (self.buffer.wake_fetcher)();
        Ok(target)
    }
}

impl MediaSource for StreamReader {
    fn is_seekable(&self) -> bool {
        self.buffer.head().is_some_and(|h| h.seekable)
    }

    fn byte_len(&self) -> Option<u64> {
        self.buffer.head().and_then(|h| h.length)
    }
}

/// A stream served from bytes in memory by a thread of its own, as a network
/// fetcher would serve it (connections at the offsets the plan asks for, the body in
/// `chunk`-byte pieces): for tests, benches and fuzzing of the network path without
/// a network. The thread ends when the job closes the stream.
pub fn in_memory(
    data: Vec<u8>,
    head: StreamHead,
    readahead: usize,
    chunk: usize,
) -> (Arc<StreamBuffer>, std::thread::JoinHandle<()>) {
    let (tx, rx) = std::sync::mpsc::channel::<Arc<StreamBuffer>>();
    let feeder = std::thread::spawn(move || {
        let Ok(buffer) = rx.recv() else { return };
        let mut connection: Option<u64> = None;
        loop {
            match buffer.plan(connection) {
                Plan::Stop => return,
                Plan::Wait => std::thread::park_timeout(std::time::Duration::from_millis(50)),
                Plan::Connect(at) if at > 0 && !head.seekable => {
                    buffer.fail("the server does not support range requests".into());
                }
                Plan::Connect(at) => {
                    buffer.connected(head);
                    connection = Some(at.min(data.len() as u64));
                }
                Plan::Read => {
                    let at = connection.unwrap_or(0);
                    if at as usize >= data.len() {
                        buffer.body_ended(at);
                        connection = None;
                        std::thread::park_timeout(std::time::Duration::from_millis(50));
                        continue;
                    }
                    let end = (at as usize + chunk.max(1)).min(data.len());
                    let n = buffer.store(at, &data[at as usize..end]);
                    if n == 0 {
                        std::thread::park_timeout(std::time::Duration::from_millis(50));
                    }
                    connection = Some(at + n as u64);
                }
            }
        }
    });
    let thread = feeder.thread().clone();
    let buffer = Arc::new(StreamBuffer::new(
        readahead,
        Arc::new(move || thread.unpark()),
    ));
    let _ = tx.send(buffer.clone());
    (buffer, feeder)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn buffer(readahead: usize) -> (Arc<StreamBuffer>, Arc<AtomicUsize>) {
        let woken = Arc::new(AtomicUsize::new(0));
        let w = woken.clone();
        let b = Arc::new(StreamBuffer::new(
            readahead,
            Arc::new(move || {
                w.fetch_add(1, Ordering::Relaxed);
            }),
        ));
        b.set_stall_grace(std::time::Duration::MAX);
        (b, woken)
    }

    fn file(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    const LEN: usize = 1 << 21;

    const SEEKABLE: StreamHead = StreamHead {
        length: Some(LEN as u64),
        seekable: true,
    };

    /// Feeds the connection at `at` until the plan stops saying `Read`; returns the
    /// connection's new position.
    fn pump(b: &StreamBuffer, data: &[u8], mut at: u64) -> u64 {
        while b.plan(Some(at)) == Plan::Read && (at as usize) < data.len() {
            let end = (at as usize + 4000).min(data.len());
            let n = b.store(at, &data[at as usize..end]);
            if n == 0 {
                break;
            }
            at += n as u64;
        }
        at
    }

    #[test]
    fn reads_what_arrived_and_starves_without_blocking_past_it() {
        let (b, woken) = buffer(8 * BLOCK);
        let data = file(LEN);
        assert_eq!(b.plan(None), Plan::Connect(0));
        b.connected(SEEKABLE);
        assert_eq!(b.store(0, &data[..1000]), 1000);
        let mut r = b.reader();
        let mut out = vec![0; 4096];
        assert_eq!(r.read(&mut out).unwrap(), 1000);
        assert_eq!(&out[..1000], &data[..1000]);
        let before = woken.load(Ordering::Relaxed);
        let e = r.read(&mut out).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert!(b.take_starved());
        assert!(!b.take_starved(), "taken");
        assert!(
            woken.load(Ordering::Relaxed) > before,
            "the fetcher was asked"
        );
    }

    #[test]
    fn read_ahead_is_bounded_and_resumes_as_the_reader_moves() {
        let (b, _) = buffer(8 * BLOCK);
        let data = file(LEN);
        b.connected(SEEKABLE);
        let at = pump(&b, &data, 0);
        assert!(
            (8 * BLOCK as u64..8 * BLOCK as u64 + 4000).contains(&at),
            "stops after the read-ahead: {at}"
        );
        assert_eq!(b.plan(Some(at)), Plan::Wait);
        let mut r = b.reader();
        let mut out = vec![0; BLOCK];
        for _ in 0..4 {
            assert_eq!(r.read(&mut out).unwrap(), BLOCK);
        }
        assert_eq!(b.plan(Some(at)), Plan::Read, "room again");
        let at = pump(&b, &data, at);
        assert!(at >= 12 * BLOCK as u64);
        assert!(b.cached_bytes() <= (8 + 2) * BLOCK, "{}", b.cached_bytes());
        for k in 4..12 {
            assert_eq!(r.read(&mut out).unwrap(), BLOCK);
            assert_eq!(out, data[k * BLOCK..(k + 1) * BLOCK]);
        }
    }

    #[test]
    fn seeks_in_the_cache_or_a_short_way_ahead_keep_the_connection() {
        let (b, _) = buffer(8 * BLOCK);
        let data = file(LEN);
        b.connected(SEEKABLE);
        let at = pump(&b, &data, 0);
        let mut r = b.reader();
        let mut out = vec![0; 100];
        // Inside the cache: no fetching at all.
        r.seek(SeekFrom::Start(5 * BLOCK as u64 + 7)).unwrap();
        assert_eq!(r.read(&mut out).unwrap(), 100);
        assert_eq!(out, data[5 * BLOCK + 7..5 * BLOCK + 107]);
        // 300 KB past the connection: read through, skipping what is not wanted.
        let far = at + 300 * 1024;
        r.seek(SeekFrom::Start(far)).unwrap();
        assert!(r.read(&mut out).is_err());
        assert_eq!(b.plan(Some(at)), Plan::Read);
        let at = pump(&b, &data, at);
        assert!(at > far);
        assert_eq!(r.read(&mut out).unwrap(), 100);
        assert_eq!(out, data[far as usize..far as usize + 100]);
        // Far past it, or behind the cache: a new connection at the first missing byte.
        let beyond = at + SKIP_THROUGH + 1000;
        r.seek(SeekFrom::Start(beyond)).unwrap();
        assert!(r.read(&mut out).is_err());
        assert_eq!(
            b.plan(Some(at)),
            Plan::Connect(beyond / BLOCK as u64 * BLOCK as u64),
            "from the start of the missing block"
        );
        r.seek(SeekFrom::Start(10)).unwrap();
        assert!(r.read(&mut out).is_err());
        assert_eq!(
            b.plan(Some(at)),
            Plan::Connect(0),
            "evicted behind the reader"
        );
    }

    #[test]
    fn a_replayed_open_finds_the_regions_it_already_read() {
        // An open that reads the head, then the end, then the head again.
        let (b, _) = buffer(4 * BLOCK);
        let data = file(LEN);
        b.connected(SEEKABLE);
        b.begin_op();
        let at = pump(&b, &data, 0);
        let attempt = |b: &Arc<StreamBuffer>| -> io::Result<()> {
            let mut r = b.reader();
            let mut out = vec![0; 3000];
            r.read_exact(&mut out)?;
            r.seek(SeekFrom::End(-2000))?;
            r.read_exact(&mut out[..2000])?;
            r.seek(SeekFrom::Start(0))?;
            r.read_exact(&mut out)
        };
        assert!(attempt(&b).is_err());
        assert!(b.take_starved());
        assert!(!b.poll_ready(LOW_WATER), "parked until the end arrives");
        let end_at = match b.plan(Some(at)) {
            Plan::Connect(p) => p,
            other => panic!("{other:?}"),
        };
        assert_eq!(end_at, (LEN as u64 - 2000) / BLOCK as u64 * BLOCK as u64);
        b.connected(SEEKABLE);
        pump(&b, &data, end_at);
        assert!(b.poll_ready(LOW_WATER));
        attempt(&b).expect("the replay finds the head and the end cached");
        b.end_op();
        assert!(b.cached_bytes() <= (4 + 2) * BLOCK);
    }

    #[test]
    fn a_parked_job_is_woken_once_the_margin_arrives() {
        let (b, _) = buffer(8 * BLOCK);
        let data = file(LEN);
        let job = Arc::new(AtomicUsize::new(0));
        let j = job.clone();
        b.set_job_waker(Arc::new(move || {
            j.fetch_add(1, Ordering::Relaxed);
        }));
        assert!(!b.poll_ready(LOW_WATER), "no head yet");
        b.connected(SEEKABLE);
        assert_eq!(job.load(Ordering::Relaxed), 0, "connected, but no bytes");
        b.store(0, &data[..LOW_WATER - 1]);
        assert_eq!(job.load(Ordering::Relaxed), 0);
        b.store(LOW_WATER as u64 - 1, &data[LOW_WATER - 1..LOW_WATER + 10]);
        assert_eq!(job.load(Ordering::Relaxed), 1);
        // Not parked: more bytes wake nobody.
        b.store(LOW_WATER as u64 + 10, &data[LOW_WATER + 10..LOW_WATER + 20]);
        assert_eq!(job.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn the_end_of_a_stream_and_a_failure_release_the_job() {
        let (b, _) = buffer(8 * BLOCK);
        b.connected(StreamHead {
            length: None,
            seekable: false,
        });
        b.store(0, b"short");
        assert!(!b.poll_ready(LOW_WATER));
        assert!(b.body_ended(5));
        assert!(b.poll_ready(LOW_WATER), "the rest of the stream is cached");
        let mut r = b.reader();
        let mut all = Vec::new();
        r.read_to_end(&mut all).unwrap();
        assert_eq!(all, b"short");
        assert_eq!(b.plan(None), Plan::Wait);

        let (b, _) = buffer(8 * BLOCK);
        b.connected(SEEKABLE);
        b.store(0, b"abc");
        b.fail("gone".into());
        assert!(b.poll_ready(LOW_WATER));
        let mut r = b.reader();
        let mut out = [0; 10];
        assert_eq!(r.read(&mut out).unwrap(), 3);
        assert_eq!(r.read(&mut out).unwrap_err().to_string(), "gone");
        assert_eq!(b.plan(None), Plan::Stop);
    }

    #[test]
    fn a_stream_without_ranges_refuses_far_seeks() {
        let (b, _) = buffer(8 * BLOCK);
        b.connected(StreamHead {
            length: Some(1 << 20),
            seekable: false,
        });
        b.store(0, &file(1000));
        let mut r = b.reader();
        assert!(r.seek(SeekFrom::Start(500)).is_ok(), "cached");
        assert_eq!(
            r.seek(SeekFrom::Start(500_000)).unwrap_err().kind(),
            io::ErrorKind::Unsupported
        );
    }
}
