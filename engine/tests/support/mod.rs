//! Shared fixtures for engine tests: fake codecs and a worker wired to its queues.

#![allow(dead_code)]

use std::sync::Arc;

use quaver_engine::batch::PacketBatch;
use quaver_engine::codec::{CodecError, FrameDecoder, FrameEncoder};
use quaver_engine::message::{ControlToEngine, EngineToControl, NewPlayer, PlayerKey};
use quaver_engine::output::{capture, Captured};
use quaver_engine::shared::PlayerShared;
use quaver_engine::Worker;
use rtrb::{Consumer, Producer, RingBuffer};

/// "Encodes" a frame as `[0xEE, first sample as 2 bytes]`, so tests can see the samples.
pub struct TagEncoder;
impl FrameEncoder for TagEncoder {
    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        out[0] = 0xEE;
        out[1..3].copy_from_slice(&pcm[0].to_le_bytes());
        Ok(3)
    }
}

/// "Decodes" a packet into a constant signal equal to its first byte × 100, and
/// counts calls.
pub struct ConstDecoder(pub Arc<std::sync::atomic::AtomicU32>);
impl FrameDecoder for ConstDecoder {
    fn decode(&mut self, packet: &[u8], pcm: &mut [i16]) -> Result<usize, CodecError> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        pcm.fill(packet[0] as i16 * 100);
        Ok(960)
    }
}

pub struct Rig {
    pub worker: Worker,
    pub commands: Producer<ControlToEngine>,
    pub events: Consumer<EngineToControl>,
    pub batch: PacketBatch,
    pub decodes: Arc<std::sync::atomic::AtomicU32>,
}

pub fn rig(capacity: usize) -> Rig {
    let (commands, cmd_rx) = RingBuffer::new(1024);
    let (ev_tx, events) = RingBuffer::new(1024);
    Rig {
        worker: Worker::new(capacity, cmd_rx, ev_tx),
        commands,
        events,
        batch: PacketBatch::new(capacity),
        decodes: Arc::default(),
    }
}

impl Rig {
    /// Installs a player in slot `index` with a capture output.
    pub fn add(
        &mut self,
        index: u32,
        stuck_after_ticks: u32,
    ) -> (PlayerKey, Arc<PlayerShared>, Captured) {
        let key = PlayerKey {
            index,
            generation: 1,
        };
        let shared = Arc::new(PlayerShared::default());
        let (out, captured) = capture(1 << 20);
        let parts = NewPlayer {
            key,
            shared: shared.clone(),
            encoder: Some(Box::new(TagEncoder)),
            decoder: Some(Box::new(ConstDecoder(self.decodes.clone()))),
            output: Some(Box::new(out)),
            stuck_after_ticks,
        };
        self.send(ControlToEngine::Add(Box::new(parts)));
        (key, shared, captured)
    }

    /// Installs a player in slot `index` with a capture output and no codecs, as the
    /// control plane creates them.
    pub fn add_bare(&mut self, index: u32) -> (PlayerKey, Captured) {
        let key = PlayerKey {
            index,
            generation: 1,
        };
        let (out, captured) = capture(1 << 20);
        let parts = NewPlayer {
            key,
            shared: Arc::default(),
            encoder: None,
            decoder: None,
            output: Some(Box::new(out)),
            stuck_after_ticks: 1000,
        };
        self.send(ControlToEngine::Add(Box::new(parts)));
        (key, captured)
    }

    /// Starts `key` on a fresh ring holding Opus records `first..first + n` (each packet is
    /// `[i, 1, 2, 3]`); returns the ring's writer for more.
    pub fn play_opus(
        &mut self,
        key: PlayerKey,
        first: u8,
        n: u8,
    ) -> quaver_engine::ring::FrameWriter {
        use quaver_engine::ring::{frame_ring, RecordKind};
        let (mut w, frames) = frame_ring(256 * 1024);
        for i in first..first + n {
            w.write(RecordKind::Opus, 1, &[i, 1, 2, 3]).unwrap();
        }
        self.send(ControlToEngine::Play {
            key,
            frames,
            epoch: 1,
        });
        w
    }

    pub fn send(&mut self, cmd: ControlToEngine) {
        self.commands.push(cmd).unwrap();
    }

    /// One whole tick: produce, then send.
    pub fn tick(&mut self) -> usize {
        let now = std::time::Instant::now;
        self.worker.produce(&mut self.batch, &now);
        let n = self.batch.len();
        self.worker.send(&self.batch);
        n
    }

    pub fn events(&mut self) -> Vec<EngineToControl> {
        let mut v = vec![];
        while let Ok(e) = self.events.pop() {
            v.push(e);
        }
        v
    }
}
