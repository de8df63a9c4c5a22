//! Source managers: where tracks come from.

pub mod fetch;
pub mod http;
pub mod http_get;
pub mod http_stream;
pub mod local;
pub mod playlist;

use quaver_engine::decode::probe;

/// The symphonia extension hint for a lavaplayer probe name.
pub fn extension_for_probe(probe_info: &str) -> Option<String> {
    let name = probe_info.split('|').next().unwrap_or("");
    let ext = match name {
        "mp3" => "mp3",
        "flac" => "flac",
        "ogg" => "ogg",
        "mp4" => "m4a",
        "matroska/webm" => "webm",
        "wav" => "wav",
        "adts" | "mpegts-adts" => "aac",
        _ => return None,
    };
    Some(ext.to_owned())
}

/// Recognises a container from a file's first bytes.
pub fn sniff(head: &[u8]) -> Option<probe::Container> {
    probe::sniff(head)
}
