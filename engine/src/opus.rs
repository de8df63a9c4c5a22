//! libopus (through `audiopus`) behind the engine's codec traits.

use audiopus::coder::{Decoder, Encoder};
use audiopus::packet::Packet;
use audiopus::{Application, Channels, MutSignals, SampleRate};

use crate::codec::{CodecError, FrameDecoder, FrameEncoder};

/// Samples per channel at 48 kHz in an Opus packet, from its TOC byte and frame count
/// (RFC 6716 §3.1–3.2); `None` when the packet is too short to say. Pure header
/// arithmetic: the decode threads call it for every passthrough packet.
pub fn packet_samples(packet: &[u8]) -> Option<usize> {
    let toc = *packet.first()?;
    let config = usize::from(toc >> 3);
    let per_frame = match config {
        // SILK-only: 10, 20, 40, 60 ms.
        0..=11 => [480, 960, 1920, 2880][config % 4],
        // Hybrid: 10, 20 ms.
        12..=15 => [480, 960][config % 2],
        // CELT-only: 2.5, 5, 10, 20 ms.
        _ => [120, 240, 480, 960][config % 4],
    };
    let frames = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => usize::from(*packet.get(1)? & 0x3F),
    };
    Some(per_frame * frames)
}

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
    fn packet_samples_agrees_with_libopus() {
        let mut packets: Vec<Vec<u8>> = Vec::new();
        for toc in 0..=255u8 {
            for second in [0u8, 1, 3, 0x3F, 0x83] {
                packets.push(vec![toc, second, 0, 0]);
            }
        }
        for p in packets {
            let ours = packet_samples(&p);
            let theirs = audiopus::packet::nb_samples(
                Packet::try_from(&p[..]).unwrap(),
                SampleRate::Hz48000,
            )
            .ok();
            if let Some(n) = theirs {
                assert_eq!(ours, Some(n), "packet {p:?}");
            }
        }
        assert_eq!(packet_samples(&[]), None);
        assert_eq!(
            packet_samples(&[0x03]),
            None,
            "code 3 needs its frame-count byte"
        );
        assert_eq!(
            packet_samples(&[0xF8, 0xFF, 0xFE]),
            Some(960),
            "Discord's silence"
        );
    }

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
