//! The seam between a player's rules and the audio that plays: the player decides,
//! its [`PlayerAudio`] carries the decision to the engine.

use std::fmt;

use crate::audio_track::AudioTrack;
use crate::protocol::filters::Filters;
use crate::protocol::player::VoiceState;

/// What a player asks of its audio path. Calls are cheap and never block: an engine
/// implementation only queues commands.
pub trait PlayerAudio: Send + fmt::Debug {
    /// Starts `track` at `start_ms`, writing frames of `epoch`.
    fn play(&mut self, track: &AudioTrack, start_ms: u64, epoch: u32);
    /// Stops the current track.
    fn stop(&mut self);
    /// Continues the current track from `position_ms` in a new `epoch`.
    fn seek(&mut self, position_ms: u64, epoch: u32);
    /// Pauses or resumes.
    fn set_paused(&mut self, paused: bool);
    /// Volume 0–1000.
    fn set_volume(&mut self, volume: u16);
    /// The filter chain changed.
    fn set_filters(&mut self, filters: &Filters);
    /// The voice state changed (connect or reconnect).
    fn set_voice(&mut self, voice: &VoiceState);
    /// Frames actually sent in `epoch`.
    fn frames_sent(&self, epoch: u32) -> u64;
    /// Frames sent since the player was created.
    fn frames_sent_total(&self) -> u64 {
        0
    }
    /// Frames due without audio since the player was created.
    fn frames_nulled(&self) -> u64 {
        0
    }
    /// Whether the voice connection is open.
    fn is_connected(&self) -> bool {
        false
    }
    /// Voice gateway round trip in ms, when connected.
    fn ping_ms(&self) -> Option<i64> {
        None
    }
    /// The DAVE protocol version in force on the voice connection (0: transport
    /// encryption only), once negotiated.
    fn dave_protocol(&self) -> Option<u16> {
        None
    }
    /// The player is being destroyed: release everything.
    fn destroy(&mut self) {}
}

/// Audio for a player that is not attached to an engine: nothing is ever pulled, so
/// tracks do not advance (Lavalink's behaviour without a voice connection). Used by
/// unit tests of the player rules.
#[derive(Debug, Default)]
pub struct Detached;

impl PlayerAudio for Detached {
    fn play(&mut self, _: &AudioTrack, _: u64, _: u32) {}
    fn stop(&mut self) {}
    fn seek(&mut self, _: u64, _: u32) {}
    fn set_paused(&mut self, _: bool) {}
    fn set_volume(&mut self, _: u16) {}
    fn set_filters(&mut self, _: &Filters) {}
    fn set_voice(&mut self, _: &VoiceState) {}
    fn frames_sent(&self, _: u32) -> u64 {
        0
    }
}
