//! Where a connected player's packets go: the Discord voice transport in production,
//! a capture in tests.

use quaver_engine::output::PacketOutput;

use crate::ids::GuildId;
use crate::protocol::player::VoiceState;

/// Turns a player's voice state into a packet output.
pub trait OutputFactory: Send + Sync {
    /// The output for `guild` connected per `voice`, or `None` when it cannot connect.
    fn output_for(&self, guild: GuildId, voice: &VoiceState) -> Option<Box<dyn PacketOutput>>;
}

/// No voice transport: players behave as Lavalink players without a voice connection
/// (their audio is never pulled). The Discord voice transport replaces this.
#[derive(Debug, Default)]
pub struct NoVoice;

impl OutputFactory for NoVoice {
    fn output_for(&self, _: GuildId, _: &VoiceState) -> Option<Box<dyn PacketOutput>> {
        None
    }
}
