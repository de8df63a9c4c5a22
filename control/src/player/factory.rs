//! Where a new player's audio path comes from.

use std::sync::Arc;

use super::{Detached, PlayerAudio};
use crate::ids::GuildId;
use crate::rest::error::ApiError;
use crate::session::Session;

/// Creates the audio path of each new player (the engine, in a running node).
pub trait AudioFactory: Send + Sync + std::fmt::Debug {
    /// Reserves what the player needs; a full engine is an error for the client.
    fn create(
        &self,
        session: &Arc<Session>,
        guild: GuildId,
    ) -> Result<Box<dyn PlayerAudio>, ApiError>;

    /// The audio engine's tick threads, for `GET /quaver/engine` (none without one).
    fn engine_stats(&self) -> Vec<Arc<quaver_engine::RunnerStats>> {
        Vec::new()
    }
}

/// Players that never play audio (for tests of the protocol layer).
#[derive(Debug, Default)]
pub struct DetachedFactory;

impl AudioFactory for DetachedFactory {
    fn create(&self, _: &Arc<Session>, _: GuildId) -> Result<Box<dyn PlayerAudio>, ApiError> {
        Ok(Box::new(Detached))
    }
}
