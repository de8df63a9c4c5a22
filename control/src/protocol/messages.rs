//! WebSocket messages (server → client only), stats and info payloads.

use serde::Serialize;

use super::player::PlayerState;
use super::track::{Exception, Track};

/// Why a track ended.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum TrackEndReason {
    /// Played to the end, hit its end marker, or died mid-play.
    Finished,
    /// Failed before producing audio.
    LoadFailed,
    /// Stopped by the client (or the player was destroyed).
    Stopped,
    /// Replaced by a new track.
    Replaced,
    /// Nobody pulled audio for a minute.
    Cleanup,
}

impl TrackEndReason {
    /// Lavalink's `mayStartNext`: whether a client should advance its queue.
    pub fn may_start_next(self) -> bool {
        matches!(self, TrackEndReason::Finished | TrackEndReason::LoadFailed)
    }
}

/// Player events, `op: "event"`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "type")]
pub enum Event {
    /// A track started.
    #[serde(rename_all = "camelCase")]
    TrackStartEvent {
        /// Guild.
        guild_id: String,
        /// The track.
        track: Track,
    },
    /// A track ended.
    #[serde(rename_all = "camelCase")]
    TrackEndEvent {
        /// Guild.
        guild_id: String,
        /// The track.
        track: Track,
        /// Why.
        reason: TrackEndReason,
    },
    /// A track failed.
    #[serde(rename_all = "camelCase")]
    TrackExceptionEvent {
        /// Guild.
        guild_id: String,
        /// The track.
        track: Track,
        /// The failure.
        exception: Exception,
    },
    /// No audio arrived for the stuck threshold.
    #[serde(rename_all = "camelCase")]
    TrackStuckEvent {
        /// Guild.
        guild_id: String,
        /// The track.
        track: Track,
        /// The configured threshold.
        threshold_ms: u64,
    },
    /// The Discord voice WebSocket closed.
    #[serde(rename_all = "camelCase")]
    WebSocketClosedEvent {
        /// Guild.
        guild_id: String,
        /// Close code.
        code: u16,
        /// Close reason, `""` if none.
        reason: String,
        /// Whether Discord closed it.
        by_remote: bool,
    },
}

/// Every message the server sends over the WebSocket.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum OutgoingMessage {
    /// First message of a connection.
    #[serde(rename_all = "camelCase")]
    Ready {
        /// Whether an earlier session was resumed.
        resumed: bool,
        /// The session id to use in REST paths.
        session_id: String,
    },
    /// Periodic player state.
    #[serde(rename_all = "camelCase")]
    PlayerUpdate {
        /// Player state.
        state: PlayerState,
        /// Guild.
        guild_id: String,
    },
    /// Node statistics.
    Stats(Stats),
    /// A player event.
    Event(Event),
}

impl OutgoingMessage {
    /// Compact JSON text, as sent on the socket.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("protocol messages always serialize")
    }
}

/// `frameStats`: per-player averages over the last full minute.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct FrameStats {
    /// Frames sent.
    pub sent: i64,
    /// Frames that should have been sent but had no audio.
    pub nulled: i64,
    /// Expected minus (sent + nulled); may be negative.
    pub deficit: i64,
}

/// Node statistics (`/v4/stats` and `op: "stats"`).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// The session's frame accounting on the WebSocket (`null` before a full
    /// minute). Always `null` on REST: Lavalink omits the key there, but the strict
    /// schemas typed clients validate with (lavaclient's among them) require it, and
    /// `null` satisfies every client.
    pub frame_stats: Option<FrameStats>,
    /// Players on the node, all sessions.
    pub players: u32,
    /// Players with a track that are not paused.
    pub playing_players: u32,
    /// Milliseconds since start.
    pub uptime: u64,
    /// Memory in bytes.
    pub memory: Memory,
    /// CPU usage.
    pub cpu: Cpu,
}

/// `memory` in bytes. Quaver has no managed heap; see `stats` for how the four JVM
/// figures map onto a native process.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Memory {
    /// Allocated but unused.
    pub free: u64,
    /// In use.
    pub used: u64,
    /// Obtained from the OS.
    pub allocated: u64,
    /// The most the process may use.
    pub reservable: u64,
}

/// `cpu`.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Cpu {
    /// Logical cores.
    pub cores: u32,
    /// Whole-system load, 0–1.
    pub system_load: f64,
    /// This process's load normalised by cores, 0–1.
    pub lavalink_load: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_and_closed_event_shapes() {
        let r = OutgoingMessage::Ready {
            resumed: false,
            session_id: "abc".into(),
        };
        assert_eq!(
            r.to_json(),
            r#"{"op":"ready","resumed":false,"sessionId":"abc"}"#
        );
        let e = OutgoingMessage::Event(Event::WebSocketClosedEvent {
            guild_id: "1".into(),
            code: 4006,
            reason: "".into(),
            by_remote: true,
        });
        assert_eq!(
            e.to_json(),
            r#"{"op":"event","type":"WebSocketClosedEvent","guildId":"1","code":4006,"reason":"","byRemote":true}"#
        );
    }

    #[test]
    fn stats_frame_stats_field() {
        let s = Stats {
            frame_stats: None,
            players: 0,
            playing_players: 0,
            uptime: 1,
            memory: Memory {
                free: 0,
                used: 1,
                allocated: 1,
                reservable: 2,
            },
            cpu: Cpu {
                cores: 2,
                system_load: 0.0,
                lavalink_load: 0.0,
            },
        };
        let ws = OutgoingMessage::Stats(s.clone()).to_json();
        assert!(
            ws.starts_with(r#"{"op":"stats","frameStats":null,"players":0"#),
            "{ws}"
        );
        // REST sends the same key, `null`, for the strict schemas of typed clients.
        let rest = serde_json::to_string(&s).unwrap();
        assert!(
            rest.starts_with(r#"{"frameStats":null,"players":0"#),
            "{rest}"
        );
    }
}
