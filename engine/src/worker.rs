//! One tick thread's players and the tick itself, without IO or clocks of its own:
//! [`Worker::produce`] and [`Worker::send`] are plain functions of the caller's time
//! and buffers, so tests drive them with a manual clock and the benchmark calls them
//! in a loop. See the crate docs for the tick order.

use std::sync::Arc;
use std::time::Instant;

use rtrb::{Consumer, Producer};

use crate::audio::FRAME_SAMPLES_INTERLEAVED;
use crate::batch::PacketBatch;
use crate::message::{ControlToEngine, EngineToControl, NewPlayer, PlayerKey, Retired, TrackEnd};
use crate::output::{DatagramBuf, PacketOutput, SendOutcome};
use crate::prefetch::prefetch_ref;
use crate::ring::{FrameReader, RecordKind, MAX_OPUS_PACKET, PCM_FRAME_BYTES};
use crate::shared::PlayerShared;
use crate::volume::{self, Volume};

/// Stale records a player may skip in one tick after a seek; the rest wait for the
/// next tick so one player cannot stretch a tick.
const MAX_SKIPS_PER_TICK: usize = 64;

/// A player as the tick thread holds it.
///
/// Small on purpose (the packet it produces lives in its batch slot, not here): the
/// tick walks every slot twice per tick, and thousands of players must cost a few
/// sequential cache lines each, not a kilobyte.
struct Player {
    /// Taken out of `parts` while installed (one pointer hop less per packet) and put
    /// back when the player retires.
    output: Option<Box<dyn PacketOutput>>,
    shared: Arc<PlayerShared>,
    frames: Option<FrameReader>,
    parts: Box<NewPlayer>,
    /// This thread's counts behind `shared`, published by plain stores.
    sent_in_epoch: u64,
    sent_total: u64,
    nulled: u64,
    epoch: u32,
    ended: bool,
    paused: bool,
    volume: Volume,
    empty_ticks: u32,
    stuck_reported: bool,
    /// A track is opening: no frames yet, and ticks without them count as empty.
    opening: bool,
    /// Length of the passthrough packet left in this player's batch slot (0 when the
    /// slot holds anything else), to prime the decoder when processing starts.
    last_len: usize,
    decoding: bool,
    /// A filter chain is active: Opus is decoded and re-encoded even at unity volume.
    process: bool,
    /// Its output got a packet in this tick's send; cleared when the tick's idle
    /// outputs are visited.
    sent_this_tick: bool,
}

struct Slot {
    generation: u32,
    player: Option<Player>,
}

/// Counters of one worker, read by its runner.
#[derive(Debug, Default, Clone, Copy)]
pub struct WorkerCounters {
    /// Packets handed to outputs.
    pub sent: u64,
    /// Sends that hit a full socket buffer.
    pub would_block: u64,
    /// Sends that failed.
    pub send_errors: u64,
    /// Frames due without audio.
    pub nulled: u64,
    /// Events that waited in the overflow list because the event queue was full.
    pub deferred_events: u64,
}

/// Reusable per-tick buffers.
struct Scratch {
    record: Box<[u8]>,
    pcm: Box<[i16]>,
    datagram: Box<DatagramBuf>,
}

/// How many players ahead of the current one the send loop starts loading the
/// output's state; the player slot itself is loaded twice as far ahead, since the
/// output's address is read from it.
const PREFETCH_AHEAD: usize = 2;

/// One tick thread's state.
pub struct Worker {
    slots: Vec<Slot>,
    commands: Consumer<ControlToEngine>,
    events: Producer<EngineToControl>,
    overflow: Vec<EngineToControl>,
    scratch: Scratch,
    counters: WorkerCounters,
    /// Players installed at the last produce, and the sum of their production times.
    tick_players: usize,
    tick_cost_ns: u64,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("capacity", &self.slots.len())
            .field("counters", &self.counters)
            .finish()
    }
}

impl Worker {
    /// A worker for up to `capacity` players, reading `commands` and writing `events`.
    pub fn new(
        capacity: usize,
        commands: Consumer<ControlToEngine>,
        events: Producer<EngineToControl>,
    ) -> Self {
        Worker {
            slots: (0..capacity)
                .map(|_| Slot {
                    generation: 0,
                    player: None,
                })
                .collect(),
            commands,
            events,
            overflow: Vec::with_capacity(capacity * 2 + 64),
            scratch: Scratch {
                record: vec![0u8; PCM_FRAME_BYTES].into_boxed_slice(),
                pcm: vec![0i16; FRAME_SAMPLES_INTERLEAVED].into_boxed_slice(),
                datagram: DatagramBuf::new(),
            },
            counters: WorkerCounters::default(),
            tick_players: 0,
            tick_cost_ns: 0,
        }
    }

    /// Counters so far.
    pub fn counters(&self) -> WorkerCounters {
        self.counters
    }

    /// Players installed at the last [`Self::produce`].
    pub fn player_count(&self) -> usize {
        self.tick_players
    }

    /// How long the last [`Self::produce`] took over its players (commands excluded), in ns.
    pub fn cost_ns(&self) -> u64 {
        self.tick_cost_ns
    }

    /// Steps 1–4 of the tick: drain and apply commands, retire, produce one packet per
    /// playing player into `batch`, timing the production with `now_fn`.
    pub fn produce(&mut self, batch: &mut PacketBatch, now_fn: &dyn Fn() -> Instant) {
        batch.clear();
        self.flush_overflow();
        while let Ok(cmd) = self.commands.pop() {
            self.apply(cmd);
        }
        self.tick_players = 0;
        let start = now_fn();
        for index in 0..self.slots.len() {
            if let Some(ahead) = self.slots.get(index + 2 * PREFETCH_AHEAD) {
                prefetch_ref(ahead, std::mem::size_of::<Slot>());
            }
            if let Some(frames) = self
                .slots
                .get(index + PREFETCH_AHEAD)
                .and_then(|s| s.player.as_ref())
                .and_then(|p| p.frames.as_ref())
            {
                frames.prefetch();
            }
            let slot = &mut self.slots[index];
            let key = PlayerKey {
                index: index as u32,
                generation: slot.generation,
            };
            let Some(player) = slot.player.as_mut() else {
                continue;
            };
            let event = produce_one(player, key, batch, &mut self.scratch, &mut self.counters);
            self.tick_players += 1;
            if let Some(e) = event {
                self.emit(e);
            }
        }
        self.tick_cost_ns = now_fn().saturating_duration_since(start).as_nanos() as u64;
    }

    /// Steps 5–6: hands every produced packet to its player's output, lets every other
    /// output know it was idle this tick ([`PacketOutput::tick_idle`]), and publishes
    /// the counters of what actually left.
    pub fn send(&mut self, batch: &PacketBatch) {
        let order = batch.order();
        for (n, &index) in order.iter().enumerate() {
            if let Some(&ahead) = order.get(n + 2 * PREFETCH_AHEAD) {
                if let Some(slot) = self.slots.get(ahead as usize) {
                    prefetch_ref(slot, std::mem::size_of::<Slot>());
                }
            }
            if let Some(&next) = order.get(n + PREFETCH_AHEAD) {
                if let Some(p) = self
                    .slots
                    .get(next as usize)
                    .and_then(|s| s.player.as_ref())
                {
                    if let Some(output) = p.output.as_deref() {
                        output.prefetch();
                    }
                    prefetch_ref(&*p.shared, std::mem::size_of::<PlayerShared>());
                    let packet = batch.packet(next);
                    prefetch_ref(packet, packet.len());
                }
            }
            let Some(player) = self
                .slots
                .get_mut(index as usize)
                .and_then(|s| s.player.as_mut())
            else {
                continue;
            };
            let Some(output) = player.output.as_mut() else {
                continue;
            };
            player.sent_this_tick = true;
            match output.send(batch.packet(index), &mut self.scratch.datagram) {
                SendOutcome::Sent => {
                    player.sent_in_epoch += 1;
                    player.sent_total += 1;
                    player.shared.publish_sent(
                        player.epoch,
                        player.sent_in_epoch,
                        player.sent_total,
                    );
                    self.counters.sent += 1;
                }
                SendOutcome::WouldBlock => self.counters.would_block += 1,
                SendOutcome::Failed => self.counters.send_errors += 1,
            }
        }
        for player in self.slots.iter_mut().filter_map(|s| s.player.as_mut()) {
            if std::mem::take(&mut player.sent_this_tick) {
                continue;
            }
            if let Some(output) = player.output.as_mut() {
                output.tick_idle(&mut self.scratch.datagram);
            }
        }
    }

    fn slot_mut(&mut self, key: PlayerKey) -> Option<&mut Player> {
        let slot = self.slots.get_mut(key.index as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        slot.player.as_mut()
    }

    fn apply(&mut self, cmd: ControlToEngine) {
        match cmd {
            ControlToEngine::Add(parts) => {
                let key = parts.key;
                let Some(slot) = self.slots.get_mut(key.index as usize) else {
                    return self.emit(EngineToControl::Retired(Retired::Player(parts)));
                };
                slot.generation = key.generation;
                let old = slot.player.replace(Player::new(parts));
                if let Some(old) = old {
                    self.retire_player(old);
                }
            }
            ControlToEngine::Remove(key) => {
                let slot = self.slots.get_mut(key.index as usize);
                let taken = slot
                    .filter(|s| s.generation == key.generation)
                    .and_then(|s| s.player.take());
                if let Some(player) = taken {
                    self.retire_player(player);
                }
            }
            ControlToEngine::Play { key, frames, epoch } => {
                let Some(p) = self.slot_mut(key) else {
                    return self.emit(EngineToControl::Retired(Retired::Frames(frames)));
                };
                let old = p.frames.replace(frames);
                p.volume.snap();
                p.epoch = epoch;
                p.ended = false;
                p.empty_ticks = 0;
                p.stuck_reported = false;
                p.opening = false;
                p.decoding = false;
                p.last_len = 0;
                p.start_epoch(epoch);
                if let Some(old) = old {
                    self.emit(EngineToControl::Retired(Retired::Frames(old)));
                }
            }
            ControlToEngine::Stop(key) => {
                let Some(p) = self.slot_mut(key) else { return };
                if let Some(old) = p.stop_track() {
                    self.emit(EngineToControl::Retired(Retired::Frames(old)));
                }
            }
            ControlToEngine::Open { key, epoch } => {
                let Some(p) = self.slot_mut(key) else { return };
                let old = p.stop_track();
                p.epoch = epoch;
                p.ended = false;
                p.empty_ticks = 0;
                p.stuck_reported = false;
                p.opening = true;
                if let Some(old) = old {
                    self.emit(EngineToControl::Retired(Retired::Frames(old)));
                }
            }
            ControlToEngine::Seek { key, epoch } => {
                if let Some(p) = self.slot_mut(key) {
                    p.epoch = epoch;
                    p.ended = false;
                    p.empty_ticks = 0;
                    p.decoding = false;
                    p.last_len = 0;
                    p.start_epoch(epoch);
                }
            }
            ControlToEngine::Pause { key, paused } => {
                if let Some(p) = self.slot_mut(key) {
                    if paused && !p.paused {
                        if let Some(o) = p.output.as_mut() {
                            o.audio_stopped();
                        }
                    }
                    p.paused = paused;
                    p.empty_ticks = 0;
                }
            }
            ControlToEngine::Process { key, active } => {
                if let Some(p) = self.slot_mut(key) {
                    p.process = active;
                }
            }
            ControlToEngine::Codecs {
                key,
                encoder,
                decoder,
            } => {
                let (encoder, decoder) = match self.slot_mut(key) {
                    Some(p) => (
                        fill(&mut p.parts.encoder, encoder),
                        fill(&mut p.parts.decoder, decoder),
                    ),
                    None => (Some(encoder), Some(decoder)),
                };
                if let Some(e) = encoder {
                    self.emit(EngineToControl::Retired(Retired::Encoder(e)));
                }
                if let Some(d) = decoder {
                    self.emit(EngineToControl::Retired(Retired::Decoder(d)));
                }
            }
            ControlToEngine::Volume { key, volume } => {
                if let Some(p) = self.slot_mut(key) {
                    p.volume.set(volume);
                }
            }
            ControlToEngine::SetOutput { key, output } => {
                let old = match self.slot_mut(key) {
                    Some(p) => std::mem::replace(&mut p.output, output),
                    None => output,
                };
                if let Some(old) = old {
                    self.emit(EngineToControl::Retired(Retired::Output(old)));
                }
            }
            ControlToEngine::SetSenderKey { key, sender } => {
                if let Some(output) = self.slot_mut(key).and_then(|p| p.output.as_mut()) {
                    output.set_sender_key(sender);
                }
            }
        }
    }

    fn retire_player(&mut self, mut player: Player) {
        if let Some(frames) = player.frames.take() {
            self.emit(EngineToControl::Retired(Retired::Frames(frames)));
        }
        player.parts.output = player.output.take();
        self.emit(EngineToControl::Retired(Retired::Player(player.parts)));
    }

    /// Queues an event; if the queue is full it waits in the preallocated overflow
    /// list (never dropped, never freed here).
    fn emit(&mut self, event: EngineToControl) {
        if !self.overflow.is_empty() {
            return self.defer(event);
        }
        if let Err(rtrb::PushError::Full(event)) = self.events.push(event) {
            self.defer(event);
        }
    }

    fn defer(&mut self, event: EngineToControl) {
        self.counters.deferred_events += 1;
        if self.overflow.len() < self.overflow.capacity() {
            self.overflow.push(event);
        } else {
            // Only reachable if the control plane stopped draining events entirely;
            // leaking is the one option that neither frees nor blocks on this thread.
            std::mem::forget(event);
        }
    }

    fn flush_overflow(&mut self) {
        while !self.overflow.is_empty() && self.events.slots() > 0 {
            let event = self.overflow.remove(0);
            if let Err(rtrb::PushError::Full(event)) = self.events.push(event) {
                self.overflow.insert(0, event);
                break;
            }
        }
    }
}

impl Player {
    /// Ends the current track (or its opening): the output sends its trailing
    /// silence, and the track's reader is handed back to be retired off the tick.
    fn stop_track(&mut self) -> Option<FrameReader> {
        self.opening = false;
        if let Some(o) = self.output.as_mut() {
            o.audio_stopped();
        }
        self.frames.take()
    }

    fn new(mut parts: Box<NewPlayer>) -> Self {
        let shared = Arc::clone(&parts.shared);
        Player {
            output: parts.output.take(),
            sent_in_epoch: 0,
            sent_total: shared.frames_sent_total(),
            nulled: shared.frames_nulled(),
            shared,
            parts,
            frames: None,
            epoch: 0,
            ended: false,
            paused: false,
            volume: Volume::default(),
            empty_ticks: 0,
            stuck_reported: false,
            opening: false,
            last_len: 0,
            decoding: false,
            process: false,
            sent_this_tick: false,
        }
    }

    /// A new epoch (a track or a seek) starts counting sent frames from zero.
    fn start_epoch(&mut self, epoch: u32) {
        self.sent_in_epoch = 0;
        self.shared.start_epoch(epoch);
    }
}

/// Produces this tick's packet for one player, returning an event if its track ended
/// or got stuck.
fn produce_one(
    p: &mut Player,
    key: PlayerKey,
    batch: &mut PacketBatch,
    scratch: &mut Scratch,
    counters: &mut WorkerCounters,
) -> Option<EngineToControl> {
    if p.paused || p.ended || p.output.is_none() {
        return None;
    }
    let slot = batch.slot(key.index)?;
    let Some(frames) = p.frames.as_mut() else {
        // Still opening: nothing to send, but the wait counts towards stuck.
        return if p.opening { count_empty(p, key) } else { None };
    };
    for _ in 0..MAX_SKIPS_PER_TICK {
        let Some(rec) = frames.read(&mut scratch.record) else {
            break;
        };
        if rec.epoch != p.epoch {
            continue;
        }
        p.empty_ticks = 0;
        let produced = match rec.kind {
            RecordKind::Opus => opus_frame(p, &scratch.record[..rec.len], &mut scratch.pcm, slot),
            RecordKind::Pcm => pcm_frame(p, &scratch.record[..rec.len], &mut scratch.pcm, slot),
            RecordKind::End | RecordKind::Failed => {
                p.ended = true;
                if let Some(o) = p.output.as_mut() {
                    o.audio_stopped();
                }
                let end = match rec.kind {
                    RecordKind::End => TrackEnd::Finished,
                    _ => TrackEnd::Failed(code_of(&scratch.record[..rec.len])),
                };
                return Some(EngineToControl::TrackEnded {
                    key,
                    epoch: p.epoch,
                    end,
                });
            }
        };
        if let Some(len) = produced {
            p.volume.advance();
            batch.commit(key.index, len);
        }
        return None;
    }
    counters.nulled += 1;
    p.nulled += 1;
    p.shared.publish_nulled(p.nulled);
    count_empty(p, key)
}

/// Counts a tick without audio; the one that crosses the threshold reports the track
/// stuck (once per track or seek).
fn count_empty(p: &mut Player, key: PlayerKey) -> Option<EngineToControl> {
    p.empty_ticks = p.empty_ticks.saturating_add(1);
    if p.empty_ticks >= p.parts.stuck_after_ticks && !p.stuck_reported {
        p.stuck_reported = true;
        return Some(EngineToControl::Stuck {
            key,
            epoch: p.epoch,
        });
    }
    None
}

fn code_of(payload: &[u8]) -> u32 {
    let mut b = [0u8; 4];
    for (d, s) in b.iter_mut().zip(payload) {
        *d = *s;
    }
    u32::from_le_bytes(b)
}

/// An Opus packet: passed through at unity volume, else decoded, scaled, re-encoded.
/// Returns the length of the packet left in `slot`.
fn opus_frame(
    p: &mut Player,
    packet: &[u8],
    pcm: &mut [i16],
    slot: &mut [u8; MAX_OPUS_PACKET],
) -> Option<usize> {
    if packet.len() > MAX_OPUS_PACKET {
        return None;
    }
    let passthrough = p.volume.is_unity() && !p.process;
    if !passthrough {
        // Only here: a passthrough player never looks at the offer slot (one more
        // cache line per player per tick).
        take_offered_encoder(p);
    }
    // Without codecs (not sent yet: never expected) the packet passes unprocessed
    // rather than not at all.
    if passthrough || p.parts.encoder.is_none() || p.parts.decoder.is_none() {
        slot[..packet.len()].copy_from_slice(packet);
        p.last_len = packet.len();
        p.decoding = false;
        return Some(packet.len());
    }
    let decoder = p.parts.decoder.as_mut()?;
    if !p.decoding && p.last_len > 0 {
        // Prime the decoder with the packet heard last (still in the slot), so its
        // state continues smoothly instead of starting from silence mid-track.
        let _ = decoder.decode(&slot[..p.last_len], pcm);
    }
    p.last_len = 0;
    p.decoding = true;
    if decoder.decode(packet, pcm).is_err() {
        return None;
    }
    volume::apply(pcm, p.volume.current());
    encode(p, pcm, slot)
}

/// A PCM frame: scaled and encoded.
fn pcm_frame(
    p: &mut Player,
    bytes: &[u8],
    pcm: &mut [i16],
    slot: &mut [u8; MAX_OPUS_PACKET],
) -> Option<usize> {
    for (s, b) in pcm.iter_mut().zip(bytes.chunks_exact(2)) {
        *s = i16::from_ne_bytes([b[0], b[1]]);
    }
    p.last_len = 0;
    volume::apply(pcm, p.volume.current());
    take_offered_encoder(p);
    encode(p, pcm, slot)
}

/// A player without an encoder takes the one its track's decoder offered, if any.
fn take_offered_encoder(p: &mut Player) {
    if p.parts.encoder.is_none() {
        p.parts.encoder = p.frames.as_mut().and_then(FrameReader::take_encoder);
    }
}

/// Puts `new` into an empty `slot`; gives it back when the slot was full.
fn fill<T: ?Sized>(slot: &mut Option<Box<T>>, new: Box<T>) -> Option<Box<T>> {
    if slot.is_some() {
        return Some(new);
    }
    *slot = Some(new);
    None
}

fn encode(p: &mut Player, pcm: &[i16], slot: &mut [u8; MAX_OPUS_PACKET]) -> Option<usize> {
    p.parts.encoder.as_mut()?.encode(pcm, slot).ok()
}
