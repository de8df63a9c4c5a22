//! libopus (through `audiopus`) behind the engine's codec traits.

use audiopus::coder::{Decoder, Encoder};
use audiopus::packet::Packet;
use audiopus::{Application, Channels, MutSignals, SampleRate};

use crate::codec::{CodecError, FrameDecoder, FrameEncoder};

/// Opus encoder configured as lavaplayer configures its own: 48 kHz stereo,
/// `application = audio`, complexity = `opusEncodingQuality`, default bitrate.
pub struct OpusEncoder {
    inner: Encoder,
}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpusEncoder")
    }
}

impl OpusEncoder {
    /// A new encoder with complexity 0–10.
    pub fn new(complexity: u8) -> Result<Self, audiopus::Error> {
        let mut inner = Encoder::new(SampleRate::Hz48000, Channels::Stereo, Application::Audio)?;
        inner.set_complexity(complexity.min(10))?;
        Ok(OpusEncoder { inner })
    }
}

impl FrameEncoder for OpusEncoder {
    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        self.inner.encode(pcm, out).map_err(|_| CodecError)
    }
}

/// Opus decoder to 48 kHz stereo i16.
pub struct OpusDecoder {
    inner: Decoder,
}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpusDecoder")
    }
}

impl OpusDecoder {
    /// A new decoder.
    pub fn new() -> Result<Self, audiopus::Error> {
        Ok(OpusDecoder {
            inner: Decoder::new(SampleRate::Hz48000, Channels::Stereo)?,
        })
    }
}

impl FrameDecoder for OpusDecoder {
    fn decode(&mut self, packet: &[u8], pcm: &mut [i16]) -> Result<usize, CodecError> {
        let packet = Packet::try_from(packet).map_err(|_| CodecError)?;
        let out = MutSignals::try_from(pcm).map_err(|_| CodecError)?;
        self.inner
            .decode(Some(packet), out, false)
            .map_err(|_| CodecError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::{FRAME_SAMPLES, FRAME_SAMPLES_INTERLEAVED, SAMPLE_RATE};

    #[test]
    fn a_sine_survives_encode_and_decode() {
        let mut enc = OpusEncoder::new(10).unwrap();
        let mut dec = OpusDecoder::new().unwrap();
        let mut packet = [0u8; 1275];
        let mut out = vec![0i16; FRAME_SAMPLES_INTERLEAVED];
        let mut energy_in = 0f64;
        let mut energy_out = 0f64;
        for frame in 0..25 {
            let pcm: Vec<i16> = (0..FRAME_SAMPLES)
                .flat_map(|i| {
                    let t = (frame * FRAME_SAMPLES + i) as f64 / SAMPLE_RATE as f64;
                    let s = ((t * 440.0 * std::f64::consts::TAU).sin() * 12000.0) as i16;
                    [s, s]
                })
                .collect();
            let n = enc.encode(&pcm, &mut packet).unwrap();
            assert!(n > 10 && n < 1275);
            assert_eq!(
                dec.decode(&packet[..n], &mut out).unwrap(),
                FRAME_SAMPLES as usize
            );
            if frame > 5 {
                energy_in += pcm.iter().map(|&s| (s as f64).powi(2)).sum::<f64>();
                energy_out += out.iter().map(|&s| (s as f64).powi(2)).sum::<f64>();
            }
        }
        let ratio = energy_out / energy_in;
        assert!((0.8..1.2).contains(&ratio), "energy ratio {ratio}");
    }
}
