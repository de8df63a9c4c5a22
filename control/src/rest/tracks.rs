//! `/v4/loadtracks`, `/v4/decodetrack`, `/v4/decodetracks`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::Json;

use super::body;
use super::error::ApiError;
use crate::audio_track::AudioTrack;
use crate::node::Node;
use crate::protocol::track::{LoadResult, Track};

pub(super) async fn load_tracks(
    State(node): State<Arc<Node>>,
    uri: Uri,
) -> Result<Json<LoadResult>, ApiError> {
    let identifier = body::query_param(&uri, "identifier")
        .ok_or_else(|| ApiError::bad_request("Required parameter 'identifier' is not present."))?;
    let started = std::time::Instant::now();
    let outcome = node.loader.load(&identifier).await;
    let result = outcome.to_result();
    crate::stats::counters::count_load(
        outcome.source().unwrap_or("none"),
        result.load_type(),
        started.elapsed().as_secs_f64(),
    );
    Ok(Json(result))
}

/// What Lavalink says when no source manager can rebuild a track.
const NO_SOURCE: &str =
    "Failed to decode track due to a mismatching version or missing source manager";

/// Decodes one client string; undecodable input is a 500, as in Lavalink. An
/// unknown source or probe leaves the real server without a track, hence one message.
pub(crate) fn decode(encoded: &str) -> Result<AudioTrack, ApiError> {
    AudioTrack::decode(encoded).map_err(|e| {
        let message = if e.is_missing_source() {
            NO_SOURCE.to_owned()
        } else {
            e.to_string()
        };
        ApiError::internal(message).with_detail(format!("{e:?}"))
    })
}

pub(super) async fn decode_track(uri: Uri) -> Result<Json<Track>, ApiError> {
    let encoded = body::query_param(&uri, "encodedTrack")
        .or_else(|| body::query_param(&uri, "track"))
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad_request("No track to decode provided"))?;
    Ok(Json(decode(&encoded)?.to_json_verbatim(&encoded)))
}

pub(super) async fn decode_tracks(
    headers: HeaderMap,
    raw: Bytes,
) -> Result<Json<Vec<Track>>, ApiError> {
    let list: Vec<String> = body::json(&headers, &raw)?;
    if list.is_empty() {
        return Err(ApiError::bad_request("No tracks to decode provided"));
    }
    list.iter()
        .map(|e| decode(e).map(|t| t.to_json_verbatim(e)))
        .collect::<Result<_, _>>()
        .map(Json)
}
