//! One track being decoded: probe, then packets → frames → ring records, a bounded
//! time ahead of playback, with seeks and a clean end or failure record.

use std::collections::VecDeque;
use std::time::Duration;

use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{
    Decoder, DecoderOptions, CODEC_TYPE_MP1, CODEC_TYPE_MP2, CODEC_TYPE_MP3, CODEC_TYPE_NULL,
    CODEC_TYPE_OPUS,
};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::{FormatOptions, FormatReader, SeekMode, SeekTo};
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;
use symphonia::core::units::{Time, TimeBase};

use super::pcm::{Framer, ResampleQuality};
use super::stream::{StreamInput, LOW_WATER, OPEN_MARGIN};
use crate::audio::{FRAME_MS, FRAME_SAMPLES, SAMPLE_RATE};
use crate::codec::FrameDecoder;
use crate::opus::{OpusDecoder, OpusEncoder};

use super::ogg_opus::{OggOpusReader, Opened};
use crate::ring::{frame_ring, FrameReader, FrameWriter, RecordKind, PCM_FRAME_BYTES};

/// Bytes budgeted per buffered passthrough frame (Opus at 128 kbps is ~320 B).
const OPUS_RECORD_BUDGET: usize = 7 + 512;
/// The frame ring covers decode scheduling only (a decode thread visits a job when
/// about half its ring has played, see [`Job::rest`], and refills it then);
/// read-ahead against network stalls lives in the compressed bytes of a network
/// stream. At most this much audio is buffered as Opus packets, whatever
/// `frameBufferDurationMs` says (13 KB of ring).
const MAX_RING_MS: u64 = 500;
/// The same for decoded PCM, 3.8 KB a frame: 300 ms is 58 KB of ring (it was 192 KB
/// at 1 s), and a refill starts with 150 ms still queued, dozens of decode passes.
const MAX_PCM_RING_MS: u64 = 300;
/// Bounds of a full job's rest: at least one frame, and at most this long whatever
/// the estimate says (a ring of small packets holds more than `MAX_RING_MS`).
const MIN_REST: Duration = Duration::from_millis(FRAME_MS as u64);
const MAX_REST: Duration = Duration::from_millis(400);
/// Attempts of one open or seek (each replays from its start once the bytes it
/// starved on arrived) before the track fails.
const MAX_ATTEMPTS: u32 = 200;

/// Code of the `Failed` record of a track that failed after some of its audio was
/// written: it ends `finished`, as lavaplayer ends a track that broke mid-play.
pub const FAILED_MID_TRACK: u32 = 1;
/// Code of the `Failed` record of a track that failed before any of its audio was
/// written: it ends `loadFailed` (lavaplayer's `failedBeforeLoad`).
pub const FAILED_BEFORE_AUDIO: u32 = 2;

/// What a job reports to its owner.
#[derive(Debug)]
pub enum JobReport {
    /// Probed and buffering: the engine can start reading `frames`.
    Ready {
        /// The ring's reader, for the engine's `Play` command.
        frames: FrameReader,
        /// Whether Opus packets pass through untouched.
        passthrough: bool,
    },
    /// Failed before producing audio: the source cannot be opened or recognised.
    LoadFailed(String),
    /// The decoder panicked while opening the source (a bug in it, reached by corrupt
    /// input); the job is gone and produced nothing.
    Panicked(String),
    /// Failed after `Ready` (an error, or a panic in the decoder); a `Failed` record
    /// with `code` ([`FAILED_MID_TRACK`] or [`FAILED_BEFORE_AUDIO`]) follows the last
    /// good frame.
    Failed {
        /// Code written into the record.
        code: u32,
        /// Description.
        message: String,
    },
}

/// A command for a running job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobCommand {
    /// Continue from `position_ms`, writing records of `epoch`.
    Seek {
        /// Target position.
        position_ms: u64,
        /// Epoch of records written after the seek.
        epoch: u32,
    },
    /// Stop decoding and drop the source.
    Stop,
}

/// Opens a local track's bytes; runs on the decode thread (a file read, not the network).
pub type Opener = Box<dyn FnOnce() -> Result<Box<dyn MediaSource>, String> + Send>;

/// Where a job's bytes come from.
pub enum Input {
    /// A file (or anything else whose reads do not wait on the network).
    Open(Opener),
    /// A network stream fetched elsewhere; reads never block (see [`super::stream`]).
    Stream(StreamInput),
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Input::Open(_) => f.write_str("Open"),
            Input::Stream(s) => f.debug_tuple("Stream").field(s).finish(),
        }
    }
}

/// A track to decode.
pub struct JobSpec {
    /// The bytes.
    pub input: Input,
    /// File extension or MIME-derived hint for the prober.
    pub extension: Option<String>,
    /// Where to start, in ms.
    pub start_ms: u64,
    /// Epoch of the first records.
    pub epoch: u32,
    /// `frameBufferDurationMs`: sizes the frame ring (at most [`MAX_RING_MS`] of it).
    pub buffer_ms: u64,
    /// `resamplingQuality` for sources not at 48 kHz.
    pub resample: ResampleQuality,
    /// `opusEncodingQuality` (0–10) of the encoder a PCM track hands the tick.
    pub encoder_complexity: u8,
}

impl std::fmt::Debug for JobSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobSpec")
            .field("extension", &self.extension)
            .field("start_ms", &self.start_ms)
            .finish()
    }
}

/// The job's demuxer: ours for Ogg Opus (read without a `Packet` allocation per
/// packet), symphonia's for everything else.
enum Demuxer {
    OggOpus(Box<OggOpusReader>),
    Symphonia(Box<dyn FormatReader>),
}

impl Demuxer {
    fn format(&mut self) -> &mut dyn FormatReader {
        match self {
            Demuxer::OggOpus(reader) => reader.as_mut(),
            Demuxer::Symphonia(format) => format.as_mut(),
        }
    }
}

/// Why a job could not open.
#[derive(Debug)]
pub enum OpenFailure {
    /// The network has not delivered what the probe needs yet: try again with this
    /// spec once the stream is ready.
    Starved(JobSpec),
    /// The source cannot be opened or recognised.
    Failed(String),
}

/// A seek that waits for the network.
#[derive(Debug, Clone, Copy)]
enum Resume {
    /// A seek to this track position, in ms.
    Seek(u64),
    /// Back to this timestamp after a read starved mid-packet (same epoch, no gap).
    Resync(u64),
}

/// A decoding track.
pub struct Job {
    /// A network stream's shared bytes (the format reader reads them too).
    stream: Option<StreamInput>,
    /// A seek to replay once the stream has the bytes it needs.
    pending: Option<Resume>,
    attempts: u32,
    /// Timestamp just after the last packet read (where a resync resumes).
    next_ts: u64,
    /// A short forward seek on a network stream: packets before this timestamp are
    /// dropped undecoded (read through), as lavaplayer reads through short skips,
    /// instead of a demuxer seek that may probe far parts of the file (Ogg bisects).
    skip_to: Option<u64>,
    time_base: Option<TimeBase>,
    /// Sample rate the skip's remainder is counted in (the framer's input rate).
    skip_rate: u32,
    format: Demuxer,
    /// The last packet read by our Ogg Opus reader (reused: no allocation per packet).
    packet: Vec<u8>,
    decoder: Option<Box<dyn Decoder>>,
    track_id: u32,
    /// MPEG audio (MP3 and its kin), which seeks without an index.
    mpeg_audio: bool,
    passthrough: bool,
    /// An Opus track: its packets pass through, except the few that must be decoded
    /// (not 20 ms long, or cut by a seek), with `opus`, made the first time.
    is_opus: bool,
    opus: Option<OpusDecoder>,
    /// Whether the tick got an encoder for this track's PCM records yet.
    encoder_offered: bool,
    encoder_complexity: u8,
    framer: Framer,
    writer: FrameWriter,
    epoch: u32,
    /// Source frames (at `rate`) still to drop after an accurate seek.
    skip_frames: u64,
    /// Opus packets read while the ring was full (decoded frames wait in `framer`).
    staged: VecDeque<Vec<u8>>,
    done: bool,
    sample_buf: Option<SampleBuffer<f32>>,
    /// Filling the ring until it is full; once full, the job rests until half of the
    /// ring is free again (`refill_at` bytes). A job that topped its ring up by one
    /// packet per visit paid the cold-cache cost of its demuxer state on every packet:
    /// with thousands of players that was most of a decode thread's time.
    refilling: bool,
    refill_at: usize,
    /// Ring bytes per audio record, averaged (what one played frame frees).
    record_bytes: usize,
    /// Whether any audio record of this track reached the ring (decides the end
    /// reason of a failure).
    wrote_audio: bool,
    /// The decoder panicked: the format reader and decoder are never used again, and
    /// the job only writes its `Failed` record (`code`) once the ring has room.
    broken: Option<u32>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("track_id", &self.track_id)
            .field("passthrough", &self.passthrough)
            .field("epoch", &self.epoch)
            .field("staged", &self.staged.len())
            .finish_non_exhaustive()
    }
}

/// Outcome of one pump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pump {
    /// Made progress; call again soon.
    Busy,
    /// The ring is full; nothing to do until the reader catches up.
    Full,
    /// A network stream has not delivered enough bytes: the job is parked and its
    /// waker runs once it has.
    Starved,
    /// The job is over (end or failure record written, or reader gone).
    Finished,
}

impl Job {
    /// Probes the source and prepares decoding; the report carries the ring reader.
    /// A network stream is probed only from the bytes already there: when the probe
    /// needs more, the spec comes back to be tried again once they arrived (the bytes
    /// it read stay cached, so each attempt gets further).
    pub fn open(spec: JobSpec) -> Result<(Job, JobReport), OpenFailure> {
        let JobSpec {
            input,
            extension,
            start_ms,
            epoch,
            buffer_ms,
            resample,
            encoder_complexity,
        } = spec;
        let open = |source| {
            Self::open_source(
                source,
                extension.as_deref(),
                epoch,
                buffer_ms,
                resample,
                encoder_complexity,
            )
        };
        let (mut job, ready) = match input {
            Input::Open(opener) => {
                open(opener().map_err(OpenFailure::Failed)?).map_err(OpenFailure::Failed)?
            }
            Input::Stream(stream) => {
                let buffer = stream.buffer().clone();
                buffer.begin_op();
                let result = open(Box::new(buffer.reader()));
                if buffer.take_starved() {
                    drop(result);
                    return Err(OpenFailure::Starved(JobSpec {
                        input: Input::Stream(stream),
                        extension,
                        start_ms,
                        epoch,
                        buffer_ms,
                        resample,
                        encoder_complexity,
                    }));
                }
                let mut opened = result.map_err(|message| {
                    OpenFailure::Failed(buffer.error().map_or(message, |e| {
                        format!("I/O error while reading the track: {e}")
                    }))
                })?;
                opened.0.stream = Some(stream);
                opened
            }
        };
        if start_ms > 0 {
            job.seek(start_ms, epoch);
        } else if let Some(s) = &job.stream {
            s.buffer().end_op();
        }
        Ok((job, ready))
    }

    fn open_source(
        source: Box<dyn MediaSource>,
        extension: Option<&str>,
        epoch: u32,
        buffer_ms: u64,
        resample: ResampleQuality,
        encoder_complexity: u8,
    ) -> Result<(Job, JobReport), String> {
        // Ogg Opus (the passthrough format) has a reader of our own that keeps no
        // 128 KiB ring; everything else goes through symphonia's probe.
        let opened = OggOpusReader::open(source)
            .map_err(|e| format!("I/O error while reading the track: {e}"))?;
        let mut format = match opened {
            Opened::OggOpus(reader) => Demuxer::OggOpus(Box::new(reader)),
            Opened::Other(source) => {
                let mss = MediaSourceStream::new(source, Default::default());
                let mut hint = Hint::new();
                if let Some(ext) = extension {
                    hint.with_extension(ext);
                }
                let probed = symphonia::default::get_probe()
                    .format(
                        &hint,
                        mss,
                        &FormatOptions {
                            enable_gapless: true,
                            ..Default::default()
                        },
                        &MetadataOptions::default(),
                    )
                    .map_err(|e| describe(&e))?;
                Demuxer::Symphonia(probed.format)
            }
        };
        let track = format
            .format()
            .tracks()
            .iter()
            .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
            .ok_or("no audio track in the file")?;
        let params = track.codec_params.clone();
        let track_id = track.id;
        let rate = params.sample_rate.unwrap_or(SAMPLE_RATE);
        let is_opus = params.codec == CODEC_TYPE_OPUS;
        let decoder = if is_opus {
            None
        } else {
            let d = symphonia::default::get_codecs()
                .make(&params, &DecoderOptions::default())
                .map_err(|e| describe(&e))?;
            Some(d)
        };
        let passthrough = is_opus;
        let max_ms = if passthrough {
            MAX_RING_MS
        } else {
            MAX_PCM_RING_MS
        };
        let frames = (buffer_ms.min(max_ms) / FRAME_MS as u64).max(10) as usize;
        let capacity = if passthrough {
            frames * OPUS_RECORD_BUDGET
        } else {
            frames * (7 + PCM_FRAME_BYTES)
        };
        let (writer, reader) = frame_ring(capacity);
        let job = Job {
            stream: None,
            pending: None,
            attempts: 0,
            next_ts: 0,
            skip_to: None,
            time_base: params.time_base,
            skip_rate: if is_opus { SAMPLE_RATE } else { rate },
            mpeg_audio: [CODEC_TYPE_MP1, CODEC_TYPE_MP2, CODEC_TYPE_MP3].contains(&params.codec),
            format,
            packet: Vec::new(),
            decoder,
            track_id,
            passthrough,
            is_opus,
            opus: None,
            encoder_offered: false,
            encoder_complexity,
            framer: Framer::new(if is_opus { SAMPLE_RATE } else { rate }, resample)?,
            writer,
            epoch,
            skip_frames: 0,
            staged: VecDeque::new(),
            done: false,
            sample_buf: None,
            refilling: true,
            refill_at: capacity / 2,
            record_bytes: if passthrough {
                OPUS_RECORD_BUDGET / 2
            } else {
                FrameWriter::record_size(PCM_FRAME_BYTES)
            },
            wrote_audio: false,
            broken: None,
        };
        Ok((
            job,
            JobReport::Ready {
                frames: reader,
                passthrough,
            },
        ))
    }

    /// Whether Opus packets pass through.
    pub fn is_passthrough(&self) -> bool {
        self.passthrough
    }

    /// After a panic inside [`Job::command`] or [`Job::pump`]: stops all decoding and
    /// returns the `Failed` record's code, which later pumps write once the ring has
    /// room. Only the ring writer (engine code, not the decoder) and plain fields are
    /// used from here on, and the record goes after the last complete record, since a
    /// ring write publishes a record only once it is whole.
    pub fn break_down(&mut self) -> u32 {
        let code = self.failure_code();
        self.broken = Some(code);
        self.staged.clear();
        code
    }

    fn failure_code(&self) -> u32 {
        if self.wrote_audio {
            FAILED_MID_TRACK
        } else {
            FAILED_BEFORE_AUDIO
        }
    }

    /// Applies a command; returns false once the job should end.
    pub fn command(&mut self, cmd: JobCommand) -> bool {
        match cmd {
            JobCommand::Seek { epoch, .. } if self.broken.is_some() => {
                // No decoding after a panic: the failure record carries the new epoch,
                // the one the engine now reads.
                self.epoch = epoch;
                self.refilling = true;
                true
            }
            JobCommand::Seek { position_ms, epoch } => {
                self.seek(position_ms, epoch);
                true
            }
            JobCommand::Stop => false,
        }
    }

    fn seek(&mut self, position_ms: u64, epoch: u32) {
        self.epoch = epoch;
        self.refilling = true;
        self.staged.clear();
        self.framer.reset();
        self.done = false;
        self.skip_to = None;
        self.attempts = 0;
        if let Some(ts) = self.read_through_to(position_ms) {
            self.skip_to = Some(ts);
            self.pending = None;
            return;
        }
        self.pending = Some(Resume::Seek(position_ms));
        // A stream that lacks the bytes keeps the seek pending; the next pumps retry it.
        self.resume();
    }

    /// The timestamp of `position_ms` when a network stream can reach it by reading
    /// on: forward of the last packet, and within what is cached ahead plus a short
    /// skip ([`SKIP_THROUGH`](super::stream::SKIP_THROUGH)).
    fn read_through_to(&self, position_ms: u64) -> Option<u64> {
        let stream = self.stream.as_ref()?;
        if self.pending.is_some() || self.broken.is_some() {
            return None;
        }
        let tb = self.time_base?;
        let target = tb.calc_timestamp(time_of(position_ms));
        let ahead = tb.calc_time(target.checked_sub(self.next_ts).filter(|&d| d > 0)?);
        let ahead_ms = ahead.seconds * 1000 + (ahead.frac * 1000.0) as u64;
        (ahead_ms <= stream.buffer().read_through_ms()?).then_some(target)
    }

    /// Runs the pending seek; `false` when a network stream starved during it (the
    /// seek stays pending and replays from its start once the bytes are there).
    fn resume(&mut self) -> bool {
        let Some(resume) = self.pending else {
            return true;
        };
        if let Some(s) = &self.stream {
            s.buffer().begin_op();
        }
        // MP3 has no index: an accurate seek parses every frame from where the reader
        // is, so one that starves halfway cannot be replayed from its start. Over the
        // network it seeks by the stream's average bitrate instead (as lavaplayer
        // does), which replays cleanly; a file seeks accurately.
        let coarse = self.stream.is_some() && self.mpeg_audio;
        let mode = if coarse {
            SeekMode::Coarse
        } else {
            SeekMode::Accurate
        };
        let track_id = self.track_id;
        let to = move || match resume {
            Resume::Seek(ms) => SeekTo::Time {
                time: time_of(ms),
                track_id: Some(track_id),
            },
            Resume::Resync(ts) => SeekTo::TimeStamp { ts, track_id },
        };
        let mut result = self.format.format().seek(mode, to());
        let mut starved = self.take_starved();
        if coarse && result.is_err() && !starved {
            // No duration to estimate from: parse from the start after all.
            result = self.format.format().seek(SeekMode::Accurate, to());
            starved = self.take_starved();
        }
        if starved {
            self.attempts += 1;
            if self.attempts < MAX_ATTEMPTS {
                return false;
            }
            // Give up seeking: play on from wherever the reader is.
        }
        self.pending = None;
        self.skip_frames = match result {
            Ok(seeked) => seeked.required_ts.saturating_sub(seeked.actual_ts),
            Err(_) => 0,
        };
        if let Some(d) = &mut self.decoder {
            d.reset();
        }
        if let Some(s) = &self.stream {
            s.buffer().end_op();
        }
        true
    }

    /// Decodes until the ring is full or `budget` frames were staged; writes what fits.
    pub fn pump(&mut self, budget: usize, report: &mut dyn FnMut(JobReport)) -> Pump {
        if self.writer.is_abandoned() {
            return Pump::Finished;
        }
        if !self.refilling {
            if self.writer.free() < self.refill_at {
                return Pump::Full;
            }
            self.refilling = true;
        }
        if let Some(code) = self.broken {
            return if self.write_failed(code) {
                Pump::Finished
            } else {
                self.refilling = false;
                Pump::Full
            };
        }
        if let Some(s) = &self.stream {
            // Decode only with a margin of bytes cached ahead, so no packet is cut short.
            let margin = if self.pending.is_some() {
                OPEN_MARGIN
            } else {
                LOW_WATER
            };
            if !s.buffer().poll_ready(margin) {
                return Pump::Starved;
            }
            if !self.resume() {
                return self.starved();
            }
        }
        let pump = self.fill(budget, report);
        if pump == Pump::Full {
            self.refilling = false;
        }
        pump
    }

    /// After [`Pump::Full`]: how long until half the ring has played and a visit has
    /// a refill's worth of work, estimated from the bytes free and what a frame
    /// frees. Visiting sooner finds nothing to do and pays the job's cold cache
    /// misses for it (a fixed 100 ms rest made most visits of small-packet Opus
    /// tracks empty).
    pub fn rest(&self) -> Duration {
        let frames = self.refill_at.saturating_sub(self.writer.free()) / self.record_bytes.max(1);
        (MIN_REST * frames as u32).clamp(MIN_REST, MAX_REST)
    }

    /// Decodes until the ring is full or `budget` frames were staged; writes what fits.
    fn fill(&mut self, budget: usize, report: &mut dyn FnMut(JobReport)) -> Pump {
        let mut produced = 0;
        loop {
            // Opus packets that did not fit, then decoded frames: never both at once
            // (a packet passes through only when no decoded samples wait), and the
            // ring takes them in the order they were read.
            while let Some(bytes) = self.staged.front() {
                if self
                    .writer
                    .write(RecordKind::Opus, self.epoch, bytes)
                    .is_err()
                {
                    return Pump::Full;
                }
                self.record_bytes = average(self.record_bytes, bytes.len());
                self.wrote_audio = true;
                self.staged.pop_front();
            }
            while let Some(frame) = self.framer.front() {
                if !self.encoder_offered {
                    self.encoder_offered = true;
                    // libopus cannot fail with these parameters; if it did, the tick
                    // would null the frames and the track end stuck.
                    if let Ok(e) = OpusEncoder::new(self.encoder_complexity) {
                        let _ = self.writer.offer_encoder(Box::new(e));
                    }
                }
                if self
                    .writer
                    .write(RecordKind::Pcm, self.epoch, as_bytes(frame))
                    .is_err()
                {
                    return Pump::Full;
                }
                self.wrote_audio = true;
                self.framer.pop();
            }
            if self.done {
                return if self.writer.write(RecordKind::End, self.epoch, &[]).is_ok() {
                    Pump::Finished
                } else {
                    Pump::Full
                };
            }
            if produced >= budget {
                return Pump::Busy;
            }
            match self.next_frames() {
                Ok(n) => produced += n.max(1),
                Err(_) if self.take_starved() => {
                    // The margin was not enough (an unusually large packet). A seekable
                    // stream resyncs to where the last packet ended; a live one reads
                    // on from where it is once bytes arrive (its demuxer finds the
                    // next packet boundary).
                    if self
                        .stream
                        .as_ref()
                        .is_some_and(|s| s.buffer().head().is_some_and(|h| h.seekable))
                    {
                        self.pending = Some(Resume::Resync(self.next_ts));
                        self.attempts = 0;
                    }
                    return self.starved();
                }
                Err(message) => {
                    let code = self.failure_code();
                    report(JobReport::Failed { code, message });
                    return if self.write_failed(code) {
                        Pump::Finished
                    } else {
                        // The next pumps write the record once there is room; the
                        // failure is already reported.
                        self.broken = Some(code);
                        self.staged.clear();
                        Pump::Full
                    };
                }
            }
        }
    }

    /// After a read starved: parks the job until the bytes it now wants are cached
    /// (the stream wakes it then), or says to come back at once if they already are.
    /// Without this the stream would not know the job waits (its readiness was last
    /// asked before the read moved on), and only the pool's backstop would wake it.
    fn starved(&self) -> Pump {
        let ready = self
            .stream
            .as_ref()
            .is_some_and(|s| s.buffer().poll_ready(OPEN_MARGIN));
        if ready {
            Pump::Busy
        } else {
            Pump::Starved
        }
    }

    /// Whether a read of the network stream starved since the last call.
    fn take_starved(&self) -> bool {
        self.stream
            .as_ref()
            .is_some_and(|s| s.buffer().take_starved())
    }

    /// Writes the `Failed` record for `code`; `false` while the ring has no room.
    fn write_failed(&mut self, code: u32) -> bool {
        self.writer
            .write(RecordKind::Failed, self.epoch, &code.to_le_bytes())
            .is_ok()
    }

    /// Reads one packet and frames its audio (or stages it, passed through, when the
    /// ring is full); marks the end of the source.
    fn next_frames(&mut self) -> Result<usize, String> {
        let mut bytes = std::mem::take(&mut self.packet);
        let result = self.frames_of_next(&mut bytes);
        self.packet = bytes;
        result
    }

    /// [`Self::next_frames`], with our Ogg Opus reader's packets read into `bytes`.
    fn frames_of_next(&mut self, bytes: &mut Vec<u8>) -> Result<usize, String> {
        let read = match &mut self.format {
            Demuxer::OggOpus(reader) => reader
                .read_packet(bytes)
                .map(|(ts, dur)| (self.track_id, ts, dur, None)),
            Demuxer::Symphonia(format) => format
                .next_packet()
                .map(|p| (p.track_id(), p.ts(), p.dur(), Some(p))),
        };
        let (track_id, ts, dur, packet) = match read {
            Ok(read) => read,
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                self.framer.finish();
                self.done = true;
                return Ok(0);
            }
            Err(SymError::ResetRequired) => {
                if let Some(d) = &mut self.decoder {
                    d.reset();
                }
                return Ok(0);
            }
            Err(e) => return Err(describe(&e)),
        };
        if track_id != self.track_id {
            return Ok(0);
        }
        self.next_ts = ts + dur;
        if let Some(to) = self.skip_to {
            if self.next_ts <= to {
                return Ok(0);
            }
            // The packet holding the target: decode from here, dropping the samples
            // before the target, as after a demuxer seek.
            self.skip_to = None;
            self.skip_frames = match self.time_base {
                Some(tb) => {
                    let t = tb.calc_time(to.saturating_sub(ts));
                    ((t.seconds as f64 + t.frac) * f64::from(self.skip_rate)).round() as u64
                }
                None => 0,
            };
            if let Some(d) = &mut self.decoder {
                d.reset();
            }
        }
        if self.is_opus {
            let data = packet.as_ref().map_or(&bytes[..], |p| p.buf());
            if data.is_empty() {
                return Err("an empty Opus packet".into());
            }
            let samples = crate::opus::packet_samples(data).unwrap_or(0) as u64;
            if self.skip_frames >= samples && samples > 0 {
                self.skip_frames -= samples;
                return Ok(0);
            }
            if samples == FRAME_SAMPLES as u64 && self.skip_frames == 0 && self.framer.is_empty() {
                // Passthrough only once no decoded samples wait, or audio would reorder.
                // Straight into the ring when nothing is staged before it; staged (a
                // copy) only when the ring is full.
                if !self.staged.is_empty()
                    || self
                        .writer
                        .write(RecordKind::Opus, self.epoch, data)
                        .is_err()
                {
                    self.staged.push_back(data.to_vec());
                } else {
                    self.record_bytes = average(self.record_bytes, data.len());
                    self.wrote_audio = true;
                }
                return Ok(1);
            }
            // Not a 20 ms packet (or mid-skip): decode it and frame the PCM instead.
            let mut pcm = vec![0i16; 5760 * 2];
            let opus = match &mut self.opus {
                Some(d) => d,
                None => self
                    .opus
                    .insert(OpusDecoder::new().map_err(|e| e.to_string())?),
            };
            let n = opus
                .decode(data, &mut pcm)
                .map_err(|_| "invalid Opus packet".to_string())?;
            let (l, r): (Vec<f32>, Vec<f32>) = pcm[..n * 2]
                .chunks_exact(2)
                .map(|s| (s[0] as f32 / 32768.0, s[1] as f32 / 32768.0))
                .unzip();
            self.framer.push(&[&l, &r]);
            return Ok(self.framer.frames());
        }
        let (Some(decoder), Some(packet)) = (self.decoder.as_mut(), packet) else {
            return Err("no decoder".into());
        };
        let decoded = match decoder.decode(&packet) {
            Ok(d) => d,
            Err(SymError::DecodeError(_)) => return Ok(0), // a corrupt packet is skipped
            Err(e) => return Err(describe(&e)),
        };
        let spec = *decoded.spec();
        let channels = spec.channels.count();
        let frames = decoded.frames();
        let buf = self
            .sample_buf
            .get_or_insert_with(|| SampleBuffer::new(decoded.capacity() as u64, spec));
        if (buf.capacity() as u64) < (frames * channels) as u64 {
            *buf = SampleBuffer::new(decoded.capacity() as u64, spec);
        }
        buf.copy_planar_ref(decoded);
        let samples = buf.samples();
        let planes: Vec<&[f32]> = (0..channels)
            .map(|c| &samples[c * frames..(c + 1) * frames])
            .collect();
        let skip = (self.skip_frames as usize).min(frames);
        self.skip_frames -= skip as u64;
        let planes: Vec<&[f32]> = planes.iter().map(|p| &p[skip..]).collect();
        self.framer.push(&planes);
        Ok(self.framer.frames())
    }
}

/// The running average of a ring record's size, with the record of an Opus packet of
/// `payload` bytes.
fn average(bytes: usize, payload: usize) -> usize {
    (bytes * 7 + FrameWriter::record_size(payload)) / 8
}

/// `ms` as symphonia's time.
fn time_of(ms: u64) -> Time {
    Time::new(ms / 1000, (ms % 1000) as f64 / 1000.0)
}

fn as_bytes(frame: &[i16; FRAME_SAMPLES as usize * 2]) -> &[u8] {
    // i16 has no padding and any byte pattern is valid to read as u8.
    // SAFETY: the slice covers exactly the frame's memory, which lives as long as the borrow.
    unsafe { std::slice::from_raw_parts(frame.as_ptr().cast::<u8>(), std::mem::size_of_val(frame)) }
}

/// A readable description of a symphonia error.
fn describe(e: &SymError) -> String {
    match e {
        SymError::IoError(io) => format!("I/O error while reading the track: {io}"),
        SymError::DecodeError(d) => format!("the track is corrupt: {d}"),
        SymError::SeekError(_) => "the track cannot be seeked".into(),
        SymError::Unsupported(what) => format!("unsupported format: {what}"),
        SymError::LimitError(what) => format!("a limit was exceeded: {what}"),
        SymError::ResetRequired => "the decoder needs a reset".into(),
    }
}
