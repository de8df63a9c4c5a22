//! The node: everything the HTTP handlers share.

use std::sync::Arc;
use std::time::Instant;

use crate::config::ControlConfig;
use crate::loader::TrackLoader;
use crate::player::AudioFactory;
use crate::protocol::messages::{FrameStats, OutgoingMessage, Stats};
use crate::rest::error::epoch_millis;
use crate::session::{Session, Sessions};
use crate::stats::loss::EXPECTED_FRAMES_PER_MINUTE;
use crate::stats::{ProcessFigures, SystemStats};

/// Shared state of one Quaver node.
#[derive(Debug)]
pub struct Node {
    /// Settings.
    pub config: Arc<ControlConfig>,
    /// All sessions.
    pub sessions: Arc<Sessions>,
    /// Source managers.
    pub loader: Arc<TrackLoader>,
    /// Creates each new player's audio path.
    pub audio: Arc<dyn AudioFactory>,
    system: SystemStats,
    started: Instant,
    shutdown: tokio::sync::watch::Sender<bool>,
}

impl Node {
    /// A node with no sessions.
    pub fn new(
        config: ControlConfig,
        loader: Arc<TrackLoader>,
        audio: Arc<dyn AudioFactory>,
    ) -> Arc<Self> {
        Arc::new(Node {
            config: Arc::new(config),
            sessions: Arc::default(),
            loader,
            audio,
            system: SystemStats::default(),
            started: Instant::now(),
            shutdown: tokio::sync::watch::channel(false).0,
        })
    }

    /// Statistics; `session` adds that session's `frameStats` (WebSocket form; REST's
    /// is `null`).
    pub fn stats(&self, session: Option<&Session>) -> Stats {
        let (mut players, mut playing) = (0, 0);
        for s in self.sessions.all() {
            let (p, q) = s.player_counts();
            players += p;
            playing += q;
        }
        Stats {
            frame_stats: session.and_then(frame_stats),
            players,
            playing_players: playing,
            uptime: self.started.elapsed().as_millis() as u64,
            memory: self.system.memory(),
            cpu: self.system.cpu(),
        }
    }

    /// Voice connections of all players: open ones by the DAVE protocol version in
    /// force (`None` before DAVE's state is known), and the number not open.
    pub fn voice_connections(&self) -> (std::collections::BTreeMap<Option<u16>, u64>, u64) {
        let mut open = std::collections::BTreeMap::new();
        let mut closed = 0;
        for session in self.sessions.all() {
            for player in session.players().values() {
                if player.is_connected() {
                    *open.entry(player.audio().dave_protocol()).or_insert(0) += 1;
                } else {
                    closed += 1;
                }
            }
        }
        (open, closed)
    }

    /// The process's CPU time, start time, descriptors and memory, sampled now.
    pub fn process_figures(&self) -> ProcessFigures {
        self.system.process()
    }

    /// Samples every player's engine frame counters once a second into its loss
    /// counter (`frameStats`).
    pub fn start_frame_sampler(self: &Arc<Self>) {
        let node = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tick.tick().await;
                let Some(node) = node.upgrade() else { return };
                let now = epoch_millis() as i64;
                for session in node.sessions.all() {
                    for player in session.players().values_mut() {
                        player.sample_frames(now);
                    }
                }
            }
        });
    }

    /// Starts the per-session `stats` ticker: immediately, then every interval.
    pub fn start_stats_ticker(self: &Arc<Self>, session: &Arc<Session>) {
        let node = Arc::downgrade(self);
        let weak = Arc::downgrade(session);
        let every = self.config.stats_interval;
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let (Some(node), Some(session)) = (node.upgrade(), weak.upgrade()) else {
                    return;
                };
                session.send(&OutgoingMessage::Stats(node.stats(Some(&session))));
            }
        });
        session.own_task(task.abort_handle());
    }

    /// A receiver that turns true when the node shuts down.
    pub fn shutdown_signal(&self) -> tokio::sync::watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Shuts down: every socket is closed with 1001 and every session destroyed.
    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
        self.sessions.shutdown_all();
    }
}

/// Per-player averages over the last minute, for playing players whose counters are
/// usable; `None` when there are none.
fn frame_stats(session: &Session) -> Option<FrameStats> {
    let now = epoch_millis() as i64;
    let players = session.players();
    let usable: Vec<_> = players
        .values()
        .filter(|p| p.is_playing() && p.loss_counter().is_usable(now))
        .map(|p| p.loss_counter())
        .collect();
    if usable.is_empty() {
        return None;
    }
    let n = usable.len() as i64;
    let sent: i64 = usable.iter().map(|c| c.last_minute_sent()).sum();
    let nulled: i64 = usable.iter().map(|c| c.last_minute_nulled()).sum();
    let deficit = n * EXPECTED_FRAMES_PER_MINUTE - (sent + nulled);
    Some(FrameStats {
        sent: sent / n,
        nulled: nulled / n,
        deficit: deficit / n,
    })
}
