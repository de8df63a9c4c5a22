//! Cost of one engine tick with 1, 64 and 1,024 players, in Opus passthrough and in
//! transcode (PCM → volume → Opus encode at complexity 10, Lavalink's default
//! `opusEncodingQuality`), next to the floor of the same work measured in the same
//! run: for passthrough, reading a record from a frame ring and copying the packet;
//! for transcode, one libopus encode of a 20 ms frame.
//!
//! Passthrough also runs through the real voice transport (`VoiceOutput`: AES-256-GCM
//! transport seal + one non-blocking UDP send on loopback), once with plain Opus and
//! once with DAVE media encryption on; the difference is what DAVE adds per packet.
//! Their floors: transport AEAD + UDP send (+ DAVE AES-128-GCM), measured alone.
//!
//! Run: `cargo bench --bench tick` (add `-- --json` for one JSON object per line).

#![allow(clippy::print_stdout)] // a benchmark reports on stdout

use std::sync::Arc;
use std::time::Instant;

use quaver_engine::batch::PacketBatch;
use quaver_engine::codec::FrameEncoder;
use quaver_engine::decode::{DecodePool, Input, JobReport, JobSpec, MediaSource};
use quaver_engine::message::{ControlToEngine, NewPlayer, PlayerKey};
use quaver_engine::opus::{OpusDecoder, OpusEncoder};
use quaver_engine::output::{NullOutput, PacketOutput};
use quaver_engine::ring::{frame_ring, FrameReader, FrameWriter, RecordKind, PCM_FRAME_BYTES};
use quaver_engine::transport::{
    DaveEncryptor, EncryptionMode, RtpState, SenderKey, TransportCipher, VoiceOutput,
};
use quaver_engine::Worker;
use rtrb::RingBuffer;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Passthrough,
    Transcode,
    /// Passthrough into a real `VoiceOutput`.
    Voice,
    /// The same with DAVE on.
    VoiceDave,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Passthrough => "passthrough",
            Mode::Transcode => "transcode",
            Mode::Voice => "voice",
            Mode::VoiceDave => "voice+dave",
        }
    }
}

/// A loopback receiver nobody reads: once its buffer is full the kernel drops what
/// arrives, which costs the sender the same send.
fn sink() -> std::net::UdpSocket {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap()
}

/// The output a player of `mode` sends to.
fn output(mode: Mode, sink: &std::net::UdpSocket, index: u32) -> Box<dyn PacketOutput> {
    if matches!(mode, Mode::Passthrough | Mode::Transcode) {
        return Box::new(NullOutput);
    }
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(sink.local_addr().unwrap()).unwrap();
    let cipher = TransportCipher::new(EncryptionMode::Aes256GcmRtpsize, [7; 32]);
    let mut out = VoiceOutput::new(socket, cipher, RtpState::new(index + 1)).unwrap();
    if mode == Mode::VoiceDave {
        out.set_sender_key(Some(SenderKey([index as u8; 16])));
    }
    Box::new(out)
}

/// Real frames of the test media: Opus packets of sine.opus, PCM of sine.mp3.
fn frames(file: &str) -> Vec<(RecordKind, Vec<u8>)> {
    let path = format!("{}/tests/media/{file}", env!("CARGO_MANIFEST_DIR"));
    let pool = DecodePool::start(1).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let ext = file.rsplit('.').next().map(str::to_owned);
    let spec = JobSpec {
        input: Input::Open(Box::new(move || {
            Ok(Box::new(std::fs::File::open(path).unwrap()) as Box<dyn MediaSource>)
        })),
        extension: ext,
        start_ms: 0,
        epoch: 1,
        buffer_ms: 60_000,
        resample: quaver_engine::decode::pcm::ResampleQuality::High,
        encoder_complexity: 10,
    };
    let _job = pool.submit(spec, Box::new(move |r| drop(tx.send(r))));
    let JobReport::Ready {
        frames: mut reader, ..
    } = rx.recv().unwrap()
    else {
        panic!("cannot decode {file}")
    };
    let mut out = Vec::new();
    let mut buf = vec![0u8; PCM_FRAME_BYTES];
    loop {
        match reader.read(&mut buf) {
            Some(r) if r.kind == RecordKind::End => return out,
            Some(r) => out.push((r.kind, buf[..r.len].to_vec())),
            None => std::thread::sleep(std::time::Duration::from_millis(1)),
        }
    }
}

struct Rig {
    _sink: std::net::UdpSocket,
    worker: Worker,
    batch: PacketBatch,
    writers: Vec<FrameWriter>,
    source: Vec<(RecordKind, Vec<u8>)>,
    cursor: usize,
}

fn rig(mode: Mode, players: usize, source: &[(RecordKind, Vec<u8>)]) -> Rig {
    let (mut cmd, cmd_rx) = RingBuffer::new(players * 4 + 16);
    let (ev_tx, _ev_rx) = RingBuffer::new(players * 8 + 16);
    std::mem::forget(_ev_rx);
    let mut worker = Worker::new(players, cmd_rx, ev_tx);
    let mut writers = Vec::new();
    let sink = sink();
    for index in 0..players as u32 {
        let key = PlayerKey {
            index,
            generation: 1,
        };
        let parts = NewPlayer {
            key,
            shared: Arc::default(),
            encoder: Some(Box::new(OpusEncoder::new(10).unwrap())),
            decoder: Some(Box::new(OpusDecoder::new().unwrap())),
            output: Some(output(mode, &sink, index)),
            stuck_after_ticks: u32::MAX,
        };
        cmd.push(ControlToEngine::Add(Box::new(parts))).unwrap();
        let (w, r): (FrameWriter, FrameReader) = frame_ring(8 * (7 + PCM_FRAME_BYTES));
        cmd.push(ControlToEngine::Play {
            key,
            frames: r,
            epoch: 1,
        })
        .unwrap();
        writers.push(w);
    }
    let mut batch = PacketBatch::new(players);
    worker.produce(&mut batch, &Instant::now);
    Rig {
        _sink: sink,
        worker,
        batch,
        writers,
        source: source.to_vec(),
        cursor: 0,
    }
}

impl Rig {
    /// Gives every player its next frame (outside the timed region).
    fn feed(&mut self) {
        let (kind, data) = &self.source[self.cursor % self.source.len()];
        self.cursor += 1;
        for w in &mut self.writers {
            let _ = w.write(*kind, 1, data);
        }
    }

    /// One timed tick: produce + send.
    fn tick(&mut self) -> std::time::Duration {
        let start = Instant::now();
        self.worker.produce(&mut self.batch, &Instant::now);
        self.worker.send(&self.batch);
        start.elapsed()
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Floor for passthrough: read one queued Opus record from a ring and copy it into a
/// packet slot (the writing is the decoder's, outside the tick).
fn passthrough_floor(packet: &[u8]) -> f64 {
    let n = 20_000;
    let (mut w, mut r) = frame_ring(n * (7 + packet.len()) + 64);
    for _ in 0..n {
        w.write(RecordKind::Opus, 1, packet).unwrap();
    }
    let mut buf = vec![0u8; PCM_FRAME_BYTES];
    let mut slot = [0u8; 1275];
    let start = Instant::now();
    for _ in 0..n {
        let rec = r.read(&mut buf).unwrap();
        slot[..rec.len].copy_from_slice(&buf[..rec.len]);
        std::hint::black_box(&slot);
    }
    start.elapsed().as_secs_f64() * 1e6 / n as f64
}

/// Floor for the voice transport: transport seal (AES-256-GCM, as `VoiceOutput` does
/// it) and one UDP send of the sealed packet, plus (with `dave`) the DAVE frame
/// encryption, each measured alone on `packet`.
fn voice_floor(packet: &[u8], dave: bool) -> f64 {
    let sink = sink();
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(sink.local_addr().unwrap()).unwrap();
    socket.set_nonblocking(true).unwrap();
    let cipher = TransportCipher::new(EncryptionMode::Aes256GcmRtpsize, [7; 32]);
    let mut encryptor = DaveEncryptor::new(SenderKey([1; 16]));
    let mut rtp = RtpState::new(1);
    let mut buf = [0u8; 1500];
    let n = 20_000u32;
    let start = Instant::now();
    for _ in 0..n {
        buf[..12].copy_from_slice(&rtp.header());
        buf[12..12 + packet.len()].copy_from_slice(packet);
        let len = if dave {
            encryptor
                .encrypt_in_place(&mut buf[12..], packet.len())
                .unwrap()
        } else {
            packet.len()
        };
        let sealed = cipher.seal_in_place(&mut buf, len, rtp.nonce).unwrap();
        rtp.advance();
        let _ = socket.send(&buf[..sealed]);
    }
    start.elapsed().as_secs_f64() * 1e6 / f64::from(n)
}

/// DAVE frame encryption alone, per packet.
fn dave_only(packet: &[u8]) -> f64 {
    let mut encryptor = DaveEncryptor::new(SenderKey([1; 16]));
    let mut buf = [0u8; 1500];
    let n = 100_000u32;
    let start = Instant::now();
    for _ in 0..n {
        buf[..packet.len()].copy_from_slice(packet);
        let len = encryptor.encrypt_in_place(&mut buf, packet.len()).unwrap();
        std::hint::black_box(&buf[..len]);
    }
    start.elapsed().as_secs_f64() * 1e6 / f64::from(n)
}

/// Floor for transcode: one libopus encode of a 20 ms frame at complexity 10.
fn encode_floor(pcm_frames: &[(RecordKind, Vec<u8>)]) -> f64 {
    let mut enc = OpusEncoder::new(10).unwrap();
    let pcm: Vec<Vec<i16>> = pcm_frames
        .iter()
        .map(|(_, b)| {
            b.chunks_exact(2)
                .map(|c| i16::from_ne_bytes([c[0], c[1]]))
                .collect()
        })
        .collect();
    let mut out = [0u8; 1275];
    let n = 500;
    let start = Instant::now();
    for i in 0..n {
        enc.encode(&pcm[i % pcm.len()], &mut out).unwrap();
    }
    start.elapsed().as_secs_f64() * 1e6 / n as f64
}

fn main() {
    let json = std::env::args().any(|a| a == "--json");
    let opus = frames("sine.opus");
    let pcm = frames("sine.mp3");
    let floors = [
        (
            Mode::Passthrough,
            median((0..5).map(|_| passthrough_floor(&opus[10].1)).collect()),
        ),
        (
            Mode::Transcode,
            median((0..5).map(|_| encode_floor(&pcm)).collect()),
        ),
        (
            Mode::Voice,
            median((0..5).map(|_| voice_floor(&opus[10].1, false)).collect()),
        ),
        (
            Mode::VoiceDave,
            median((0..5).map(|_| voice_floor(&opus[10].1, true)).collect()),
        ),
    ];
    let dave = median((0..5).map(|_| dave_only(&opus[10].1)).collect());
    if json {
        println!(
            "{{\"scenario\":\"dave_encrypt_only\",\"packet_bytes\":{},\"cost_us_per_packet\":{dave:.3}}}",
            opus[10].1.len()
        );
    } else {
        println!(
            "DAVE frame encryption alone: {dave:.3} µs per {}-byte packet",
            opus[10].1.len()
        );
    }
    if !json {
        println!(
            "{:<12} {:>8} {:>16} {:>12} {:>8}",
            "mode", "players", "µs/player-tick", "floor µs", "ratio"
        );
    }
    for (mode, floor) in floors {
        for players in [1usize, 64, 1024] {
            let source = if mode == Mode::Transcode { &pcm } else { &opus };
            let mut rig = rig(mode, players, source);
            let ticks = match (mode, players) {
                (Mode::Transcode, 1024) => 10,
                (Mode::Transcode, 64) => 60,
                _ => 300,
            };
            let mut samples = Vec::new();
            for _ in 0..ticks {
                rig.feed();
                let t = rig.tick();
                assert_eq!(rig.batch.len(), players, "every player produced a packet");
                samples.push(t.as_secs_f64() * 1e6 / players as f64);
            }
            let cost = median(samples);
            let name = mode.name();
            if json {
                println!(
                    "{{\"scenario\":\"{name}\",\"players\":{players},\"cost_us_per_player_tick\":{cost:.3},\"floor_us_per_player_tick\":{floor:.3},\"ratio\":{:.3}}}",
                    cost / floor
                );
            } else {
                println!(
                    "{name:<12} {players:>8} {cost:>16.3} {floor:>12.3} {:>8.2}",
                    cost / floor
                );
            }
        }
    }
}
