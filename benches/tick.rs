//! Cost of one engine tick with 1, 64 and 1,024 players, in Opus passthrough and in
//! transcode (PCM → volume → Opus encode at complexity 10, Lavalink's default
//! `opusEncodingQuality`), next to the floor of the same work measured in the same
//! run: for passthrough, reading a record from a frame ring and copying the packet;
//! for transcode, one libopus encode of a 20 ms frame.
//!
//! Run: `cargo bench --bench tick` (add `-- --json` for one JSON object per line).
//! The voice transport (AEAD + UDP) is not part of this tick yet; outputs discard.

#![allow(clippy::print_stdout)] // a benchmark reports on stdout

use std::sync::Arc;
use std::time::Instant;

use quaver_engine::batch::PacketBatch;
use quaver_engine::codec::FrameEncoder;
use quaver_engine::decode::{DecodePool, JobReport, JobSpec, MediaSource};
use quaver_engine::message::{ControlToEngine, NewPlayer, PlayerKey};
use quaver_engine::opus::{OpusDecoder, OpusEncoder};
use quaver_engine::output::NullOutput;
use quaver_engine::ring::{frame_ring, FrameReader, FrameWriter, RecordKind, PCM_FRAME_BYTES};
use quaver_engine::Worker;
use rtrb::RingBuffer;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Passthrough,
    Transcode,
}

/// Real frames of the test media: Opus packets of sine.opus, PCM of sine.mp3.
fn frames(file: &str) -> Vec<(RecordKind, Vec<u8>)> {
    let path = format!("{}/tests/media/{file}", env!("CARGO_MANIFEST_DIR"));
    let pool = DecodePool::start(1).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let ext = file.rsplit('.').next().map(str::to_owned);
    let spec = JobSpec {
        source: Box::new(move || {
            Ok(Box::new(std::fs::File::open(path).unwrap()) as Box<dyn MediaSource>)
        }),
        extension: ext,
        start_ms: 0,
        epoch: 1,
        buffer_ms: 60_000,
        dedicated: false,
        resample: quaver_engine::decode::pcm::ResampleQuality::High,
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
    for index in 0..players as u32 {
        let key = PlayerKey {
            index,
            generation: 1,
        };
        let parts = NewPlayer {
            key,
            shared: Arc::default(),
            encoder: Box::new(OpusEncoder::new(10).unwrap()),
            decoder: Box::new(OpusDecoder::new().unwrap()),
            output: Some(Box::new(NullOutput)),
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
    let _ = mode;
    let mut batch = PacketBatch::new(players);
    worker.produce(&mut batch, &Instant::now);
    Rig {
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
    ];
    if !json {
        println!(
            "{:<12} {:>8} {:>16} {:>12} {:>8}",
            "mode", "players", "µs/player-tick", "floor µs", "ratio"
        );
    }
    for (mode, floor) in floors {
        for players in [1usize, 64, 1024] {
            let source = if mode == Mode::Passthrough {
                &opus
            } else {
                &pcm
            };
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
            let name = if mode == Mode::Passthrough {
                "passthrough"
            } else {
                "transcode"
            };
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
