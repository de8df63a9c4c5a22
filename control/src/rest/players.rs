//! `/v4/sessions/{id}` and `/v4/sessions/{id}/players/{guildId}`: the player PATCH
//! algorithm in the exact order the real server applies it
//! (`reference/lavalink-protocol.md` §4.2).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::body;
use super::error::{epoch_millis, ApiError};
use crate::audio_track::AudioTrack;
use crate::loader::LoadOutcome;
use crate::node::Node;
use crate::player::Player;
use crate::protocol::filters::FiltersError;
use crate::protocol::player::{Player as PlayerJson, PlayerUpdate};
use crate::protocol::Patch;
use crate::session::Session;

fn session(node: &Node, id: &str) -> Result<Arc<Session>, ApiError> {
    node.sessions
        .get(id)
        .ok_or_else(ApiError::session_not_found)
}

#[derive(Deserialize)]
struct SessionUpdate {
    #[serde(default)]
    resuming: Patch<bool>,
    #[serde(default)]
    timeout: Patch<i64>,
}

#[derive(Serialize)]
pub(super) struct SessionJson {
    resuming: bool,
    timeout: i64,
}

pub(super) async fn patch_session(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    raw: Bytes,
) -> Result<Json<SessionJson>, ApiError> {
    let session = session(&node, &id)?;
    let update: SessionUpdate = body::json(&headers, &raw)?;
    update
        .resuming
        .non_null("resuming")
        .map_err(ApiError::bad_request)?;
    update
        .timeout
        .non_null("timeout")
        .map_err(ApiError::bad_request)?;
    let r = session.update_resume(
        update.resuming.value().copied(),
        update.timeout.value().copied(),
    );
    Ok(Json(SessionJson {
        resuming: r.resuming,
        timeout: r.timeout_s,
    }))
}

pub(super) async fn get_players(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
) -> Result<Json<Vec<PlayerJson>>, ApiError> {
    Ok(Json(session(&node, &id)?.players_json()))
}

pub(super) async fn get_player(
    State(node): State<Arc<Node>>,
    Path((id, guild)): Path<(String, String)>,
) -> Result<Json<PlayerJson>, ApiError> {
    let session = session(&node, &id)?;
    let guild = body::guild_id(&guild)?;
    let players = session.players();
    let player = players
        .get(&guild)
        .ok_or_else(|| ApiError::not_found("Player not found"))?;
    Ok(Json(player.to_json(epoch_millis())))
}

pub(super) async fn delete_player(
    State(node): State<Arc<Node>>,
    Path((id, guild)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let session = session(&node, &id)?;
    let guild = body::guild_id(&guild)?;
    session.destroy_player(guild);
    Ok(StatusCode::NO_CONTENT)
}

/// The new track a PATCH names, after `track` and the deprecated fields are merged.
enum TrackRequest {
    None,
    Stop,
    Encoded(String),
    Identifier(String),
}

fn track_request(u: &PlayerUpdate) -> Result<TrackRequest, ApiError> {
    if u.track.is_present() && (u.encoded_track.is_present() || u.identifier.is_present()) {
        return Err(ApiError::bad_request(
            "Cannot specify both track and encodedTrack/identifier",
        ));
    }
    let (encoded, identifier) = match &u.track {
        Patch::Value(t) => (&t.encoded, &t.identifier),
        _ => (&u.encoded_track, &u.identifier),
    };
    match (encoded, identifier) {
        (e, i) if e.is_present() && i.is_present() => Err(ApiError::bad_request(
            "Cannot specify both encodedTrack and identifier",
        )),
        (Patch::Null, _) => Ok(TrackRequest::Stop),
        (Patch::Value(e), _) => Ok(TrackRequest::Encoded(e.clone())),
        (_, Patch::Value(i)) => Ok(TrackRequest::Identifier(i.clone())),
        _ => Ok(TrackRequest::None),
    }
}

/// Resolves an identifier the way a PATCH needs it: exactly one track.
async fn load_single(node: &Node, identifier: &str) -> Result<AudioTrack, ApiError> {
    match node.loader.load(identifier).await {
        LoadOutcome::Track(t) => Ok(t),
        LoadOutcome::Empty => Err(ApiError::bad_request("No matches found for identifier")),
        LoadOutcome::Playlist { .. } | LoadOutcome::Search(_) => Err(ApiError::bad_request(
            "Cannot play a playlist or search result",
        )),
        LoadOutcome::Failed(f) => Err(ApiError::bad_request(f.message.clone())),
    }
}

pub(super) async fn patch_player(
    State(node): State<Arc<Node>>,
    Path((id, guild)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    raw: Bytes,
) -> Result<Json<PlayerJson>, ApiError> {
    let session = session(&node, &id)?;
    let guild = body::guild_id(&guild)?;
    let no_replace = match body::query_param(&uri, "noReplace") {
        Some(v) => body::spring_bool("noReplace", &v)?,
        None => false,
    };
    let mut update: PlayerUpdate = body::json(&headers, &raw)?;
    update.check_nulls().map_err(ApiError::bad_request)?;
    let request = track_request(&update)?;
    let filters = match std::mem::take(&mut update.filters) {
        Patch::Value(f) => {
            f.check_nulls()
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
            let disabled = f.disabled_filters(|n| node.config.filter_enabled(n));
            if !disabled.is_empty() {
                return Err(ApiError::bad_request(
                    FiltersError::Disabled(disabled).to_string(),
                ));
            }
            Some(f)
        }
        _ => None,
    };
    if let Patch::Value(v) = &update.voice {
        if !v.is_complete() {
            return Err(ApiError::bad_request(
                "token, endpoint, sessionId and channelId must be provided in voice state",
            ));
        }
    }
    if let Patch::Value(end) = update.end_time {
        if end <= 0 {
            return Err(ApiError::bad_request("End time must be greater than 0"));
        }
    }
    // Loading may take network time: do it before taking the session's lock. Its
    // error is reported only where Lavalink would reach it (after steps 7–9).
    let loaded = match &request {
        TrackRequest::Identifier(i) => Some(load_single(&node, i).await),
        _ => None,
    };

    let mut players = session.players();
    let player = match players.entry(guild) {
        std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::btree_map::Entry::Vacant(v) => {
            v.insert(Player::new(guild, node.audio.create(&session, guild)?))
        }
    };
    let mut out = Vec::new();
    let result = apply(
        &session, player, update, filters, request, loaded, no_replace, &mut out,
    );
    session.flush(player, out);
    result?;
    Ok(Json(player.to_json(epoch_millis())))
}

/// Steps 8–10 of the PATCH algorithm, on an existing player.
#[allow(clippy::too_many_arguments)]
fn apply(
    session: &Arc<Session>,
    player: &mut Player,
    update: PlayerUpdate,
    filters: Option<crate::protocol::filters::FiltersUpdate>,
    request: TrackRequest,
    loaded: Option<Result<AudioTrack, ApiError>>,
    no_replace: bool,
    out: &mut Vec<crate::player::Emitted>,
) -> Result<(), ApiError> {
    let now = epoch_millis() as i64;
    let new_track = !matches!(request, TrackRequest::None);
    if let Patch::Value(voice) = update.voice {
        player.set_voice(voice);
    }
    if !new_track {
        if let Patch::Value(p) = update.paused {
            player.set_paused(p, now);
        }
        if let Patch::Value(t) = &update.track {
            if let Patch::Value(data) = &t.user_data {
                player.set_user_data(data.clone());
            }
        }
    }
    if let Patch::Value(v) = update.volume {
        player.set_volume(v);
    }
    if !new_track {
        if let Patch::Value(pos) = update.position {
            player.seek(pos, now, out);
        }
        if let Patch::Value(end) = update.end_time {
            player.set_end_time(end);
        }
    }
    if let Some(f) = filters {
        let chain = f.into_filters(|_| true).map_err(|e| match e {
            FiltersError::BandOutOfRange(_) => ApiError::internal(e.to_string()),
            _ => ApiError::bad_request(e.to_string()),
        })?;
        player.set_filters(chain, out);
    }
    if !new_track || (no_replace && player.playback().is_some()) {
        return Ok(());
    }
    player.set_paused(update.paused.value().copied().unwrap_or(false), now);
    let mut track = match request {
        TrackRequest::Stop => {
            player.end_track(crate::protocol::messages::TrackEndReason::Stopped, now, out);
            return Ok(());
        }
        TrackRequest::Encoded(e) => super::tracks::decode(&e)?,
        TrackRequest::Identifier(_) => {
            loaded.unwrap_or_else(|| Err(ApiError::internal("track was not loaded")))?
        }
        TrackRequest::None => return Ok(()),
    };
    if let Patch::Value(pos) = update.position {
        track.set_start_position_ms(pos);
    }
    if let Patch::Value(t) = &update.track {
        if let Patch::Value(data) = &t.user_data {
            track.user_data = data.clone();
        }
    }
    session.play(player, track, update.end_time.value().copied(), out);
    Ok(())
}
