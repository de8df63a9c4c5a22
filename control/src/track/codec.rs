//! Sans-IO codec for lavaplayer's binary track blob, the `encoded` string that Lavalink
//! clients keep and send back to play, resume or inspect a track.
//!
//! A blob is one lavaplayer message: a big-endian `u32` header `(flags << 30) | size`,
//! then `size` bytes holding an optional version byte, the track info, a payload owned by
//! the source that produced the track, and the start position. Strings are Java's
//! modified UTF-8 (CESU-8 surrogate pairs, NUL as `C0 80`), so [`encode`] produces blobs
//! byte-identical to the Java server's and clients that compare strings keep working.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;

/// Layout version [`encode`] writes: the newest one lavaplayer defines.
const WRITE_VERSION: u8 = 3;
/// Header flag meaning a version byte follows the header (lavaplayer's
/// `TRACK_INFO_VERSIONED`).
const FLAG_VERSIONED: u32 = 1;
/// Number of low header bits holding the message size; the flags sit above them.
const SIZE_BITS: u32 = 30;
/// Mask selecting the size from the header.
const SIZE_MASK: u32 = (1 << SIZE_BITS) - 1;
/// Largest message size the header can express, in bytes.
const MAX_MESSAGE_SIZE: usize = SIZE_MASK as usize;
/// Length of the message header in bytes.
const HEADER_LEN: usize = 4;

/// Container probes lavaplayer registers; `http` and `local` tracks name one of them.
const PROBES: [&str; 11] = [
    "mp3",
    "flac",
    "wav",
    "ogg",
    "matroska/webm",
    "mp4",
    "adts",
    "mpegts-adts",
    "m3u",
    "pls",
    "plain",
];

/// Base64 as Java's `Base64.getDecoder()` (Lavalink's decoder) reads padded input:
/// standard alphabet, complete padding, unused low bits of the last symbol ignored.
const BASE64_PADDED: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical)
        .with_decode_allow_trailing_bits(true),
);

/// The same decoder for input without padding, which Java accepts too.
const BASE64_UNPADDED: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

/// One decoded lavaplayer track blob.
///
/// Holds exactly what the blob stores, so a track can be re-encoded without consulting
/// the source that produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackBlob {
    /// Layout version read from the blob (1 when the header has no version flag).
    /// [`encode`] ignores it and always writes version 3.
    pub version: u8,
    /// Track title.
    pub title: String,
    /// Track author or artist.
    pub author: String,
    /// Duration in milliseconds; `i64::MAX` for streams and unknown lengths.
    pub length_ms: i64,
    /// Source-specific identifier (a video id, or the URL for `http`).
    pub identifier: String,
    /// Whether the track is a live stream.
    pub is_stream: bool,
    /// Track URI; stored from version 2 on.
    pub uri: Option<String>,
    /// Artwork URL; stored from version 3 on.
    pub artwork_url: Option<String>,
    /// International Standard Recording Code; stored from version 3 on.
    pub isrc: Option<String>,
    /// Name of the source manager that produced the track (`youtube`, `http`, ...).
    pub source_name: String,
    /// Payload the source manager stores after the track info.
    pub source_data: SourceData,
    /// Position to start playback at, in milliseconds.
    pub position_ms: i64,
}

/// Source-specific payload stored after the source name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceData {
    /// The source stores nothing extra (`youtube`, `soundcloud`, `bandcamp`, `twitch`,
    /// `vimeo`, `niconico`).
    None,
    /// Container probe of an `http` or `local` track: the probe name, optionally followed
    /// by `|parameters` (for example `m3u|hls-outer`).
    Probe(String),
}

/// Why a blob or its base64 form could not be decoded.
///
/// Lavalink answers every one of these with HTTP 500.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The string is not standard-alphabet base64.
    #[error("encoded track is not valid base64: {0}")]
    InvalidBase64(base64::DecodeError),
    /// The header announces a zero-size message, which lavaplayer reads as "no track".
    #[error("encoded track holds no track (message size 0)")]
    Empty,
    /// The input ends before the announced message does, or a field runs past it.
    #[error("encoded track is truncated")]
    Truncated,
    /// A string is not valid modified UTF-8.
    #[error("encoded track contains a malformed string")]
    InvalidUtf,
    /// The blob names a source this server does not have (for example a plugin's).
    #[error("Failed to decode track due to a mismatching version or missing source manager")]
    UnknownSource(String),
    /// An `http` or `local` blob names a container probe this server does not have.
    #[error("encoded track names unknown container probe `{0}`")]
    UnknownProbe(String),
}

impl DecodeError {
    /// Whether the blob was well-formed but needs a source or probe this server lacks.
    /// Lavalink cannot tell these apart and reports both with the
    /// [`DecodeError::UnknownSource`] message.
    pub fn is_missing_source(&self) -> bool {
        matches!(self, Self::UnknownSource(_) | Self::UnknownProbe(_))
    }
}

/// Why a track could not be encoded into a blob the decoder would accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A string is longer than Java's `writeUTF` allows.
    #[error("{field} takes {len} bytes in modified UTF-8, more than the 65535 allowed")]
    StringTooLong {
        /// Which field is too long.
        field: &'static str,
        /// Its length in modified UTF-8 bytes.
        len: usize,
    },
    /// The whole message does not fit the 30-bit size of the header.
    #[error("encoded track would take {0} bytes, more than the header can express")]
    MessageTooLarge(usize),
    /// The source name is not one whose payload this codec knows.
    #[error("no known source manager is named `{0}`")]
    UnknownSource(String),
    /// The source data is not the kind the named source stores.
    #[error("source `{0}` does not store the given kind of source data")]
    SourceDataMismatch(String),
    /// The container probe is not one lavaplayer registers.
    #[error("unknown container probe `{0}`")]
    UnknownProbe(String),
}

/// Decodes a lavaplayer track blob.
///
/// Bytes inside the message after the position are skipped and bytes after the message
/// are ignored, as lavaplayer does. Never panics and allocates no more than the input.
pub fn decode(bytes: &[u8]) -> Result<TrackBlob, DecodeError> {
    let (flags, body) = split_message(bytes)?;
    let mut r = Reader { rest: body };
    let version = if flags & FLAG_VERSIONED != 0 {
        r.u8()?
    } else {
        1
    };
    let title = r.utf()?;
    let author = r.utf()?;
    let length_ms = r.i64()?;
    let identifier = r.utf()?;
    let is_stream = r.bool()?;
    let uri = if version >= 2 {
        r.nullable_utf()?
    } else {
        None
    };
    let (artwork_url, isrc) = if version >= 3 {
        (r.nullable_utf()?, r.nullable_utf()?)
    } else {
        (None, None)
    };
    let source_name = r.utf()?;
    let source_data = read_source_data(&mut r, &source_name)?;
    let position_ms = r.i64()?;
    Ok(TrackBlob {
        version,
        title,
        author,
        length_ms,
        identifier,
        is_stream,
        uri,
        artwork_url,
        isrc,
        source_name,
        source_data,
        position_ms,
    })
}

/// Encodes a track as a version 3 blob with the versioned header flag, the layout Lavalink
/// writes, whatever `track.version` says.
pub fn encode(track: &TrackBlob) -> Result<Vec<u8>, EncodeError> {
    let mut w = Writer::new();
    w.u8(WRITE_VERSION);
    w.utf("title", &track.title)?;
    w.utf("author", &track.author)?;
    w.i64(track.length_ms);
    w.utf("identifier", &track.identifier)?;
    w.bool(track.is_stream);
    w.nullable_utf("uri", track.uri.as_deref())?;
    w.nullable_utf("artwork URL", track.artwork_url.as_deref())?;
    w.nullable_utf("ISRC", track.isrc.as_deref())?;
    w.utf("source name", &track.source_name)?;
    write_source_data(&mut w, track)?;
    w.i64(track.position_ms);
    w.finish()
}

/// Decodes the base64 form clients send, as strictly as Lavalink does: standard alphabet,
/// padding either complete or absent, no whitespace, URL-safe characters rejected.
pub fn decode_base64(s: &str) -> Result<TrackBlob, DecodeError> {
    let engine = if s.ends_with('=') {
        &BASE64_PADDED
    } else {
        &BASE64_UNPADDED
    };
    let bytes = engine.decode(s).map_err(DecodeError::InvalidBase64)?;
    decode(&bytes)
}

/// Encodes a track as the base64 string Lavalink sends: standard alphabet with padding.
pub fn encode_base64(track: &TrackBlob) -> Result<String, EncodeError> {
    Ok(STANDARD.encode(encode(track)?))
}

/// Reads the header and returns the flags and the message body it announces.
fn split_message(bytes: &[u8]) -> Result<(u32, &[u8]), DecodeError> {
    let mut r = Reader { rest: bytes };
    let header = r.u32()?;
    let size = (header & SIZE_MASK) as usize;
    if size == 0 {
        return Err(DecodeError::Empty);
    }
    Ok((header >> SIZE_BITS, r.take(size)?))
}

/// What a source manager stores after the source name.
#[derive(Debug, Clone, Copy)]
enum Payload {
    /// Nothing.
    Nothing,
    /// One `UTF` string naming the container probe.
    Probe,
}

/// The payload kind the named source writes, or `None` for a source this server lacks.
fn payload_of(source_name: &str) -> Option<Payload> {
    match source_name {
        "http" | "local" => Some(Payload::Probe),
        "youtube" | "soundcloud" | "bandcamp" | "twitch" | "vimeo" | "niconico" => {
            Some(Payload::Nothing)
        }
        _ => None,
    }
}

/// Whether a probe string (`name` or `name|parameters`) names a registered probe.
fn is_known_probe(info: &str) -> bool {
    let name = info.split_once('|').map_or(info, |(name, _)| name);
    PROBES.contains(&name)
}

/// Reads the payload of the named source.
fn read_source_data(r: &mut Reader<'_>, source_name: &str) -> Result<SourceData, DecodeError> {
    match payload_of(source_name) {
        None => Err(DecodeError::UnknownSource(source_name.to_owned())),
        Some(Payload::Nothing) => Ok(SourceData::None),
        Some(Payload::Probe) => {
            let info = r.utf()?;
            if is_known_probe(&info) {
                Ok(SourceData::Probe(info))
            } else {
                Err(DecodeError::UnknownProbe(info))
            }
        }
    }
}

/// Writes the track's payload after checking it is what its source stores, so that every
/// blob [`encode`] produces decodes again.
fn write_source_data(w: &mut Writer, track: &TrackBlob) -> Result<(), EncodeError> {
    let name = &track.source_name;
    match (payload_of(name), &track.source_data) {
        (None, _) => Err(EncodeError::UnknownSource(name.clone())),
        (Some(Payload::Nothing), SourceData::None) => Ok(()),
        (Some(Payload::Probe), SourceData::Probe(info)) if is_known_probe(info) => {
            w.utf("probe info", info)
        }
        (Some(Payload::Probe), SourceData::Probe(info)) => {
            Err(EncodeError::UnknownProbe(info.clone()))
        }
        _ => Err(EncodeError::SourceDataMismatch(name.clone())),
    }
}

/// Cursor over a message body; every read fails with [`DecodeError::Truncated`] rather
/// than going past the end.
struct Reader<'a> {
    /// Bytes not read yet.
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Takes the next `n` bytes.
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let (head, tail) = self
            .rest
            .split_at_checked(n)
            .ok_or(DecodeError::Truncated)?;
        self.rest = tail;
        Ok(head)
    }

    /// Takes the next `N` bytes as an array.
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let (head, tail) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or(DecodeError::Truncated)?;
        self.rest = tail;
        Ok(*head)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(u8::from_be_bytes(self.array()?))
    }

    /// Java's `readBoolean`: any non-zero byte is true.
    fn bool(&mut self) -> Result<bool, DecodeError> {
        Ok(self.u8()? != 0)
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    /// Java's `readUTF`: a `u16` byte length, then modified UTF-8.
    fn utf(&mut self) -> Result<String, DecodeError> {
        let len = self.u16()?;
        decode_modified_utf8(self.take(len.into())?)
    }

    /// A presence flag, then a `UTF` string if present.
    fn nullable_utf(&mut self) -> Result<Option<String>, DecodeError> {
        if self.bool()? {
            self.utf().map(Some)
        } else {
            Ok(None)
        }
    }
}

/// Builds a message behind a placeholder header that [`Writer::finish`] fills in.
struct Writer {
    /// Header placeholder followed by the body written so far.
    buf: Vec<u8>,
}

impl Writer {
    fn new() -> Self {
        Self {
            buf: vec![0; HEADER_LEN],
        }
    }

    fn u8(&mut self, value: u8) {
        self.buf.push(value);
    }

    fn bool(&mut self, value: bool) {
        self.u8(value.into());
    }

    fn i64(&mut self, value: i64) {
        self.buf.extend_from_slice(&value.to_be_bytes());
    }

    /// Java's `writeUTF`: a `u16` byte length, then modified UTF-8. `field` names the
    /// string in the error if it does not fit the length.
    fn utf(&mut self, field: &'static str, s: &str) -> Result<(), EncodeError> {
        let len: usize = s.encode_utf16().map(modified_utf8_len).sum();
        let prefix = u16::try_from(len).map_err(|_| EncodeError::StringTooLong { field, len })?;
        self.buf.extend_from_slice(&prefix.to_be_bytes());
        for unit in s.encode_utf16() {
            push_modified_utf8(&mut self.buf, unit);
        }
        Ok(())
    }

    /// A presence flag, then the string if present.
    fn nullable_utf(&mut self, field: &'static str, s: Option<&str>) -> Result<(), EncodeError> {
        self.bool(s.is_some());
        s.map_or(Ok(()), |s| self.utf(field, s))
    }

    /// Fills in the header (versioned flag and body size) and returns the message.
    fn finish(mut self) -> Result<Vec<u8>, EncodeError> {
        let size = self.buf.len() - HEADER_LEN;
        if size > MAX_MESSAGE_SIZE {
            return Err(EncodeError::MessageTooLarge(size));
        }
        let header = (FLAG_VERSIONED << SIZE_BITS) | size as u32;
        self.buf[..HEADER_LEN].copy_from_slice(&header.to_be_bytes());
        Ok(self.buf)
    }
}

/// Bytes one UTF-16 code unit takes in modified UTF-8.
fn modified_utf8_len(unit: u16) -> usize {
    match unit {
        0x0001..=0x007F => 1,
        0x0000 | 0x0080..=0x07FF => 2,
        _ => 3,
    }
}

/// Appends one UTF-16 code unit in modified UTF-8; surrogates are encoded one by one,
/// which yields CESU-8 for supplementary characters.
fn push_modified_utf8(buf: &mut Vec<u8>, unit: u16) {
    match modified_utf8_len(unit) {
        1 => buf.push(unit as u8),
        2 => buf.extend_from_slice(&[0xC0 | (unit >> 6) as u8, 0x80 | (unit & 0x3F) as u8]),
        _ => buf.extend_from_slice(&[
            0xE0 | (unit >> 12) as u8,
            0x80 | ((unit >> 6) & 0x3F) as u8,
            0x80 | (unit & 0x3F) as u8,
        ]),
    }
}

/// Decodes modified UTF-8 the way Java's `readUTF` does: raw NUL and overlong two- and
/// three-byte forms are accepted, surrogates are taken one by one. Leniently, a real
/// four-byte UTF-8 sequence is accepted as well. A surrogate left unpaired becomes
/// U+FFFD, since a Rust string cannot hold it.
fn decode_modified_utf8(bytes: &[u8]) -> Result<String, DecodeError> {
    if bytes.iter().all(|&b| (0x01..0x80).contains(&b)) {
        return String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::InvalidUtf);
    }
    let mut units = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while !rest.is_empty() {
        let width = decode_sequence(rest, &mut units)?;
        rest = rest.get(width..).ok_or(DecodeError::InvalidUtf)?;
    }
    Ok(char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect())
}

/// Decodes the sequence at the start of `bytes`, appending its UTF-16 units, and returns
/// how many bytes it took.
fn decode_sequence(bytes: &[u8], units: &mut Vec<u16>) -> Result<usize, DecodeError> {
    let lead = *bytes.first().ok_or(DecodeError::InvalidUtf)?;
    let (width, lead_bits) = match lead {
        0x00..=0x7F => (1, lead),
        0xC0..=0xDF => (2, lead & 0x1F),
        0xE0..=0xEF => (3, lead & 0x0F),
        0xF0..=0xF4 => (4, lead & 0x07),
        _ => return Err(DecodeError::InvalidUtf),
    };
    let tail = bytes.get(1..width).ok_or(DecodeError::InvalidUtf)?;
    let mut value = u32::from(lead_bits);
    for &b in tail {
        if b & 0xC0 != 0x80 {
            return Err(DecodeError::InvalidUtf);
        }
        value = (value << 6) | u32::from(b & 0x3F);
    }
    if width == 4 {
        let c = char::from_u32(value)
            .filter(|c| u32::from(*c) > 0xFFFF)
            .ok_or(DecodeError::InvalidUtf)?;
        units.extend_from_slice(c.encode_utf16(&mut [0; 2]));
    } else {
        units.push(u16::try_from(value).map_err(|_| DecodeError::InvalidUtf)?);
    }
    Ok(width)
}

#[cfg(test)]
mod tests {
    use super::*;

    const Y2: &str = "QAAAjQIAJVJpY2sgQXN0bGV5IC0gTmV2ZXIgR29ubmEgR2l2ZSBZb3UgVXAADlJpY2tBc3RsZXlWRVZPAAAAAAADPCAAC2RRdzR3OVdnWGNRAAEAK2h0dHBzOi8vd3d3LnlvdXR1YmUuY29tL3dhdGNoP3Y9ZFF3NHc5V2dYY1EAB3lvdXR1YmUAAAAAAAAAAA==";
    const Y3: &str = "QAAA2QMAPFJpY2sgQXN0bGV5IC0gTmV2ZXIgR29ubmEgR2l2ZSBZb3UgVXAgKE9mZmljaWFsIE11c2ljIFZpZGVvKQALUmljayBBc3RsZXkAAAAAAANACAALZFF3NHc5V2dYY1EAAQAraHR0cHM6Ly93d3cueW91dHViZS5jb20vd2F0Y2g/dj1kUXc0dzlXZ1hjUQEANGh0dHBzOi8vaS55dGltZy5jb20vdmkvZFF3NHc5V2dYY1EvbWF4cmVzZGVmYXVsdC5qcGcAAAd5b3V0dWJlAAAAAAAAAAA=";
    const E3: &str = "QAAA2gMAN0NvenkgYW5pbWFsIGNyb3NzaW5nIG11c2ljIHRoYXQgY3VyZSBteSBoZWFkYWNoZXPtoLztvL8AC1RlbmRvIEZhcm1zAAAAAAA/26gACzhUYkx1Qk9DbFNnAAEAK2h0dHBzOi8vd3d3LnlvdXR1YmUuY29tL3dhdGNoP3Y9OFRiTHVCT0NsU2cBADpodHRwczovL2kueXRpbWcuY29tL3ZpX3dlYnAvOFRiTHVCT0NsU2cvbWF4cmVzZGVmYXVsdC53ZWJwAAAHeW91dHViZQAAAAAAAAAA";
    const P3: &str = "QAAAxAMAEU5vc2VibGVlZCBTZWN0aW9uABtTaWdodGxlc3MgaW4gU2hhZG93IC0gVG9waWMAAAAAAAJxAAALTFdNUi1rY3dHLTgAAQAraHR0cHM6Ly93d3cueW91dHViZS5jb20vd2F0Y2g/dj1MV01SLWtjd0ctOAEAOmh0dHBzOi8vaS55dGltZy5jb20vdmlfd2VicC9MV01SLWtjd0ctOC9tYXhyZXNkZWZhdWx0LndlYnAAAAd5b3V0dWJlAAAAAAACb1w=";
    const S3: &str = "QAABJAMAClRhbGsgYSBMb3QACjQwNHZpbmNlbnQAAAAAAAHr1gBxTzpodHRwczovL2FwaS12Mi5zb3VuZGNsb3VkLmNvbS9tZWRpYS9zb3VuZGNsb3VkOnRyYWNrczo4NTE0MjEwNzYvMzUyYTRiOTAtNzYxOS00M2E5LWJiOGItMjIxMzE0YzFjNjNhL3N0cmVhbS9obHMAAQAsaHR0cHM6Ly9zb3VuZGNsb3VkLmNvbS80MDR2aW5jZW50L3RhbGstYS1sb3QBADpodHRwczovL2kxLnNuZGNkbi5jb20vYXJ0d29ya3MtRTN1ek5Gc0Y4QzBXLTAtb3JpZ2luYWwuanBnAQAMUVpITkExOTg1Nzg0AApzb3VuZGNsb3VkAAAAAAAAAAA=";
    const H3: &str = "QAAAjQMAC0RlYXRoIG9mIE1lAApTQUlOVCBQSE5YAAAAAAAAdVgAKGh0dHBzOi8vd3d3Lm1ib3hkcml2ZS5jb20vc3RhcnRtdXNpYy5tcDMAAQAoaHR0cHM6Ly93d3cubWJveGRyaXZlLmNvbS9zdGFydG11c2ljLm1wMwAAAARodHRwAANtcDMAAAAAAAAAAA==";
    const H2: &str = "QAABFwIADVVua25vd24gdGl0bGUADlVua25vd24gYXJ0aXN0AAAAAAAAdSQAa2h0dHBzOi8vcC5zY2RuLmNvL21wMy1wcmV2aWV3L2VlMTIxY2EyODFjNjI5YmI0ZTk5YzMzZDg3N2ZlOThmYmI3NTIyODk/Y2lkPTc3NGIyOWQ0ZjEzODQ0YzQ5NWYyMDZjYWZkYWQ5Yzg2AAEAa2h0dHBzOi8vcC5zY2RuLmNvL21wMy1wcmV2aWV3L2VlMTIxY2EyODFjNjI5YmI0ZTk5YzMzZDg3N2ZlOThmYmI3NTIyODk/Y2lkPTc3NGIyOWQ0ZjEzODQ0YzQ5NWYyMDZjYWZkYWQ5Yzg2AARodHRwAANtcDMAAAAAAAAAAA==";
    const D3: &str = "QAACDgMACk5vIERpZ2dpdHkAC0JsYWNrc3RyZWV0AAAAAAAEo4AABjkxNjQ5NgABAB9odHRwczovL2RlZXplci5jb20vdHJhY2svOTE2NDk2AQBpaHR0cHM6Ly9lLWNkbnMtaW1hZ2VzLmR6Y2RuLm5ldC9pbWFnZXMvY292ZXIvZGFlN2EyNjViNzlmYjcxMjc4Y2RlMjUwNDg0OWQ2ZjcvMTAwMHgxMDAwLTAwMDAwMC04MC0wLTAuanBnAQAMVVNJUjE5NjAwOTc4AAZkZWV6ZXIBAChObyBEaWdnaXR5OiBUaGUgVmVyeSBCZXN0IE9mIEJsYWNrc3RyZWV0AQAjaHR0cHM6Ly93d3cuZGVlemVyLmNvbS9hbGJ1bS8xMDMyNTQBACJodHRwczovL3d3dy5kZWV6ZXIuY29tL2FydGlzdC8xODYxAQBqaHR0cHM6Ly9lLWNkbnMtaW1hZ2VzLmR6Y2RuLm5ldC9pbWFnZXMvYXJ0aXN0L2YxNmNhYzM2ZmVjMzkxZjczN2I3ZDQ4MmY1YWM3M2UzLzEwMDB4MTAwMC0wMDAwMDAtODAtMC0wLmpwZwEAT2h0dHBzOi8vY2RuLXByZXZpZXctYS5kemNkbi5uZXQvc3RyZWFtL2MtYTE1Yjg1NzFhYTYyMDBjMDQ0YmY1OWM3NmVkOTEyN2MtNi5tcDMAAAAAAAAAAAA=";
    /// Vance Joy, version 2, and the version 3 blob Lavalink re-encodes it to.
    const VANCE_V2: &str = "QAAAjAIAJFZhbmNlIEpveSAtICdSaXB0aWRlJyBPZmZpY2lhbCBWaWRlbwAObXVzaHJvb212aWRlb3MAAAAAAAMgyAALdUpfMUhNQUdiNGsAAQAraHR0cHM6Ly93d3cueW91dHViZS5jb20vd2F0Y2g/dj11Sl8xSE1BR2I0awAHeW91dHViZQAAAAAAAAAA";
    const VANCE_V3: &str = "QAAAjgMAJFZhbmNlIEpveSAtICdSaXB0aWRlJyBPZmZpY2lhbCBWaWRlbwAObXVzaHJvb212aWRlb3MAAAAAAAMgyAALdUpfMUhNQUdiNGsAAQAraHR0cHM6Ly93d3cueW91dHViZS5jb20vd2F0Y2g/dj11Sl8xSE1BR2I0awAAAAd5b3V0dWJlAAAAAAAAAAA=";

    /// Every vector, for tests that only need bytes.
    const ALL: [&str; 10] = [Y2, Y3, E3, P3, S3, H3, H2, D3, VANCE_V2, VANCE_V3];
    /// Vectors already in version 3 layout, which must re-encode byte-identically.
    const V3: [&str; 6] = [Y3, E3, P3, S3, H3, VANCE_V3];

    fn bytes(b64: &str) -> Vec<u8> {
        STANDARD.decode(b64).unwrap()
    }

    fn some(s: &str) -> Option<String> {
        Some(s.to_owned())
    }

    /// A version 3 youtube track with no ISRC and position 0, the shape most vectors share.
    fn youtube(
        title: &str,
        author: &str,
        length_ms: i64,
        id: &str,
        art: Option<&str>,
    ) -> TrackBlob {
        TrackBlob {
            version: 3,
            title: title.to_owned(),
            author: author.to_owned(),
            length_ms,
            identifier: id.to_owned(),
            is_stream: false,
            uri: Some(format!("https://www.youtube.com/watch?v={id}")),
            artwork_url: art.map(str::to_owned),
            isrc: None,
            source_name: "youtube".to_owned(),
            source_data: SourceData::None,
            position_ms: 0,
        }
    }

    fn http(version: u8, title: &str, author: &str, length_ms: i64, url: &str) -> TrackBlob {
        TrackBlob {
            version,
            title: title.to_owned(),
            author: author.to_owned(),
            length_ms,
            identifier: url.to_owned(),
            is_stream: false,
            uri: some(url),
            artwork_url: None,
            isrc: None,
            source_name: "http".to_owned(),
            source_data: SourceData::Probe("mp3".to_owned()),
            position_ms: 0,
        }
    }

    /// Checks that a decoded track survives encoding, coming back as version 3.
    fn assert_round_trip(track: &TrackBlob) {
        let blob = encode(track).unwrap();
        let again = decode(&blob).unwrap();
        assert_eq!(
            again,
            TrackBlob {
                version: 3,
                ..track.clone()
            }
        );
    }

    #[test]
    fn youtube_vectors_decode() {
        let y2 = TrackBlob {
            version: 2,
            ..youtube(
                "Rick Astley - Never Gonna Give You Up",
                "RickAstleyVEVO",
                212_000,
                "dQw4w9WgXcQ",
                None,
            )
        };
        assert_eq!(decode_base64(Y2).unwrap(), y2);

        let y3 = youtube(
            "Rick Astley - Never Gonna Give You Up (Official Music Video)",
            "Rick Astley",
            213_000,
            "dQw4w9WgXcQ",
            Some("https://i.ytimg.com/vi/dQw4w9WgXcQ/maxresdefault.jpg"),
        );
        assert_eq!(decode_base64(Y3).unwrap(), y3);

        let p3 = TrackBlob {
            position_ms: 159_580,
            ..youtube(
                "Nosebleed Section",
                "Sightless in Shadow - Topic",
                160_000,
                "LWMR-kcwG-8",
                Some("https://i.ytimg.com/vi_webp/LWMR-kcwG-8/maxresdefault.webp"),
            )
        };
        assert_eq!(decode_base64(P3).unwrap(), p3);
    }

    #[test]
    fn emoji_vector_decodes_cesu8_surrogates() {
        let e3 = youtube(
            "Cozy animal crossing music that cure my headaches\u{1F33F}",
            "Tendo Farms",
            4_185_000,
            "8TbLuBOClSg",
            Some("https://i.ytimg.com/vi_webp/8TbLuBOClSg/maxresdefault.webp"),
        );
        let decoded = decode_base64(E3).unwrap();
        assert!(decoded.title.ends_with('🌿'));
        assert_eq!(decoded, e3);
    }

    #[test]
    fn soundcloud_vector_decodes_isrc() {
        let s3 = TrackBlob {
            version: 3,
            title: "Talk a Lot".to_owned(),
            author: "404vincent".to_owned(),
            length_ms: 125_910,
            identifier: "O:https://api-v2.soundcloud.com/media/soundcloud:tracks:851421076/352a4b90-7619-43a9-bb8b-221314c1c63a/stream/hls".to_owned(),
            is_stream: false,
            uri: some("https://soundcloud.com/404vincent/talk-a-lot"),
            artwork_url: some("https://i1.sndcdn.com/artworks-E3uzNFsF8C0W-0-original.jpg"),
            isrc: some("QZHNA1985784"),
            source_name: "soundcloud".to_owned(),
            source_data: SourceData::None,
            position_ms: 0,
        };
        assert_eq!(decode_base64(S3).unwrap(), s3);
    }

    #[test]
    fn http_vectors_decode_probe() {
        let h3 = http(
            3,
            "Death of Me",
            "SAINT PHNX",
            30_040,
            "https://www.mboxdrive.com/startmusic.mp3",
        );
        assert_eq!(decode_base64(H3).unwrap(), h3);
        let h2 = http(
            2,
            "Unknown title",
            "Unknown artist",
            29_988,
            "https://p.scdn.co/mp3-preview/ee121ca281c629bb4e99c33d877fe98fbb752289?cid=774b29d4f13844c495f206cafdad9c86",
        );
        assert_eq!(decode_base64(H2).unwrap(), h2);
    }

    #[test]
    fn v3_vectors_reencode_byte_identically() {
        for vector in V3 {
            let track = decode_base64(vector).unwrap();
            assert_eq!(encode_base64(&track).unwrap(), vector);
        }
    }

    #[test]
    fn v2_vectors_upgrade_to_v3() {
        let vance = decode_base64(VANCE_V2).unwrap();
        assert_eq!(vance.version, 2);
        assert_eq!(vance.title, "Vance Joy - 'Riptide' Official Video");
        assert_eq!(vance.author, "mushroomvideos");
        assert_eq!(vance.length_ms, 205_000);
        assert_eq!(vance.identifier, "uJ_1HMAGb4k");
        assert_eq!(encode_base64(&vance).unwrap(), VANCE_V3);
        for vector in [Y2, H2, VANCE_V2] {
            let track = decode_base64(vector).unwrap();
            let upgraded = encode(&track).unwrap();
            assert_eq!(upgraded[4], WRITE_VERSION);
            assert_eq!(upgraded.len(), bytes(vector).len() + 2);
            assert_round_trip(&track);
        }
    }

    #[test]
    fn plugin_source_is_unknown_with_lavalink_message() {
        let err = decode_base64(D3).unwrap_err();
        assert_eq!(err, DecodeError::UnknownSource("deezer".to_owned()));
        assert!(err.is_missing_source());
        assert_eq!(
            err.to_string(),
            "Failed to decode track due to a mismatching version or missing source manager"
        );
    }

    /// Builds a blob by hand: `header` then `body`.
    fn blob(header: u32, body: &[u8]) -> Vec<u8> {
        let mut out = header.to_be_bytes().to_vec();
        out.extend_from_slice(body);
        out
    }

    /// A `UTF` field holding `raw` bytes as they are.
    fn utf(raw: &[u8]) -> Vec<u8> {
        let mut out = u16::try_from(raw.len()).unwrap().to_be_bytes().to_vec();
        out.extend_from_slice(raw);
        out
    }

    /// A version 3 youtube body whose title is `raw_title`.
    fn body_with_title(raw_title: &[u8]) -> Vec<u8> {
        let mut body = vec![3];
        body.extend(utf(raw_title));
        body.extend(utf(b"a"));
        body.extend(42_i64.to_be_bytes());
        body.extend(utf(b"id"));
        body.extend([0, 0, 0, 0]);
        body.extend(utf(b"youtube"));
        body.extend(7_i64.to_be_bytes());
        body
    }

    fn versioned(body: &[u8]) -> Vec<u8> {
        blob(0x4000_0000 | u32::try_from(body.len()).unwrap(), body)
    }

    #[test]
    fn unversioned_header_reads_version_1_layout() {
        let mut body = utf(b"t");
        body.extend(utf(b"a"));
        body.extend(1_i64.to_be_bytes());
        body.extend(utf(b"file.mp3"));
        body.push(1);
        body.extend(utf(b"local"));
        body.extend(utf(b"m3u|hls-outer"));
        body.extend(5_i64.to_be_bytes());
        let track = decode(&blob(u32::try_from(body.len()).unwrap(), &body)).unwrap();
        assert_eq!(track.version, 1);
        assert_eq!(track.uri, None);
        assert!(track.is_stream);
        assert_eq!(
            track.source_data,
            SourceData::Probe("m3u|hls-outer".to_owned())
        );
        assert_eq!(track.position_ms, 5);
        assert_round_trip(&track);
    }

    #[test]
    fn newer_versions_use_v3_layout() {
        let mut body = body_with_title(b"t");
        body[0] = 200;
        let track = decode(&versioned(&body)).unwrap();
        assert_eq!(track.version, 200);
        assert_eq!(track.position_ms, 7);
    }

    #[test]
    fn framing_skips_slack_and_ignores_trailing_bytes() {
        let expected = decode_base64(H3).unwrap();
        let mut body = bytes(H3)[4..].to_vec();
        body.extend([9; 5]);
        assert_eq!(decode(&versioned(&body)).unwrap(), expected);
        let mut trailing = bytes(H3);
        trailing.extend([0xFF; 16]);
        assert_eq!(decode(&trailing).unwrap(), expected);
    }

    #[test]
    fn framing_errors() {
        assert_eq!(decode(&[]), Err(DecodeError::Truncated));
        assert_eq!(decode(&[0x40, 0, 0]), Err(DecodeError::Truncated));
        assert_eq!(
            decode(&blob(0x4000_0000, &[3; 32])),
            Err(DecodeError::Empty)
        );
        assert_eq!(decode(&blob(0, &[])), Err(DecodeError::Empty));
        for header in [0x7FFF_FFFF, 0x3FFF_FFFF, 0xFFFF_FFFF, 0x4000_1000] {
            assert_eq!(decode(&blob(header, &[3; 64])), Err(DecodeError::Truncated));
        }
        // A size one short of the fields: the position runs past the message.
        let mut short = bytes(Y3);
        short[3] -= 1;
        assert_eq!(decode(&short), Err(DecodeError::Truncated));
    }

    #[test]
    fn every_prefix_of_every_vector_is_truncated() {
        for vector in ALL {
            let full = bytes(vector);
            for len in 0..full.len() {
                assert_eq!(
                    decode(&full[..len]),
                    Err(DecodeError::Truncated),
                    "{vector} {len}"
                );
            }
        }
    }

    #[test]
    fn unknown_probe_is_rejected() {
        let mut raw = bytes(H3);
        let at = raw.len() - 11;
        assert_eq!(&raw[at..at + 3], b"mp3");
        raw[at..at + 3].copy_from_slice(b"aac");
        let err = decode(&raw).unwrap_err();
        assert_eq!(err, DecodeError::UnknownProbe("aac".to_owned()));
        assert!(err.is_missing_source());
    }

    #[test]
    fn modified_utf8_nul_and_lenient_forms() {
        let cases: [(&[u8], &str); 6] = [
            (b"a\xC0\x80b", "a\0b"),
            (b"a\0b", "a\0b"),
            (b"\xC1\x81", "A"),
            (b"\xE2\x82\xAC", "\u{20AC}"),
            (b"\xF0\x9F\x8C\xBF", "\u{1F33F}"),
            (b"\xED\xA0\xBCx", "\u{FFFD}x"),
        ];
        for (raw, text) in cases {
            let track = decode(&versioned(&body_with_title(raw))).unwrap();
            assert_eq!(track.title, text, "{raw:?}");
            assert_round_trip(&track);
        }
    }

    #[test]
    fn malformed_modified_utf8_is_rejected() {
        let cases: [&[u8]; 7] = [
            b"\x80",
            b"\xC3",
            b"\xC3\x41",
            b"\xE2\x82",
            b"\xF8\x80\x80\x80",
            b"\xF4\x90\x80\x80",
            b"\xF0\x80\x80\x80",
        ];
        for raw in cases {
            let result = decode(&versioned(&body_with_title(raw)));
            assert_eq!(result, Err(DecodeError::InvalidUtf), "{raw:?}");
        }
    }

    #[test]
    fn encoder_writes_cesu8_and_nul_as_two_bytes() {
        let track = TrackBlob {
            title: "\0\u{1F33F}".to_owned(),
            ..decode_base64(Y3).unwrap()
        };
        let blob = encode(&track).unwrap();
        assert_eq!(&blob[5..15], b"\x00\x08\xC0\x80\xED\xA0\xBC\xED\xBC\xBF");
    }

    #[test]
    fn encoder_limits_string_length() {
        let base = decode_base64(Y3).unwrap();
        let fits = TrackBlob {
            title: "a".repeat(65_535),
            ..base.clone()
        };
        assert_round_trip(&fits);
        let ascii = TrackBlob {
            author: "a".repeat(65_536),
            ..base.clone()
        };
        assert_eq!(
            encode(&ascii),
            Err(EncodeError::StringTooLong {
                field: "author",
                len: 65_536
            })
        );
        let euros = TrackBlob {
            isrc: Some("\u{20AC}".repeat(21_846)),
            ..base
        };
        assert_eq!(
            encode(&euros),
            Err(EncodeError::StringTooLong {
                field: "ISRC",
                len: 65_538
            })
        );
    }

    #[test]
    fn encoder_checks_source_data() {
        let yt = decode_base64(Y3).unwrap();
        let web = decode_base64(H3).unwrap();
        let cases = [
            (
                TrackBlob {
                    source_name: "deezer".to_owned(),
                    ..yt.clone()
                },
                EncodeError::UnknownSource("deezer".to_owned()),
            ),
            (
                TrackBlob {
                    source_data: SourceData::Probe("mp3".to_owned()),
                    ..yt
                },
                EncodeError::SourceDataMismatch("youtube".to_owned()),
            ),
            (
                TrackBlob {
                    source_data: SourceData::None,
                    ..web.clone()
                },
                EncodeError::SourceDataMismatch("http".to_owned()),
            ),
            (
                TrackBlob {
                    source_data: SourceData::Probe("aac|x".to_owned()),
                    ..web
                },
                EncodeError::UnknownProbe("aac|x".to_owned()),
            ),
        ];
        for (track, err) in cases {
            assert_eq!(encode(&track), Err(err));
        }
    }

    #[test]
    fn base64_accepts_missing_padding_and_stray_low_bits() {
        let expected = decode_base64(Y2).unwrap();
        assert_eq!(decode_base64(Y2.trim_end_matches('=')).unwrap(), expected);
        // The last symbol before "==" carries four unused bits; Java ignores them.
        let stray = Y2.replace("AA==", "AB==");
        assert_ne!(stray, Y2);
        assert_eq!(decode_base64(&stray).unwrap(), expected);
    }

    #[test]
    fn base64_rejects_bad_input() {
        let url_safe = Y3.replace('/', "_");
        assert_ne!(url_safe, Y3);
        let cases = [
            "!!!!".to_owned(),
            "QAAAjQ=".to_owned(),
            "QAAAj".to_owned(),
            url_safe,
            Y3.replacen("Ly", "L-", 1),
            format!(" {Y3}"),
            format!("{Y3}\n"),
            format!("{}\r\n{}", &Y3[..76], &Y3[76..]),
            format!("{Y2}="),
            Y2.replacen("==", "=", 1),
        ];
        for input in cases {
            let result = decode_base64(&input);
            assert!(
                matches!(result, Err(DecodeError::InvalidBase64(_))),
                "{input:?}: {result:?}"
            );
        }
        assert_eq!(decode_base64(""), Err(DecodeError::Truncated));
    }

    /// Marsaglia's xorshift64: deterministic and dependency-free.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }

        fn byte(&mut self) -> u8 {
            self.next().to_le_bytes()[0]
        }
    }

    /// Applies one random byte flip, overwrite, truncation, insertion or removal.
    fn mutate(rng: &mut XorShift, data: &mut Vec<u8>) {
        let at = rng.below(data.len() + 1);
        match rng.below(5) {
            0 if at < data.len() => data[at] ^= 1 << rng.below(8),
            1 if at < data.len() => data[at] = rng.byte(),
            2 => data.truncate(at),
            3 => data.insert(at, rng.byte()),
            _ if at < data.len() => {
                data.remove(at);
            }
            _ => data.push(rng.byte()),
        }
    }

    /// A random buffer, half the time behind a plausible versioned header.
    fn random_buffer(rng: &mut XorShift) -> Vec<u8> {
        let len = rng.below(300);
        let mut data: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
        if rng.below(2) == 0 {
            let header = 0x4000_0000 | u32::try_from(len).unwrap();
            data.splice(0..0, header.to_be_bytes());
        }
        data
    }

    #[test]
    fn randomized_inputs_never_panic_and_round_trip() {
        let vectors: Vec<Vec<u8>> = ALL.iter().map(|v| bytes(v)).collect();
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let mut decoded = 0;
        for i in 0..20_000 {
            let data = if i % 8 == 0 {
                random_buffer(&mut rng)
            } else {
                let mut data = vectors[rng.below(vectors.len())].clone();
                for _ in 0..=rng.below(3) {
                    mutate(&mut rng, &mut data);
                }
                data
            };
            if let Ok(track) = decode(&data) {
                decoded += 1;
                assert_round_trip(&track);
            }
        }
        assert!(decoded > 1_000, "only {decoded} inputs decoded");
    }
}
