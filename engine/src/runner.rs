//! The tick thread: pins itself, optionally raises itself to realtime priority, then
//! loops `produce → wait for the deadline → send`, with deadlines that march by
//! exactly 20 ms. It records how late each wake-up was and how long each tick was
//! busy, and publishes percentiles through atomics.
//!
//! A panic on a tick thread aborts the process (see [`AbortOnUnwind`]): the thread
//! owns every player placed on it, and nothing could take them over.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::audio::FRAME_DURATION;
use crate::batch::PacketBatch;
use crate::clock::Clock;
use crate::Worker;

/// If the thread falls this many ticks behind (a suspended VM, a stopped process),
/// it restarts its deadlines from now instead of sending a burst.
const MAX_BEHIND_TICKS: u32 = 10;

/// How a tick thread is set up.
#[derive(Debug, Clone, Default)]
pub struct RunnerConfig {
    /// Thread name.
    pub name: String,
    /// CPU to pin to.
    pub cpu: Option<usize>,
    /// SCHED_FIFO priority (1–99).
    pub realtime_priority: Option<u8>,
    /// Sleep until this long before the deadline, then spin.
    pub spin: Duration,
}

/// Upper bounds (ns) of the fixed buckets of [`TickBuckets`], for Prometheus
/// histograms of lateness and busy time; the last bucket is unbounded.
pub const TICK_BUCKETS_NS: [u64; 11] = [
    10_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000,
    20_000_000, 50_000_000,
];

/// Counts of values per bucket of [`TICK_BUCKETS_NS`] (not cumulative; the last slot
/// counts values above the last bound) and their sum, since start: what a scrape turns
/// into a Prometheus histogram. The tick thread adds to one bucket per value.
#[derive(Debug, Default)]
pub struct TickBuckets {
    /// Values per bucket.
    pub counts: [AtomicU64; TICK_BUCKETS_NS.len() + 1],
    /// Sum of the values, ns.
    pub sum: AtomicU64,
}

impl TickBuckets {
    fn record(&self, ns: u64) {
        let i = TICK_BUCKETS_NS
            .iter()
            .position(|&bound| ns <= bound)
            .unwrap_or(TICK_BUCKETS_NS.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(ns, Ordering::Relaxed);
    }
}

/// Figures a runner publishes, all in nanoseconds except `ticks`.
#[derive(Debug, Default)]
pub struct RunnerStats {
    /// Ticks completed.
    pub ticks: AtomicU64,
    /// Lateness of the wake-up after the deadline, percentiles since the last reset.
    pub lateness_p50: AtomicU64,
    /// 99th percentile lateness.
    pub lateness_p99: AtomicU64,
    /// 99.9th percentile lateness.
    pub lateness_p999: AtomicU64,
    /// Largest lateness.
    pub lateness_max: AtomicU64,
    /// Busy time per tick (produce + send), 99th percentile.
    pub busy_p99: AtomicU64,
    /// Busy time per tick, mean.
    pub busy_mean: AtomicU64,
    /// Total busy time, for cost per player-tick.
    pub busy_total: AtomicU64,
    /// Sum of players' measured production cost in the last tick.
    pub player_cost: AtomicU64,
    /// Players on this thread.
    pub players: AtomicU64,
    /// Packets handed to outputs since start.
    pub packets_sent: AtomicU64,
    /// Frames due without audio since start.
    pub frames_nulled: AtomicU64,
    /// Times the deadline was reset after falling far behind.
    pub resyncs: AtomicU64,
    /// Set by a reader to clear the histograms.
    pub reset: AtomicBool,
    /// Whether pinning succeeded.
    pub pinned: AtomicBool,
    /// Whether realtime priority was granted.
    pub realtime: AtomicBool,
    /// Every tick's lateness, bucketed (never reset).
    pub lateness_buckets: TickBuckets,
    /// Every tick's busy time, bucketed (never reset).
    pub busy_buckets: TickBuckets,
}

/// A running tick thread.
#[derive(Debug)]
pub struct RunnerHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Worker>>,
    /// Published figures.
    pub stats: Arc<RunnerStats>,
}

impl RunnerHandle {
    /// Stops the thread after its current tick and returns its worker.
    pub fn stop(mut self) -> Option<Worker> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take()?.join().ok()
    }
}

impl Drop for RunnerHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts a tick thread for `worker`.
pub fn spawn(
    config: RunnerConfig,
    worker: Worker,
    batch_capacity: usize,
    clock: Arc<dyn Clock>,
) -> std::io::Result<RunnerHandle> {
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(RunnerStats::default());
    let (s, st) = (stop.clone(), stats.clone());
    let thread = std::thread::Builder::new()
        .name(config.name.clone())
        .spawn(move || {
            let _abort = AbortOnUnwind;
            run(
                config,
                worker,
                PacketBatch::new(batch_capacity),
                clock,
                s,
                st,
            )
        })?;
    Ok(RunnerHandle {
        stop,
        thread: Some(thread),
        stats,
    })
}

/// Aborts the process when a tick thread unwinds from a panic.
///
/// The thread's players, their rings and voice outputs live only on it; after a panic
/// they would go silent for good while the control plane still reported them playing,
/// and a later tick could not trust state the panic left half-changed. Aborting makes
/// the failure loud and whole: the service manager restarts the node (the shipped
/// systemd units use `Restart=on-failure`) and clients reconnect and resume, as after
/// any node restart. The panic's message is already printed by the panic hook.
struct AbortOnUnwind;

impl Drop for AbortOnUnwind {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let name = std::thread::current().name().unwrap_or("tick").to_owned();
            tracing::error!(thread = %name, "a tick thread panicked; aborting the process");
            std::process::abort();
        }
    }
}

fn setup_thread(config: &RunnerConfig, stats: &RunnerStats) {
    if let Some(cpu) = config.cpu {
        let pinned = core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
        stats.pinned.store(pinned, Ordering::Relaxed);
        if !pinned {
            tracing::warn!(thread = %config.name, cpu, "could not pin the tick thread; check quaver.engine.cpus");
        }
    }
    if let Some(prio) = config.realtime_priority {
        let ok = set_realtime(prio);
        stats.realtime.store(ok, Ordering::Relaxed);
        if !ok {
            tracing::warn!(
                thread = %config.name,
                priority = prio,
                "realtime priority refused: grant CAP_SYS_NICE or raise RLIMIT_RTPRIO (systemd: LimitRTPRIO=); running at normal priority"
            );
        }
    }
}

#[cfg(unix)]
fn set_realtime(prio: u8) -> bool {
    use thread_priority::{
        set_thread_priority_and_policy, thread_native_id, RealtimeThreadSchedulePolicy,
        ThreadPriority, ThreadPriorityValue, ThreadSchedulePolicy,
    };
    let Ok(value) = ThreadPriorityValue::try_from(prio.clamp(1, 99)) else {
        return false;
    };
    set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Crossplatform(value),
        ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::Fifo),
    )
    .is_ok()
}

#[cfg(not(unix))]
fn set_realtime(_prio: u8) -> bool {
    false
}

struct Recorder {
    lateness: Histogram<u64>,
    busy: Histogram<u64>,
}

impl Recorder {
    fn new() -> Self {
        // Fixed bounds (1 ns … 10 s, 3 significant digits): recording never resizes.
        let h =
            || Histogram::new_with_bounds(1, 10_000_000_000, 3).expect("valid histogram bounds");
        Recorder {
            lateness: h(),
            busy: h(),
        }
    }

    fn publish(&mut self, stats: &RunnerStats) {
        let l = &self.lateness;
        stats
            .lateness_p50
            .store(l.value_at_quantile(0.5), Ordering::Relaxed);
        stats
            .lateness_p99
            .store(l.value_at_quantile(0.99), Ordering::Relaxed);
        stats
            .lateness_p999
            .store(l.value_at_quantile(0.999), Ordering::Relaxed);
        stats.lateness_max.store(l.max(), Ordering::Relaxed);
        stats
            .busy_p99
            .store(self.busy.value_at_quantile(0.99), Ordering::Relaxed);
        stats
            .busy_mean
            .store(self.busy.mean() as u64, Ordering::Relaxed);
        if stats.reset.swap(false, Ordering::Relaxed) {
            self.lateness.reset();
            self.busy.reset();
        }
    }
}

fn run(
    config: RunnerConfig,
    mut worker: Worker,
    mut batch: PacketBatch,
    clock: Arc<dyn Clock>,
    stop: Arc<AtomicBool>,
    stats: Arc<RunnerStats>,
) -> Worker {
    setup_thread(&config, &stats);
    let mut rec = Recorder::new();
    let now = || clock.now();
    let mut deadline = clock.now() + FRAME_DURATION;
    let mut tick: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let start = clock.now();
        worker.produce(&mut batch, &now);
        let produced = clock.now().saturating_duration_since(start);
        wait_until(&*clock, deadline, config.spin);
        let woke = clock.now();
        worker.send(&batch);
        let busy = produced + clock.now().saturating_duration_since(woke);
        let late = woke.saturating_duration_since(deadline).as_nanos() as u64;
        let _ = rec.lateness.record(late.max(1));
        let _ = rec.busy.record(busy.as_nanos().max(1) as u64);
        stats.lateness_buckets.record(late);
        stats.busy_buckets.record(busy.as_nanos() as u64);
        stats
            .busy_total
            .fetch_add(busy.as_nanos() as u64, Ordering::Relaxed);
        stats.player_cost.store(worker.cost_ns(), Ordering::Relaxed);
        stats
            .players
            .store(worker.player_count() as u64, Ordering::Relaxed);
        let counters = worker.counters();
        stats.packets_sent.store(counters.sent, Ordering::Relaxed);
        stats
            .frames_nulled
            .store(counters.nulled, Ordering::Relaxed);
        tick += 1;
        stats.ticks.store(tick, Ordering::Relaxed);
        if tick % 50 == 0 {
            rec.publish(&stats);
        }
        deadline += FRAME_DURATION;
        if woke > deadline + FRAME_DURATION * MAX_BEHIND_TICKS {
            deadline = woke + FRAME_DURATION;
            stats.resyncs.fetch_add(1, Ordering::Relaxed);
        }
    }
    rec.publish(&stats);
    worker
}

/// Sleeps until `spin` before the deadline, then spins to it. A sleep alone wakes
/// 50–100 µs late on a loaded kernel; the spin trades a little CPU for precision.
fn wait_until(clock: &dyn Clock, deadline: Instant, spin: Duration) {
    let now = clock.now();
    if deadline <= now {
        return;
    }
    let left = deadline - now;
    if left > spin {
        std::thread::sleep(left - spin);
    }
    while clock.now() < deadline {
        std::hint::spin_loop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_buckets_count_each_value_once_under_its_bound() {
        let b = TickBuckets::default();
        for ns in [0, 10_000, 10_001, 999_999, 1_000_000, 60_000_000] {
            b.record(ns);
        }
        let counts: Vec<u64> = b.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        // ≤ 10 µs: 0 and 10 000; ≤ 50 µs: 10 001; ≤ 1 ms: 999 999 and 1 000 000; above
        // 50 ms: the last slot.
        assert_eq!(counts, [2, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1]);
        assert_eq!(
            b.sum.load(Ordering::Relaxed),
            10_000 + 10_001 + 999_999 + 1_000_000 + 60_000_000
        );
    }
}
