//! A player as the control plane holds it: commands in, shared figures out, removal
//! when the handle goes.
//!
//! Before this, the control plane built the engine's [`NewPlayer`] itself, carried the
//! slot's [`Placement`] around and paired a thread index with every command. Now
//! [`Engine::add_player`] builds the player, and a [`PlayerHandle`] speaks for it
//! (kira's `ResourceController` is the model): each command names only what it does,
//! a full queue is a typed error at the call, and dropping the handle removes the
//! player from its tick thread and frees its slot. Clones of its
//! [`PlayerCommands`] (a voice connection's, an event route's) send commands but do
//! not keep the player alive.

use std::sync::Arc;

use crate::codec::{FrameDecoder, FrameEncoder};
use crate::message::{ControlToEngine, NewPlayer};
use crate::output::PacketOutput;
use crate::pool::{Engine, EngineFull, Placement, QueueFull};
use crate::ring::FrameReader;
use crate::shared::PlayerShared;
use crate::transport::SenderKey;

/// What a player can be told.
pub enum PlayerCommand {
    /// Start reading a new track's frames (the previous reader is retired).
    Play {
        /// The new track's frames.
        frames: FrameReader,
        /// Epoch of its records.
        epoch: u32,
    },
    /// Stop the current track (no event: the caller knows).
    Stop,
    /// A track of `epoch` is opening (its frames follow with `Play`): the previous
    /// track's reader is retired, and ticks without frames count towards stuck as a
    /// playing track's do, so a source that stalls before it even opens is stuck.
    Open {
        /// Epoch of the opening track.
        epoch: u32,
    },
    /// Discard records older than `epoch` (a seek).
    Seek {
        /// The epoch the decoder writes from now on.
        epoch: u32,
    },
    /// Pause (`true`) or resume.
    Pause(bool),
    /// Volume 0–1000 (100 = unity).
    Volume(u16),
    /// Decode and re-encode Opus even at unity volume (a filter chain is active).
    Process(bool),
    /// Opus codecs, sent before the first volume or filter that needs them.
    Codecs {
        /// Opus encoder.
        encoder: Box<dyn FrameEncoder>,
        /// Opus decoder.
        decoder: Box<dyn FrameDecoder>,
    },
    /// Send packets to this output (`None`: nobody pulls the audio).
    SetOutput(Option<Box<dyn PacketOutput>>),
    /// DAVE-encrypt from the next packet with this key (`None`: plain Opus).
    SetSenderKey(Option<SenderKey>),
}

impl std::fmt::Debug for PlayerCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PlayerCommand::Play { .. } => "Play",
            PlayerCommand::Stop => "Stop",
            PlayerCommand::Open { .. } => "Open",
            PlayerCommand::Seek { .. } => "Seek",
            PlayerCommand::Pause(_) => "Pause",
            PlayerCommand::Volume(_) => "Volume",
            PlayerCommand::Process(_) => "Process",
            PlayerCommand::Codecs { .. } => "Codecs",
            PlayerCommand::SetOutput(_) => "SetOutput",
            PlayerCommand::SetSenderKey(_) => "SetSenderKey",
        })
    }
}

impl PlayerCommand {
    fn into_message(self, key: crate::message::PlayerKey) -> ControlToEngine {
        match self {
            PlayerCommand::Play { frames, epoch } => ControlToEngine::Play { key, frames, epoch },
            PlayerCommand::Stop => ControlToEngine::Stop(key),
            PlayerCommand::Open { epoch } => ControlToEngine::Open { key, epoch },
            PlayerCommand::Seek { epoch } => ControlToEngine::Seek { key, epoch },
            PlayerCommand::Pause(paused) => ControlToEngine::Pause { key, paused },
            PlayerCommand::Volume(volume) => ControlToEngine::Volume { key, volume },
            PlayerCommand::Process(active) => ControlToEngine::Process { key, active },
            PlayerCommand::Codecs { encoder, decoder } => ControlToEngine::Codecs {
                key,
                encoder,
                decoder,
            },
            PlayerCommand::SetOutput(output) => ControlToEngine::SetOutput { key, output },
            PlayerCommand::SetSenderKey(sender) => ControlToEngine::SetSenderKey { key, sender },
        }
    }
}

/// Why a player could not be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AddPlayerError {
    /// Every slot is taken.
    #[error(transparent)]
    Full(#[from] EngineFull),
    /// The chosen thread's command queue is full.
    #[error(transparent)]
    QueueFull(#[from] QueueFull),
}

/// Sends commands to one player; cheap to clone, and does not keep it alive.
#[derive(Clone)]
pub struct PlayerCommands {
    engine: Arc<Engine>,
    id: Placement,
}

impl std::fmt::Debug for PlayerCommands {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PlayerCommands").field(&self.id).finish()
    }
}

impl PlayerCommands {
    /// Queues `cmd` for the player's tick thread. On a full queue (the thread is not
    /// keeping up) the command is dropped here, off the tick, and the error says so.
    pub fn send(&self, cmd: PlayerCommand) -> Result<(), QueueFull> {
        self.engine
            .send(self.id.thread, cmd.into_message(self.id.key))
            .map_err(|(e, _)| e)
    }

    /// Where the player lives; engine events name it by this.
    pub fn id(&self) -> Placement {
        self.id
    }
}

/// One player on the engine, removed from its tick thread when dropped.
#[derive(Debug)]
pub struct PlayerHandle {
    commands: PlayerCommands,
    shared: Arc<PlayerShared>,
}

impl PlayerHandle {
    /// Queues `cmd` (see [`PlayerCommands::send`]).
    pub fn send(&self, cmd: PlayerCommand) -> Result<(), QueueFull> {
        self.commands.send(cmd)
    }

    /// A sender for this player that others can hold.
    pub fn commands(&self) -> PlayerCommands {
        self.commands.clone()
    }

    /// Where the player lives.
    pub fn id(&self) -> Placement {
        self.commands.id
    }

    /// The figures its tick thread publishes (frames sent, nulled, …).
    pub fn shared(&self) -> &Arc<PlayerShared> {
        &self.shared
    }
}

impl Drop for PlayerHandle {
    fn drop(&mut self) {
        let id = self.commands.id;
        // A full queue leaves the player in its slot until the slot's next `Add`
        // replaces it (retiring it then); the slot is free either way.
        let _ = self
            .commands
            .engine
            .send(id.thread, ControlToEngine::Remove(id.key));
        self.commands.engine.release(id);
    }
}

impl Engine {
    /// Adds a player, without an output or codecs, on the tick thread with the lowest
    /// estimated cost; `stuck_after_ticks` ticks without audio make its track stuck.
    pub fn add_player(
        self: &Arc<Self>,
        stuck_after_ticks: u32,
    ) -> Result<PlayerHandle, AddPlayerError> {
        let id = self.reserve()?;
        let shared = Arc::new(PlayerShared::default());
        let parts = NewPlayer {
            key: id.key,
            shared: shared.clone(),
            encoder: None,
            decoder: None,
            output: None,
            stuck_after_ticks,
        };
        if let Err((e, _)) = self.send(id.thread, ControlToEngine::Add(Box::new(parts))) {
            self.release(id);
            return Err(e.into());
        }
        Ok(PlayerHandle {
            commands: PlayerCommands {
                engine: self.clone(),
                id,
            },
            shared,
        })
    }
}
