//! Prometheus metrics (`metrics.prometheus.*`), in the Prometheus text format 0.0.4 that
//! Lavalink's simpleclient serves.
//!
//! What a scrape gets:
//! - Lavalink 4's ten `lavalink_*` gauges, from the same figures as `stats` (the two
//!   CPU gauges hold its 0–1 fractions, as Lavalink's do despite their names).
//! - `lavalink_track_load_results_total{source,result}` and
//!   `lavalink_tracks_played_total{source}`, the counters Lavalink added later, without
//!   its `guild_id` label (10 000 series per node is a scrape problem).
//! - The standard `process_*` set, and `logback_appender_total{level}` (log events
//!   written, named as Lavalink's logback counter).
//! - Quaver's engine, per tick thread (`thread` label): tick lateness and busy time as
//!   histograms, ticks, packets sent, frames nulled, deadline resyncs, and players;
//!   voice connections by state and DAVE protocol version; `/v4/loadtracks` times.
//!
//! Everything but the two counters is read at scrape time, from atomics the tick
//! threads publish anyway: a scrape never touches a tick thread's own data.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use quaver_engine::runner::{TickBuckets, TICK_BUCKETS_NS};
use quaver_engine::RunnerStats;

use crate::node::Node;
use crate::protocol::messages::Stats;
use crate::stats::counters::counters;
use crate::stats::ProcessFigures;

/// The `Content-Type` of a scrape.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The text of one scrape.
pub fn scrape(node: &Node) -> String {
    let mut registry = Registry::default();
    registry.register(
        "lavalink_track_load_results",
        "Total number of track load results by source and result type",
        counters().loads.clone(),
    );
    registry.register(
        "lavalink_tracks_played",
        "Total number of tracks played by source",
        counters().plays.clone(),
    );
    registry.register(
        "quaver_load_seconds",
        "Time to answer /v4/loadtracks",
        counters().load_seconds.clone(),
    );
    registry.register(
        "logback_appender",
        "Log events written, by level (named as Lavalink's logback counter)",
        counters().logs.clone(),
    );
    registry.register_collector(Box::new(Snapshot {
        stats: node.stats(None),
        voice: node.voice_connections(),
        process: node.process_figures(),
        engine: node.audio.engine_stats(),
    }));
    let mut text = String::new();
    // Writing into a String cannot fail, and every name and label here is valid.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &registry);
    text
}

/// One of a tick thread's published counters.
type Field = fn(&RunnerStats) -> &AtomicU64;

/// The figures read at scrape time.
#[derive(Debug)]
struct Snapshot {
    stats: Stats,
    /// Open voice connections by DAVE protocol version, and the players without one.
    voice: (BTreeMap<Option<u16>, u64>, u64),
    process: ProcessFigures,
    engine: Vec<Arc<RunnerStats>>,
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.stats;
        let gauges: [(&str, &str, f64); 10] = [
            (
                "lavalink_players_total",
                "Total number of players",
                f64::from(s.players),
            ),
            (
                "lavalink_playing_players_total",
                "Total number of playing players",
                f64::from(s.playing_players),
            ),
            (
                "lavalink_uptime_milliseconds",
                "Uptime of the node in milliseconds",
                s.uptime as f64,
            ),
            (
                "lavalink_memory_free_bytes",
                "Amount of free memory in bytes",
                s.memory.free as f64,
            ),
            (
                "lavalink_memory_used_bytes",
                "Amount of used memory in bytes",
                s.memory.used as f64,
            ),
            (
                "lavalink_memory_allocated_bytes",
                "Amount of allocated memory in bytes",
                s.memory.allocated as f64,
            ),
            (
                "lavalink_memory_reservable_bytes",
                "Amount of reservable memory in bytes",
                s.memory.reservable as f64,
            ),
            (
                "lavalink_cpu_cores",
                "Number of CPU cores",
                f64::from(s.cpu.cores),
            ),
            (
                "lavalink_cpu_system_load_percentage",
                "Total load of the system",
                s.cpu.system_load,
            ),
            (
                "lavalink_cpu_lavalink_load_percentage",
                "Load of this node",
                s.cpu.lavalink_load,
            ),
        ];
        for (name, help, value) in gauges {
            gauge(&mut encoder, name, help, value)?;
        }
        let p = &self.process;
        counter(
            &mut encoder,
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            p.cpu_seconds,
        )?;
        let process_gauges = [
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                p.start_time_seconds as f64,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                p.open_fds as f64,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                p.max_fds as f64,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                p.virtual_memory_bytes as f64,
            ),
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                p.resident_memory_bytes as f64,
            ),
        ];
        for (name, help, value) in process_gauges {
            gauge(&mut encoder, name, help, value)?;
        }
        self.encode_engine(&mut encoder)
    }
}

impl Snapshot {
    fn encode_engine(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let load = |v: &AtomicU64| v.load(Ordering::Relaxed);
        histogram(
            encoder,
            "quaver_tick_lateness_seconds",
            "How late each tick thread woke after its 20 ms deadline.",
            &self.engine,
            |s| &s.lateness_buckets,
        )?;
        histogram(
            encoder,
            "quaver_tick_busy_seconds",
            "Time each tick spent producing and sending packets.",
            &self.engine,
            |s| &s.busy_buckets,
        )?;
        let counters: [(&str, &str, Field); 4] = [
            ("quaver_ticks", "Ticks completed.", |s| &s.ticks),
            (
                "quaver_packets_sent",
                "Voice packets handed to the network.",
                |s| &s.packets_sent,
            ),
            (
                "quaver_frames_nulled",
                "Frames due without audio (a playing track whose audio was not ready).",
                |s| &s.frames_nulled,
            ),
            (
                "quaver_tick_resyncs",
                "Times a tick thread fell too far behind and restarted its deadlines.",
                |s| &s.resyncs,
            ),
        ];
        for (name, help, field) in counters {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (i, s) in self.engine.iter().enumerate() {
                let labels = [("thread", i.to_string())];
                ConstCounter::new(load(field(s))).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "quaver_voice_connections",
            "Players by voice connection state, and open connections by DAVE protocol \
             version (`dave` is empty until DAVE's state is known).",
            None,
            MetricType::Gauge,
        )?;
        let (open, closed) = &self.voice;
        for (dave, n) in open {
            let dave = dave.map(|v| v.to_string()).unwrap_or_default();
            let labels = [("state", "connected".to_owned()), ("dave", dave)];
            ConstGauge::new(*n as i64).encode(family.encode_family(&labels)?)?;
        }
        let labels = [
            ("state", "disconnected".to_owned()),
            ("dave", String::new()),
        ];
        ConstGauge::new(*closed as i64).encode(family.encode_family(&labels)?)?;
        let mut family = encoder.encode_descriptor(
            "quaver_players",
            "Players on each tick thread.",
            None,
            MetricType::Gauge,
        )?;
        for (i, s) in self.engine.iter().enumerate() {
            let labels = [("thread", i.to_string())];
            ConstGauge::new(load(&s.players) as i64).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: f64,
) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(value);
    g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: f64,
) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(value);
    c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)
}

/// One histogram per tick thread from its fixed buckets, in seconds (the encoder
/// makes the counts cumulative).
fn histogram(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    engine: &[Arc<RunnerStats>],
    buckets_of: fn(&RunnerStats) -> &TickBuckets,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (i, s) in engine.iter().enumerate() {
        let b = buckets_of(s);
        // The sum first: read after the counts, it could include values they miss.
        let sum = b.sum.load(Ordering::Relaxed) as f64 / 1e9;
        let buckets: Vec<(f64, u64)> = b
            .counts
            .iter()
            .enumerate()
            .map(|(slot, count)| {
                let bound = TICK_BUCKETS_NS
                    .get(slot)
                    .map_or(f64::INFINITY, |&ns| ns as f64 / 1e9);
                (bound, count.load(Ordering::Relaxed))
            })
            .collect();
        let count = buckets.iter().map(|b| b.1).sum();
        let labels = [("thread", i.to_string())];
        family
            .encode_family(&labels)?
            .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
    }
    Ok(())
}
