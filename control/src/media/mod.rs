//! The bridge from control-plane players to the realtime engine and the decode pool.
//!
//! Each player gets an [`EngineAudio`]: the engine's [`PlayerHandle`] (which removes
//! the player when dropped), its voice connection, and the decode job of its current
//! track. One task routes what comes back — engine events and decode reports — to the
//! owning session, and drops what the engine retired.

mod output;
mod route;

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use quaver_engine::decode::pcm::ResampleQuality;
use quaver_engine::decode::stream::{Readahead, StreamInput};
use quaver_engine::decode::{
    DecodePool, Input, JobHandle, JobReport, JobSpec, FAILED_BEFORE_AUDIO,
};
use quaver_engine::message::{EngineToControl, TrackEnd};
use quaver_engine::opus::{OpusDecoder, OpusEncoder};
use quaver_engine::shared::PlayerShared;
use quaver_engine::{Engine, Placement, PlayerCommand, PlayerCommands, PlayerHandle};
use tokio::sync::mpsc;

pub use output::{DaveState, NoVoice, VoiceConnector, VoiceHandle, VoiceLink, VoiceRequest};
use route::Route;

use crate::audio_track::AudioTrack;
use crate::ids::GuildId;
use crate::loader::{SourceInput, TrackLoader};
use crate::player::{AudioFactory, PlayerAudio};
use crate::protocol::filters::Filters;
use crate::protocol::player::VoiceState;
use crate::rest::error::ApiError;
use crate::session::{Session, TrackFailure};

/// How often the router drains engine events.
const EVENT_POLL: Duration = Duration::from_millis(10);

/// Audio settings from `lavalink.server.*`.
#[derive(Debug, Clone, Copy)]
pub struct MediaSettings {
    /// `opusEncodingQuality` (encoder complexity 0–10).
    pub opus_quality: u8,
    /// `frameBufferDurationMs`: how much audio a network track reads ahead (as
    /// compressed bytes); the frame ring holds at most half a second of it as Opus
    /// packets, 0.3 s as decoded PCM.
    pub buffer_ms: u64,
    /// `trackStuckThresholdMs`.
    pub stuck_threshold_ms: u64,
    /// `resamplingQuality`.
    pub resample: ResampleQuality,
}

/// Work for the router task, from decode threads and voice connections.
#[derive(Debug)]
enum MediaEvent {
    /// A decode job's report.
    Decode {
        route: Placement,
        epoch: u32,
        report: JobReport,
    },
    /// A voice connection's state changed: send a `playerUpdate`.
    VoiceUpdate { route: Placement },
    /// A voice connection closed for good.
    VoiceClosed {
        route: Placement,
        code: u16,
        reason: String,
        by_remote: bool,
    },
}

/// The engine, the decoders and the routing between them and the sessions.
pub struct Media {
    engine: Arc<Engine>,
    decoders: DecodePool,
    settings: MediaSettings,
    voice: Arc<dyn VoiceConnector>,
    loader: Arc<TrackLoader>,
    routes: Mutex<HashMap<Placement, Route>>,
    /// Mid-track failure messages, until the engine reports the failure in order.
    failures: Mutex<HashMap<Placement, String>>,
    /// Routes of destroyed players, for their last voice-closed event.
    retired: Mutex<HashMap<Placement, Route>>,
    events_tx: mpsc::UnboundedSender<MediaEvent>,
}

impl std::fmt::Debug for Media {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Media")
            .field("engine", &self.engine)
            .field("settings", &self.settings)
            .finish()
    }
}

impl Media {
    /// Wires the engine and decoders to the control plane and starts the router task.
    pub fn start(
        engine: Arc<Engine>,
        decoders: DecodePool,
        settings: MediaSettings,
        voice: Arc<dyn VoiceConnector>,
        loader: Arc<TrackLoader>,
    ) -> Arc<Media> {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let media = Arc::new(Media {
            engine,
            decoders,
            settings,
            voice,
            loader,
            routes: Mutex::default(),
            failures: Mutex::default(),
            retired: Mutex::default(),
            events_tx,
        });
        tokio::spawn(router(Arc::downgrade(&media), events_rx));
        media
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    fn route(&self, key: Placement) -> Option<(Arc<Session>, GuildId, PlayerCommands)> {
        let routes = self.routes.lock();
        let r = routes.get(&key)?;
        Some((r.session.upgrade()?, r.guild, r.player.clone()))
    }

    fn on_engine_event(&self, thread: usize, event: EngineToControl) {
        let (key, epoch, what) = match event {
            EngineToControl::Retired(r) => return drop(r),
            EngineToControl::TrackEnded { key, epoch, end } => (key, epoch, Some(end)),
            EngineToControl::Stuck { key, epoch } => (key, epoch, None),
        };
        let route = Placement { thread, key };
        let Some((session, guild, _)) = self.route(route) else {
            return;
        };
        match what {
            Some(TrackEnd::Finished) => session.on_track_finished(guild, epoch),
            Some(TrackEnd::Failed(code)) => {
                let cause = self
                    .failures
                    .lock()
                    .remove(&route)
                    .unwrap_or_else(|| "decoding failed".into());
                let failure = TrackFailure::Broke {
                    cause,
                    before_audio: code == FAILED_BEFORE_AUDIO,
                };
                session.on_track_failed(guild, epoch, failure);
            }
            None => session.on_track_stuck(guild, epoch, self.settings.stuck_threshold_ms),
        }
    }

    fn on_media_event(&self, event: MediaEvent) {
        match event {
            MediaEvent::Decode {
                route,
                epoch,
                report,
            } => self.on_decode_report(route, epoch, report),
            MediaEvent::VoiceUpdate { route } => {
                if let Some((session, guild, _)) = self.route(route) {
                    session.send_update_for(guild);
                }
            }
            MediaEvent::VoiceClosed {
                route,
                code,
                reason,
                by_remote,
            } => {
                if let Some((session, guild, _)) =
                    self.route(route).or_else(|| self.retired_route(route))
                {
                    session.on_voice_closed(guild, code, reason, by_remote);
                }
            }
        }
    }

    /// Routes of destroyed players stay known briefly, so their final
    /// `WebSocketClosedEvent` still reaches the client.
    fn retired_route(&self, route: Placement) -> Option<(Arc<Session>, GuildId, PlayerCommands)> {
        let r = self.retired.lock().remove(&route)?;
        Some((r.session.upgrade()?, r.guild, r.player))
    }

    fn on_decode_report(&self, route: Placement, epoch: u32, report: JobReport) {
        let Some((session, guild, player)) = self.route(route) else {
            return;
        };
        match report {
            JobReport::Ready { frames, .. } => match session.current_epoch(guild, epoch) {
                Some(epoch) => {
                    if let Err(e) = player.send(PlayerCommand::Play { frames, epoch }) {
                        tracing::error!(error = %e, ?route, "the track's frames were dropped");
                    }
                }
                None => drop(frames),
            },
            JobReport::LoadFailed(message) => {
                session.on_track_failed(guild, epoch, TrackFailure::Load(message))
            }
            // A panic while opening: lavaplayer's "Something broke" fault, before any audio.
            JobReport::Panicked(cause) => session.on_track_failed(
                guild,
                epoch,
                TrackFailure::Broke {
                    cause,
                    before_audio: true,
                },
            ),
            JobReport::Failed { message, .. } => {
                self.failures.lock().insert(route, message);
            }
        }
    }
}

/// Drains engine events every few milliseconds, and decode and voice reports as they come.
async fn router(media: Weak<Media>, mut events_rx: mpsc::UnboundedReceiver<MediaEvent>) {
    let mut tick = tokio::time::interval(EVENT_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Decode reports first: a job reports a mid-track failure (with its message)
        // before it writes the `Failed` record the engine reports it by, so draining
        // reports before engine events keeps the message with its failure.
        tokio::select! {
            biased;
            Some(event) = events_rx.recv() => {
                let Some(media) = media.upgrade() else { return };
                media.on_media_event(event);
            }
            _ = tick.tick() => {
                let Some(media) = media.upgrade() else { return };
                let mut events = Vec::new();
                media.engine.drain_events(|thread, e| events.push((thread, e)));
                for (thread, e) in events {
                    media.on_engine_event(thread, e);
                }
            }
        }
    }
}

impl AudioFactory for Arc<Media> {
    fn engine_stats(&self) -> Vec<Arc<quaver_engine::RunnerStats>> {
        self.engine().stats()
    }

    fn create(
        &self,
        session: &Arc<Session>,
        guild: GuildId,
    ) -> Result<Box<dyn PlayerAudio>, ApiError> {
        let stuck_after_ticks = (self.settings.stuck_threshold_ms
            / quaver_engine::audio::FRAME_MS as u64)
            .max(1) as u32;
        let player = self
            .engine
            .add_player(stuck_after_ticks)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let route = player.id();
        self.routes.lock().insert(
            route,
            Route {
                session: Arc::downgrade(session),
                guild,
                player: player.commands(),
            },
        );
        Ok(Box::new(EngineAudio {
            media: self.clone(),
            shared: player.shared().clone(),
            player: Some(player),
            route,
            guild,
            user_id: session.user_id().0.get(),
            job: None,
            voice: None,
            codecs_sent: false,
        }))
    }
}

/// A player's binding to the engine and to its voice connection.
pub struct EngineAudio {
    media: Arc<Media>,
    /// `None` once destroyed: dropping it removed the engine player.
    player: Option<PlayerHandle>,
    route: Placement,
    guild: GuildId,
    user_id: u64,
    /// The player's published figures (kept readable after it was destroyed).
    shared: Arc<PlayerShared>,
    job: Option<JobHandle>,
    voice: Option<Box<dyn VoiceHandle>>,
    /// Whether the engine player got its Opus codecs (see [`Self::ensure_codecs`]).
    codecs_sent: bool,
}

impl std::fmt::Debug for EngineAudio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineAudio")
            .field("route", &self.route)
            .field("voice", &self.voice)
            .finish()
    }
}

impl EngineAudio {
    fn send(&self, cmd: PlayerCommand) {
        let Some(player) = &self.player else { return };
        if let Err(e) = player.send(cmd) {
            tracing::error!(error = %e, route = ?self.route, "engine command dropped");
        }
    }

    /// Sends the engine player an Opus encoder and decoder before the first volume or
    /// filter that makes it decode and re-encode Opus: players are created without
    /// them (an Opus passthrough player at unity volume never uses their ~75 KB), and
    /// the tick cannot make them. Once sent they stay for the player's life.
    fn ensure_codecs(&mut self) {
        if self.codecs_sent {
            return;
        }
        let codecs = OpusEncoder::new(self.media.settings.opus_quality)
            .and_then(|e| Ok((e, OpusDecoder::new()?)));
        match codecs {
            Ok((encoder, decoder)) => {
                self.codecs_sent = true;
                self.send(PlayerCommand::Codecs {
                    encoder: Box::new(encoder),
                    decoder: Box::new(decoder),
                });
            }
            // The tick then passes Opus through unprocessed.
            Err(e) => tracing::error!("cannot create the Opus codecs: {e}"),
        }
    }

    fn stop_job(&mut self) {
        if let Some(job) = self.job.take() {
            job.stop();
        }
    }

    fn link(&self) -> VoiceLink {
        VoiceLink {
            media: Arc::downgrade(&self.media),
            route: self.route,
            player: self.player.as_ref().map(PlayerHandle::commands),
        }
    }

    /// Drops the voice connection; a connected one is reported closed (1000, by us),
    /// as Lavalink reports a connection it replaces or destroys.
    fn disconnect(&mut self) {
        if let Some(old) = self.voice.take() {
            let was_connected = old.is_connected();
            drop(old);
            self.send(PlayerCommand::SetOutput(None));
            if was_connected {
                self.link().closed(1000, String::new(), false);
            }
        }
    }
}

impl PlayerAudio for EngineAudio {
    fn play(&mut self, track: &AudioTrack, start_ms: u64, epoch: u32) {
        self.stop_job();
        let route = self.route;
        let Some(open) = self.media.loader.opener(track.blob()) else {
            self.send(PlayerCommand::Stop);
            let message = format!(
                "no {} source on this node can play this track",
                track.blob().source_name
            );
            let report = JobReport::LoadFailed(message);
            let _ = self.media.events_tx.send(MediaEvent::Decode {
                route,
                epoch,
                report,
            });
            return;
        };
        // The engine counts the wait for the first frames towards stuck, as lavaplayer
        // does from the track's start: a source that stalls before it opens is stuck.
        self.send(PlayerCommand::Open { epoch });
        let tx = self.media.events_tx.clone();
        let input = match open.input {
            SourceInput::File(opener) => Input::Open(opener),
            SourceInput::Network(start) => {
                let blob = track.blob();
                let readahead = Readahead {
                    ms: self.media.settings.buffer_ms,
                    track_ms: (!blob.is_stream && blob.length_ms > 0)
                        .then_some(blob.length_ms as u64),
                };
                Input::Stream(StreamInput::new(start(readahead)))
            }
        };
        let spec = JobSpec {
            input,
            extension: open.extension,
            start_ms,
            epoch,
            buffer_ms: self.media.settings.buffer_ms,
            resample: self.media.settings.resample,
            encoder_complexity: self.media.settings.opus_quality,
        };
        let report = Box::new(move |report| {
            let _ = tx.send(MediaEvent::Decode {
                route,
                epoch,
                report,
            });
        });
        self.job = Some(self.media.decoders.submit(spec, report));
    }

    fn stop(&mut self) {
        self.stop_job();
        self.send(PlayerCommand::Stop);
    }

    fn seek(&mut self, position_ms: u64, epoch: u32) {
        if let Some(job) = &self.job {
            job.seek(position_ms, epoch);
        }
        self.send(PlayerCommand::Seek { epoch });
    }

    fn set_paused(&mut self, paused: bool) {
        self.send(PlayerCommand::Pause(paused));
    }

    fn set_volume(&mut self, volume: u16) {
        if volume != 100 {
            self.ensure_codecs();
        }
        self.send(PlayerCommand::Volume(volume));
    }

    /// An active chain turns Opus passthrough off (decode + re-encode), as in Lavalink.
    /// The filter DSP itself is not in the engine yet: the chain is stored and echoed,
    /// and the re-encoded audio is otherwise unchanged.
    fn set_filters(&mut self, filters: &Filters) {
        if filters.is_active() {
            self.ensure_codecs();
        }
        self.send(PlayerCommand::Process(filters.is_active()));
    }

    fn set_voice(&mut self, voice: &VoiceState) {
        self.disconnect();
        let request = VoiceRequest {
            guild: self.guild,
            user_id: self.user_id,
            voice: voice.clone(),
        };
        self.voice = Some(self.media.voice.connect(request, self.link()));
    }

    fn frames_sent(&self, epoch: u32) -> u64 {
        self.shared.frames_sent_in(epoch)
    }

    fn frames_nulled(&self) -> u64 {
        self.shared.frames_nulled()
    }

    fn frames_sent_total(&self) -> u64 {
        self.shared.frames_sent_total()
    }

    fn is_connected(&self) -> bool {
        self.voice.as_ref().is_some_and(|v| v.is_connected())
    }

    fn ping_ms(&self) -> Option<i64> {
        self.voice.as_ref().and_then(|v| v.ping_ms())
    }

    fn dave_protocol(&self) -> Option<u16> {
        self.voice
            .as_ref()
            .and_then(|v| v.dave())
            .map(|d| d.protocol_version)
    }

    fn destroy(&mut self) {
        self.stop_job();
        let route = self.media.routes.lock().remove(&self.route);
        if let Some(route) = route.filter(|_| self.is_connected()) {
            self.media.retired.lock().insert(self.route, route);
        }
        self.disconnect();
        // Removes the engine player and frees its slot.
        self.player = None;
        self.media.failures.lock().remove(&self.route);
    }
}
