//! The `Track` object and load results.

use serde::Serialize;
use serde_json::{Map, Value};

/// A track as clients see it (`Track` in Lavalink's protocol).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Track {
    /// Base64 lavaplayer blob.
    pub encoded: String,
    /// Decoded metadata.
    pub info: TrackInfo,
    /// Source- or plugin-provided extra data; always emitted.
    pub plugin_info: Map<String, Value>,
    /// Data the client attached via PATCH; always emitted.
    pub user_data: Map<String, Value>,
}

/// `Track.info`, fields in the server's order (`sourceName` before `artworkUrl`).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TrackInfo {
    /// Source-specific id (the URL for HTTP tracks).
    pub identifier: String,
    /// `!isStream`.
    pub is_seekable: bool,
    /// Author, `Unknown artist` when the source has none.
    pub author: String,
    /// Length in ms; `i64::MAX` for streams.
    pub length: i64,
    /// Live stream without an end.
    pub is_stream: bool,
    /// Current position in ms.
    pub position: i64,
    /// Title, `Unknown title` when the source has none.
    pub title: String,
    /// Always emitted, `null` when absent.
    pub uri: Option<String>,
    /// Name of the source manager.
    pub source_name: String,
    /// Always emitted, `null` when absent.
    pub artwork_url: Option<String>,
    /// Always emitted, `null` when absent.
    pub isrc: Option<String>,
}

/// How bad a load or playback failure is, as lavaplayer classifies it.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Expected, the user's doing (e.g. a private track).
    Common,
    /// Probably an outside factor.
    Suspicious,
    /// A bug or an unknown cause.
    Fault,
}

/// Lavalink's `Exception` object.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Exception {
    /// Friendly message; emitted as `null` when absent.
    pub message: Option<String>,
    /// Severity.
    pub severity: Severity,
    /// The cause's `toString()`-style text.
    pub cause: String,
    /// The cause's trace text.
    pub cause_stack_trace: String,
}

/// `data` of a playlist load result.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Playlist {
    /// Name and selected track.
    pub info: PlaylistInfo,
    /// Always emitted.
    pub plugin_info: Map<String, Value>,
    /// The tracks.
    pub tracks: Vec<Track>,
}

/// `Playlist.info`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PlaylistInfo {
    /// Playlist name.
    pub name: String,
    /// Index of the selected track in `tracks`, -1 when none.
    pub selected_track: i32,
}

/// The `/v4/loadtracks` answer: `{"loadType": …, "data": …}`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "loadType", content = "data", rename_all = "lowercase")]
pub enum LoadResult {
    /// One track.
    Track(Track),
    /// A playlist.
    Playlist(Playlist),
    /// Search results.
    Search(Vec<Track>),
    /// Nothing found: `data` is `null`.
    Empty(()),
    /// Loading failed.
    Error(Exception),
}

impl LoadResult {
    /// The `loadType` it is sent with.
    pub fn load_type(&self) -> &'static str {
        match self {
            LoadResult::Track(_) => "track",
            LoadResult::Playlist(_) => "playlist",
            LoadResult::Search(_) => "search",
            LoadResult::Empty(()) => "empty",
            LoadResult::Error(_) => "error",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_load_result_has_null_data() {
        let json = serde_json::to_string(&LoadResult::Empty(())).unwrap();
        assert_eq!(json, r#"{"loadType":"empty","data":null}"#);
    }

    #[test]
    fn error_load_result_shape() {
        let r = LoadResult::Error(Exception {
            message: None,
            severity: Severity::Common,
            cause: "c".into(),
            cause_stack_trace: "s".into(),
        });
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"loadType":"error","data":{"message":null,"severity":"common","cause":"c","causeStackTrace":"s"}}"#
        );
    }
}
