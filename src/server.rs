//! Wiring: from a [`Config`] to a listening node, and back down.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use std::path::PathBuf;

use quaver_control::config::{EdgeLimits, MetricsEndpoint};
use quaver_control::loader::{SourceManager, TrackLoader};
use quaver_control::media::{Media, MediaSettings, VoiceConnector};
use quaver_control::sources::fetch::{Fetcher, IoThreads};
use quaver_control::sources::http::{HttpSource, HttpTimeouts};
use quaver_control::sources::local::LocalSource;
use quaver_control::voice::connection::{DiscordVoice, TransportFactory, TransportParams};
use quaver_control::voice::speaking::SpeakingWatch;
use quaver_control::{BuildInfo, ControlConfig, Node};
use quaver_engine::clock::SystemClock;
use quaver_engine::decode::DecodePool;
use quaver_engine::output::PacketOutput;
use quaver_engine::transport::{EncryptionMode, RtpState, TransportCipher, VoiceOutput};
use quaver_engine::{Engine, EngineConfig};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::{Config, ResamplingQuality};
use quaver_engine::decode::pcm::ResampleQuality;

/// A running node.
#[derive(Debug)]
pub struct Running {
    addr: SocketAddr,
    node: Arc<Node>,
    media: Arc<Media>,
    server: JoinHandle<io::Result<()>>,
}

/// Everything that makes sound: the engine, the decoders, the sources and where
/// connected players' packets go.
pub struct AudioSetup {
    /// Tick threads and capacity.
    pub engine: EngineConfig,
    /// Decode threads.
    pub decode_threads: usize,
    /// Encoder quality, buffer and stuck threshold.
    pub media: MediaSettings,
    /// Voice transport.
    pub voice: Arc<dyn VoiceConnector>,
    /// `lavalink.server.sources.local`, with `quaver.sources.localRoots`.
    pub local: Option<Vec<PathBuf>>,
    /// `lavalink.server.sources.http`, with `lavalink.server.timeouts.*`.
    pub http: Option<HttpTimeouts>,
    /// `quaver.sources.ioThreads`: threads fetching network tracks (async: one serves
    /// thousands of streams; see `control/src/sources/fetch.rs`).
    pub io_threads: usize,
}

impl std::fmt::Debug for AudioSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioSetup")
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

/// The Discord voice connector, with the engine's RTP + AEAD transport and, with
/// `dave`, DAVE end-to-end encryption advertised (`max_dave_protocol_version: 1`).
/// `wss://` endpoints are trusted by the web PKI roots plus the CAs in
/// `extra_ca_files` (`quaver.voice.extraCaCertificates`); a file that cannot be
/// loaded is logged here and fails each voice connection with the reason.
pub fn discord_voice(
    allow_insecure: bool,
    dave: bool,
    extra_ca_files: &[std::path::PathBuf],
) -> DiscordVoice {
    let tls = quaver_control::voice::connection::tls_config(extra_ca_files);
    if let Err(reason) = &tls {
        tracing::error!(%reason, "quaver.voice.extraCaCertificates: voice connections will fail");
    }
    let transport: TransportFactory = Arc::new(|p: TransportParams| {
        let mode = EncryptionMode::from_name(&p.mode)
            .ok_or_else(|| format!("unsupported mode {}", p.mode))?;
        let mut output = VoiceOutput::new(
            p.socket,
            TransportCipher::new(mode, p.key),
            RtpState::new(p.ssrc),
        )
        .map_err(|e| format!("cannot prepare the UDP socket: {e}"))?;
        output.count_speaking_changes(p.speaking_changes);
        let speaking = output.speaking();
        Ok((Box::new(output) as Box<dyn PacketOutput>, speaking))
    });
    DiscordVoice {
        allow_insecure,
        tls,
        dave_version: u8::from(dave),
        transport,
        speaking: SpeakingWatch::default(),
    }
}

/// The audio setup the configuration describes.
pub fn audio_setup(config: &Config) -> AudioSetup {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let q = &config.quaver;
    let l = &config.lavalink;
    AudioSetup {
        engine: EngineConfig {
            threads: q.effective_engine_threads(cores),
            cpus: q.engine_cpus.clone(),
            realtime_priority: q.engine_realtime_priority,
            max_players: q.engine_max_players,
            spin: Duration::from_micros(q.engine_spin_us),
        },
        decode_threads: q.effective_decode_threads(cores),
        media: MediaSettings {
            opus_quality: l.opus_encoding_quality,
            buffer_ms: l.effective_frame_buffer_duration_ms(),
            stuck_threshold_ms: l.effective_track_stuck_threshold_ms(),
            resample: match l.resampling_quality {
                ResamplingQuality::Low => ResampleQuality::Low,
                ResamplingQuality::Medium => ResampleQuality::Medium,
                ResamplingQuality::High => ResampleQuality::High,
            },
        },
        voice: Arc::new(discord_voice(
            q.voice_allow_insecure_endpoints,
            q.voice_dave,
            &q.voice_extra_ca_certificates,
        )),
        local: l.sources.local.then(|| q.local_roots.clone()),
        http: l.sources.http.then(|| HttpTimeouts {
            connect: Duration::from_millis(l.timeouts.connect_timeout_ms),
            socket: Duration::from_millis(l.timeouts.socket_timeout_ms),
        }),
        io_threads: q.io_threads,
    }
}

/// The control-plane settings derived from the node configuration.
pub fn control_config(config: &Config) -> ControlConfig {
    let l = &config.lavalink;
    let q = &config.quaver;
    let f = &l.filters;
    let disabled = [
        ("volume", f.volume),
        ("equalizer", f.equalizer),
        ("karaoke", f.karaoke),
        ("timescale", f.timescale),
        ("tremolo", f.tremolo),
        ("vibrato", f.vibrato),
        ("distortion", f.distortion),
        ("rotation", f.rotation),
        ("channelMix", f.channel_mix),
        ("lowPass", f.low_pass),
    ]
    .into_iter()
    .filter(|(_, on)| !on)
    .map(|(name, _)| name.to_owned())
    .collect();
    ControlConfig {
        password: l.password.clone(),
        player_update_interval: Duration::from_secs(l.player_update_interval_s.max(1)),
        disabled_filters: disabled,
        build: build_info(),
        edge: EdgeLimits {
            max_connections: q.server_max_connections,
            header_timeout: Duration::from_millis(q.server_header_timeout_ms),
            idle_timeout: Duration::from_millis(q.server_idle_timeout_ms),
            body_timeout: Duration::from_millis(q.server_body_timeout_ms),
        },
        metrics: config.metrics.prometheus_enabled.then(|| MetricsEndpoint {
            path: if config.metrics.prometheus_endpoint.starts_with('/') {
                config.metrics.prometheus_endpoint.clone()
            } else {
                format!("/{}", config.metrics.prometheus_endpoint)
            },
            open: config.metrics.prometheus_endpoint_configured,
        }),
        ..ControlConfig::default()
    }
}

/// What `--version` prints, in the shape of Lavalink's version banner.
pub fn version_text() -> String {
    let b = build_info();
    format!(
        "Version:        {}\nBuild time:     {}\nBranch:         {}\nCommit:         {}\nCommit time:    {}\nRuntime:        {}\nPlayer library: {}\n",
        b.semver, b.build_time, b.git_branch, b.git_commit, b.git_commit_time, b.runtime, b.player_library
    )
}

fn build_info() -> BuildInfo {
    BuildInfo {
        build_time: env!("QUAVER_BUILD_TIME_MS").parse().unwrap_or(0),
        git_branch: env!("QUAVER_GIT_BRANCH").into(),
        git_commit: env!("QUAVER_GIT_COMMIT").into(),
        git_commit_time: env!("QUAVER_GIT_COMMIT_TIME_MS").parse().unwrap_or(0),
        ..BuildInfo::default()
    }
}

/// Raises the soft limit on open files to the hard limit (a systemd service or a
/// login shell often starts at 1 024 while the hard limit is far higher) and returns
/// the limit now in force, or `None` when it cannot be read.
pub fn raise_open_file_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `getrlimit` writes one `rlimit` through a valid, exclusive pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    if lim.rlim_cur < lim.rlim_max {
        let before = lim.rlim_cur;
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: `setrlimit` reads one `rlimit` through a valid pointer.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            tracing::info!(
                from = before,
                to = raised.rlim_cur,
                "raised the open-file limit"
            );
            lim = raised;
        } else {
            tracing::warn!(
                limit = before,
                hard = lim.rlim_max,
                "could not raise the open-file limit"
            );
        }
    }
    Some(lim.rlim_cur)
}

/// The edge limits in force: `quaver.server.maxConnections` is lowered to half the
/// open-file limit when that is smaller, so unauthenticated connections alone can
/// never exhaust the descriptors authenticated clients, files and sockets need.
fn edge_limits(configured: &EdgeLimits, open_files: Option<u64>) -> EdgeLimits {
    let mut limits = configured.clone();
    if let Some(files) = open_files {
        let room = usize::try_from(files / 2).unwrap_or(usize::MAX).max(1);
        if limits.max_connections > room {
            tracing::warn!(
                configured = limits.max_connections,
                used = room,
                open_files = files,
                "quaver.server.maxConnections lowered to half the open-file limit"
            );
            limits.max_connections = room;
        }
    }
    tracing::info!(
        max_connections = limits.max_connections,
        header_timeout_ms = limits.header_timeout.as_millis() as u64,
        idle_timeout_ms = limits.idle_timeout.as_millis() as u64,
        body_timeout_ms = limits.body_timeout.as_millis() as u64,
        "HTTP edge limits"
    );
    limits
}

impl Running {
    /// Binds `server.address:server.port` (port 0 picks a free port) and serves.
    pub async fn start(config: &Config) -> io::Result<Running> {
        let listener = TcpListener::bind((config.server.address, config.server.port)).await?;
        Self::start_on(config, listener).await
    }

    /// Serves on an already bound listener.
    pub async fn start_on(config: &Config, listener: TcpListener) -> io::Result<Running> {
        if !config.lavalink.ratelimit.ip_blocks.is_empty() {
            tracing::warn!("lavalink.server.ratelimit.ipBlocks is set, but Quaver has no IP-rotating route planner; requests use the default route");
        }
        Self::serve(control_config(config), audio_setup(config), listener).await
    }

    /// Serves with explicit settings (tests shorten timers and capture packets this way).
    pub async fn serve(
        control: ControlConfig,
        audio: AudioSetup,
        listener: TcpListener,
    ) -> io::Result<Running> {
        let addr = listener.local_addr()?;
        let mut sources: Vec<Box<dyn SourceManager>> = Vec::new();
        if let Some(roots) = &audio.local {
            sources.push(Box::new(LocalSource::new(roots)));
        }
        // Lavalink registers the HTTP source last: it claims any URL.
        if let Some(timeouts) = audio.http {
            let io = IoThreads::start(audio.io_threads)?;
            sources.push(Box::new(HttpSource::new(
                timeouts,
                Fetcher::new(io, timeouts)?,
            )));
        }
        let loader = Arc::new(TrackLoader::new(sources));
        let engine = Arc::new(Engine::start(&audio.engine, Arc::new(SystemClock))?);
        tracing::info!(
            threads = engine.threads(),
            capacity = engine.capacity(),
            decode_threads = audio.decode_threads,
            "audio engine started"
        );
        let decoders = DecodePool::start(audio.decode_threads)?;
        let media = Media::start(engine, decoders, audio.media, audio.voice, loader.clone());
        let node = Node::new(control, loader, Arc::new(media.clone()));
        node.start_frame_sampler();
        let app = quaver_control::router(node.clone());
        let limits = edge_limits(&node.config.edge, raise_open_file_limit());
        let server = tokio::spawn(quaver_control::rest::listen::serve(
            listener,
            app,
            limits,
            node.shutdown_signal(),
        ));
        tracing::info!(%addr, "Quaver is ready to accept connections");
        Ok(Running {
            addr,
            node,
            media,
            server,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The control-plane node (for tests and metrics).
    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// The audio side (engine statistics).
    pub fn media(&self) -> &Arc<Media> {
        &self.media
    }

    /// Closes every client socket with 1001, destroys all sessions and stops serving.
    pub async fn shutdown(self) -> io::Result<()> {
        self.node.shutdown();
        self.media.engine().shutdown();
        match tokio::time::timeout(Duration::from_secs(5), self.server).await {
            Ok(joined) => joined.map_err(io::Error::other)?,
            Err(_) => Ok(()),
        }
    }
}
