//! One guild's player: the state Lavalink's `PATCH`/`GET` expose, and the rules that
//! change it.
//!
//! The player is plain state without IO: every operation appends what the client
//! must be told to an [`Emitted`] list, which the session turns into messages in
//! order, and tells its [`PlayerAudio`] what to do. Position is derived from frames
//! actually sent in the current epoch (a seek starts a new epoch), never from wall
//! time.

mod audio;
mod factory;

pub use audio::{Detached, PlayerAudio};
pub use factory::{AudioFactory, DetachedFactory};

use quaver_engine::audio::frames_to_ms;
use serde_json::{Map, Value};

use crate::audio_track::AudioTrack;
use crate::ids::GuildId;
use crate::protocol::filters::Filters;
use crate::protocol::messages::{Event, TrackEndReason};
use crate::protocol::player::{Player as PlayerJson, PlayerState, VoiceState};
use crate::stats::AudioLossCounter;

/// Lavalink clamps volume into this range silently.
pub const VOLUME_RANGE: std::ops::RangeInclusive<i32> = 0..=1000;

/// Something the client must be told, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Emitted {
    /// A player event.
    Event(Event),
    /// A `playerUpdate` with the state at the time it is sent.
    PlayerUpdate,
}

/// The track a player is playing and where it is.
#[derive(Debug)]
pub struct Playback {
    /// Increases with every new track on the node, so a timer that outlived its
    /// track cannot act on the next one.
    pub serial: u64,
    track: AudioTrack,
    /// Position when the current epoch began (track start or last seek).
    origin_ms: i64,
    /// The first epoch of this track; later epochs are its seeks.
    first_epoch: u32,
    epoch: u32,
    end_time_ms: Option<i64>,
    timer: Option<tokio::task::AbortHandle>,
}

impl Drop for Playback {
    fn drop(&mut self) {
        if let Some(t) = self.timer.take() {
            t.abort();
        }
    }
}

impl Playback {
    /// The playing track.
    pub fn track(&self) -> &AudioTrack {
        &self.track
    }

    /// Attaches the task that sends periodic updates for this track; it is aborted
    /// when the track ends.
    pub fn set_timer(&mut self, handle: tokio::task::AbortHandle) {
        self.timer = Some(handle);
    }

    /// The end marker, if set.
    pub fn end_time_ms(&self) -> Option<i64> {
        self.end_time_ms
    }

    /// The current epoch.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Whether `epoch` belongs to this track (its start or one of its seeks).
    pub fn owns_epoch(&self, epoch: u32) -> bool {
        epoch >= self.first_epoch && epoch <= self.epoch
    }

    fn position_with(&self, frames_sent: u64) -> i64 {
        let pos = self
            .origin_ms
            .saturating_add(frames_to_ms(frames_sent) as i64);
        match self.track.blob().is_stream {
            true => pos,
            false => pos.min(self.track.blob().length_ms.max(0)),
        }
    }
}

/// A guild's player.
#[derive(Debug)]
pub struct Player {
    guild: GuildId,
    audio: Box<dyn PlayerAudio>,
    next_epoch: u32,
    volume: i32,
    paused: bool,
    filters: Filters,
    voice: Option<VoiceState>,
    playback: Option<Playback>,
    loss: AudioLossCounter,
    /// Engine totals at the last sample, for the loss counter's deltas.
    sampled: (u64, u64),
}

impl Player {
    /// A new idle player: volume 100, not paused, no filters, no voice.
    pub fn new(guild: GuildId, audio: Box<dyn PlayerAudio>) -> Self {
        Player {
            guild,
            audio,
            next_epoch: 1,
            volume: 100,
            paused: false,
            filters: Filters::default(),
            voice: None,
            playback: None,
            loss: AudioLossCounter::default(),
            sampled: (0, 0),
        }
    }

    /// The guild.
    pub fn guild(&self) -> GuildId {
        self.guild
    }

    /// The current playback, if a track is loaded.
    pub fn playback(&self) -> Option<&Playback> {
        self.playback.as_ref()
    }

    /// Mutable access to the current playback.
    pub fn playback_mut(&mut self) -> Option<&mut Playback> {
        self.playback.as_mut()
    }

    /// A track is loaded and not paused.
    pub fn is_playing(&self) -> bool {
        self.playback.is_some() && !self.paused
    }

    /// Whether the player is paused.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Feeds the frames the engine sent and nulled since the last sample into the
    /// loss counter.
    pub fn sample_frames(&mut self, now_ms: i64) {
        let now = (self.audio.frames_sent_total(), self.audio.frames_nulled());
        let (sent, nulled) = (
            now.0.saturating_sub(self.sampled.0),
            now.1.saturating_sub(self.sampled.1),
        );
        self.sampled = now;
        self.loss.add(now_ms, sent as i64, nulled as i64);
    }

    /// Per-player frame accounting for `frameStats`.
    pub fn loss_counter(&self) -> &AudioLossCounter {
        &self.loss
    }

    /// Whether the Discord voice gateway is open.
    pub fn is_connected(&self) -> bool {
        self.audio.is_connected()
    }

    /// The player's audio path.
    pub fn audio(&self) -> &dyn PlayerAudio {
        &*self.audio
    }

    /// Current position in ms: where the epoch began plus the audio actually sent.
    pub fn position_ms(&self) -> i64 {
        self.playback
            .as_ref()
            .map_or(0, |p| p.position_with(self.audio.frames_sent(p.epoch)))
    }

    /// Position and connection state for `playerUpdate` and `Player.state`.
    pub fn state(&self, now_epoch_ms: u64) -> PlayerState {
        PlayerState {
            time: now_epoch_ms,
            position: self.position_ms(),
            connected: self.is_connected(),
            ping: self.audio.ping_ms().unwrap_or(-1),
        }
    }

    /// The `Player` JSON object.
    pub fn to_json(&self, now_epoch_ms: u64) -> PlayerJson {
        PlayerJson {
            guild_id: self.guild.to_string(),
            track: self
                .playback
                .as_ref()
                .map(|p| p.track.to_json(self.position_ms())),
            volume: self.volume,
            paused: self.paused,
            state: self.state(now_epoch_ms),
            voice: self.voice.clone().unwrap_or_default(),
            filters: self.filters.clone(),
        }
    }

    /// Stores a voice state. Returns false when it equals the current one (Lavalink
    /// then leaves the connection untouched).
    pub fn set_voice(&mut self, voice: VoiceState) -> bool {
        if self.voice.as_ref() == Some(&voice) {
            return false;
        }
        self.audio.set_voice(&voice);
        self.voice = Some(voice);
        true
    }

    /// Pauses or resumes.
    pub fn set_paused(&mut self, paused: bool, now_ms: i64) {
        if paused != self.paused && self.playback.is_some() {
            if paused {
                self.loss.on_end(now_ms)
            } else {
                self.loss.on_start(now_ms)
            }
        }
        if paused != self.paused {
            self.audio.set_paused(paused);
        }
        self.paused = paused;
    }

    /// Replaces the user data of the playing track (ignored when idle).
    pub fn set_user_data(&mut self, data: Map<String, Value>) {
        if let Some(p) = &mut self.playback {
            p.track.user_data = data;
        }
    }

    /// Sets the volume, clamped to 0–1000.
    pub fn set_volume(&mut self, volume: i32) {
        self.volume = volume.clamp(*VOLUME_RANGE.start(), *VOLUME_RANGE.end());
        self.audio.set_volume(self.volume as u16);
    }

    /// Replaces the filter chain.
    pub fn set_filters(&mut self, filters: Filters, out: &mut Vec<Emitted>) {
        self.audio.set_filters(&filters);
        self.filters = filters;
        out.push(Emitted::PlayerUpdate);
    }

    /// Seeks the playing track. Streams ignore seeks; negative targets mean 0; a seek
    /// past the end marker ends the track (`finished`).
    pub fn seek(&mut self, position_ms: i64, now_ms: i64, out: &mut Vec<Emitted>) {
        let Some(p) = &mut self.playback else { return };
        if p.track.is_seekable() {
            let target = position_ms.max(0);
            p.origin_ms = target;
            p.epoch = self.next_epoch;
            self.next_epoch += 1;
            self.audio.seek(target as u64, p.epoch);
        }
        let position = p.position_with(self.audio.frames_sent(p.epoch));
        let passed_marker = p.end_time_ms.is_some_and(|end| position >= end);
        out.push(Emitted::PlayerUpdate);
        if passed_marker {
            self.end_track(TrackEndReason::Finished, now_ms, out);
        }
    }

    /// Sets the end marker on the playing track. A marker at or before the current
    /// position is ignored, as lavaplayer ignores a late marker.
    pub fn set_end_time(&mut self, end_ms: i64) {
        let position = self.position_ms();
        if let Some(p) = &mut self.playback {
            if end_ms > position {
                p.end_time_ms = Some(end_ms);
            }
        }
    }

    /// Starts a new track (replacing the current one), with an optional end marker.
    pub fn play(
        &mut self,
        track: AudioTrack,
        end_time_ms: Option<i64>,
        serial: u64,
        now_ms: i64,
        out: &mut Vec<Emitted>,
    ) {
        self.end_track(TrackEndReason::Replaced, now_ms, out);
        let origin_ms = track.start_position_ms().max(0);
        let end_time_ms = end_time_ms.filter(|&end| end > origin_ms);
        let start = Event::TrackStartEvent {
            guild_id: self.guild.to_string(),
            track: track.to_json(origin_ms),
        };
        let epoch = self.next_epoch;
        self.next_epoch += 1;
        crate::stats::counters::count_play(&track.blob().source_name);
        self.audio.play(&track, origin_ms as u64, epoch);
        self.playback = Some(Playback {
            serial,
            track,
            origin_ms,
            first_epoch: epoch,
            epoch,
            end_time_ms,
            timer: None,
        });
        self.loss.on_start(now_ms);
        out.push(Emitted::Event(start));
        out.push(Emitted::PlayerUpdate);
    }

    /// Stops the current track with `reason` (no-op when idle). Returns whether a
    /// track was ended.
    pub fn end_track(
        &mut self,
        reason: TrackEndReason,
        now_ms: i64,
        out: &mut Vec<Emitted>,
    ) -> bool {
        let position = self.position_ms();
        let Some(p) = self.playback.take() else {
            return false;
        };
        self.audio.stop();
        let track = p.track.to_json(position);
        self.loss.on_end(now_ms);
        out.push(Emitted::Event(Event::TrackEndEvent {
            guild_id: self.guild.to_string(),
            track,
            reason,
        }));
        true
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        self.audio.destroy();
    }
}

#[cfg(test)]
mod tests;
