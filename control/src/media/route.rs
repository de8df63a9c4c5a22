//! Which session and guild an engine slot belongs to.

use std::sync::Weak;

use quaver_engine::Placement;

use crate::ids::GuildId;
use crate::session::Session;

/// An engine slot, unique across threads and reuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct RouteKey {
    pub thread: usize,
    pub index: u32,
    pub generation: u32,
}

impl RouteKey {
    pub fn of(p: Placement) -> Self {
        RouteKey {
            thread: p.thread,
            index: p.key.index,
            generation: p.key.generation,
        }
    }
}

/// The owner of a slot.
#[derive(Debug)]
pub(super) struct Route {
    pub session: Weak<Session>,
    pub guild: GuildId,
    pub placement: Placement,
}
