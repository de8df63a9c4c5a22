//! The body of the `decode` fuzz target, also compiled into the engine's tests
//! (`engine/tests/corrupt.rs`) so that it builds and runs without cargo-fuzz.
//!
//! Feeds bytes through what a network track goes through: the load-time probe, then a
//! decode job on the pool over a network stream buffer that cannot seek and has no
//! known length, filled a kilobyte at a time (so opening and decoding starve and
//! replay as they do over a slow network). Any panic in symphonia must stay inside the decode guards: the
//! probe returns an error, the job reports a failure. A panic escaping them would kill
//! the job's thread, which this notices as a report channel that closed early.

use std::io::{Cursor, Read, Seek, SeekFrom};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use quaver_engine::decode::stream::{self as net, StreamHead, StreamInput};
use quaver_engine::decode::{probe, DecodePool, Input, JobReport, JobSpec, MediaSource};
use quaver_engine::ring::{RecordKind, PCM_FRAME_BYTES};

/// How long one input may take before it counts as a hang.
const LIMIT: Duration = Duration::from_secs(20);

/// Bytes read front to back, like an HTTP body of unknown length.
struct Stream(Cursor<Vec<u8>>);

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl Seek for Stream {
    fn seek(&mut self, _: SeekFrom) -> std::io::Result<u64> {
        Err(std::io::ErrorKind::Unsupported.into())
    }
}

impl MediaSource for Stream {
    fn is_seekable(&self) -> bool {
        false
    }
    fn byte_len(&self) -> Option<u64> {
        None
    }
}

fn stream(data: &[u8]) -> Box<dyn MediaSource> {
    Box::new(Stream(Cursor::new(data.to_vec())))
}

fn pool() -> &'static DecodePool {
    static POOL: OnceLock<DecodePool> = OnceLock::new();
    POOL.get_or_init(|| DecodePool::start(1).expect("a decode pool"))
}

/// Runs `data` through the probe and a whole decode; panics if a decoder panic
/// escaped its guard (or the job hung).
pub fn run(data: &[u8]) {
    // The container comes from the first bytes, as the HTTP source finds it.
    let extension = probe::sniff(data).map(|c| c.extension);
    // Guarded: a panic inside becomes an `Err`.
    let _ = probe::inspect(stream(data), extension);
    let (tx, rx) = mpsc::channel();
    let head = StreamHead {
        length: None,
        seekable: false,
    };
    let (buffer, _feeder) = net::in_memory(data.to_vec(), head, 64 * 1024, 1024);
    let spec = JobSpec {
        input: Input::Stream(StreamInput::new(buffer)),
        extension: extension.map(str::to_owned),
        start_ms: 0,
        epoch: 0,
        buffer_ms: 400,
        resample: Default::default(),
        encoder_complexity: 10,
    };
    let _job = pool().submit(spec, Box::new(move |r| drop(tx.send(r))));
    let mut reader = match rx.recv_timeout(LIMIT) {
        Ok(JobReport::Ready { frames, .. }) => frames,
        Ok(JobReport::LoadFailed(_) | JobReport::Panicked(_)) => return,
        Ok(other) => panic!("a report before Ready: {other:?}"),
        Err(e) => panic!("the job's thread ended without a report (an escaped panic?): {e}"),
    };
    let mut buf = vec![0u8; PCM_FRAME_BYTES];
    let start = Instant::now();
    loop {
        assert!(start.elapsed() < LIMIT, "the job did not end");
        match reader.read(&mut buf) {
            Some(rec) if matches!(rec.kind, RecordKind::End | RecordKind::Failed) => return,
            Some(_) => {}
            // A job whose thread died writes nothing more: the limit above catches it.
            None => std::thread::sleep(Duration::from_micros(200)),
        }
    }
}
