//! Corrupt media through the decode pool: a panic in symphonia (the files of
//! `tests/media/corrupt/` each cause one) ends only its own job, with a failure report
//! and record, and the pool thread goes on decoding other tracks.

use std::io::{Cursor, Read, Seek, SeekFrom};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use quaver_engine::decode::{
    DecodePool, Input, JobReport, JobSpec, MediaSource, FAILED_BEFORE_AUDIO, FAILED_MID_TRACK,
};
use quaver_engine::ring::{RecordKind, PCM_FRAME_BYTES};

const WAIT: Duration = Duration::from_secs(20);

fn media(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../tests/media/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// The corpus: file, extension, and the panic message each causes.
const CORPUS: [(&str, &str, &str); 3] = [
    (
        "corrupt/seek-past-end.webm",
        "webm",
        "EBML header must be read",
    ),
    ("corrupt/invalid-position.webm", "webm", "invalid position"),
    ("corrupt/aac-max-sfb.m4a", "m4a", "index out of bounds"),
];

/// How a job ended, as its owner saw it.
#[derive(Debug)]
enum Outcome {
    /// Reached its end record after `frames` audio records.
    Ended { frames: usize },
    /// `Failed` record with `code` (of `epoch`) after `frames` audio records; `message`
    /// from the `Failed` report.
    Failed {
        frames: usize,
        code: u32,
        epoch: u32,
        message: String,
    },
    /// `Panicked` report: the decoder panicked while opening.
    Panicked(String),
}

fn spec(source: Box<dyn MediaSource>, ext: &str) -> JobSpec {
    let mut source = Some(source);
    JobSpec {
        input: Input::Open(Box::new(move || Ok(source.take().unwrap()))),
        extension: Some(ext.into()),
        start_ms: 0,
        epoch: 1,
        buffer_ms: 400,
        resample: Default::default(),
        encoder_complexity: 10,
    }
}

/// Submits `bytes` to the pool and follows the job to its end, draining the ring like
/// a tick thread; with `seek`, a seek to 0.5 s (epoch 2) is sent once it is ready.
fn play(pool: &DecodePool, source: Box<dyn MediaSource>, ext: &str, seek: bool) -> Outcome {
    let (tx, rx) = mpsc::channel();
    let handle = pool.submit(spec(source, ext), Box::new(move |r| drop(tx.send(r))));
    let mut reader = match rx.recv_timeout(WAIT).expect("the job reported") {
        JobReport::Ready { frames, .. } => frames,
        JobReport::Panicked(m) => return Outcome::Panicked(m),
        other => panic!("{other:?}"),
    };
    if seek {
        handle.seek(500, 2);
    }
    let mut buf = vec![0u8; PCM_FRAME_BYTES];
    let mut frames = 0;
    let start = Instant::now();
    while start.elapsed() < WAIT {
        let Some(rec) = reader.read(&mut buf) else {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        };
        match rec.kind {
            RecordKind::Pcm | RecordKind::Opus => frames += 1,
            RecordKind::End => return Outcome::Ended { frames },
            RecordKind::Failed => {
                let message = match rx.recv_timeout(WAIT) {
                    Ok(JobReport::Failed { message, .. }) => message,
                    other => panic!("a Failed report before the record: {other:?}"),
                };
                return Outcome::Failed {
                    frames,
                    code: u32::from_le_bytes(buf[..4].try_into().unwrap()),
                    epoch: rec.epoch,
                    message,
                };
            }
        }
    }
    panic!("the job did not end within {WAIT:?} ({frames} frames)");
}

fn cursor(bytes: Vec<u8>) -> Box<dyn MediaSource> {
    Box::new(Cursor::new(bytes))
}

/// A good file plays to its end on `pool`.
fn assert_plays(pool: &DecodePool, what: &str) {
    match play(pool, cursor(media("sine.mp3")), "mp3", false) {
        Outcome::Ended { frames } => assert!(frames >= 98, "{what}: {frames} frames"),
        other => panic!("{what}: a good file after it: {other:?}"),
    }
}

#[test]
fn each_corrupt_file_fails_its_job_and_the_thread_decodes_on() {
    let pool = DecodePool::start(1).unwrap();
    for (file, ext, panic) in CORPUS {
        match play(&pool, cursor(media(file)), ext, false) {
            // Probing panics: nothing was produced.
            Outcome::Panicked(m) => assert!(m.contains(panic), "{file}: {m}"),
            // Decoding panics after the first frames: a mid-track failure.
            Outcome::Failed {
                frames,
                code,
                message,
                ..
            } => {
                assert!(message.contains(panic), "{file}: {message}");
                assert_eq!(code, FAILED_MID_TRACK, "{file}: audio came before");
                assert!(frames > 0, "{file}");
            }
            other => panic!("{file}: {other:?}"),
        }
        // The one pool thread survived the panic.
        assert_plays(&pool, file);
    }
}

#[test]
fn more_corrupt_files_than_threads_leave_every_thread_working() {
    let pool = DecodePool::start(2).unwrap();
    for round in 0..3 {
        for (file, ext, _) in CORPUS {
            let outcome = play(&pool, cursor(media(file)), ext, false);
            assert!(
                matches!(outcome, Outcome::Panicked(_) | Outcome::Failed { .. }),
                "{file} (round {round}): {outcome:?}"
            );
        }
    }
    // Jobs go round-robin over the lanes: these land on both threads.
    for n in 0..4 {
        assert_plays(&pool, &format!("good file {n}"));
    }
}

/// What a [`Faulty`] source panics in.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    /// Reads after this many bytes.
    ReadAfter(u64),
    /// Any seek after the first `n` (the prober may seek while opening).
    SeekAfter(u32),
    /// Dropping the source.
    Drop,
}

/// A WAV file that panics where told, standing in for a panic inside the decoder's
/// own code on each path the decode thread guards.
struct Faulty {
    inner: Cursor<Vec<u8>>,
    fault: Fault,
    seeks: u32,
}

impl Read for Faulty {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let Fault::ReadAfter(n) = self.fault {
            assert!(self.inner.position() < n, "a read past byte {n}");
        }
        self.inner.read(buf)
    }
}

impl Seek for Faulty {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        if let Fault::SeekAfter(n) = self.fault {
            self.seeks += 1;
            assert!(self.seeks <= n, "a seek");
        }
        self.inner.seek(to)
    }
}

impl MediaSource for Faulty {
    fn is_seekable(&self) -> bool {
        true
    }
    fn byte_len(&self) -> Option<u64> {
        Some(self.inner.get_ref().len() as u64)
    }
}

impl Drop for Faulty {
    fn drop(&mut self) {
        if self.fault == Fault::Drop && !std::thread::panicking() {
            panic!("dropping the source");
        }
    }
}

/// 2 s of 48 kHz stereo silence as WAV.
fn wav() -> Vec<u8> {
    let data: u32 = 96_000 * 4;
    let mut v = Vec::new();
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&(36 + data).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&2u16.to_le_bytes());
    v.extend_from_slice(&48_000u32.to_le_bytes());
    v.extend_from_slice(&(48_000u32 * 4).to_le_bytes());
    v.extend_from_slice(&4u16.to_le_bytes());
    v.extend_from_slice(&16u16.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&data.to_le_bytes());
    v.resize(v.len() + data as usize, 0);
    v
}

fn faulty(fault: Fault) -> Box<dyn MediaSource> {
    Box::new(Faulty {
        inner: Cursor::new(wav()),
        fault,
        seeks: 0,
    })
}

#[test]
fn a_panic_before_any_audio_fails_the_track_as_not_loaded() {
    let pool = DecodePool::start(1).unwrap();
    // The header parses; the first read of samples panics.
    match play(&pool, faulty(Fault::ReadAfter(64)), "wav", false) {
        Outcome::Failed {
            frames: 0,
            code,
            message,
            ..
        } => {
            assert_eq!(code, FAILED_BEFORE_AUDIO);
            assert!(message.contains("a read past byte 64"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_plays(&pool, "after a read panic");
}

#[test]
fn a_panic_while_seeking_fails_the_track_in_the_new_epoch() {
    let pool = DecodePool::start(1).unwrap();
    // Opening seeks the source once (back to the start after looking for an Ogg
    // page, then it reads a WAV header front to back); the seek command's seek is the
    // second, and it panics.
    match play(&pool, faulty(Fault::SeekAfter(1)), "wav", true) {
        Outcome::Failed { epoch, message, .. } => {
            assert_eq!(epoch, 2, "the record is of the seek's epoch");
            assert!(message.contains("a seek"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_plays(&pool, "after a seek panic");
}

#[test]
fn a_panic_while_dropping_a_finished_job_leaves_the_thread_working() {
    let pool = DecodePool::start(1).unwrap();
    match play(&pool, faulty(Fault::Drop), "wav", false) {
        Outcome::Ended { frames } => assert!(frames >= 98, "{frames}"),
        other => panic!("{other:?}"),
    }
    assert_plays(&pool, "after a drop panic");
}

/// The `decode` fuzz target's body (control/fuzz), built here so that it compiles and
/// runs without cargo-fuzz.
#[path = "../../control/fuzz/fuzz_targets/decode_input.rs"]
mod decode_input;

#[test]
fn the_fuzz_target_body_runs_the_corpus_and_the_media_as_streams() {
    for (file, ..) in CORPUS {
        decode_input::run(&media(file));
    }
    for file in [
        "sine.webm",
        "sine.m4a",
        "sine.mp3",
        "sine.ogg",
        "sine.flac",
        "sine.opus",
    ] {
        let bytes = media(file);
        decode_input::run(&bytes);
        decode_input::run(&bytes[..bytes.len() / 3]);
    }
    decode_input::run(&[]);
}
