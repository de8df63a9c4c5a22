//! A playable track: the decoded lavaplayer blob plus what the client attached.

use serde_json::{Map, Value};

use crate::protocol::track::{Track, TrackInfo};
use crate::track::codec::{self, DecodeError, SourceData, TrackBlob};

/// A track known to the node, as decoded from a client's `encoded` string or produced
/// by a source. Outgoing JSON re-encodes it (always version 3, current position), as
/// Lavalink does for every track in events and players.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioTrack {
    blob: TrackBlob,
    /// Data the client attached with `track.userData`.
    pub user_data: Map<String, Value>,
}

impl AudioTrack {
    /// Decodes a base64 blob. Its trailer position becomes the start position.
    pub fn decode(encoded: &str) -> Result<Self, DecodeError> {
        codec::decode_base64(encoded).map(Self::from_blob)
    }

    /// Wraps a blob (from a source or the codec).
    pub fn from_blob(blob: TrackBlob) -> Self {
        AudioTrack {
            blob,
            user_data: Map::new(),
        }
    }

    /// The decoded blob.
    pub fn blob(&self) -> &TrackBlob {
        &self.blob
    }

    /// Where playback starts, in ms: the blob's trailer, or what the client asked for.
    pub fn start_position_ms(&self) -> i64 {
        self.blob.position_ms
    }

    /// Overrides the start position (PATCH `position` together with a new track).
    pub fn set_start_position_ms(&mut self, ms: i64) {
        self.blob.position_ms = ms.max(0);
    }

    /// Streams cannot seek.
    pub fn is_seekable(&self) -> bool {
        !self.blob.is_stream
    }

    /// The `Track` JSON object at a playback position.
    pub fn to_json(&self, position_ms: i64) -> Track {
        let mut blob = self.blob.clone();
        blob.position_ms = position_ms;
        let encoded = codec::encode_base64(&blob).unwrap_or_else(|e| {
            // Cannot happen for a blob that was decoded or built from bounded metadata;
            // an empty string is safer for the client than a dropped event.
            tracing::error!(error = %e, "failed to re-encode a track");
            String::new()
        });
        Track {
            encoded,
            info: self.info(position_ms),
            plugin_info: self.plugin_info(),
            user_data: self.user_data.clone(),
        }
    }

    /// The `Track` JSON object exactly as decoded, echoing the client's string
    /// (`/v4/decodetrack(s)` do not re-encode).
    pub fn to_json_verbatim(&self, encoded: &str) -> Track {
        Track {
            encoded: encoded.to_owned(),
            info: self.info(self.blob.position_ms),
            plugin_info: self.plugin_info(),
            user_data: self.user_data.clone(),
        }
    }

    fn info(&self, position_ms: i64) -> TrackInfo {
        let b = &self.blob;
        TrackInfo {
            identifier: b.identifier.clone(),
            is_seekable: !b.is_stream,
            author: b.author.clone(),
            length: b.length_ms,
            is_stream: b.is_stream,
            position: position_ms,
            title: b.title.clone(),
            uri: b.uri.clone(),
            source_name: b.source_name.clone(),
            artwork_url: b.artwork_url.clone(),
            isrc: b.isrc.clone(),
        }
    }

    /// HTTP and local tracks report the container probe they were loaded with.
    fn plugin_info(&self) -> Map<String, Value> {
        let mut map = Map::new();
        if let SourceData::Probe(probe) = &self.blob.source_data {
            map.insert("probeInfo".into(), Value::String(probe.clone()));
        }
        map
    }
}
