//! Counters of what the node did (loads, plays), kept for Prometheus. Process-wide, as
//! Lavalink's are; the scrape in [`crate::metrics`] reads them.

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

/// Labels of `lavalink_track_load_results_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LoadLabels {
    /// The source of the result's first track, `none` when it has none.
    pub source: String,
    /// The `loadType`.
    pub result: String,
}

/// Labels of `lavalink_tracks_played_total` (Lavalink's `guild_id` label is left
/// out: one series per guild is 10 000 series per node).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    /// The track's `sourceName`.
    pub source: String,
}

/// Labels of `logback_appender_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LevelLabel {
    /// `trace`, `debug`, `info`, `warn` or `error`.
    pub level: &'static str,
}

/// The counter families.
#[derive(Debug)]
pub struct Counters {
    /// Load results by source and type.
    pub loads: Family<LoadLabels, Counter>,
    /// Tracks started by source.
    pub plays: Family<SourceLabel, Counter>,
    /// Log events written, by level.
    pub logs: Family<LevelLabel, Counter>,
    /// Seconds each `/v4/loadtracks` took.
    pub load_seconds: Histogram,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            loads: Family::default(),
            plays: Family::default(),
            logs: Family::default(),
            load_seconds: Histogram::new([
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        }
    }
}

static COUNTERS: LazyLock<Counters> = LazyLock::new(Counters::default);

/// The process's counters.
pub fn counters() -> &'static Counters {
    &COUNTERS
}

/// Counts a `/v4/loadtracks` answer that took `seconds`.
pub fn count_load(source: &str, result: &str, seconds: f64) {
    COUNTERS.load_seconds.observe(seconds);
    COUNTERS
        .loads
        .get_or_create(&LoadLabels {
            source: source.to_owned(),
            result: result.to_owned(),
        })
        .inc();
}

/// Counts a track that started playing.
pub fn count_play(source: &str) {
    COUNTERS
        .plays
        .get_or_create(&SourceLabel {
            source: source.to_owned(),
        })
        .inc();
}

/// Counts a log event written at `level` (lowercase).
pub fn count_log(level: &'static str) {
    COUNTERS.logs.get_or_create(&LevelLabel { level }).inc();
}
