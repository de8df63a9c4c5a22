//! One client session and the Lavalink player rules applied to it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};

use super::outbox::{Mode, Outbox};
use crate::audio_track::AudioTrack;
use crate::config::ControlConfig;
use crate::ids::{GuildId, SessionId, UserId};
use crate::loader::LoadFailure;
use crate::player::{Emitted, Player};
use crate::protocol::messages::{Event, OutgoingMessage, TrackEndReason};
use crate::protocol::player::Player as PlayerJson;
use crate::protocol::track::{Exception, Severity};
use crate::rest::error::epoch_millis;

/// `PATCH /v4/sessions/{id}` state: whether and for how long to keep the session
/// after its socket closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumeConfig {
    /// Keep the session after a disconnect.
    pub resuming: bool,
    /// Seconds to keep it.
    pub timeout_s: i64,
}

impl Default for ResumeConfig {
    fn default() -> Self {
        ResumeConfig {
            resuming: false,
            timeout_s: 60,
        }
    }
}

/// How a playing track failed, which picks its `TrackExceptionEvent` and end reason
/// the way lavaplayer does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackFailure {
    /// The source could not be opened or recognised: a `common` exception carrying
    /// the message; the track ends `loadFailed`.
    Load(String),
    /// Decoding broke (an error, or a panic caught in the decoder) with `cause`: a
    /// `fault` "Something broke when playing the track."; the track ends `loadFailed`
    /// when none of its audio had been produced (lavaplayer's `failedBeforeLoad`),
    /// `finished` otherwise.
    Broke {
        /// What went wrong, carried as the exception's cause.
        cause: String,
        /// No audio of the track had been produced.
        before_audio: bool,
    },
}

/// A client session.
#[derive(Debug)]
pub struct Session {
    id: SessionId,
    user_id: UserId,
    client_name: Option<String>,
    config: Arc<ControlConfig>,
    players: Mutex<BTreeMap<GuildId, Player>>,
    resume: Mutex<ResumeConfig>,
    outbox: Outbox,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

/// Serial numbers for playbacks, unique across the node.
static PLAYBACK_SERIAL: AtomicU64 = AtomicU64::new(1);

/// Milliseconds on the wall clock, as Lavalink's frame accounting uses.
fn now_ms() -> i64 {
    epoch_millis() as i64
}

impl Session {
    /// A new session with no socket attached yet.
    pub fn new(
        id: SessionId,
        user_id: UserId,
        client_name: Option<String>,
        config: Arc<ControlConfig>,
    ) -> Arc<Self> {
        Arc::new(Session {
            outbox: Outbox::with_limit(config.outbox_limit_bytes),
            id,
            user_id,
            client_name,
            config,
            players: Mutex::new(BTreeMap::new()),
            resume: Mutex::new(ResumeConfig::default()),
            tasks: Mutex::new(Vec::new()),
        })
    }

    /// The session id.
    pub fn id(&self) -> &SessionId {
        &self.id
    }

    /// The bot's user id.
    pub fn user_id(&self) -> UserId {
        self.user_id
    }

    /// The `Client-Name` header, if the client sent one.
    pub fn client_name(&self) -> Option<&str> {
        self.client_name.as_deref()
    }

    /// The session's message queue.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// The node configuration.
    pub fn config(&self) -> &ControlConfig {
        &self.config
    }

    /// Current resume settings.
    pub fn resume_config(&self) -> ResumeConfig {
        *self.resume.lock()
    }

    /// Updates resume settings from `PATCH /v4/sessions/{id}`.
    pub fn update_resume(&self, resuming: Option<bool>, timeout_s: Option<i64>) -> ResumeConfig {
        let mut r = self.resume.lock();
        if let Some(v) = resuming {
            r.resuming = v;
        }
        if let Some(t) = timeout_s {
            r.timeout_s = t;
        }
        *r
    }

    /// Keeps a background task alive only as long as the session.
    pub fn own_task(&self, handle: tokio::task::AbortHandle) {
        self.tasks.lock().push(handle);
    }

    /// Locks the players. Hold the guard only for synchronous work.
    pub fn players(&self) -> MutexGuard<'_, BTreeMap<GuildId, Player>> {
        self.players.lock()
    }

    /// Sends a message (queued while the session waits for a resume).
    pub fn send(&self, msg: &OutgoingMessage) {
        self.outbox.push(msg.to_json());
    }

    /// Turns what a player emitted into messages, in order. `playerUpdate`s are not
    /// generated while the session waits for a resume.
    pub fn flush(&self, player: &Player, emitted: Vec<Emitted>) {
        for e in emitted {
            match e {
                Emitted::Event(ev) => self.send(&OutgoingMessage::Event(ev)),
                Emitted::PlayerUpdate => self.send_player_update(player),
            }
        }
    }

    /// Sends a `playerUpdate` for `player` unless the session is paused (a resume
    /// sends every player's state instead, so updates are never queued or replayed).
    pub fn send_player_update(&self, player: &Player) {
        let update = OutgoingMessage::PlayerUpdate {
            state: player.state(epoch_millis()),
            guild_id: player.guild().to_string(),
        };
        self.outbox.push_update(update.to_json());
    }

    /// All players as JSON.
    pub fn players_json(&self) -> Vec<PlayerJson> {
        let now = epoch_millis();
        self.players
            .lock()
            .values()
            .map(|p| p.to_json(now))
            .collect()
    }

    /// Counts of (players, playing players).
    pub fn player_counts(&self) -> (u32, u32) {
        let players = self.players.lock();
        let playing = players.values().filter(|p| p.is_playing()).count();
        (players.len() as u32, playing as u32)
    }

    /// Starts `track` on `player`, arming its periodic update and cleanup timer.
    pub fn play(
        self: &Arc<Self>,
        player: &mut Player,
        track: AudioTrack,
        end_time: Option<i64>,
        out: &mut Vec<Emitted>,
    ) {
        let serial = PLAYBACK_SERIAL.fetch_add(1, Ordering::Relaxed);
        player.play(track, end_time, serial, now_ms(), out);
        let timer = tokio::spawn(playback_timer(
            Arc::downgrade(self),
            player.guild(),
            serial,
            self.config.player_update_interval,
            self.config.cleanup_threshold,
        ));
        if let Some(p) = player.playback_mut() {
            p.set_timer(timer.abort_handle());
        }
    }

    /// Removes a player: its track ends with `stopped`.
    pub fn destroy_player(&self, guild: GuildId) {
        let mut players = self.players.lock();
        if let Some(mut player) = players.remove(&guild) {
            let mut out = Vec::new();
            player.end_track(TrackEndReason::Stopped, now_ms(), &mut out);
            self.flush(&player, out);
        }
    }

    /// After a resume: one `playerUpdate` per player, after the replayed queue.
    pub fn send_all_player_updates(&self) {
        let players = self.players.lock();
        for p in players.values() {
            self.send_player_update(p);
        }
    }

    /// Ends the session: players destroyed, tasks stopped, queue dropped.
    pub fn shutdown(&self) {
        let guilds: Vec<GuildId> = self.players.lock().keys().copied().collect();
        for g in guilds {
            self.destroy_player(g);
        }
        self.outbox.detach(Mode::Closed);
        self.outbox.wake();
        for t in self.tasks.lock().drain(..) {
            t.abort();
        }
    }

    /// The playing track's current epoch, if `epoch` belongs to it.
    pub fn current_epoch(&self, guild: GuildId, epoch: u32) -> Option<u32> {
        let players = self.players.lock();
        let playback = players.get(&guild)?.playback()?;
        playback.owns_epoch(epoch).then(|| playback.epoch())
    }

    /// The engine sent the last frame of the track of `epoch`.
    pub fn on_track_finished(&self, guild: GuildId, epoch: u32) {
        self.with_track(guild, epoch, |player, out| {
            player.end_track(TrackEndReason::Finished, now_ms(), out);
        });
    }

    /// The track of `epoch` failed: a `TrackExceptionEvent`, then its end (see
    /// [`TrackFailure`] for which).
    pub fn on_track_failed(&self, guild: GuildId, epoch: u32, failure: TrackFailure) {
        self.with_track(guild, epoch, |player, out| {
            let Some(playback) = player.playback() else {
                return;
            };
            let track = playback.track().to_json(player.position_ms());
            let (exception, reason) = match failure {
                TrackFailure::Load(message) => (
                    LoadFailure {
                        message,
                        severity: Severity::Common,
                        cause: None,
                    }
                    .to_exception(),
                    TrackEndReason::LoadFailed,
                ),
                TrackFailure::Broke {
                    cause,
                    before_audio,
                } => (
                    Exception {
                        message: Some("Something broke when playing the track.".into()),
                        severity: Severity::Fault,
                        cause: format!("java.lang.RuntimeException: {cause}"),
                        cause_stack_trace: format!("java.lang.RuntimeException: {cause}"),
                    },
                    if before_audio {
                        TrackEndReason::LoadFailed
                    } else {
                        TrackEndReason::Finished
                    },
                ),
            };
            out.push(Emitted::Event(Event::TrackExceptionEvent {
                guild_id: guild.to_string(),
                track,
                exception,
            }));
            player.end_track(reason, now_ms(), out);
        });
    }

    /// No audio arrived for the stuck threshold (reported once per track).
    pub fn on_track_stuck(&self, guild: GuildId, epoch: u32, threshold_ms: u64) {
        self.with_track(guild, epoch, |player, out| {
            let Some(playback) = player.playback() else {
                return;
            };
            let track = playback.track().to_json(player.position_ms());
            out.push(Emitted::Event(Event::TrackStuckEvent {
                guild_id: guild.to_string(),
                track,
                threshold_ms,
            }));
            out.push(Emitted::PlayerUpdate);
        });
    }

    /// A voice connection changed state: a `playerUpdate` for its player.
    pub fn send_update_for(&self, guild: GuildId) {
        if let Some(player) = self.players.lock().get(&guild) {
            self.send_player_update(player);
        }
    }

    /// The voice WebSocket of `guild` closed for good: `WebSocketClosedEvent`, then a
    /// `playerUpdate` if the player still exists.
    pub fn on_voice_closed(&self, guild: GuildId, code: u16, reason: String, by_remote: bool) {
        let players = self.players.lock();
        self.send(&OutgoingMessage::Event(Event::WebSocketClosedEvent {
            guild_id: guild.to_string(),
            code,
            reason,
            by_remote,
        }));
        if let Some(player) = players.get(&guild) {
            self.send_player_update(player);
        }
    }

    /// Runs `f` on the player if its current track owns `epoch`, then sends what it emitted.
    fn with_track(
        &self,
        guild: GuildId,
        epoch: u32,
        f: impl FnOnce(&mut Player, &mut Vec<Emitted>),
    ) {
        let mut players = self.players.lock();
        let Some(player) = players.get_mut(&guild) else {
            return;
        };
        if !player.playback().is_some_and(|p| p.owns_epoch(epoch)) {
            return;
        }
        let mut out = Vec::new();
        f(player, &mut out);
        self.flush(player, out);
    }

    /// Runs one timer step for the playback `serial`; false once it has ended.
    fn on_timer(
        &self,
        guild: GuildId,
        serial: u64,
        step: TimerStep,
        frames_seen: &mut u64,
    ) -> bool {
        let mut players = self.players.lock();
        let Some(player) = players.get_mut(&guild) else {
            return false;
        };
        let Some(playback) = player.playback().filter(|p| p.serial == serial) else {
            return false;
        };
        let mut out = Vec::new();
        match step {
            TimerStep::Update => {
                self.send_player_update(player);
                return true;
            }
            TimerStep::Marker => {
                if playback
                    .end_time_ms()
                    .is_none_or(|end| player.position_ms() < end)
                {
                    return true;
                }
                player.end_track(TrackEndReason::Finished, now_ms(), &mut out);
            }
            TimerStep::Cleanup => {
                let frames = player.audio().frames_sent(playback.epoch());
                if frames != *frames_seen {
                    *frames_seen = frames;
                    return true;
                }
                player.end_track(TrackEndReason::Cleanup, now_ms(), &mut out);
            }
        }
        self.flush(player, out);
        false
    }

    /// Time until the playing track reaches its end marker at the current rate, if it
    /// has one and is advancing.
    fn marker_eta(&self, guild: GuildId, serial: u64) -> Option<Duration> {
        let players = self.players.lock();
        let player = players.get(&guild)?;
        let playback = player.playback().filter(|p| p.serial == serial)?;
        let left = playback.end_time_ms()? - player.position_ms();
        Some(Duration::from_millis(left.max(0) as u64))
    }
}

/// What a playback timer wakes up for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimerStep {
    Update,
    Cleanup,
    Marker,
}

/// How often an end marker is re-checked at the least (position only advances while
/// audio is sent).
const MARKER_RECHECK: Duration = Duration::from_millis(100);

/// Periodic `playerUpdate`s while a track plays, the end marker (`endTime`), and
/// lavaplayer's cleanup: a track whose audio nobody pulls (no voice connection) ends
/// with `cleanup` after the threshold.
async fn playback_timer(
    session: Weak<Session>,
    guild: GuildId,
    serial: u64,
    every: Duration,
    cleanup_after: Duration,
) {
    let start = tokio::time::Instant::now();
    let mut cleanup_at = start + cleanup_after;
    let mut next_update = start + every;
    let mut frames_seen = 0;
    loop {
        let marker_at = {
            let Some(s) = session.upgrade() else { return };
            s.marker_eta(guild, serial).map(|eta| {
                tokio::time::Instant::now() + eta.clamp(Duration::from_millis(5), MARKER_RECHECK)
            })
        };
        let (at, step) = [
            (Some(next_update), TimerStep::Update),
            (Some(cleanup_at), TimerStep::Cleanup),
            (marker_at, TimerStep::Marker),
        ]
        .into_iter()
        .filter_map(|(at, step)| at.map(|a| (a, step)))
        .min_by_key(|(a, _)| *a)
        .unwrap_or((next_update, TimerStep::Update));
        tokio::time::sleep_until(at).await;
        let Some(session) = session.upgrade() else {
            return;
        };
        if !session.on_timer(guild, serial, step, &mut frames_seen) {
            return;
        }
        match step {
            TimerStep::Update => next_update += every,
            TimerStep::Cleanup => cleanup_at += cleanup_after,
            TimerStep::Marker => {}
        }
    }
}
