//! The two queues between the control plane and a tick thread, one typed message
//! enum per direction. Commands carry owned, ready-to-use data so the tick never
//! looks anything up or allocates; whatever leaves the engine travels back in
//! [`EngineToControl::Retired`] to be dropped on the control side.

use std::sync::Arc;

use crate::codec::{FrameDecoder, FrameEncoder};
use crate::output::PacketOutput;
use crate::ring::FrameReader;
use crate::shared::PlayerShared;

/// Identifies a player slot on one worker; the generation tells a reused slot apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PlayerKey {
    /// Slot index in the worker's table.
    pub index: u32,
    /// Incremented each time the slot is reused.
    pub generation: u32,
}

/// Everything a player needs on the tick thread, built (and allocated) by the control
/// plane when the player is created.
pub struct NewPlayer {
    /// Its slot.
    pub key: PlayerKey,
    /// Counters published to the control plane.
    pub shared: Arc<PlayerShared>,
    /// Encoder for PCM frames (and for Opus frames that need processing). Optional,
    /// like the decoder: an Opus passthrough player at unity volume never uses them,
    /// and they are most of its memory. A PCM track brings one through its frame
    /// ring ([`FrameWriter::offer_encoder`](crate::ring::FrameWriter::offer_encoder));
    /// the control plane sends both ([`ControlToEngine::Codecs`]) before the first
    /// volume or filter that needs them.
    pub encoder: Option<Box<dyn FrameEncoder>>,
    /// Decoder for Opus frames that need processing (volume ≠ 100, filters).
    pub decoder: Option<Box<dyn FrameDecoder>>,
    /// Where packets go; `None` while the player has no voice connection, which (as in
    /// Lavalink) means nobody pulls its audio: the track does not advance.
    pub output: Option<Box<dyn PacketOutput>>,
    /// Ticks without audio after which the track counts as stuck.
    pub stuck_after_ticks: u32,
}

impl std::fmt::Debug for NewPlayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewPlayer")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// Control plane → engine.
#[derive(Debug)]
pub enum ControlToEngine {
    /// Installs a player in its reserved slot.
    Add(Box<NewPlayer>),
    /// Removes a player; its parts come back as `Retired`.
    Remove(PlayerKey),
    /// Starts reading a new track's frames; the previous reader is retired.
    Play {
        /// Player.
        key: PlayerKey,
        /// The new track's frames.
        frames: FrameReader,
        /// Epoch of the new track's records.
        epoch: u32,
    },
    /// Stops the current track (no event: the control plane already knows).
    Stop(PlayerKey),
    /// A track is opening; its frames follow with `Play` (see `PlayerCommand::Open`).
    Open {
        /// Player.
        key: PlayerKey,
        /// Epoch of the opening track.
        epoch: u32,
    },
    /// Records of an older epoch are discarded (a seek).
    Seek {
        /// Player.
        key: PlayerKey,
        /// The epoch the decoder writes from now on.
        epoch: u32,
    },
    /// Pause or resume.
    Pause {
        /// Player.
        key: PlayerKey,
        /// Paused?
        paused: bool,
    },
    /// Volume 0–1000 (100 = unity).
    Volume {
        /// Player.
        key: PlayerKey,
        /// Volume.
        volume: u16,
    },
    /// Codecs for a player that will process Opus frames (sent before the volume or
    /// filter that needs them); slots already filled keep theirs and the spare comes
    /// back retired.
    Codecs {
        /// Player.
        key: PlayerKey,
        /// Opus encoder.
        encoder: Box<dyn FrameEncoder>,
        /// Opus decoder.
        decoder: Box<dyn FrameDecoder>,
    },
    /// Whether frames must be decoded and re-encoded even at unity volume (a filter
    /// chain is active), so Opus no longer passes through.
    Process {
        /// Player.
        key: PlayerKey,
        /// Process every frame?
        active: bool,
    },
    /// Replaces the packet output (a voice connection came or went).
    SetOutput {
        /// Player.
        key: PlayerKey,
        /// New output, or `None` to stop pulling audio.
        output: Option<Box<dyn PacketOutput>>,
    },
    /// Installs or removes the DAVE sender key of the current output (see
    /// [`PacketOutput::set_sender_key`]).
    SetSenderKey {
        /// Player.
        key: PlayerKey,
        /// The epoch's sender secret, or `None` for plain Opus.
        sender: Option<crate::transport::SenderKey>,
    },
}

impl std::fmt::Debug for dyn PacketOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PacketOutput")
    }
}

/// Things the engine no longer needs, to be dropped off the tick thread.
pub enum Retired {
    /// A removed player.
    Player(Box<NewPlayer>),
    /// A finished or replaced track's frame reader.
    Frames(FrameReader),
    /// A replaced output.
    Output(Box<dyn PacketOutput>),
    /// Codecs the player already had.
    Encoder(Box<dyn FrameEncoder>),
    /// See [`Retired::Encoder`].
    Decoder(Box<dyn FrameDecoder>),
}

impl std::fmt::Debug for Retired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Retired::Player(_) => "Retired::Player",
            Retired::Frames(_) => "Retired::Frames",
            Retired::Output(_) => "Retired::Output",
            Retired::Encoder(_) => "Retired::Encoder",
            Retired::Decoder(_) => "Retired::Decoder",
        })
    }
}

/// Why a track stopped producing audio on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackEnd {
    /// The source ended.
    Finished,
    /// The source failed with this code (resolved by the control plane).
    Failed(u32),
}

/// Engine → control plane.
#[derive(Debug)]
pub enum EngineToControl {
    /// The track of `epoch` ended after its last frame was sent.
    TrackEnded {
        /// Player.
        key: PlayerKey,
        /// Epoch of the ending track.
        epoch: u32,
        /// How.
        end: TrackEnd,
    },
    /// No frame for the stuck threshold (reported once per track).
    Stuck {
        /// Player.
        key: PlayerKey,
        /// Epoch of the stuck track.
        epoch: u32,
    },
    /// Something to drop off the tick thread.
    Retired(Retired),
}
