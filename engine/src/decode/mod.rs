//! The decode pool: plain OS threads (not the tick threads, not tokio) that turn
//! sources into frame-ring records ahead of playback.
//!
//! Each thread round-robins over its jobs, decoding a few frames for each whose ring
//! has room, and waits for a wake-up (or a few ms) when every ring is full. The number
//! of threads is fixed at startup, whatever the number of players.
//!
//! No job ever waits for the network on a pool thread. A network track's bytes are
//! fetched by async tasks elsewhere into its [`stream::StreamBuffer`]; a job whose
//! buffer lacks the bytes it needs is *parked* (not visited) and woken by the
//! fetcher when they arrive, so a stalled server delays only its own track.
//!
//! A job whose ring is full rests: it is not visited again until about half its ring
//! has played ([`Job::rest`]; it refills only then), unless a command for it arrives,
//! which wakes it at once. Visiting thousands of resting jobs on every pass, each
//! visit a few cache misses, had cost a decode thread more than the decoding itself.
//!
//! symphonia still panics on some corrupt input. Every call into it — opening and
//! probing, each visit's seeks and decoding, and dropping a job — runs inside
//! [`guard::catch`]: a panic ends only its own job, whose track then fails like any
//! other (`Panicked`, or `Failed` with its record), and the thread carries on with
//! its other jobs.

pub mod guard;
mod job;
pub mod ogg_opus;
pub mod pcm;
pub mod probe;
pub mod stream;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use job::{
    Input, Job, JobCommand, JobReport, JobSpec, OpenFailure, Opener, Pump, FAILED_BEFORE_AUDIO,
    FAILED_MID_TRACK,
};
/// A byte source the decoder can read and (when seekable) seek.
pub use symphonia::core::io::MediaSource;

/// Frames decoded per job before moving to the next one.
const FRAMES_PER_TURN: usize = 8;
/// Sleep when every ring is full or no job exists.
const IDLE_SLEEP: Duration = Duration::from_millis(5);
/// The backstop of a job whose `park` is unrepresentable.
const REST: Duration = Duration::from_millis(100);
/// A parked job (waiting for network bytes) is woken by its stream when they arrive;
/// this look at it notices a stalled server (see [`stream::STALL_GRACE`]).
const PARK: Duration = Duration::from_millis(250);

/// A decode thread's inputs: new jobs (only the pool holds this sender, so the thread
/// sees it disconnect when the pool stops), and the ids of jobs that were just sent a
/// command (the job handles hold these senders), to visit at once even if resting.
#[derive(Debug)]
struct Lane {
    jobs: Sender<NewJob>,
    attention: Sender<u64>,
}

/// Callback receiving a job's reports, called on the decode thread.
pub type ReportFn = Box<dyn FnMut(JobReport) + Send>;

struct NewJob {
    id: u64,
    spec: JobSpec,
    commands: Receiver<JobCommand>,
    report: ReportFn,
}

/// Controls one submitted job.
#[derive(Clone)]
pub struct JobHandle {
    id: u64,
    commands: Sender<JobCommand>,
    attention: Sender<u64>,
}

impl std::fmt::Debug for JobHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobHandle").field("id", &self.id).finish()
    }
}

impl JobHandle {
    /// Seeks the job; `false` if it already ended.
    pub fn seek(&self, position_ms: u64, epoch: u32) -> bool {
        let sent = self
            .commands
            .send(JobCommand::Seek { position_ms, epoch })
            .is_ok();
        self.wake();
        sent
    }

    /// Stops the job.
    pub fn stop(&self) {
        let _ = self.commands.send(JobCommand::Stop);
        self.wake();
    }

    /// Sent after the command, so the visit it causes finds the command queued.
    fn wake(&self) {
        let _ = self.attention.send(self.id);
    }
}

/// The decode threads.
#[derive(Debug)]
pub struct DecodePool {
    lanes: Vec<Lane>,
    next: AtomicUsize,
    ids: AtomicU64,
    threads: Vec<JoinHandle<()>>,
}

impl DecodePool {
    /// Starts `threads` decode threads.
    pub fn start(threads: usize) -> std::io::Result<Self> {
        Self::start_with_park(threads, PARK)
    }

    /// [`Self::start`] with another backstop for parked jobs (tests set it out of
    /// reach, so that only the streams' wakes can move a parked job on).
    fn start_with_park(threads: usize, park: Duration) -> std::io::Result<Self> {
        guard::install_hook();
        let mut lanes = Vec::new();
        let mut handles = Vec::new();
        for i in 0..threads.max(1) {
            let (jobs, incoming) = mpsc::channel();
            let (attention, woken) = mpsc::channel();
            handles.push(
                std::thread::Builder::new()
                    .name(format!("quaver-decode-{i}"))
                    .spawn(move || run(incoming, woken, park))?,
            );
            lanes.push(Lane { jobs, attention });
        }
        Ok(DecodePool {
            lanes,
            next: AtomicUsize::new(0),
            ids: AtomicU64::new(0),
            threads: handles,
        })
    }

    /// Submits a job; `report` receives `Ready`/`LoadFailed`/`Failed` on the decode thread.
    /// A network stream's fetcher wakes the job through its lane when bytes arrive.
    pub fn submit(&self, spec: JobSpec, report: ReportFn) -> JobHandle {
        let (tx, rx) = mpsc::channel();
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        let lane = self.next.fetch_add(1, Ordering::Relaxed) % self.lanes.len();
        let attention = self.lanes[lane].attention.clone();
        if let Input::Stream(stream) = &spec.input {
            let wake = attention.clone();
            stream.buffer().set_job_waker(std::sync::Arc::new(move || {
                let _ = wake.send(id);
            }));
        }
        let job = NewJob {
            id,
            spec,
            commands: rx,
            report,
        };
        if let Err(mpsc::SendError(job)) = self.lanes[lane].jobs.send(job) {
            let mut report = job.report;
            report(JobReport::LoadFailed("the decoder pool has stopped".into()));
        }
        JobHandle {
            id,
            commands: tx,
            attention,
        }
    }
}

impl Drop for DecodePool {
    fn drop(&mut self) {
        self.lanes.clear();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A job's life on its thread: waiting to open (a network stream whose probe needs
/// bytes not there yet), then decoding.
enum Stage {
    Opening(Option<JobSpec>),
    Playing(Job),
}

struct Running {
    id: u64,
    stage: Stage,
    commands: Receiver<JobCommand>,
    report: ReportFn,
}

/// A decode thread's jobs, with when each is next due in a compact array of its own,
/// so that passing over a resting job touches no memory of that job.
#[derive(Default)]
struct Jobs {
    jobs: Vec<Running>,
    due: Vec<Instant>,
    index: HashMap<u64, usize>,
}

impl Jobs {
    fn push(&mut self, r: Running, now: Instant) {
        self.index.insert(r.id, self.jobs.len());
        self.jobs.push(r);
        self.due.push(now);
    }

    fn wake(&mut self, id: u64, now: Instant) {
        if let Some(&i) = self.index.get(&id) {
            self.due[i] = now;
        }
    }

    fn remove(&mut self, i: usize) {
        let gone = self.jobs.swap_remove(i);
        self.due.swap_remove(i);
        self.index.remove(&gone.id);
        if let Some(moved) = self.jobs.get(i) {
            self.index.insert(moved.id, i);
        }
        let id = gone.id;
        // Dropping a demuxer (above all one that already panicked) may panic too.
        if let Err(panic) = guard::catch(move || drop(gone)) {
            tracing::warn!(job = id, panic = %panic, "a decode job panicked while being dropped");
        }
    }
}

/// What one visit to a job found.
enum Visit {
    Busy,
    /// The ring is full: not visited for this long (unless a command wakes it).
    Rest(Duration),
    /// Waiting for network bytes: not visited until its stream wakes it.
    Park,
    End,
}

/// Visits a job, containing a panic in its decoder: the job then only writes its
/// failure record (see [`Job::break_down`]) and ends.
fn visit(r: &mut Running) -> Visit {
    // Unwind safety: after a panic only `break_down` and the ring writer are used on
    // the job, never the format reader or decoder the panic may have left half-changed.
    match guard::catch(|| visit_unguarded(r)) {
        Ok(visit) => visit,
        Err(panic) => {
            tracing::warn!(job = r.id, panic = %panic, "a decode job panicked; its track fails");
            let message = format!("the decoder panicked: {panic}");
            match &mut r.stage {
                Stage::Playing(job) => {
                    let code = job.break_down();
                    (r.report)(JobReport::Failed { code, message });
                    Visit::Busy
                }
                // Nothing of the half-opened job is left (dropped while unwinding).
                Stage::Opening(_) => {
                    (r.report)(JobReport::Panicked(message));
                    Visit::End
                }
            }
        }
    }
}

fn visit_unguarded(r: &mut Running) -> Visit {
    loop {
        match r.commands.try_recv() {
            Ok(cmd) => {
                let go_on = match &mut r.stage {
                    Stage::Playing(job) => job.command(cmd),
                    Stage::Opening(spec) => match (cmd, spec) {
                        (JobCommand::Seek { position_ms, epoch }, Some(spec)) => {
                            spec.start_ms = position_ms;
                            spec.epoch = epoch;
                            true
                        }
                        _ => false,
                    },
                };
                if !go_on {
                    return Visit::End;
                }
            }
            Err(TryRecvError::Empty) => break,
            Err(TryRecvError::Disconnected) => return Visit::End,
        }
    }
    let job = match &mut r.stage {
        Stage::Playing(job) => job,
        Stage::Opening(spec) => {
            let Some(spec) = spec.take() else {
                return Visit::End;
            };
            if let Input::Stream(stream) = &spec.input {
                if !stream.buffer().poll_ready(stream::OPEN_MARGIN) {
                    r.stage = Stage::Opening(Some(spec));
                    return Visit::Park;
                }
            }
            match Job::open(spec) {
                Ok((job, ready)) => {
                    (r.report)(ready);
                    r.stage = Stage::Playing(job);
                    return Visit::Busy;
                }
                Err(OpenFailure::Starved(spec)) => {
                    // Park until the bytes the probe now wants are cached (the stream
                    // wakes the job; see `Job::starved`), unless they already are.
                    let ready = match &spec.input {
                        Input::Stream(stream) => stream.buffer().poll_ready(stream::OPEN_MARGIN),
                        Input::Open(_) => true,
                    };
                    r.stage = Stage::Opening(Some(spec));
                    return if ready { Visit::Busy } else { Visit::Park };
                }
                Err(OpenFailure::Failed(message)) => {
                    (r.report)(JobReport::LoadFailed(message));
                    return Visit::End;
                }
            }
        }
    };
    match job.pump(FRAMES_PER_TURN, &mut *r.report) {
        Pump::Busy => Visit::Busy,
        Pump::Full => Visit::Rest(job.rest()),
        Pump::Starved => Visit::Park,
        Pump::Finished => Visit::End,
    }
}

fn run(incoming: Receiver<NewJob>, attention: Receiver<u64>, park: Duration) {
    let mut jobs = Jobs::default();
    let mut pool_gone = false;
    loop {
        loop {
            match incoming.try_recv() {
                Ok(new) => jobs.push(
                    Running {
                        id: new.id,
                        stage: Stage::Opening(Some(new.spec)),
                        commands: new.commands,
                        report: new.report,
                    },
                    Instant::now(),
                ),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) if jobs.jobs.is_empty() => return,
                Err(TryRecvError::Disconnected) => {
                    if !pool_gone {
                        // The pool is gone: visit every job once now (parked ones
                        // too), so those whose handles are gone end and the thread
                        // can stop without waiting out their backstops.
                        pool_gone = true;
                        let now = Instant::now();
                        jobs.due.iter_mut().for_each(|d| *d = now);
                    }
                    break;
                }
            }
        }
        while let Ok(id) = attention.try_recv() {
            jobs.wake(id, Instant::now());
        }
        let now = Instant::now();
        let mut busy = false;
        let mut i = 0;
        while i < jobs.jobs.len() {
            if jobs.due[i] > now {
                i += 1;
                continue;
            }
            match visit(&mut jobs.jobs[i]) {
                Visit::Busy => {
                    busy = true;
                    i += 1;
                }
                Visit::Rest(rest) => {
                    jobs.due[i] = now + rest;
                    i += 1;
                }
                Visit::Park => {
                    jobs.due[i] = now.checked_add(park).unwrap_or(now + REST * 36_000);
                    i += 1;
                }
                Visit::End => jobs.remove(i),
            }
        }
        if !busy {
            // Sleep until a job is woken (a command, or network bytes) or briefly.
            if let Ok(id) = attention.recv_timeout(IDLE_SLEEP) {
                jobs.wake(id, Instant::now());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 0.1 s of 48 kHz stereo silence as a WAV file.
    fn wav() -> Vec<u8> {
        wav_of(4800)
    }

    /// `frames` frames of 48 kHz stereo silence as a WAV file.
    fn wav_of(frames: u32) -> Vec<u8> {
        let data = frames * 4;
        let mut v = Vec::new();
        v.extend_from_slice(b"RIFF");
        v.extend_from_slice(&(36 + data).to_le_bytes());
        v.extend_from_slice(b"WAVEfmt ");
        v.extend_from_slice(&16u32.to_le_bytes());
        v.extend_from_slice(&1u16.to_le_bytes()); // PCM
        v.extend_from_slice(&2u16.to_le_bytes()); // channels
        v.extend_from_slice(&48_000u32.to_le_bytes());
        v.extend_from_slice(&(48_000u32 * 4).to_le_bytes());
        v.extend_from_slice(&4u16.to_le_bytes());
        v.extend_from_slice(&16u16.to_le_bytes());
        v.extend_from_slice(b"data");
        v.extend_from_slice(&data.to_le_bytes());
        v.resize(v.len() + data as usize, 0);
        v
    }

    /// A running job over a tiny WAV file (its content does not matter here, only the
    /// bookkeeping around it).
    fn running(id: u64) -> Running {
        let (_tx, rx) = mpsc::channel();
        let (job, _) = Job::open(spec(wav())).expect("the test file opens");
        Running {
            id,
            stage: Stage::Playing(job),
            commands: rx,
            report: Box::new(|_| {}),
        }
    }

    fn spec(bytes: Vec<u8>) -> JobSpec {
        JobSpec {
            input: Input::Open(Box::new(move || {
                Ok(Box::new(std::io::Cursor::new(bytes)) as Box<dyn MediaSource>)
            })),
            extension: Some("wav".into()),
            start_ms: 0,
            epoch: 0,
            buffer_ms: 1000,
            resample: pcm::ResampleQuality::default(),
            encoder_complexity: 10,
        }
    }

    /// A network stream whose fetcher is the test: it has connected with `len` bytes.
    fn connected_stream(len: usize) -> std::sync::Arc<stream::StreamBuffer> {
        let buffer = std::sync::Arc::new(stream::StreamBuffer::new(
            1 << 20,
            std::sync::Arc::new(|| {}),
        ));
        buffer.connected(stream::StreamHead {
            length: Some(len as u64),
            seekable: true,
        });
        buffer
    }

    fn stream_spec(buffer: &std::sync::Arc<stream::StreamBuffer>) -> JobSpec {
        JobSpec {
            input: Input::Stream(stream::StreamInput::new(buffer.clone())),
            ..spec(Vec::new())
        }
    }

    /// An open that starves past the bytes it was woken for parks again, and its
    /// stream wakes it when the rest arrives: with the pool's backstop out of reach,
    /// a wake that went missing would leave the track unopened for good.
    #[test]
    fn a_starved_open_is_woken_by_its_stream() {
        let pool = DecodePool::start_with_park(1, Duration::from_secs(24 * 3600)).unwrap();
        // A WAV file with a 20 KB chunk before its format: the probe reads past the
        // first 5 KB (enough to start opening), starves, and must wait for the rest.
        let plain = wav_of(4800);
        let junk = 20_000u32;
        let mut file = plain[..12].to_vec();
        file.extend_from_slice(b"JUNK");
        file.extend_from_slice(&junk.to_le_bytes());
        file.resize(file.len() + junk as usize, 0);
        file.extend_from_slice(&plain[12..]);
        let riff = (file.len() - 8) as u32;
        file[4..8].copy_from_slice(&riff.to_le_bytes());
        let buffer = connected_stream(file.len());
        buffer.set_stall_grace(Duration::MAX);
        buffer.store(0, &file[..5_000]);
        let (tx, reports) = mpsc::channel();
        let _job = pool.submit(
            stream_spec(&buffer),
            Box::new(move |r| {
                let _ = tx.send(matches!(r, JobReport::Ready { .. }));
            }),
        );
        assert!(
            reports.recv_timeout(Duration::from_millis(300)).is_err(),
            "it cannot open on 5 KB"
        );
        buffer.store(5_000, &file[5_000..]);
        buffer.body_ended(file.len() as u64);
        assert_eq!(
            reports.recv_timeout(Duration::from_secs(30)),
            Ok(true),
            "woken by its stream, it opened"
        );
    }

    #[test]
    fn a_stalled_network_stream_parks_without_holding_its_thread() {
        let pool = DecodePool::start(1).unwrap();
        // Two network streams on the one thread: the first server stalls after 44
        // bytes, the second delivers its whole file.
        let file = wav_of(48_000);
        let stalled = connected_stream(file.len());
        // What counts is that it waits, not when it would give up waiting.
        stalled.set_stall_grace(Duration::MAX);
        stalled.store(0, &file[..44]);
        let (stalled_tx, stalled_reports) = mpsc::channel();
        let _stalled = pool.submit(
            stream_spec(&stalled),
            Box::new(move |r| {
                let _ = stalled_tx.send(matches!(r, JobReport::Ready { .. }));
            }),
        );
        let flowing = connected_stream(file.len());
        let (ready_tx, ready) = mpsc::channel();
        let _flowing = pool.submit(
            stream_spec(&flowing),
            Box::new(move |r| {
                if let JobReport::Ready { frames, .. } = r {
                    let _ = ready_tx.send(frames);
                }
            }),
        );
        flowing.store(0, &file);
        let mut frames = ready
            .recv_timeout(Duration::from_secs(10))
            .expect("the flowing stream opened while the other stalled");
        // It decodes to its end record: the thread is not held by the stalled job.
        let mut buf = vec![0u8; crate::ring::PCM_FRAME_BYTES];
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut audio = 0;
        loop {
            match frames.read(&mut buf) {
                Some(r) if r.kind == crate::ring::RecordKind::End => break,
                Some(_) => audio += 1,
                None => {
                    assert!(
                        Instant::now() < deadline,
                        "decoding stopped after {audio} frames"
                    );
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        }
        assert_eq!(audio, 50, "1 s of audio");
        assert!(stalled_reports.try_recv().is_err(), "the stalled job waits");
        // Its bytes arrive: the parked job is woken and opens.
        stalled.store(44, &file[44..]);
        assert_eq!(
            stalled_reports.recv_timeout(Duration::from_secs(10)),
            Ok(true),
            "woken when its bytes arrived"
        );
    }

    #[test]
    fn a_full_ring_rests_until_half_of_it_played() {
        // 10 s of audio into a ring of 15 PCM frames (0.3 s).
        let (mut job, ready) = Job::open(spec(wav_of(480_000))).expect("the test file opens");
        let JobReport::Ready { mut frames, .. } = ready else {
            panic!("not ready")
        };
        let mut report = |_: JobReport| {};
        while job.pump(FRAMES_PER_TURN, &mut report) == Pump::Busy {}
        let full = frames.queued();
        let record = crate::ring::FrameWriter::record_size(crate::ring::PCM_FRAME_BYTES);
        assert_eq!(full, 15 * record, "15 frames");
        // Full: the next visit is due once half the ring (7.5 of 15 frames) played.
        assert_eq!(job.rest(), Duration::from_millis(7 * 20));
        let mut buf = vec![0u8; crate::ring::PCM_FRAME_BYTES];
        // A few frames played: not enough room to be worth a visit's decoding.
        for _ in 0..3 {
            assert!(frames.read(&mut buf).is_some());
        }
        assert_eq!(job.pump(FRAMES_PER_TURN, &mut report), Pump::Full);
        assert!(frames.queued() < full, "nothing was decoded while resting");
        assert_eq!(
            job.rest(),
            Duration::from_millis(4 * 20),
            "the rest counts the frames already played"
        );
        // Over half the ring played (more than one visit's frames): the job fills it
        // up again.
        for _ in 0..6 {
            assert!(frames.read(&mut buf).is_some());
        }
        assert_eq!(job.pump(FRAMES_PER_TURN, &mut report), Pump::Busy);
        while job.pump(FRAMES_PER_TURN, &mut report) == Pump::Busy {}
        assert_eq!(frames.queued(), full, "refilled to the top");
    }

    #[test]
    fn removing_and_waking_keep_ids_and_due_times_together() {
        let start = Instant::now();
        let later = start + REST;
        let mut jobs = Jobs::default();
        for id in 0..4 {
            jobs.push(running(id), start);
        }
        for due in &mut jobs.due {
            *due = later;
        }
        jobs.remove(1); // job 3 moves into slot 1
        assert_eq!(
            jobs.jobs.iter().map(|r| r.id).collect::<Vec<_>>(),
            [0, 3, 2]
        );
        jobs.wake(3, start);
        assert_eq!(
            jobs.due,
            [later, start, later],
            "the moved job is woken where it is now"
        );
        jobs.wake(1, start); // gone: nothing happens
        assert_eq!(jobs.due, [later, start, later]);
        jobs.remove(2); // the last one: nothing moves
        jobs.wake(0, start);
        assert_eq!(jobs.due, [start, start]);
        assert_eq!(jobs.index.len(), 2);
    }
}
