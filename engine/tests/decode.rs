//! The decode pool against real media: a sine of known frequency must come out of the
//! frame ring as 48 kHz stereo frames of the right count and pitch, in every format.

use std::io::Cursor;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use quaver_engine::codec::FrameDecoder;
use quaver_engine::decode::stream::{self as net, StreamHead, StreamInput};
use quaver_engine::decode::{DecodePool, Input, JobReport, JobSpec, MediaSource};
use quaver_engine::opus::OpusDecoder;
use quaver_engine::ring::{FrameReader, RecordKind, PCM_FRAME_BYTES};

/// A mono 16-bit WAV file with a sine.
pub fn wav(rate: u32, hz: f32, secs: f32) -> Vec<u8> {
    let n = (rate as f32 * secs) as u32;
    let mut v = Vec::new();
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&(36 + n * 2).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&rate.to_le_bytes());
    v.extend_from_slice(&(rate * 2).to_le_bytes());
    v.extend_from_slice(&2u16.to_le_bytes());
    v.extend_from_slice(&16u16.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&(n * 2).to_le_bytes());
    for i in 0..n {
        let s = (i as f32 / rate as f32 * hz * std::f32::consts::TAU).sin() * 16000.0;
        v.extend_from_slice(&(s as i16).to_le_bytes());
    }
    v
}

/// What came out of a ring.
#[derive(Debug, Default)]
pub struct Output {
    pub left: Vec<i16>,
    pub frames: usize,
    pub opus_frames: usize,
    pub ended: bool,
    pub failed: bool,
    pub passthrough: bool,
}

/// Runs one job to its end, draining the ring like a tick thread would.
pub fn decode(bytes: Vec<u8>, ext: &str, start_ms: u64) -> Result<Output, String> {
    decode_input(
        Input::Open(Box::new(move || {
            Ok(Box::new(Cursor::new(bytes)) as Box<dyn MediaSource>)
        })),
        ext,
        start_ms,
        usize::MAX,
    )
}

/// Runs one job over `input` to its end, or to `limit` frames.
pub fn decode_input(
    input: Input,
    ext: &str,
    start_ms: u64,
    limit: usize,
) -> Result<Output, String> {
    let pool = DecodePool::start(1).unwrap();
    let (tx, rx) = mpsc::channel();
    let spec = JobSpec {
        input,
        extension: Some(ext.into()),
        start_ms,
        epoch: 1,
        buffer_ms: 400,
        resample: quaver_engine::decode::pcm::ResampleQuality::High,
        encoder_complexity: 10,
    };
    let _handle = pool.submit(spec, Box::new(move |r| drop(tx.send(r))));
    let (mut reader, passthrough): (FrameReader, bool) =
        match rx.recv_timeout(Duration::from_secs(10)).unwrap() {
            JobReport::Ready {
                frames,
                passthrough,
            } => (frames, passthrough),
            JobReport::LoadFailed(m) => return Err(m),
            other => panic!("{other:?}"),
        };
    let mut out = Output {
        passthrough,
        ..Default::default()
    };
    let mut opus = OpusDecoder::new().unwrap();
    let mut buf = vec![0u8; PCM_FRAME_BYTES];
    let mut pcm = vec![0i16; 1920];
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) && out.frames < limit {
        let Some(rec) = reader.read(&mut buf) else {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        };
        match rec.kind {
            RecordKind::Pcm => {
                for pair in buf[..rec.len].chunks_exact(4) {
                    out.left.push(i16::from_ne_bytes([pair[0], pair[1]]));
                }
            }
            RecordKind::Opus => {
                out.opus_frames += 1;
                opus.decode(&buf[..rec.len], &mut pcm).unwrap();
                out.left.extend(pcm.iter().step_by(2));
            }
            RecordKind::End => {
                out.ended = true;
                break;
            }
            RecordKind::Failed => {
                out.failed = true;
                break;
            }
        }
        out.frames += 1;
    }
    Ok(out)
}

/// Dominant frequency from zero crossings, skipping the edges.
pub fn frequency(left: &[i16]) -> f32 {
    let body = &left[left.len() / 10..left.len() * 9 / 10];
    let crossings = body.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
    crossings as f32 / 2.0 / (body.len() as f32 / 48_000.0)
}

#[test]
fn wav_at_44k1_becomes_48k_frames_with_the_same_pitch() {
    let out = decode(wav(44_100, 1000.0, 2.0), "wav", 0).unwrap();
    assert!(out.ended && !out.passthrough);
    assert!(
        (99..=101).contains(&out.frames),
        "{} frames for 2 s",
        out.frames
    );
    let hz = frequency(&out.left);
    assert!((hz - 1000.0).abs() < 5.0, "{hz} Hz");
}

#[test]
fn start_position_and_garbage() {
    let out = decode(wav(48_000, 500.0, 2.0), "wav", 1_500).unwrap();
    assert!(
        (24..=26).contains(&out.frames),
        "seeking to 1.5 s of 2 s leaves 25 frames, got {}",
        out.frames
    );
    let err = decode(b"this is not audio at all, just text".repeat(50), "mp3", 0).unwrap_err();
    assert!(!err.is_empty());
}

fn media(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../tests/media/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[test]
fn every_format_decodes_to_a_1khz_sine_of_two_seconds() {
    for (file, ext, passthrough) in [
        ("sine.mp3", "mp3", false),
        ("sine.flac", "flac", false),
        ("sine.ogg", "ogg", false),
        ("sine.m4a", "m4a", false),
        ("sine.opus", "opus", true),
        ("sine.webm", "webm", true),
    ] {
        let out = decode(media(file), ext, 0).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(out.ended, "{file}: ended");
        assert_eq!(out.passthrough, passthrough, "{file}: passthrough");
        if passthrough {
            assert!(
                out.opus_frames >= 98,
                "{file}: Opus packets pass through untouched ({})",
                out.opus_frames
            );
        }
        // Encoders add priming/padding: allow a few frames either way.
        assert!(
            (98..=104).contains(&out.frames),
            "{file}: {} frames for 2 s",
            out.frames
        );
        let hz = frequency(&out.left);
        assert!((hz - 1000.0).abs() < 10.0, "{file}: {hz} Hz");
    }
}

#[test]
fn seeking_lands_within_a_frame() {
    for (file, ext) in [
        ("sine.mp3", "mp3"),
        ("sine.flac", "flac"),
        ("sine.opus", "opus"),
        ("sine.webm", "webm"),
        ("sine.m4a", "m4a"),
        ("sine.ogg", "ogg"),
    ] {
        let whole = decode(media(file), ext, 0).unwrap().frames;
        let out = decode(media(file), ext, 1_000).unwrap_or_else(|e| panic!("{file}: {e}"));
        let expected = whole as i64 - 50;
        assert!(
            (out.frames as i64 - expected).abs() <= 1,
            "{file}: {} frames after seeking to 1 s of {whole}",
            out.frames
        );
    }
}

/// Over the network path (bytes arriving 700 at a time into a 64 KiB read-ahead, the
/// probe and seeks starving and replaying), every format decodes to exactly what the
/// same file gives, from the start and from a seek.
#[test]
fn a_network_stream_decodes_exactly_as_the_file_does() {
    let media = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/media");
    let cases = [
        ("sine.mp3", 700),
        ("sine.flac", 700),
        ("sine.ogg", 700),
        ("sine.opus", 700),
        ("sine.m4a", 700),
        ("sine.webm", 700),
        // Large enough that the open and the seek (an Ogg bisection) starve.
        ("long.opus", 40_000),
        ("long.mp3", 40_000),
    ];
    for (name, seek_ms) in cases {
        let bytes = std::fs::read(media.join(name)).unwrap();
        let ext = name.rsplit('.').next().unwrap();
        for start_ms in [0, seek_ms] {
            let open = |input| decode_input(input, ext, start_ms, 250).unwrap();
            let file_bytes = bytes.clone();
            let file = open(Input::Open(Box::new(move || {
                Ok(Box::new(Cursor::new(file_bytes)) as Box<dyn MediaSource>)
            })));
            let head = StreamHead {
                length: Some(bytes.len() as u64),
                seekable: true,
            };
            let (buffer, _feeder) = net::in_memory(bytes.clone(), head, 64 * 1024, 700);
            let stream = open(Input::Stream(StreamInput::new(buffer)));
            let what = format!("{name} from {start_ms} ms");
            assert!(file.frames > 50 && !file.failed && !stream.failed, "{what}");
            assert_eq!(file.frames, stream.frames, "{what}");
            assert_eq!(file.passthrough, stream.passthrough, "{what}");
            if name.ends_with(".mp3") && start_ms > 0 {
                // Over the network MP3 seeks by its average bitrate, as lavaplayer's
                // does: the same audio, within a frame or two of where the file lands.
                let (f, s) = (frequency(&file.left), frequency(&stream.left));
                assert!((f - s).abs() < 10.0, "{what}: {f} Hz vs {s} Hz");
            } else {
                assert!(file.left == stream.left, "{what}: the samples differ");
            }
        }
    }
}
