//! Node configuration: Lavalink's own `application.yml`, read unmodified, plus
//! Quaver's keys under a top-level `quaver:` section.
//!
//! Sources, lowest precedence first: embedded defaults, the YAML file (`--config PATH`,
//! else `./application.yml` if present), then environment variables named the Spring
//! way (`SERVER_PORT`, `LAVALINK_SERVER_PASSWORD`, `LAVALINK_PLUGINS_0_DEPENDENCY`, …).
//! Keys match with Spring's relaxed binding: `camelCase`, `kebab-case` and
//! `snake_case` spellings of a key are the same key.
//!
//! [`Config::load`] is the entry point. An unknown key is a warning in
//! [`Loaded::warnings`]; a value a key cannot take is a [`ConfigError`] that stops
//! startup. [`reference_markdown`] documents every key from the same table the loader
//! uses.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

mod defaults;
mod env;
mod error;
mod keys;
mod layer;
mod load;
mod reference;
mod table;
#[cfg(test)]
mod tests;
mod yaml;

pub use defaults::{
    DEFAULT_BUFFER_DURATION_MS, DEFAULT_FRAME_BUFFER_DURATION_MS, DEFAULT_MAX_PLAYERS,
    DEFAULT_OPUS_ENCODING_QUALITY, DEFAULT_PASSWORD, DEFAULT_PLAYER_UPDATE_INTERVAL_S,
    DEFAULT_PORT, DEFAULT_PROMETHEUS_ENDPOINT, DEFAULT_PROXY_PORT, DEFAULT_TIMEOUT_MS,
    DEFAULT_TRACK_STUCK_THRESHOLD_MS, MIN_BUFFER_DURATION_MS, MIN_FRAME_BUFFER_DURATION_MS,
    MIN_TRACK_STUCK_THRESHOLD_MS,
};
pub use error::ConfigError;
pub use load::{ConfigSource, Loaded, DEFAULT_FILE_NAME};
pub use reference::reference_markdown;

/// The whole node configuration after defaults, file and environment were merged.
/// [`Config::default`] is the embedded defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    /// `server.*`: where the REST + WebSocket server listens.
    pub server: ServerConfig,
    /// `lavalink.server.*` and `lavalink.plugins*`.
    pub lavalink: LavalinkConfig,
    /// `metrics.prometheus.*`.
    pub metrics: MetricsConfig,
    /// `sentry.*` (accepted for compatibility; Quaver reports nothing to Sentry).
    pub sentry: SentryConfig,
    /// `logging.*`.
    pub logging: LoggingConfig,
    /// `quaver.*`: settings Lavalink does not have.
    pub quaver: QuaverConfig,
}

/// `server.*`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// `server.port`, default 2333 (Lavalink's documented port).
    pub port: u16,
    /// `server.address`, default `0.0.0.0`.
    pub address: IpAddr,
    /// `server.http2.enabled`, default false.
    pub http2_enabled: bool,
}

/// `lavalink.*`.
#[derive(Debug, Clone, PartialEq)]
pub struct LavalinkConfig {
    /// `lavalink.server.password`; `None` when unset (then REST always refuses).
    pub password: Option<String>,
    /// `lavalink.server.sources.*`.
    pub sources: SourcesConfig,
    /// `lavalink.server.filters.*`.
    pub filters: FiltersConfig,
    /// `lavalink.server.nonAllocatingFrameBuffer`, default false.
    pub non_allocating_frame_buffer: bool,
    /// `lavalink.server.bufferDurationMs`, default 400 ms; ≤ 0 disables, < 40 means default.
    pub buffer_duration_ms: i64,
    /// `lavalink.server.frameBufferDurationMs`, default 5000 ms; < 200 means default.
    pub frame_buffer_duration_ms: u64,
    /// `lavalink.server.opusEncodingQuality`, 0–10, default 10.
    pub opus_encoding_quality: u8,
    /// `lavalink.server.resamplingQuality`, default LOW.
    pub resampling_quality: ResamplingQuality,
    /// `lavalink.server.trackStuckThresholdMs`, default 10000 ms; < 100 means default.
    pub track_stuck_threshold_ms: u64,
    /// `lavalink.server.useSeekGhosting`, default true.
    pub use_seek_ghosting: bool,
    /// `lavalink.server.youtubePlaylistLoadLimit` (pages of 100), default unset.
    pub youtube_playlist_load_limit: Option<u32>,
    /// `lavalink.server.playerUpdateInterval` in seconds, default 5.
    pub player_update_interval_s: u64,
    /// `lavalink.server.youtubeSearchEnabled`, default true.
    pub youtube_search_enabled: bool,
    /// `lavalink.server.soundcloudSearchEnabled`, default true.
    pub soundcloud_search_enabled: bool,
    /// `lavalink.server.soundcloudFilterOutPreviewTracks`, default false.
    pub soundcloud_filter_out_preview_tracks: bool,
    /// `lavalink.server.gc-warnings`, default true (no garbage collector here: accepted only).
    pub gc_warnings: bool,
    /// `lavalink.server.ratelimit.*`.
    pub ratelimit: RateLimitConfig,
    /// `lavalink.server.youtubeConfig.*`.
    pub youtube_config: YoutubeConfig,
    /// `lavalink.server.httpConfig.*`.
    pub http_config: HttpProxyConfig,
    /// `lavalink.server.timeouts.*`.
    pub timeouts: TimeoutsConfig,
    /// `lavalink.plugins[]`.
    pub plugins: Vec<PluginDeclaration>,
    /// `lavalink.pluginsDir`, default `./plugins`.
    pub plugins_dir: PathBuf,
    /// `lavalink.defaultPluginRepository`.
    pub default_plugin_repository: String,
    /// `lavalink.defaultPluginSnapshotRepository`.
    pub default_plugin_snapshot_repository: String,
}

/// `lavalink.server.sources.*`: which source managers are registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourcesConfig {
    /// `youtube`, default true.
    pub youtube: bool,
    /// `bandcamp`, default true.
    pub bandcamp: bool,
    /// `soundcloud`, default true.
    pub soundcloud: bool,
    /// `twitch`, default true.
    pub twitch: bool,
    /// `vimeo`, default true.
    pub vimeo: bool,
    /// `nico`, default false.
    pub nico: bool,
    /// `http`, default true.
    pub http: bool,
    /// `local`, default false.
    pub local: bool,
}

/// `lavalink.server.filters.*`: each built-in filter can be disabled (all default true).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FiltersConfig {
    /// `volume`.
    pub volume: bool,
    /// `equalizer`.
    pub equalizer: bool,
    /// `karaoke`.
    pub karaoke: bool,
    /// `timescale`.
    pub timescale: bool,
    /// `tremolo`.
    pub tremolo: bool,
    /// `vibrato`.
    pub vibrato: bool,
    /// `distortion`.
    pub distortion: bool,
    /// `rotation`.
    pub rotation: bool,
    /// `channelMix`.
    pub channel_mix: bool,
    /// `lowPass`.
    pub low_pass: bool,
}

/// `lavalink.server.resamplingQuality`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ResamplingQuality {
    /// `LOW` (default): cheapest.
    #[default]
    Low,
    /// `MEDIUM`.
    Medium,
    /// `HIGH`: best quality, most CPU.
    High,
}

/// `lavalink.server.ratelimit.*`.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitConfig {
    /// `ipBlocks`: CIDR blocks; the route planner exists only when non-empty.
    pub ip_blocks: Vec<String>,
    /// `excludedIps`.
    pub excluded_ips: Vec<String>,
    /// `strategy`, default `RotateOnBan`.
    pub strategy: RateLimitStrategy,
    /// `retryLimit`: -1 source default, 0 infinite, > 0 count.
    pub retry_limit: i32,
    /// `searchTriggersFail`, default true.
    pub search_triggers_fail: bool,
}

/// `lavalink.server.ratelimit.strategy` (case-insensitive in the file).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RateLimitStrategy {
    /// `RotateOnBan` → `RotatingIpRoutePlanner` (default).
    #[default]
    RotateOnBan,
    /// `LoadBalance` → `BalancingIpRoutePlanner`.
    LoadBalance,
    /// `NanoSwitch` → `NanoIpRoutePlanner`.
    NanoSwitch,
    /// `RotatingNanoSwitch` → `RotatingNanoIpRoutePlanner`.
    RotatingNanoSwitch,
}

/// `lavalink.server.youtubeConfig.*`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct YoutubeConfig {
    /// `email`.
    pub email: String,
    /// `password`.
    pub password: String,
}

/// `lavalink.server.httpConfig.*`: proxy for the HTTP source.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpProxyConfig {
    /// `proxyHost`, default empty (no proxy).
    pub proxy_host: String,
    /// `proxyPort`, default 3128.
    pub proxy_port: u16,
    /// `proxyUser`.
    pub proxy_user: String,
    /// `proxyPassword`.
    pub proxy_password: String,
}

/// `lavalink.server.timeouts.*` in milliseconds (each default 3000).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeoutsConfig {
    /// `connectTimeoutMs`.
    pub connect_timeout_ms: u64,
    /// `connectionRequestTimeoutMs`.
    pub connection_request_timeout_ms: u64,
    /// `socketTimeoutMs`.
    pub socket_timeout_ms: u64,
}

/// One `lavalink.plugins[]` entry. Quaver loads no JVM plugins; entries are accepted
/// so an unmodified Lavalink file loads, and each one is reported at startup.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginDeclaration {
    /// `dependency`: Maven coordinates.
    pub dependency: String,
    /// `repository`, optional.
    pub repository: Option<String>,
    /// `snapshot`, default false.
    pub snapshot: bool,
}

/// `metrics.prometheus.*`.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsConfig {
    /// `metrics.prometheus.enabled`, default false.
    pub prometheus_enabled: bool,
    /// `metrics.prometheus.endpoint`, default `/metrics`.
    pub prometheus_endpoint: String,
    /// Whether `metrics.prometheus.endpoint` was set (non-empty). Lavalink serves the
    /// endpoint without `Authorization` only then; the default `/metrics` needs it.
    pub prometheus_endpoint_configured: bool,
}

/// `sentry.*`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SentryConfig {
    /// `sentry.dsn`.
    pub dsn: String,
    /// `sentry.environment`.
    pub environment: String,
    /// `sentry.tags.*`.
    pub tags: BTreeMap<String, String>,
}

/// `logging.*`.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggingConfig {
    /// `logging.file.path`; `None` logs to standard output only.
    pub file_path: Option<PathBuf>,
    /// `logging.level.root`, default INFO.
    pub level_root: String,
    /// `logging.level.<logger>`: every other logger level (`lavalink`, `quaver`, …).
    pub levels: BTreeMap<String, String>,
    /// `logging.request.enabled`, default true.
    pub request_enabled: bool,
    /// `logging.request.includeClientInfo`, default false.
    pub request_include_client_info: bool,
    /// `logging.request.includeHeaders`, default false.
    pub request_include_headers: bool,
    /// `logging.request.includeQueryString`, default true.
    pub request_include_query_string: bool,
    /// `logging.request.includePayload`, default true.
    pub request_include_payload: bool,
    /// `logging.request.maxPayloadLength` in bytes, default 10000.
    pub request_max_payload_length: usize,
    /// `logging.request.beforeRequest`, default false.
    pub request_before_request: bool,
    /// `logging.logback.rollingpolicy.max-file-size`, default `1GB`.
    pub max_file_size: String,
    /// `logging.logback.rollingpolicy.max-history` in days, default 30.
    pub max_history: u32,
}

/// `quaver.*`: settings of Quaver's own engine and voice layer.
#[derive(Debug, Clone, PartialEq)]
pub struct QuaverConfig {
    /// `quaver.engine.threads`: tick threads; default one per core minus one, at least one.
    pub engine_threads: Option<usize>,
    /// `quaver.engine.cpus`: CPU ids to pin tick threads to, in order; default none.
    pub engine_cpus: Vec<usize>,
    /// `quaver.engine.realtimePriority`: SCHED_FIFO priority 1–99; default none.
    pub engine_realtime_priority: Option<u8>,
    /// `quaver.engine.spinUs`: spin this long before each deadline instead of sleeping, default 1000 µs.
    pub engine_spin_us: u64,
    /// `quaver.engine.maxPlayers`: player capacity fixed at startup, default 10000.
    pub engine_max_players: usize,
    /// `quaver.decode.threads`: decoder pool size; default the number of cores.
    pub decode_threads: Option<usize>,
    /// `quaver.voice.allowInsecureEndpoints`: accept `ws://host:port` endpoints (tests), default false.
    pub voice_allow_insecure_endpoints: bool,
    /// `quaver.voice.dave`: advertise DAVE end-to-end encryption, default true.
    pub voice_dave: bool,
    /// `quaver.voice.extraCaCertificates`: PEM files of CAs trusted for `wss://` voice
    /// endpoints besides the web PKI roots, default none.
    pub voice_extra_ca_certificates: Vec<PathBuf>,
    /// `quaver.sources.localRoots`: directories the local source may read, default none.
    pub local_roots: Vec<PathBuf>,
    /// `quaver.sources.ioThreads`: threads fetching network tracks, default 1.
    pub io_threads: usize,
    /// `quaver.server.maxConnections`: most unauthenticated connections, default 1000.
    pub server_max_connections: usize,
    /// `quaver.server.headerTimeoutMs`: time to send a request head before
    /// authenticating, default 10000 ms.
    pub server_header_timeout_ms: u64,
    /// `quaver.server.idleTimeoutMs`: idle time allowed before authenticating,
    /// default 10000 ms.
    pub server_idle_timeout_ms: u64,
    /// `quaver.server.bodyTimeoutMs`: time a request body may take, default 30000 ms.
    pub server_body_timeout_ms: u64,
}
