//! The local file source (`lavalink.server.sources.local`): plays files, but only
//! from the directories listed in `quaver.sources.localRoots`.

use std::io::Read;
use std::path::{Path, PathBuf};

use quaver_engine::decode::{probe, MediaSource, Opener};

use super::extension_for_probe;
use crate::audio_track::AudioTrack;
use crate::loader::{BoxFuture, LoadFailure, LoadOutcome, SourceInput, SourceManager, SourceOpen};
use crate::protocol::track::Severity;
use crate::track::codec::{SourceData, TrackBlob};

/// Files under allowed roots.
#[derive(Debug, Clone)]
pub struct LocalSource {
    roots: Vec<PathBuf>,
}

impl LocalSource {
    /// A source allowed to read below `roots` (each canonicalised; missing ones are skipped).
    pub fn new(roots: &[PathBuf]) -> Self {
        LocalSource {
            roots: roots.iter().filter_map(|r| r.canonicalize().ok()).collect(),
        }
    }

    /// The canonical path of `identifier` if it names a readable file below a root.
    /// `None` otherwise, whatever the reason: a path outside the roots is answered
    /// exactly like a missing one, so the node does not reveal which files exist
    /// elsewhere on its disk (another source may still claim the identifier).
    fn resolve(&self, identifier: &str) -> Option<PathBuf> {
        let raw = identifier.strip_prefix("file://").unwrap_or(identifier);
        if raw.contains("://") {
            return None;
        }
        let path = Path::new(raw).canonicalize().ok()?;
        let allowed = self.roots.iter().any(|root| path.starts_with(root));
        (allowed && path.is_file()).then_some(path)
    }

    fn load_blocking(&self, identifier: &str) -> Option<LoadOutcome> {
        let path = self.resolve(identifier)?;
        let failed = |message: String| {
            Some(LoadOutcome::Failed(LoadFailure {
                message,
                severity: Severity::Suspicious,
                cause: None,
            }))
        };
        let mut head = [0u8; 16];
        let n = match std::fs::File::open(&path).and_then(|mut f| f.read(&mut head)) {
            Ok(n) => n,
            Err(e) => return failed(format!("Cannot read the file: {e}")),
        };
        let Some(container) = probe::sniff(&head[..n]) else {
            return Some(LoadOutcome::Failed(LoadFailure {
                message: "Unknown file format.".into(),
                severity: Severity::Common,
                cause: None,
            }));
        };
        let info = match std::fs::File::open(&path) {
            Ok(f) => probe::inspect(Box::new(f), Some(container.extension)),
            Err(e) => Err(e.to_string()),
        };
        let info = match info {
            Ok(i) => i,
            Err(e) => return failed(e),
        };
        let shown = path.to_string_lossy().into_owned();
        Some(LoadOutcome::Track(AudioTrack::from_blob(TrackBlob {
            version: 3,
            title: info.title.unwrap_or_else(|| "Unknown title".into()),
            author: info.author.unwrap_or_else(|| "Unknown artist".into()),
            length_ms: info.length_ms.map_or(i64::MAX, |l| l as i64),
            identifier: shown.clone(),
            is_stream: false,
            uri: Some(shown),
            artwork_url: None,
            isrc: None,
            source_name: "local".into(),
            source_data: SourceData::Probe(container.probe.into()),
            position_ms: 0,
        })))
    }
}

impl SourceManager for LocalSource {
    fn name(&self) -> &'static str {
        "local"
    }

    fn load<'a>(&'a self, identifier: &'a str) -> BoxFuture<'a, Option<LoadOutcome>> {
        let this = self.clone();
        let identifier = identifier.to_owned();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || this.load_blocking(&identifier))
                .await
                .ok()
                .flatten()
        })
    }

    fn opener(&self, track: &TrackBlob) -> Option<SourceOpen> {
        let extension = match &track.source_data {
            SourceData::Probe(p) => extension_for_probe(p),
            SourceData::None => None,
        };
        let resolved = self.resolve(&track.identifier);
        let opener: Opener = Box::new(move || match resolved {
            Some(path) => std::fs::File::open(&path)
                .map(|f| Box::new(f) as Box<dyn MediaSource>)
                .map_err(|e| format!("Cannot open the file: {e}")),
            None => Err("The file does not exist".into()),
        });
        Some(SourceOpen {
            input: SourceInput::File(opener),
            extension,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn media_dir() -> PathBuf {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/media"))
    }

    #[tokio::test]
    async fn loads_tags_and_hides_paths_outside_roots() {
        let source = LocalSource::new(&[media_dir()]);
        let file = media_dir().join("sine.mp3");
        let Some(LoadOutcome::Track(t)) = source.load(file.to_str().unwrap()).await else {
            panic!("not a track")
        };
        let b = t.blob();
        assert_eq!(
            (b.title.as_str(), b.author.as_str()),
            ("Sine 1k", "Quaver Tests")
        );
        assert!((1900..2100).contains(&b.length_ms), "{}", b.length_ms);
        assert_eq!(b.source_data, SourceData::Probe("mp3".into()));
        // Traversal out of the root is not this source's, exactly like a missing
        // file: the answer does not reveal that the file exists.
        let escape = format!("{}/../../Cargo.toml", media_dir().display());
        assert!(source.load(&escape).await.is_none());
        let missing = format!("{}/missing.mp3", media_dir().display());
        assert!(source.load(&missing).await.is_none());
        // Not a path at all: not this source's.
        assert!(source.load("https://example.com/a.mp3").await.is_none());
        assert!(source.load("/definitely/not/here.mp3").await.is_none());
    }
}
