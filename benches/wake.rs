//! How precisely a tick thread wakes at its deadline: sleep only, or sleep then spin
//! for the last stretch. Runs an engine thread with no players for a few seconds per
//! setting and prints its wake-up lateness percentiles.
//!
//! Run: `cargo bench --bench wake` (`-- --seconds N` per setting, default 5;
//! `--cpu N` pins the thread, `--rt P` asks for SCHED_FIFO priority P).

#![allow(clippy::print_stdout)] // a benchmark reports on stdout

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use quaver_engine::clock::SystemClock;
use quaver_engine::{Engine, EngineConfig};

fn arg(name: &str) -> Option<u64> {
    std::env::args()
        .skip_while(|a| a != name)
        .nth(1)
        .and_then(|s| s.parse().ok())
}

fn main() {
    let seconds = arg("--seconds").unwrap_or(5);
    let cpu = arg("--cpu").map(|c| c as usize);
    let realtime_priority = arg("--rt").map(|p| p as u8);
    println!("pinned to {cpu:?}, realtime priority {realtime_priority:?}");
    println!(
        "{:>10} {:>10} {:>10} {:>10} {:>10} {:>8}",
        "spin µs", "p50 µs", "p99 µs", "p99.9 µs", "max µs", "ticks"
    );
    for spin_us in [0u64, 50, 200, 1000] {
        let config = EngineConfig {
            threads: 1,
            cpus: cpu.into_iter().collect(),
            realtime_priority,
            max_players: 1,
            spin: Duration::from_micros(spin_us),
        };
        let engine = Engine::start(&config, Arc::new(SystemClock)).unwrap();
        std::thread::sleep(Duration::from_secs(seconds));
        let stats = engine.stats()[0].clone();
        engine.shutdown();
        let us = |v: &std::sync::atomic::AtomicU64| v.load(Ordering::Relaxed) as f64 / 1000.0;
        println!(
            "{spin_us:>10} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>8}",
            us(&stats.lateness_p50),
            us(&stats.lateness_p99),
            us(&stats.lateness_p999),
            us(&stats.lateness_max),
            stats.ticks.load(Ordering::Relaxed)
        );
    }
}
