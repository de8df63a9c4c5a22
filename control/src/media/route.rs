//! Which session and guild an engine player belongs to.

use std::sync::Weak;

use quaver_engine::PlayerCommands;

use crate::ids::GuildId;
use crate::session::Session;

/// The owner of a player, and a way to send it commands (decode reports arrive here,
/// not at the player's handle).
#[derive(Debug)]
pub(super) struct Route {
    pub session: Weak<Session>,
    pub guild: GuildId,
    pub player: PlayerCommands,
}
