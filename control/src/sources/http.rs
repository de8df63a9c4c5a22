//! The HTTP source (`lavalink.server.sources.http`): plays audio files and
//! Icecast/SHOUTcast streams from URLs, and M3U/PLS playlists of them.

use std::io::Read;
use std::time::Duration;

use quaver_engine::decode::probe;
use ureq::Agent;

use super::extension_for_probe;
use super::fetch::Fetcher;
use super::http_stream::{Head, HttpStream, OpenError};
use super::playlist;
use crate::audio_track::AudioTrack;
use crate::loader::{BoxFuture, LoadFailure, LoadOutcome, SourceInput, SourceManager, SourceOpen};
use crate::protocol::track::Severity;
use crate::track::codec::{SourceData, TrackBlob};

/// Entries of a playlist that are probed; the rest are ignored.
const MAX_PLAYLIST_ENTRIES: usize = 100;
/// Largest playlist body read.
const MAX_PLAYLIST_BYTES: u64 = 1 << 20;

/// Timeouts of the HTTP source (`lavalink.server.timeouts.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpTimeouts {
    /// Connecting.
    pub connect: Duration,
    /// Waiting for any single read (a stalled server).
    pub socket: Duration,
}

/// Tracks from URLs: loaded (probed for their metadata) with blocking reads on the
/// runtime's bounded blocking pool, played through the async [`Fetcher`].
#[derive(Debug, Clone)]
pub struct HttpSource {
    agent: Agent,
    fetcher: Fetcher,
}

impl HttpSource {
    /// A source with these timeouts, playing through `fetcher`.
    pub fn new(timeouts: HttpTimeouts, fetcher: Fetcher) -> Self {
        let agent: Agent = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(timeouts.connect))
            .timeout_recv_response(Some(timeouts.socket))
            .timeout_per_read(Some(timeouts.socket))
            .user_agent(concat!("Quaver/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        HttpSource { agent, fetcher }
    }

    /// The URL an identifier names, if it is one of ours (`icy://` means `http://`).
    fn url(identifier: &str) -> Option<String> {
        let lower = identifier.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            Some(identifier.to_owned())
        } else if lower.starts_with("icy://") {
            Some(format!("http://{}", &identifier["icy://".len()..]))
        } else {
            None
        }
    }

    fn load_blocking(&self, identifier: &str, depth: u8) -> Option<LoadOutcome> {
        let url = Self::url(identifier)?;
        Some(match self.inspect(&url, identifier, depth) {
            Ok(outcome) => outcome,
            Err(f) => LoadOutcome::Failed(f),
        })
    }

    fn inspect(&self, url: &str, identifier: &str, depth: u8) -> Result<LoadOutcome, LoadFailure> {
        if url.parse::<ureq::http::Uri>().is_err() {
            return Err(common("Not a valid URL."));
        }
        let mut stream = match HttpStream::open(&self.agent, url, true) {
            Ok(stream) => stream,
            // lavaplayer: a 404 is "no match" (`empty`), not an error.
            Err(OpenError {
                status: Some(404), ..
            }) => return Ok(LoadOutcome::Empty),
            Err(e) => return Err(open_failure(e)),
        };
        let head = stream.head().clone();
        let mut first = vec![0u8; 16];
        let n = read_up_to(&mut stream, &mut first);
        first.truncate(n);
        if depth == 0 && playlist::looks_like(head.content_type.as_deref(), &first) {
            let mut body = first;
            let _ = (&mut stream)
                .take(MAX_PLAYLIST_BYTES)
                .read_to_end(&mut body);
            return Ok(self.playlist(identifier, &String::from_utf8_lossy(&body)));
        }
        let container = probe::sniff(&first)
            .or_else(|| container_from_type(head.content_type.as_deref()))
            .ok_or_else(|| common("Unknown file format."))?;
        let is_stream = head.icy || head.length.is_none();
        let (title, author, length_ms) = if is_stream {
            let title = icy_title(&mut stream, &head).or_else(|| head.icy_name.clone());
            (title, head.icy_name.clone(), None)
        } else {
            drop(stream);
            let info = HttpStream::open(&self.agent, url, false)
                .map_err(open_failure)
                .and_then(|s| {
                    probe::inspect(Box::new(s), Some(container.extension)).map_err(suspicious)
                })?;
            (info.title, info.author, info.length_ms)
        };
        Ok(LoadOutcome::Track(AudioTrack::from_blob(TrackBlob {
            version: 3,
            title: title.unwrap_or_else(|| "Unknown title".into()),
            author: author.unwrap_or_else(|| "Unknown artist".into()),
            length_ms: length_ms.map_or(i64::MAX, |l| l as i64),
            identifier: identifier.to_owned(),
            is_stream,
            uri: Some(identifier.to_owned()),
            artwork_url: None,
            isrc: None,
            source_name: "http".into(),
            source_data: SourceData::Probe(container.probe.into()),
            position_ms: 0,
        })))
    }

    fn playlist(&self, identifier: &str, body: &str) -> LoadOutcome {
        let parsed = playlist::parse(body, identifier);
        let tracks: Vec<AudioTrack> = parsed
            .entries
            .iter()
            .take(MAX_PLAYLIST_ENTRIES)
            .filter_map(|entry| match self.load_blocking(&entry.url, 1) {
                Some(LoadOutcome::Track(mut t)) => {
                    if let Some(title) = &entry.title {
                        t = retitle(t, title);
                    }
                    Some(t)
                }
                _ => None,
            })
            .collect();
        if tracks.is_empty() {
            return LoadOutcome::Empty;
        }
        LoadOutcome::Playlist {
            name: parsed.name.unwrap_or_else(|| identifier.to_owned()),
            selected: None,
            tracks,
        }
    }
}

fn retitle(track: AudioTrack, title: &str) -> AudioTrack {
    let mut blob = track.blob().clone();
    if blob.title == "Unknown title" {
        blob.title = title.to_owned();
    }
    AudioTrack::from_blob(blob)
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    n
}

/// The `StreamTitle` of the first ICY metadata block, if the server sends them.
///
/// Nothing here is sized by the server: the audio before the block is skipped through
/// a fixed buffer (and `icy-metaint` is bounded by
/// [`MAX_ICY_METAINT`](super::http_stream::MAX_ICY_METAINT)), and the block
/// itself is at most 255 × 16 bytes by construction.
fn icy_title(stream: &mut HttpStream, head: &Head) -> Option<String> {
    let metaint = head.icy_metaint?;
    // 16 audio bytes were already read for sniffing.
    let skip = u64::try_from(metaint.checked_sub(16)?).ok()?;
    let skipped = std::io::copy(&mut (&mut *stream).take(skip), &mut std::io::sink()).ok()?;
    if skipped < skip {
        return None;
    }
    let mut len = [0u8; 1];
    read_up_to(stream, &mut len);
    let mut meta = [0u8; 255 * 16];
    let meta = &mut meta[..usize::from(len[0]) * 16];
    let n = read_up_to(stream, meta);
    let meta = &meta[..n];
    let text = String::from_utf8_lossy(meta);
    let start = text.find("StreamTitle='")? + "StreamTitle='".len();
    let end = text[start..].find("';").map(|e| start + e)?;
    let title = text[start..end].trim();
    (!title.is_empty()).then(|| title.to_owned())
}

fn container_from_type(content_type: Option<&str>) -> Option<probe::Container> {
    let c = |probe, extension| Some(probe::Container { probe, extension });
    match content_type? {
        "audio/mpeg" | "audio/mp3" => c("mp3", "mp3"),
        "audio/ogg" | "application/ogg" | "audio/opus" => c("ogg", "ogg"),
        "audio/flac" | "audio/x-flac" => c("flac", "flac"),
        "audio/wav" | "audio/x-wav" | "audio/wave" => c("wav", "wav"),
        "audio/mp4" | "audio/m4a" | "audio/x-m4a" => c("mp4", "m4a"),
        "audio/webm" | "video/webm" => c("matroska/webm", "webm"),
        "audio/aac" | "audio/aacp" => c("adts", "aac"),
        _ => None,
    }
}

fn common(message: &str) -> LoadFailure {
    LoadFailure {
        message: message.into(),
        severity: Severity::Common,
        cause: None,
    }
}

fn suspicious(message: String) -> LoadFailure {
    LoadFailure {
        message,
        severity: Severity::Suspicious,
        cause: None,
    }
}

/// A failed open at load time, worded as lavaplayer's `HttpAudioSourceManager` does.
fn open_failure(e: OpenError) -> LoadFailure {
    match e.status {
        Some(status) => LoadFailure {
            message: "That URL is not playable.".into(),
            severity: Severity::Common,
            cause: Some(format!(
                "java.lang.IllegalStateException: Status code {status}"
            )),
        },
        None => LoadFailure {
            message: "Connecting to the URL failed.".into(),
            severity: Severity::Suspicious,
            cause: Some(e.message),
        },
    }
}

impl SourceManager for HttpSource {
    fn name(&self) -> &'static str {
        "http"
    }

    fn load<'a>(&'a self, identifier: &'a str) -> BoxFuture<'a, Option<LoadOutcome>> {
        let this = self.clone();
        let identifier = identifier.to_owned();
        Box::pin(async move {
            Self::url(&identifier)?;
            tokio::task::spawn_blocking(move || this.load_blocking(&identifier, 0))
                .await
                .ok()
                .flatten()
        })
    }

    fn opener(&self, track: &TrackBlob) -> Option<SourceOpen> {
        let url = Self::url(&track.identifier)?;
        let extension = match &track.source_data {
            SourceData::Probe(p) => extension_for_probe(p),
            SourceData::None => None,
        };
        let fetcher = self.fetcher.clone();
        Some(SourceOpen {
            input: SourceInput::Network(Box::new(move |readahead| fetcher.stream(url, readahead))),
            extension,
        })
    }
}
