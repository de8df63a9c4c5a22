//! Identifying a source before playing it: the container from its first bytes
//! (extensions and Content-Types lie), and title, author and length from its tags.

use symphonia::core::formats::FormatOptions;
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::{MetadataOptions, StandardTagKey};
use symphonia::core::probe::Hint;

/// A container recognised from its first bytes: lavaplayer's probe name and the file
/// extension that steers symphonia's prober.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Container {
    /// lavaplayer's probe name (`probeInfo`): `mp3`, `flac`, `ogg`, `mp4`, `matroska/webm`, `wav`, `adts`.
    pub probe: &'static str,
    /// An extension symphonia knows for it.
    pub extension: &'static str,
}

/// Recognises a container from at least the first 12 bytes.
pub fn sniff(head: &[u8]) -> Option<Container> {
    let c = |probe, extension| Some(Container { probe, extension });
    match head {
        [b'f', b'L', b'a', b'C', ..] => c("flac", "flac"),
        [b'O', b'g', b'g', b'S', ..] => c("ogg", "ogg"),
        [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'A', b'V', b'E', ..] => c("wav", "wav"),
        [_, _, _, _, b'f', b't', b'y', b'p', ..] => c("mp4", "m4a"),
        [0x1A, 0x45, 0xDF, 0xA3, ..] => c("matroska/webm", "webm"),
        [b'I', b'D', b'3', ..] => c("mp3", "mp3"),
        [0xFF, b, ..] if b & 0xF6 == 0xF0 => c("adts", "aac"),
        [0xFF, b, ..] if b & 0xE0 == 0xE0 => c("mp3", "mp3"),
        _ => None,
    }
}

/// What a probe learned about a source.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MediaInfo {
    /// Title tag.
    pub title: Option<String>,
    /// Artist tag.
    pub author: Option<String>,
    /// Length in ms, when the container states it.
    pub length_ms: Option<u64>,
}

/// Reads the tags and length of a source (blocking; run off async threads).
///
/// A panic in symphonia (corrupt input can still cause one) is caught and returned as
/// an error, so a load ends with Lavalink's `error` result instead of a lost request.
pub fn inspect(source: Box<dyn MediaSource>, extension: Option<&str>) -> Result<MediaInfo, String> {
    super::guard::install_hook();
    // Unwind safety: everything the closure touches is its own and dropped with it.
    super::guard::catch(|| inspect_unguarded(source, extension)).unwrap_or_else(|panic| {
        tracing::warn!(panic = %panic, "probing a track panicked");
        Err(format!(
            "the file is corrupt (the decoder panicked: {panic})"
        ))
    })
}

fn inspect_unguarded(
    source: Box<dyn MediaSource>,
    extension: Option<&str>,
) -> Result<MediaInfo, String> {
    let mss = MediaSourceStream::new(source, Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = extension {
        hint.with_extension(ext);
    }
    let mut probed = symphonia::default::get_probe()
        .format(
            &hint,
            mss,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .map_err(|e| format!("unknown or unsupported format: {e}"))?;
    let mut info = MediaInfo::default();
    let mut take = |tags: &[symphonia::core::meta::Tag]| {
        for tag in tags {
            match tag.std_key {
                Some(StandardTagKey::TrackTitle) if info.title.is_none() => {
                    info.title = Some(tag.value.to_string())
                }
                Some(StandardTagKey::Artist) if info.author.is_none() => {
                    info.author = Some(tag.value.to_string())
                }
                _ => {}
            }
        }
    };
    if let Some(rev) = probed
        .metadata
        .get()
        .as_ref()
        .and_then(|m| m.current().cloned())
    {
        take(rev.tags());
    }
    if let Some(rev) = probed.format.metadata().current() {
        take(rev.tags());
    }
    if let Some(track) = probed.format.default_track() {
        let p = &track.codec_params;
        if let (Some(frames), Some(tb)) = (p.n_frames, p.time_base) {
            let t = tb.calc_time(frames);
            info.length_ms = Some(t.seconds * 1000 + (t.frac * 1000.0).round() as u64);
        }
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_containers_regardless_of_names() {
        assert_eq!(sniff(b"fLaC\0\0\0\0\0\0\0\0").unwrap().probe, "flac");
        assert_eq!(sniff(b"OggS\0\0\0\0\0\0\0\0").unwrap().probe, "ogg");
        assert_eq!(sniff(b"RIFF\0\0\0\0WAVEfmt ").unwrap().probe, "wav");
        assert_eq!(sniff(b"\0\0\0\x20ftypM4A ").unwrap().probe, "mp4");
        assert_eq!(
            sniff(&[0x1A, 0x45, 0xDF, 0xA3, 0, 0, 0, 0, 0, 0, 0, 0])
                .unwrap()
                .probe,
            "matroska/webm"
        );
        assert_eq!(sniff(b"ID3\x04\0\0\0\0\0\0\0\0").unwrap().probe, "mp3");
        assert_eq!(
            sniff(&[0xFF, 0xFB, 0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0])
                .unwrap()
                .probe,
            "mp3"
        );
        assert_eq!(
            sniff(&[0xFF, 0xF1, 0x50, 0, 0, 0, 0, 0, 0, 0, 0, 0])
                .unwrap()
                .probe,
            "adts"
        );
        assert_eq!(sniff(b"<html><body>"), None);
    }
}
