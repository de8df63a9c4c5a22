//! Audio format constants shared by the engine and the control plane.
//!
//! Discord voice carries 48 kHz stereo Opus in 20 ms frames; everything else is
//! derived from those three facts so that no layer hard-codes a second copy.

use std::time::Duration;

/// Output sample rate in Hz: Discord voice is always 48 kHz.
pub const SAMPLE_RATE: u32 = 48_000;

/// Output channel count: Discord voice is stereo.
pub const CHANNELS: u32 = 2;

/// Length of one frame (one RTP packet) in milliseconds.
pub const FRAME_MS: u32 = 20;

/// Frames per second of playback.
pub const FRAMES_PER_SECOND: u32 = 1_000 / FRAME_MS;

/// Samples per channel in one frame: the RTP timestamp advances by this per packet.
pub const FRAME_SAMPLES: u32 = SAMPLE_RATE / FRAMES_PER_SECOND;

/// Interleaved samples in one frame (all channels).
pub const FRAME_SAMPLES_INTERLEAVED: usize = (FRAME_SAMPLES * CHANNELS) as usize;

/// Frames a continuously playing player sends per minute; Lavalink's frame statistics
/// compare what was sent against this.
pub const FRAMES_PER_MINUTE: u32 = FRAMES_PER_SECOND * 60;

/// The tick period as a [`Duration`].
pub const FRAME_DURATION: Duration = Duration::from_millis(FRAME_MS as u64);

/// Converts a count of frames into milliseconds of audio.
pub const fn frames_to_ms(frames: u64) -> u64 {
    frames * FRAME_MS as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_constants_match_discord_framing() {
        assert_eq!(FRAME_SAMPLES, 960);
        assert_eq!(FRAME_SAMPLES_INTERLEAVED, 1920);
        assert_eq!(FRAMES_PER_MINUTE, 3000);
        assert_eq!(frames_to_ms(150), 3000);
    }
}
