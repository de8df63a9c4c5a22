//! The decode pool: plain OS threads (not the tick threads, not tokio) that turn
//! sources into frame-ring records ahead of playback.
//!
//! Each thread round-robins over its jobs, decoding a few frames for each whose ring
//! has room, and sleeps briefly when every ring is full. A job's blocking reads
//! (a slow HTTP server) delay only the other jobs of its thread, never a tick.

mod job;
pub mod pcm;
pub mod probe;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::Duration;

pub use job::{Job, JobCommand, JobReport, JobSpec, Opener, Pump};
/// A byte source the decoder can read and (when seekable) seek.
pub use symphonia::core::io::MediaSource;

/// Frames decoded per job before moving to the next one.
const FRAMES_PER_TURN: usize = 8;
/// Sleep when every ring is full or no job exists.
const IDLE_SLEEP: Duration = Duration::from_millis(5);

/// Callback receiving a job's reports, called on the decode thread.
pub type ReportFn = Box<dyn FnMut(JobReport) + Send>;

struct NewJob {
    spec: JobSpec,
    commands: Receiver<JobCommand>,
    report: ReportFn,
}

/// Controls one submitted job.
#[derive(Debug, Clone)]
pub struct JobHandle {
    commands: Sender<JobCommand>,
}

impl JobHandle {
    /// Seeks the job; `false` if it already ended.
    pub fn seek(&self, position_ms: u64, epoch: u32) -> bool {
        self.commands
            .send(JobCommand::Seek { position_ms, epoch })
            .is_ok()
    }

    /// Stops the job.
    pub fn stop(&self) {
        let _ = self.commands.send(JobCommand::Stop);
    }
}

/// The decode threads.
#[derive(Debug)]
pub struct DecodePool {
    lanes: Vec<Sender<NewJob>>,
    next: AtomicUsize,
    threads: Vec<JoinHandle<()>>,
}

impl DecodePool {
    /// Starts `threads` decode threads.
    pub fn start(threads: usize) -> std::io::Result<Self> {
        let mut lanes = Vec::new();
        let mut handles = Vec::new();
        for i in 0..threads.max(1) {
            let (tx, rx) = mpsc::channel();
            handles.push(
                std::thread::Builder::new()
                    .name(format!("quaver-decode-{i}"))
                    .spawn(move || run(rx))?,
            );
            lanes.push(tx);
        }
        Ok(DecodePool {
            lanes,
            next: AtomicUsize::new(0),
            threads: handles,
        })
    }

    /// Submits a job; `report` receives `Ready`/`LoadFailed`/`Failed` on the decode thread.
    pub fn submit(&self, spec: JobSpec, report: ReportFn) -> JobHandle {
        let (tx, rx) = mpsc::channel();
        let lane = self.next.fetch_add(1, Ordering::Relaxed) % self.lanes.len();
        let job = NewJob {
            spec,
            commands: rx,
            report,
        };
        if let Err(mpsc::SendError(mut job)) = self.lanes[lane].send(job) {
            (job.report)(JobReport::LoadFailed("the decoder pool has stopped".into()));
        }
        JobHandle { commands: tx }
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

struct Running {
    job: Job,
    commands: Receiver<JobCommand>,
    report: ReportFn,
}

fn run(incoming: Receiver<NewJob>) {
    let mut jobs: Vec<Running> = Vec::new();
    loop {
        loop {
            match incoming.try_recv() {
                Ok(new) => {
                    if let Some(r) = open(new) {
                        jobs.push(r);
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) if jobs.is_empty() => return,
                Err(TryRecvError::Disconnected) => break,
            }
        }
        let mut busy = false;
        jobs.retain_mut(|r| {
            loop {
                match r.commands.try_recv() {
                    Ok(cmd) => {
                        if !r.job.command(cmd) {
                            return false;
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return false,
                }
            }
            match r.job.pump(FRAMES_PER_TURN, &mut *r.report) {
                Pump::Busy => {
                    busy = true;
                    true
                }
                Pump::Full => true,
                Pump::Finished => false,
            }
        });
        if !busy {
            std::thread::sleep(IDLE_SLEEP);
        }
    }
}

fn open(new: NewJob) -> Option<Running> {
    let NewJob {
        spec,
        commands,
        mut report,
    } = new;
    match Job::open(spec) {
        Ok((job, ready)) => {
            report(ready);
            Some(Running {
                job,
                commands,
                report,
            })
        }
        Err(message) => {
            report(JobReport::LoadFailed(message));
            None
        }
    }
}
