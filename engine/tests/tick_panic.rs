//! The panic policy of tick threads: a panic on one aborts the whole process (its
//! players cannot be recovered), so the service manager restarts the node. Checked in
//! a child process, this test binary run again.

use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quaver_engine::clock::Clock;
use quaver_engine::runner::{self, RunnerConfig};
use quaver_engine::Worker;
use rtrb::RingBuffer;

const CHILD: &str = "QUAVER_TICK_PANIC_CHILD";
const SIGABRT: i32 = 6;

/// A clock that panics on its 100th reading, i.e. a few ticks into the run.
struct FaultyClock(AtomicU32);

impl Clock for FaultyClock {
    fn now(&self) -> Instant {
        if self.0.fetch_add(1, Ordering::Relaxed) == 100 {
            panic!("a bug on the tick path");
        }
        Instant::now()
    }
}

#[test]
fn a_panicking_tick_thread_aborts_the_process() {
    if std::env::var_os(CHILD).is_some() {
        let (_commands, cmd_rx) = RingBuffer::new(16);
        let (ev_tx, _events) = RingBuffer::new(16);
        let _runner = runner::spawn(
            RunnerConfig::default(),
            Worker::new(4, cmd_rx, ev_tx),
            4,
            Arc::new(FaultyClock(AtomicU32::new(0))),
        )
        .unwrap();
        // Without the abort, the process outlives its broken tick thread and exits 0.
        std::thread::sleep(Duration::from_secs(10));
        return;
    }
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_panicking_tick_thread_aborts_the_process",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    assert_eq!(
        status.status.signal(),
        Some(SIGABRT),
        "the child process aborted: {:?}\n{}",
        status.status,
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(
        String::from_utf8_lossy(&status.stderr).contains("a bug on the tick path"),
        "the panic message was printed before the abort"
    );
}
