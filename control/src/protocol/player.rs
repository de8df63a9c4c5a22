//! The `Player` object and the PATCH body that updates it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::filters::{Filters, FiltersUpdate};
use super::track::Track;
use super::Patch;

/// A player as `GET`/`PATCH` return it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Player {
    /// Guild id as a string.
    pub guild_id: String,
    /// The current track, `null` when idle.
    pub track: Option<Track>,
    /// Volume 0–1000 (100 = unity).
    pub volume: i32,
    /// Whether playback is paused.
    pub paused: bool,
    /// Position, connection state and ping.
    pub state: PlayerState,
    /// The last voice state applied (empty strings when none).
    pub voice: VoiceState,
    /// The configured filters.
    pub filters: Filters,
}

/// `state` of a player and of `playerUpdate` messages.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct PlayerState {
    /// Epoch milliseconds when the state was taken.
    pub time: u64,
    /// Track position in ms (0 without a track).
    pub position: i64,
    /// Whether the Discord voice gateway is open.
    pub connected: bool,
    /// Voice gateway round trip in ms, -1 when not connected.
    pub ping: i64,
}

/// A voice state as echoed in `Player.voice`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct VoiceState {
    /// Voice token from Discord's VOICE_SERVER_UPDATE.
    pub token: String,
    /// Voice server endpoint.
    pub endpoint: String,
    /// The bot's voice session id from VOICE_STATE_UPDATE.
    pub session_id: String,
    /// Voice channel id (also the DAVE group id); emitted as `null` when absent.
    #[serde(default)]
    pub channel_id: Option<String>,
}

impl VoiceState {
    /// Lavalink 4.2 requires all four values, non-blank.
    pub fn is_complete(&self) -> bool {
        !self.token.trim().is_empty()
            && !self.endpoint.trim().is_empty()
            && !self.session_id.trim().is_empty()
            && self
                .channel_id
                .as_deref()
                .is_some_and(|c| !c.trim().is_empty())
    }
}

/// `track` in a PATCH body.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlayerUpdateTrack {
    /// Base64 track to play; `null` stops.
    #[serde(default)]
    pub encoded: Patch<String>,
    /// Identifier to load and play.
    #[serde(default)]
    pub identifier: Patch<String>,
    /// Data to attach to the track.
    #[serde(default)]
    pub user_data: Patch<Map<String, Value>>,
}

/// The body of `PATCH /v4/sessions/{id}/players/{guildId}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlayerUpdate {
    /// New track, or `encoded: null` to stop.
    #[serde(default)]
    pub track: Patch<PlayerUpdateTrack>,
    /// Deprecated form of `track.encoded`.
    #[serde(default)]
    pub encoded_track: Patch<String>,
    /// Deprecated form of `track.identifier`.
    #[serde(default)]
    pub identifier: Patch<String>,
    /// Seek target or start offset in ms.
    #[serde(default)]
    pub position: Patch<i64>,
    /// End marker in ms; must be > 0.
    #[serde(default)]
    pub end_time: Patch<i64>,
    /// Volume, clamped to 0–1000.
    #[serde(default)]
    pub volume: Patch<i32>,
    /// Pause state.
    #[serde(default)]
    pub paused: Patch<bool>,
    /// Replacement filter chain.
    #[serde(default)]
    pub filters: Patch<FiltersUpdate>,
    /// Discord voice server info.
    #[serde(default)]
    pub voice: Patch<VoiceState>,
}

impl PlayerUpdate {
    /// Rejects `null` in fields the server declares non-nullable.
    pub fn check_nulls(&self) -> Result<(), String> {
        self.track.non_null("track")?;
        if let Patch::Value(t) = &self.track {
            t.identifier.non_null("identifier")?;
            t.user_data.non_null("userData")?;
        }
        self.identifier.non_null("identifier")?;
        self.position.non_null("position")?;
        self.volume.non_null("volume")?;
        self.paused.non_null("paused")?;
        self.filters.non_null("filters")?;
        self.voice.non_null("voice")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn player_field_order_and_nulls() {
        let p = Player {
            guild_id: "1".into(),
            track: None,
            volume: 100,
            paused: false,
            state: PlayerState {
                time: 5,
                position: 0,
                connected: false,
                ping: -1,
            },
            voice: VoiceState::default(),
            filters: Filters::default(),
        };
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"guildId":"1","track":null,"volume":100,"paused":false,"state":{"time":5,"position":0,"connected":false,"ping":-1},"voice":{"token":"","endpoint":"","sessionId":"","channelId":null},"filters":{}}"#
        );
    }

    #[test]
    fn update_parses_strictly() {
        let u: PlayerUpdate =
            serde_json::from_str(r#"{"track":{"encoded":null},"volume":50}"#).unwrap();
        assert!(matches!(
            u.track,
            Patch::Value(PlayerUpdateTrack {
                encoded: Patch::Null,
                ..
            })
        ));
        assert!(serde_json::from_str::<PlayerUpdate>(r#"{"volume":"50"}"#).is_err());
        assert!(serde_json::from_str::<PlayerUpdate>(r#"{"paused":1}"#).is_err());
        let u: PlayerUpdate = serde_json::from_str(r#"{"position":null}"#).unwrap();
        assert!(u.check_nulls().is_err());
        let u: PlayerUpdate = serde_json::from_str(r#"{"unknown":1,"noReplace":true}"#).unwrap();
        assert!(u.check_nulls().is_ok(), "unknown keys are ignored");
    }

    #[test]
    fn voice_state_completeness() {
        let v: VoiceState =
            serde_json::from_str(r#"{"token":"t","endpoint":"e","sessionId":"s","channelId":"1"}"#)
                .unwrap();
        assert!(v.is_complete());
        let v: VoiceState =
            serde_json::from_str(r#"{"token":"t","endpoint":"e","sessionId":"s"}"#).unwrap();
        assert!(!v.is_complete());
    }
}
