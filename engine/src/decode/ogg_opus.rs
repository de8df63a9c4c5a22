//! An Ogg Opus demuxer that reads pages straight from the source.
//!
//! Why not symphonia's Ogg reader: it needs a `MediaSourceStream`, whose ring it grows
//! to 128 KiB for Ogg's page seek-back. Every passthrough player kept that ring, about
//! a third of its memory, on top of the network cache that already holds the same
//! bytes. It also reads the file's end when it opens (for the duration: one more HTTP
//! request per track) and bisects blindly when it seeks (a `Range` request per probe).
//! This reader keeps one page and one unfinished packet, never reads the end, and
//! seeks by interpolating between pages it has seen.
//!
//! It is resumable, as the network stream needs: a read that would block leaves what
//! was read of the page in place, and the next call carries on from there. A seek
//! starts from scratch each time, so a seek that starved is simply tried again.
//!
//! Timestamps are granule positions (48 kHz samples since the start of the stream,
//! pre-skip included), counted back from each page's granule over the durations of
//! the packets that end on it; a chained stream (a radio's next song) continues the
//! count. Only the first logical Opus stream is played; other streams are skipped.

use std::collections::VecDeque;
use std::io::{ErrorKind, SeekFrom};

use symphonia::core::audio::Channels;
use symphonia::core::codecs::{CodecParameters, CODEC_TYPE_OPUS};
use symphonia::core::errors::{Error, Result, SeekErrorKind};
use symphonia::core::formats::{
    Cue, FormatOptions, FormatReader, Packet, SeekMode, SeekTo, SeekedTo, Track,
};
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::{Metadata, MetadataLog};
use symphonia::core::units::TimeBase;

use crate::opus::packet_samples;

/// Bytes of a page header before its segment table.
const HEADER: usize = 27;
/// The largest page: header, 255 lacing values of 255 bytes each.
const MAX_PAGE: usize = HEADER + 255 + 255 * 255;
/// A packet spanning more than this is taken for garbage (Opus packets are at most a
/// few tens of KB).
const MAX_PACKET: usize = 256 * 1024;
/// A seek stops narrowing when the target lies within this many bytes and reads on.
const SEEK_WINDOW: u64 = 48 * 1024;
/// Probes at most this many bytes past a position for the next page.
const PROBE_SPAN: u64 = 2 * MAX_PAGE as u64;
/// Header type flags.
const CONTINUED: u8 = 0x01;
const FIRST: u8 = 0x02;
const LAST: u8 = 0x04;
/// A page on which no packet ends.
const NO_GRANULE: u64 = u64::MAX;
const TRACK_ID: u32 = 0;

/// One Ogg Opus stream.
pub struct OggOpusReader {
    source: Box<dyn MediaSource>,
    /// Offset of the page being read.
    page_at: u64,
    /// The page being read; `have` bytes of it so far.
    page: Vec<u8>,
    have: usize,
    /// The logical stream played, and its headers still to skip (the comment header).
    serial: u32,
    headers_left: u8,
    /// An unfinished packet carried into the next page.
    partial: Vec<u8>,
    /// A packet that began on an earlier page and ended on this one, joined.
    joined: Vec<u8>,
    /// The unfinished packet was too long to keep: its continuation is dropped.
    skip_partial: bool,
    /// Added to granules, so chained streams keep counting up.
    chain_base: u64,
    /// Where the next packet starts: the end of the last one, or after a seek its
    /// target page's granule; unknown at the start of a stream or chain.
    next_ts: Option<u64>,
    /// The page sequence number expected next (a gap means a lost page).
    next_sequence: Option<u32>,
    /// Offset of the first audio page: where a seek to the start goes, and the low
    /// end of a seek's search.
    data_start: u64,
    /// Packets of the page just read, not yet handed out.
    ready: VecDeque<Ready>,
    tracks: Vec<Track>,
    metadata: MetadataLog,
}

impl std::fmt::Debug for OggOpusReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OggOpusReader")
            .field("page_at", &self.page_at)
            .field("serial", &self.serial)
            .finish_non_exhaustive()
    }
}

/// What [`OggOpusReader::open`] found.
pub enum Opened {
    /// An Ogg Opus stream.
    OggOpus(OggOpusReader),
    /// Something else: the source, back at its start, for symphonia's probe.
    Other(Box<dyn MediaSource>),
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Opened::OggOpus(r) => r.fmt(f),
            Opened::Other(_) => f.write_str("Other"),
        }
    }
}

impl OggOpusReader {
    /// Reads the source's first page: an Ogg Opus stream gets a reader; anything else
    /// is handed back rewound. A read that would block is an error (the open is
    /// tried again once the bytes are there).
    pub fn open(mut source: Box<dyn MediaSource>) -> std::io::Result<Opened> {
        let mut magic = [0u8; 4];
        let mut got = 0;
        while got < magic.len() {
            match source.read(&mut magic[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        source.seek(SeekFrom::Start(0))?;
        if &magic[..got] != b"OggS" {
            return Ok(Opened::Other(source));
        }
        let mut reader = OggOpusReader {
            source,
            page_at: 0,
            page: Vec::new(),
            have: 0,
            serial: 0,
            headers_left: 0,
            partial: Vec::new(),
            joined: Vec::new(),
            skip_partial: false,
            chain_base: 0,
            next_ts: None,
            next_sequence: None,
            data_start: 0,
            ready: VecDeque::new(),
            tracks: Vec::new(),
            metadata: MetadataLog::default(),
        };
        if !reader.read_page()? {
            return Err(ErrorKind::UnexpectedEof.into());
        }
        let page = Page::parse(&reader.page);
        let head = page.first_packet(&reader.page);
        let Some(head) = head
            .filter(|_| page.flags & FIRST != 0)
            .and_then(OpusHead::parse)
        else {
            // Ogg, but not Opus (Vorbis, FLAC): symphonia's reader plays it.
            let mut source = reader.source;
            source.seek(SeekFrom::Start(0))?;
            return Ok(Opened::Other(source));
        };
        reader.serial = page.serial;
        reader.headers_left = 1;
        reader.tracks = vec![Track::new(TRACK_ID, head.params())];
        reader.next_page();
        // The comment header (one packet, perhaps over several pages) comes next;
        // audio starts on the page after it ends.
        while reader.headers_left > 0 {
            if !reader.read_page()? {
                return Err(ErrorKind::UnexpectedEof.into());
            }
            reader.take_page();
        }
        reader.data_start = reader.page_at;
        Ok(Opened::OggOpus(reader))
    }

    /// Reads the page at `page_at` into `page`, carrying on from a read that would
    /// have blocked; `false` at the clean end of the source. Garbage before a page
    /// is skipped up to the next capture pattern whose page checks out.
    fn read_page(&mut self) -> std::io::Result<bool> {
        loop {
            let need = match self.have {
                n if n < HEADER => HEADER,
                _ if self.page[..4] != *b"OggS" || self.page[4] != 0 => {
                    self.resync(1);
                    continue;
                }
                n => {
                    let segments = usize::from(self.page[26]);
                    if n < HEADER + segments {
                        HEADER + segments
                    } else {
                        let body: usize = self.page[HEADER..HEADER + segments]
                            .iter()
                            .map(|&l| usize::from(l))
                            .sum();
                        HEADER + segments + body
                    }
                }
            };
            if self.have == need {
                if crc(&self.page[..need]) != u32::from_le_bytes(self.page_crc()) {
                    self.resync(1);
                    continue;
                }
                return Ok(true);
            }
            if self.page.len() < need {
                self.page.resize(need, 0);
            }
            match self.source.read(&mut self.page[self.have..need]) {
                Ok(0) if self.have == 0 => return Ok(false),
                Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
                Ok(n) => self.have += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// [`Self::read_page`], with a torn page at the end of the source taken as the
    /// end.
    fn read_page_or_end(&mut self) -> std::io::Result<bool> {
        match self.read_page() {
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(false),
            other => other,
        }
    }

    fn page_crc(&self) -> [u8; 4] {
        [self.page[22], self.page[23], self.page[24], self.page[25]]
    }

    /// Drops the first `n` bytes read and looks for the next capture pattern in the
    /// rest.
    fn resync(&mut self, n: usize) {
        let rest = &self.page[n..self.have];
        let skip = rest
            .windows(4)
            .position(|w| w == b"OggS")
            .unwrap_or(rest.len().saturating_sub(3));
        let drop = n + skip;
        self.page.copy_within(drop..self.have, 0);
        self.have -= drop;
        self.page_at += drop as u64;
    }

    /// Moves past the page just read.
    fn next_page(&mut self) {
        self.page_at += self.have as u64;
        self.have = 0;
    }

    /// Turns the page just read into packets and moves past it.
    fn take_page(&mut self) {
        let page = Page::parse(&self.page);
        if page.serial != self.serial {
            if page.flags & FIRST != 0 {
                // A chained stream (the next song of a radio): play it if it is Opus.
                if let Some(head) = page.first_packet(&self.page).and_then(OpusHead::parse) {
                    self.serial = page.serial;
                    self.headers_left = 1;
                    self.chain_base = self.next_ts.unwrap_or(self.chain_base);
                    self.next_ts = None;
                    self.next_sequence = Some(page.sequence.wrapping_add(1));
                    self.partial.clear();
                    if let Some(track) = self.tracks.first_mut() {
                        track.codec_params = head.params();
                    }
                }
            }
            self.next_page();
            return;
        }
        if self.next_sequence.is_some_and(|n| n != page.sequence) {
            // A page went missing (corrupt, skipped): what was carried over is cut,
            // and time is taken from the granules again.
            self.partial.clear();
            self.next_ts = None;
        }
        self.next_sequence = Some(page.sequence.wrapping_add(1));
        let continued = page.flags & CONTINUED != 0;
        if !continued {
            // A packet left unfinished by the last page never ended: drop it.
            self.partial.clear();
            self.skip_partial = false;
        }
        // A continuation whose start was not read (after a seek) or not kept (too
        // long) is dropped up to its end.
        let mut dropping = continued && (self.partial.is_empty() || self.skip_partial);
        let mut joined = continued && !dropping;
        let first_new = self.ready.len();
        let (mut start, mut at) = (page.body, page.body);
        for &lace in &self.page[HEADER..page.body] {
            at += usize::from(lace);
            if lace < 255 {
                if dropping {
                    dropping = false;
                    self.skip_partial = false;
                    self.partial.clear();
                } else {
                    let bytes = if joined {
                        // The carried start and this page's end, in `joined` (the
                        // buffers swap, so neither is ever reallocated once grown).
                        joined = false;
                        std::mem::swap(&mut self.joined, &mut self.partial);
                        self.partial.clear();
                        self.joined.extend_from_slice(&self.page[start..at]);
                        Bytes::Joined
                    } else {
                        Bytes::Page(start, at)
                    };
                    if self.headers_left > 0 {
                        self.headers_left -= 1;
                    } else {
                        self.ready.push_back(Ready {
                            ts: 0,
                            dur: 0,
                            bytes,
                        });
                    }
                }
                start = at;
            }
        }
        if start < self.have {
            if dropping || self.partial.len() + self.have - start > MAX_PACKET {
                self.partial.clear();
                self.skip_partial = true;
            } else {
                self.partial.extend_from_slice(&self.page[start..self.have]);
            }
        }
        if self.ready.len() > first_new {
            let mut total = 0;
            for i in first_new..self.ready.len() {
                let dur = packet_samples(self.bytes(self.ready[i].bytes)).unwrap_or(0) as u64;
                self.ready[i].dur = dur;
                total += dur;
            }
            // On from the last packet; at the start of a stream (or of a chain), back
            // from this page's granule, where its last packet ends.
            let mut ts = self
                .next_ts
                .unwrap_or_else(|| (self.chain_base + page.granule).saturating_sub(total));
            let last = self.ready.len() - 1;
            for i in first_new..=last {
                let ready = &mut self.ready[i];
                if i == last && page.flags & LAST != 0 && page.granule != NO_GRANULE {
                    // The last page's granule cuts the encoder's padding off the end.
                    let end = self.chain_base + page.granule;
                    ready.dur = ready.dur.min(end.saturating_sub(ts));
                }
                ready.ts = ts;
                ts += ready.dur;
            }
            self.next_ts = Some(ts);
        }
        self.next_page();
    }

    /// The bytes of a packet waiting in `ready`.
    fn bytes(&self, bytes: Bytes) -> &[u8] {
        match bytes {
            Bytes::Page(a, b) => &self.page[a..b],
            Bytes::Joined => &self.joined,
        }
    }

    /// The next packet, copied into `out` (cleared first): its timestamp and duration.
    /// What the decode job calls: unlike [`FormatReader::next_packet`] it allocates
    /// nothing once `out` and the reader's buffers have grown to the stream's sizes
    /// (a `Packet` is a boxed copy, allocated and freed for every 20 ms of audio).
    pub fn read_packet(&mut self, out: &mut Vec<u8>) -> Result<(u64, u64)> {
        loop {
            if let Some(ready) = self.ready.pop_front() {
                out.clear();
                out.extend_from_slice(self.bytes(ready.bytes));
                return Ok((ready.ts, ready.dur));
            }
            if !self.read_page().map_err(Error::IoError)? {
                return Err(Error::IoError(ErrorKind::UnexpectedEof.into()));
            }
            self.take_page();
        }
    }

    /// The offset and granule of the first page of our stream with a granule at or
    /// after `at` (within [`PROBE_SPAN`]), `None` if there is none.
    fn probe(&mut self, at: u64, end: u64) -> std::io::Result<Option<(u64, u64)>> {
        self.page_at = at;
        self.have = 0;
        self.source.seek(SeekFrom::Start(at))?;
        while self.page_at < end.min(at + PROBE_SPAN) {
            if !self.read_page_or_end()? {
                return Ok(None);
            }
            let page = Page::parse(&self.page);
            if page.serial == self.serial && page.granule != NO_GRANULE {
                return Ok(Some((self.page_at, page.granule)));
            }
            self.next_page();
        }
        Ok(None)
    }

    fn seek_to(&mut self, required: u64) -> Result<u64> {
        let len = self.source.byte_len();
        let (Some(len), true) = (len, self.source.is_seekable()) else {
            return Err(Error::SeekError(SeekErrorKind::Unseekable));
        };
        if self.chain_base > 0 {
            // Chained files seek by their first stream's granules only.
            return Err(Error::SeekError(SeekErrorKind::Unseekable));
        }
        self.ready.clear();
        self.partial.clear();
        self.skip_partial = false;
        self.next_sequence = None;
        // The last page known to end before the target (its offset and granule), and
        // the first known to end at or after it.
        let mut below: Option<(u64, u64)> = None;
        let mut lo = (self.data_start, 0u64);
        let mut hi: Option<(u64, u64)> = None;
        let mut end = len;
        loop {
            let span = hi.map_or(end, |h| h.0).min(end).saturating_sub(lo.0);
            if span <= SEEK_WINDOW {
                break;
            }
            // Interpolate between the pages on either side (audio is roughly constant
            // bitrate), kept off the ends so a bad guess still halves the span.
            let guess = match hi {
                Some((ho, hg)) if hg > lo.1 => {
                    let f = (required - lo.1) as f64 / (hg - lo.1) as f64;
                    lo.0 + (f * (ho - lo.0) as f64) as u64
                }
                _ => lo.0 + span / 2,
            };
            let at = guess
                .saturating_sub(SEEK_WINDOW / 4)
                .clamp(lo.0 + span / 16, lo.0 + span - span / 16);
            match self.probe(at, end).map_err(Error::IoError)? {
                Some((off, g)) if g < required => {
                    below = Some((off, g));
                    lo = (off, g);
                }
                Some((off, g)) => hi = Some((off.min(at), g)),
                None => end = at,
            }
        }
        // Read on from the last page below the target to the last one still below.
        let from = below.map_or(self.data_start, |b| b.0);
        self.page_at = from;
        self.have = 0;
        self.source
            .seek(SeekFrom::Start(from))
            .map_err(Error::IoError)?;
        let mut last: Option<u64> = below.map(|b| b.0);
        loop {
            if !self.read_page_or_end().map_err(Error::IoError)? {
                break;
            }
            let page = Page::parse(&self.page);
            if page.serial == self.serial && page.granule != NO_GRANULE {
                if page.granule >= required {
                    break;
                }
                last = Some(self.page_at);
            }
            self.next_page();
        }
        // Start after that page: its unfinished packet is the first one handed out,
        // at its granule.
        let actual = match last {
            Some(at) => {
                self.page_at = at;
                self.have = 0;
                self.source
                    .seek(SeekFrom::Start(at))
                    .map_err(Error::IoError)?;
                self.read_page().map_err(Error::IoError)?;
                let granule = Page::parse(&self.page).granule;
                self.take_page();
                self.ready.clear();
                self.next_ts = Some(granule);
                granule
            }
            None => {
                self.page_at = self.data_start;
                self.have = 0;
                self.source
                    .seek(SeekFrom::Start(self.data_start))
                    .map_err(Error::IoError)?;
                self.next_ts = None;
                0
            }
        };
        Ok(actual)
    }
}

impl FormatReader for OggOpusReader {
    fn try_new(_: MediaSourceStream, _: &FormatOptions) -> Result<Self> {
        Err(Error::Unsupported(
            "open an Ogg Opus stream with OggOpusReader::open",
        ))
    }

    fn cues(&self) -> &[Cue] {
        &[]
    }

    fn metadata(&mut self) -> Metadata<'_> {
        self.metadata.metadata()
    }

    fn seek(&mut self, _mode: SeekMode, to: SeekTo) -> Result<SeekedTo> {
        let required = match to {
            SeekTo::TimeStamp { ts, .. } => ts,
            SeekTo::Time { time, .. } => {
                time.seconds * 48_000 + (time.frac * 48_000.0).round() as u64
            }
        };
        // Whatever happens, the next read starts on a page boundary.
        self.have = 0;
        let result = self.seek_to(required);
        if result.is_err() {
            // The next page's continuation, if any, has no start: it is dropped.
            self.ready.clear();
            self.partial.clear();
        }
        Ok(SeekedTo {
            track_id: TRACK_ID,
            required_ts: required,
            actual_ts: result?,
        })
    }

    fn tracks(&self) -> &[Track] {
        &self.tracks
    }

    fn next_packet(&mut self) -> Result<Packet> {
        let mut bytes = Vec::new();
        let (ts, dur) = self.read_packet(&mut bytes)?;
        Ok(Packet::new_from_boxed_slice(
            TRACK_ID,
            ts,
            dur,
            bytes.into_boxed_slice(),
        ))
    }

    fn into_inner(self: Box<Self>) -> MediaSourceStream {
        MediaSourceStream::new(self.source, Default::default())
    }
}

/// A packet of the page just read.
#[derive(Debug, Clone, Copy)]
struct Ready {
    ts: u64,
    dur: u64,
    bytes: Bytes,
}

/// Where a ready packet's bytes are: the page buffer holds them until the next page is
/// read, which happens only once every packet of this one was handed out.
#[derive(Debug, Clone, Copy)]
enum Bytes {
    /// `page[a..b]`.
    Page(usize, usize),
    /// `joined`.
    Joined,
}

/// A page's header fields.
struct Page {
    flags: u8,
    granule: u64,
    serial: u32,
    sequence: u32,
    /// Offset of the body in the page.
    body: usize,
}

impl Page {
    fn parse(page: &[u8]) -> Page {
        let word =
            |at: usize| u32::from_le_bytes([page[at], page[at + 1], page[at + 2], page[at + 3]]);
        Page {
            flags: page[5],
            granule: u64::from(word(6)) | (u64::from(word(10)) << 32),
            serial: word(14),
            sequence: word(18),
            body: HEADER + usize::from(page[26]),
        }
    }

    /// The first packet, when it ends on this page.
    fn first_packet<'a>(&self, page: &'a [u8]) -> Option<&'a [u8]> {
        let mut len = 0;
        for &lace in &page[HEADER..self.body] {
            len += usize::from(lace);
            if lace < 255 {
                return page.get(self.body..self.body + len);
            }
        }
        None
    }
}

/// The identification header's fields we use.
struct OpusHead {
    channels: u8,
    pre_skip: u16,
}

impl OpusHead {
    fn parse(packet: &[u8]) -> Option<OpusHead> {
        if packet.len() < 19 || &packet[..8] != b"OpusHead" {
            return None;
        }
        Some(OpusHead {
            channels: packet[9],
            pre_skip: u16::from_le_bytes([packet[10], packet[11]]),
        })
    }

    fn params(&self) -> CodecParameters {
        let mut params = CodecParameters::new();
        params
            .for_codec(CODEC_TYPE_OPUS)
            .with_sample_rate(48_000)
            .with_time_base(TimeBase::new(1, 48_000))
            .with_delay(u32::from(self.pre_skip))
            .with_channels(if self.channels == 1 {
                Channels::FRONT_LEFT
            } else {
                Channels::FRONT_LEFT | Channels::FRONT_RIGHT
            });
        params
    }
}

/// Ogg's CRC-32 (polynomial 0x04c11db7, not reflected, no final xor) of a page whose
/// checksum field counts as zero. Every byte of every page goes through it, so it is
/// the demuxer's main cost: a table sliced 16 ways runs it ~6x faster than a bytewise
/// table (profiled: the bytewise loop was a third of the decode pool's time for Opus
/// passthrough).
fn crc(page: &[u8]) -> u32 {
    let mut digest = OGG_CRC.digest();
    digest.update(&page[..22]);
    digest.update(&[0; 4]);
    digest.update(&page[26..]);
    digest.finalize()
}

const OGG_CRC: crc::Crc<u32, crc::Table<16>> =
    crc::Crc::<u32, crc::Table<16>>::new(&crc::Algorithm {
        width: 32,
        poly: 0x04c1_1db7,
        init: 0,
        refin: false,
        refout: false,
        xorout: 0,
        check: 0x89a1_897f,
        residue: 0,
    });

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Read, Seek};
    use symphonia::core::formats::FormatOptions;

    fn media(name: &str) -> Vec<u8> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/media/");
        std::fs::read(format!("{path}{name}")).unwrap()
    }

    fn reader(bytes: Vec<u8>) -> OggOpusReader {
        match OggOpusReader::open(Box::new(Cursor::new(bytes))).unwrap() {
            Opened::OggOpus(r) => r,
            Opened::Other(_) => panic!("not taken for Ogg Opus"),
        }
    }

    /// The sliced table computes Ogg's CRC as its definition does, bit by bit, with the
    /// checksum field counted as zero, over every length class the slicing handles.
    #[test]
    fn the_crc_is_oggs() {
        fn bitwise(page: &[u8]) -> u32 {
            let mut crc = 0u32;
            for (i, &b) in page.iter().enumerate() {
                crc ^= u32::from(if (22..26).contains(&i) { 0 } else { b }) << 24;
                for _ in 0..8 {
                    crc = if crc & 0x8000_0000 != 0 {
                        (crc << 1) ^ 0x04c1_1db7
                    } else {
                        crc << 1
                    };
                }
            }
            crc
        }
        let bytes: Vec<u8> = (0..5000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for len in [27, 28, 33, 42, 43, 100, 4096, 5000] {
            assert_eq!(crc(&bytes[..len]), bitwise(&bytes[..len]), "{len} bytes");
        }
        // A real page's stored checksum is what `crc` computes.
        let file = media("sine.opus");
        let segments = usize::from(file[26]);
        let len = 27
            + segments
            + file[27..27 + segments]
                .iter()
                .map(|&l| usize::from(l))
                .sum::<usize>();
        assert_eq!(
            crc(&file[..len]),
            u32::from_le_bytes(file[22..26].try_into().unwrap())
        );
    }

    /// (ts, dur, bytes) of every packet to the end.
    fn packets(r: &mut dyn FormatReader) -> Vec<(u64, u64, Vec<u8>)> {
        let mut out = Vec::new();
        loop {
            match r.next_packet() {
                Ok(p) => out.push((p.ts(), p.dur(), p.buf().to_vec())),
                Err(Error::IoError(e)) if e.kind() == ErrorKind::UnexpectedEof => return out,
                Err(e) => panic!("{e}"),
            }
        }
    }

    /// symphonia's reader, the reference.
    fn reference(bytes: Vec<u8>) -> Vec<Vec<u8>> {
        let mss = MediaSourceStream::new(Box::new(Cursor::new(bytes)), Default::default());
        let mut r = symphonia::default::formats::OggReader::try_new(mss, &FormatOptions::default())
            .unwrap();
        let mut out = Vec::new();
        loop {
            match r.next_packet() {
                Ok(p) => out.push(p.buf().to_vec()),
                Err(Error::IoError(e)) if e.kind() == ErrorKind::UnexpectedEof => return out,
                Err(Error::ResetRequired) => {}
                Err(e) => panic!("{e}"),
            }
        }
    }

    #[test]
    fn packets_are_symphonias_with_contiguous_timestamps() {
        for name in ["long.opus", "sine.opus"] {
            let bytes = media(name);
            let ours = packets(&mut reader(bytes.clone()));
            let theirs = reference(bytes);
            assert_eq!(ours.len(), theirs.len(), "{name}");
            assert!(
                ours.iter().map(|p| &p.2).eq(theirs.iter()),
                "{name}: bytes differ"
            );
            for w in ours.windows(2) {
                assert_eq!(w[0].0 + w[0].1, w[1].0, "{name}: a gap or overlap");
            }
            assert_eq!(ours[0].0, 0, "{name}");
        }
    }

    /// Reads that come a few bytes at a time, every other one refusing to block once
    /// `blocking` is set: the network stream's reader, whose bytes arrive when they
    /// arrive.
    struct Trickle {
        inner: Cursor<Vec<u8>>,
        calls: u64,
        blocking: std::sync::Arc<std::sync::atomic::AtomicBool>,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.calls += 1;
            if self.calls % 2 == 0 && self.blocking.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(1 + (self.calls % 7) as usize);
            self.inner.read(&mut buf[..n])
        }
    }

    impl Seek for Trickle {
        fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
            self.inner.seek(to)
        }
    }

    impl MediaSource for Trickle {
        fn is_seekable(&self) -> bool {
            true
        }
        fn byte_len(&self) -> Option<u64> {
            Some(self.inner.get_ref().len() as u64)
        }
    }

    #[test]
    fn a_read_that_would_block_resumes_where_it_stopped() {
        let bytes = media("long.opus");
        let expected = packets(&mut reader(bytes.clone()));
        let blocking = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let source = Trickle {
            inner: Cursor::new(bytes),
            calls: 0,
            blocking: blocking.clone(),
        };
        let Ok(Opened::OggOpus(mut r)) = OggOpusReader::open(Box::new(source)) else {
            panic!("not taken for Ogg Opus");
        };
        blocking.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut got = Vec::new();
        let mut refused = 0;
        loop {
            match r.next_packet() {
                Ok(p) => got.push((p.ts(), p.dur(), p.buf().to_vec())),
                Err(Error::IoError(e)) if e.kind() == ErrorKind::WouldBlock => refused += 1,
                Err(Error::IoError(e)) if e.kind() == ErrorKind::UnexpectedEof => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(refused > 1000, "the reads did block: {refused}");
        assert!(
            got == expected,
            "{} packets against {}",
            got.len(),
            expected.len()
        );
    }

    #[test]
    fn seeks_land_on_the_packet_holding_the_target() {
        let bytes = media("long.opus");
        let all = packets(&mut reader(bytes.clone()));
        let mut r = reader(bytes);
        // Forward, backward, the start, inside the first page, past the end.
        for ms in [30_000u64, 1_000, 0, 500, 59_000, 12_345, 200_000] {
            let required = ms * 48;
            let seeked = r
                .seek(
                    SeekMode::Accurate,
                    SeekTo::TimeStamp {
                        ts: required,
                        track_id: TRACK_ID,
                    },
                )
                .unwrap();
            assert_eq!(seeked.required_ts, required);
            assert!(seeked.actual_ts <= required, "{ms} ms: {seeked:?}");
            let rest = packets(&mut r);
            let Some(first) = rest.first() else {
                assert!(required >= all.last().map_or(0, |p| p.0 + p.1), "{ms} ms");
                continue;
            };
            assert_eq!(first.0, seeked.actual_ts, "{ms} ms: the first packet's ts");
            // At most one page (1 s here) before the target: the job decodes and drops
            // the difference.
            assert!(required - seeked.actual_ts <= 48_000, "{ms} ms: {seeked:?}");
            let at = all.iter().position(|p| p.0 == first.0).unwrap();
            assert!(rest[..] == all[at..], "{ms} ms: the packets from there on");
        }
    }

    /// Counts the source's seeks: each is a `Range` request when it leaves what the
    /// network cache holds.
    struct Seeks {
        inner: Cursor<Vec<u8>>,
        seeks: std::sync::Arc<std::sync::atomic::AtomicU32>,
    }

    impl Read for Seeks {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.inner.read(buf)
        }
    }

    impl Seek for Seeks {
        fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
            self.seeks
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.inner.seek(to)
        }
    }

    impl MediaSource for Seeks {
        fn is_seekable(&self) -> bool {
            true
        }
        fn byte_len(&self) -> Option<u64> {
            Some(self.inner.get_ref().len() as u64)
        }
    }

    #[test]
    fn a_seek_reads_a_few_places_and_opening_never_reads_the_end() {
        let bytes = media("long.opus");
        let len = bytes.len() as u64;
        let seeks = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let source = Seeks {
            inner: Cursor::new(bytes),
            seeks: seeks.clone(),
        };
        let Ok(Opened::OggOpus(mut r)) = OggOpusReader::open(Box::new(source)) else {
            panic!("not taken for Ogg Opus");
        };
        // The rewind after looking at the first bytes; nothing near the end.
        assert_eq!(seeks.load(std::sync::atomic::Ordering::Relaxed), 1);
        assert!(
            r.page_at < 1024,
            "opening read up to {} of {len}",
            r.page_at
        );
        for ms in [40_000u64, 7_000] {
            seeks.store(0, std::sync::atomic::Ordering::Relaxed);
            r.seek(
                SeekMode::Accurate,
                SeekTo::TimeStamp {
                    ts: ms * 48,
                    track_id: TRACK_ID,
                },
            )
            .unwrap();
            let n = seeks.load(std::sync::atomic::Ordering::Relaxed);
            // A blind bisection of this 400 KB file down to the 48 KB window takes
            // four probes; interpolation needs fewer, plus the final two positionings.
            assert!(n <= 5, "{ms} ms: {n} seeks");
        }
    }

    #[test]
    fn a_chained_stream_plays_on_with_rising_timestamps() {
        let one = media("sine.opus");
        let mut chained = one.clone();
        // The second link needs a serial of its own.
        let mut two = one.clone();
        let mut at = 0;
        while at < two.len() {
            two[at + 14] ^= 0x55;
            let segments = usize::from(two[at + 26]);
            let body: usize = two[at + 27..at + 27 + segments]
                .iter()
                .map(|&l| usize::from(l))
                .sum();
            let len = 27 + segments + body;
            let sum = crc(&two[at..at + len]);
            two[at + 22..at + 26].copy_from_slice(&sum.to_le_bytes());
            at += len;
        }
        chained.extend_from_slice(&two);
        let single = packets(&mut reader(one));
        let both = packets(&mut reader(chained));
        assert_eq!(
            both.len(),
            2 * single.len(),
            "both links' audio, no headers"
        );
        for w in both.windows(2) {
            assert!(
                w[1].0 >= w[0].0 + w[0].1,
                "timestamps go back: {} {}",
                w[0].0,
                w[1].0
            );
        }
    }

    #[test]
    fn garbage_and_other_formats_are_left_to_symphonia() {
        for bytes in [
            media("sine.ogg"),
            media("sine.mp3"),
            b"Og".to_vec(),
            Vec::new(),
        ] {
            match OggOpusReader::open(Box::new(Cursor::new(bytes.clone()))) {
                Ok(Opened::Other(mut s)) => {
                    let mut back = Vec::new();
                    s.read_to_end(&mut back).unwrap();
                    assert!(back == bytes, "handed back from the start");
                }
                Ok(Opened::OggOpus(_)) => panic!("taken for Ogg Opus"),
                Err(e) => assert_eq!(e.kind(), ErrorKind::UnexpectedEof),
            }
        }
    }

    #[test]
    fn a_corrupt_page_is_skipped() {
        let mut bytes = media("long.opus");
        // A byte inside the tenth audio page flips: its checksum fails, and the
        // reader finds the next page.
        bytes[60_000] ^= 0xff;
        let expected = packets(&mut reader(media("long.opus")));
        let got = packets(&mut reader(bytes));
        assert!(got.len() < expected.len() && got.len() > expected.len() - 60);
        assert_eq!(got.last(), expected.last());
    }
}
