//! The Opus codec as the tick sees it: traits, so the tick can be tested and
//! benchmarked with any implementation, and libopus stays an implementation detail.

/// Turns one 20 ms frame of 48 kHz stereo PCM into an Opus packet.
pub trait FrameEncoder: Send {
    /// Encodes `pcm` (1920 interleaved samples) into `out`; returns the packet length.
    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError>;
}

/// Turns an Opus packet back into PCM, for players whose volume or filters need the
/// samples of an Opus source.
pub trait FrameDecoder: Send {
    /// Decodes `packet` into `pcm` (1920 interleaved samples); returns samples per channel.
    fn decode(&mut self, packet: &[u8], pcm: &mut [i16]) -> Result<usize, CodecError>;
}

/// A codec call failed; the frame is counted as nulled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodecError;

impl std::fmt::Debug for dyn FrameEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FrameEncoder")
    }
}

impl std::fmt::Debug for dyn FrameDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FrameDecoder")
    }
}
