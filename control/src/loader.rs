//! Track loading: asks each registered source manager, in registration order, to
//! resolve an identifier, as lavaplayer's `loadItem` does.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use quaver_engine::decode::stream::{Readahead, StreamBuffer};
use quaver_engine::decode::Opener;

use crate::audio_track::AudioTrack;
use crate::protocol::track::{Exception, LoadResult, Playlist, PlaylistInfo, Severity};
use crate::track::codec::TrackBlob;

/// What a source produced for an identifier.
#[derive(Debug, Clone)]
pub enum LoadOutcome {
    /// One track.
    Track(AudioTrack),
    /// A playlist with an optional selected index.
    Playlist {
        /// Playlist name.
        name: String,
        /// Index of the selected track.
        selected: Option<usize>,
        /// Its tracks.
        tracks: Vec<AudioTrack>,
    },
    /// Search results.
    Search(Vec<AudioTrack>),
    /// Nothing matched.
    Empty,
    /// The source failed in a way the user should be told about.
    Failed(LoadFailure),
}

/// A load failure (lavaplayer's `FriendlyException`).
#[derive(Debug, Clone, PartialEq)]
pub struct LoadFailure {
    /// User-facing message.
    pub message: String,
    /// How bad it is.
    pub severity: Severity,
    /// Underlying cause, for the `cause` text.
    pub cause: Option<String>,
}

impl LoadFailure {
    /// The `Exception` object Lavalink sends for a failed load.
    pub fn to_exception(&self) -> Exception {
        let own = format!(
            "com.sedmelluq.discord.lavaplayer.tools.FriendlyException: {}",
            self.message
        );
        let trace = match &self.cause {
            Some(c) => format!("{own}\nCaused by: {c}"),
            None => own.clone(),
        };
        Exception {
            message: Some(self.message.clone()),
            severity: self.severity,
            cause: own,
            cause_stack_trace: trace,
        }
    }
}

/// A boxed future, so source managers can be trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A source of tracks (HTTP, local files, …).
pub trait SourceManager: Send + Sync + std::fmt::Debug {
    /// The `sourceName` of tracks it produces.
    fn name(&self) -> &'static str;
    /// Resolves `identifier`, or `None` when it is not this source's kind.
    fn load<'a>(&'a self, identifier: &'a str) -> BoxFuture<'a, Option<LoadOutcome>>;
    /// Opens a track of this source for decoding (called on the control plane; a
    /// file opener runs on a decode thread, a network stream on the I/O threads).
    fn opener(&self, _track: &TrackBlob) -> Option<SourceOpen> {
        None
    }
}

/// Where a track's bytes come from.
pub enum SourceInput {
    /// A file, opened and read on a decode thread.
    File(Opener),
    /// A network stream: starts fetching into a buffer that reads ahead this much
    /// audio (on the I/O threads; the decode job never waits on it).
    Network(Box<dyn FnOnce(Readahead) -> Arc<StreamBuffer> + Send>),
}

impl std::fmt::Debug for SourceInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SourceInput::File(_) => "File",
            SourceInput::Network(_) => "Network",
        })
    }
}

/// How to read a track's bytes.
pub struct SourceOpen {
    /// The bytes.
    pub input: SourceInput,
    /// A file extension that steers the container prober.
    pub extension: Option<String>,
}

impl std::fmt::Debug for SourceOpen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceOpen")
            .field("input", &self.input)
            .field("extension", &self.extension)
            .finish()
    }
}

/// Resolves identifiers against the registered sources.
#[derive(Debug, Default)]
pub struct TrackLoader {
    sources: Vec<Box<dyn SourceManager>>,
}

impl TrackLoader {
    /// A loader over `sources`, asked in order.
    pub fn new(sources: Vec<Box<dyn SourceManager>>) -> Self {
        TrackLoader { sources }
    }

    /// Names of the registered sources, in order (`/v4/info` `sourceManagers`).
    pub fn source_names(&self) -> Vec<String> {
        self.sources.iter().map(|s| s.name().to_owned()).collect()
    }

    /// Opens a track with the source manager that produced it.
    pub fn opener(&self, track: &TrackBlob) -> Option<SourceOpen> {
        self.sources
            .iter()
            .find(|s| s.name() == track.source_name)?
            .opener(track)
    }

    /// Resolves an identifier; `Empty` when no source claims it.
    pub async fn load(&self, identifier: &str) -> LoadOutcome {
        for source in &self.sources {
            if let Some(outcome) = source.load(identifier).await {
                return outcome;
            }
        }
        LoadOutcome::Empty
    }
}

impl LoadOutcome {
    /// The `sourceName` of its first track, if it has one.
    pub fn source(&self) -> Option<&str> {
        let first = match self {
            LoadOutcome::Track(t) => Some(t),
            LoadOutcome::Playlist { tracks, .. } | LoadOutcome::Search(tracks) => tracks.first(),
            LoadOutcome::Empty | LoadOutcome::Failed(_) => None,
        };
        first.map(|t| t.blob().source_name.as_str())
    }

    /// The `/v4/loadtracks` JSON.
    pub fn to_result(&self) -> LoadResult {
        match self {
            LoadOutcome::Track(t) => LoadResult::Track(t.to_json(t.start_position_ms())),
            LoadOutcome::Playlist {
                name,
                selected,
                tracks,
            } => LoadResult::Playlist(Playlist {
                info: PlaylistInfo {
                    name: name.clone(),
                    selected_track: selected.map_or(-1, |i| i as i32),
                },
                plugin_info: Default::default(),
                tracks: tracks
                    .iter()
                    .map(|t| t.to_json(t.start_position_ms()))
                    .collect(),
            }),
            LoadOutcome::Search(tracks) => LoadResult::Search(
                tracks
                    .iter()
                    .map(|t| t.to_json(t.start_position_ms()))
                    .collect(),
            ),
            LoadOutcome::Empty => LoadResult::Empty(()),
            LoadOutcome::Failed(f) => LoadResult::Error(f.to_exception()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Failing;
    impl SourceManager for Failing {
        fn name(&self) -> &'static str {
            "failing"
        }
        fn load<'a>(&'a self, identifier: &'a str) -> BoxFuture<'a, Option<LoadOutcome>> {
            Box::pin(async move {
                identifier.starts_with("fail:").then(|| {
                    LoadOutcome::Failed(LoadFailure {
                        message: "This track is not available".into(),
                        severity: Severity::Common,
                        cause: None,
                    })
                })
            })
        }
    }

    #[tokio::test]
    async fn asks_sources_in_order_then_empty() {
        let loader = TrackLoader::new(vec![Box::new(Failing)]);
        assert_eq!(loader.source_names(), ["failing"]);
        let json = serde_json::to_value(loader.load("fail:x").await.to_result()).unwrap();
        assert_eq!(json["loadType"], "error");
        assert_eq!(json["data"]["severity"], "common");
        assert_eq!(json["data"]["message"], "This track is not available");
        assert_eq!(
            json["data"]["cause"],
            "com.sedmelluq.discord.lavaplayer.tools.FriendlyException: This track is not available"
        );
        let json = serde_json::to_value(loader.load("other").await.to_result()).unwrap();
        assert_eq!(json, serde_json::json!({"loadType": "empty", "data": null}));
    }
}
