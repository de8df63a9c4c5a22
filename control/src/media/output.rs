//! How players reach a voice server: a [`VoiceConnector`] turns a voice state into a
//! connection that, once audio can flow, attaches a packet output to the player's
//! engine slot through its [`VoiceLink`].

use std::sync::Weak;

use quaver_engine::output::PacketOutput;
use quaver_engine::{Placement, PlayerCommand, PlayerCommands};

use super::{Media, MediaEvent};
use crate::ids::GuildId;
use crate::protocol::player::VoiceState;

/// What a player asks to connect to.
#[derive(Debug, Clone)]
pub struct VoiceRequest {
    /// The guild.
    pub guild: GuildId,
    /// The bot's user id (the session's `User-Id`).
    pub user_id: u64,
    /// Token, endpoint, session id and channel id.
    pub voice: VoiceState,
}

/// A live (or connecting) voice connection; dropping it disconnects.
pub trait VoiceHandle: Send + std::fmt::Debug {
    /// Whether the voice gateway is open and audio can flow.
    fn is_connected(&self) -> bool;
    /// Gateway round trip in ms, once measured.
    fn ping_ms(&self) -> Option<i64>;
    /// DAVE's state, for connections that negotiate it.
    fn dave(&self) -> Option<DaveState> {
        None
    }
}

/// A connection's DAVE (end-to-end encryption) state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DaveState {
    /// Protocol version in force (0 = transport encryption only).
    pub protocol_version: u16,
    /// The MLS epoch of the established group.
    pub epoch: Option<u64>,
    /// Whether audio leaves end-to-end encrypted now.
    pub encrypting: bool,
}

/// Connects players to voice servers.
pub trait VoiceConnector: Send + Sync {
    /// Starts connecting; the connection reports back through `link`.
    fn connect(&self, request: VoiceRequest, link: VoiceLink) -> Box<dyn VoiceHandle>;
}

/// A connection's way back to its player: attach or detach the engine output, and
/// report closes to the Lavalink client. Never blocks; safe from any task.
#[derive(Debug, Clone)]
pub struct VoiceLink {
    pub(super) media: Weak<Media>,
    pub(super) route: Placement,
    /// `None` for a player already destroyed.
    pub(super) player: Option<PlayerCommands>,
}

impl VoiceLink {
    fn send(&self, cmd: PlayerCommand) {
        let Some(player) = &self.player else { return };
        if let Err(e) = player.send(cmd) {
            tracing::error!(error = %e, route = ?self.route, "engine command dropped");
        }
    }

    /// Audio can flow: the engine starts sending this player's packets to `output`.
    pub fn attach(&self, output: Box<dyn PacketOutput>) {
        if let Some(m) = self.media.upgrade() {
            self.send(PlayerCommand::SetOutput(Some(output)));
            let _ = m
                .events_tx
                .send(MediaEvent::VoiceUpdate { route: self.route });
        }
    }

    /// Audio can no longer flow (the connection is gone for good).
    pub fn detach(&self) {
        if self.media.upgrade().is_some() {
            self.send(PlayerCommand::SetOutput(None));
        }
    }

    /// From the next packet on, DAVE-encrypt audio with `key` (`None`: plain Opus).
    pub fn set_sender_key(&self, key: Option<quaver_engine::transport::SenderKey>) {
        if self.media.upgrade().is_some() {
            self.send(PlayerCommand::SetSenderKey(key));
        }
    }

    /// The gateway's state changed (ready, resumed): clients get a `playerUpdate`.
    pub fn updated(&self) {
        if let Some(m) = self.media.upgrade() {
            let _ = m
                .events_tx
                .send(MediaEvent::VoiceUpdate { route: self.route });
        }
    }

    /// The voice WebSocket closed for good: the client gets `WebSocketClosedEvent`.
    pub fn closed(&self, code: u16, reason: String, by_remote: bool) {
        if let Some(m) = self.media.upgrade() {
            let _ = m.events_tx.send(MediaEvent::VoiceClosed {
                route: self.route,
                code,
                reason,
                by_remote,
            });
        }
    }
}

/// No voice transport: players behave as Lavalink players without a voice connection
/// (their audio is never pulled).
#[derive(Debug, Default)]
pub struct NoVoice;

#[derive(Debug)]
struct NotConnected;

impl VoiceHandle for NotConnected {
    fn is_connected(&self) -> bool {
        false
    }
    fn ping_ms(&self) -> Option<i64> {
        None
    }
}

impl VoiceConnector for NoVoice {
    fn connect(&self, _: VoiceRequest, _: VoiceLink) -> Box<dyn VoiceHandle> {
        Box::new(NotConnected)
    }
}
