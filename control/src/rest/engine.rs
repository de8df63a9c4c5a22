//! `GET /quaver/engine`: the audio engine's own accounting, per tick thread — what
//! benchmarks and operators read to see how loaded each pinned core is. Not part of
//! Lavalink's API (hence the `/quaver` prefix); authenticated like every REST route.
//!
//! `?reset=true` clears the lateness and busy histograms after this read, so the next
//! read covers only what happened in between (counters such as `ticks` and
//! `busyTotalNs` only grow; take differences).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::node::Node;

#[derive(Debug, Deserialize)]
pub(super) struct EngineQuery {
    #[serde(default)]
    reset: bool,
}

/// One tick thread's figures.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ThreadReport {
    index: usize,
    ticks: u64,
    players: u64,
    /// Wake-up lateness after the deadline since the last reset, µs.
    lateness_p50_us: f64,
    lateness_p99_us: f64,
    lateness_p999_us: f64,
    lateness_max_us: f64,
    /// Busy time (produce + send) per tick since the last reset, µs.
    busy_mean_us: f64,
    busy_p99_us: f64,
    /// Busy time since start, ns.
    busy_total_ns: u64,
    packets_sent: u64,
    frames_nulled: u64,
    resyncs: u64,
    pinned: bool,
    realtime: bool,
}

#[derive(Debug, Serialize)]
pub(super) struct EngineReport {
    threads: Vec<ThreadReport>,
}

pub(super) async fn engine(
    State(node): State<Arc<Node>>,
    Query(query): Query<EngineQuery>,
) -> Json<EngineReport> {
    let threads = node
        .audio
        .engine_stats()
        .iter()
        .enumerate()
        .map(|(index, s)| {
            let n = |v: &std::sync::atomic::AtomicU64| v.load(Ordering::Relaxed);
            let us = |v: &std::sync::atomic::AtomicU64| n(v) as f64 / 1000.0;
            let report = ThreadReport {
                index,
                ticks: n(&s.ticks),
                players: n(&s.players),
                lateness_p50_us: us(&s.lateness_p50),
                lateness_p99_us: us(&s.lateness_p99),
                lateness_p999_us: us(&s.lateness_p999),
                lateness_max_us: us(&s.lateness_max),
                busy_mean_us: us(&s.busy_mean),
                busy_p99_us: us(&s.busy_p99),
                busy_total_ns: n(&s.busy_total),
                packets_sent: n(&s.packets_sent),
                frames_nulled: n(&s.frames_nulled),
                resyncs: n(&s.resyncs),
                pinned: s.pinned.load(Ordering::Relaxed),
                realtime: s.realtime.load(Ordering::Relaxed),
            };
            if query.reset {
                s.reset.store(true, Ordering::Relaxed);
            }
            report
        })
        .collect();
    Json(EngineReport { threads })
}
