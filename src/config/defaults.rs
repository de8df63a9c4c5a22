//! The embedded defaults, and the rules by which Lavalink turns some stored values
//! into the ones actually used.
//!
//! The defaults are what Lavalink's example `application.yml` sets where that is
//! the usual deployment (port 2333, password `youshallnotpass`), and Lavalink's code
//! defaults elsewhere. `table.rs` shows each one; a test checks the two agree.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use super::{
    FiltersConfig, HttpProxyConfig, LavalinkConfig, LoggingConfig, MetricsConfig, QuaverConfig,
    RateLimitConfig, RateLimitStrategy, ResamplingQuality, ServerConfig, SourcesConfig,
    TimeoutsConfig,
};

/// `server.port` default.
pub const DEFAULT_PORT: u16 = 2333;
/// `lavalink.server.password` default.
pub const DEFAULT_PASSWORD: &str = "youshallnotpass";
/// `lavalink.server.bufferDurationMs` default, and what values below the minimum mean.
pub const DEFAULT_BUFFER_DURATION_MS: u64 = 400;
/// Smallest `bufferDurationMs` used as given.
pub const MIN_BUFFER_DURATION_MS: i64 = 40;
/// `lavalink.server.frameBufferDurationMs` default.
pub const DEFAULT_FRAME_BUFFER_DURATION_MS: u64 = 5000;
/// Smallest `frameBufferDurationMs` used as given.
pub const MIN_FRAME_BUFFER_DURATION_MS: u64 = 200;
/// `lavalink.server.trackStuckThresholdMs` default.
pub const DEFAULT_TRACK_STUCK_THRESHOLD_MS: u64 = 10_000;
/// Smallest `trackStuckThresholdMs` used as given.
pub const MIN_TRACK_STUCK_THRESHOLD_MS: u64 = 100;
/// `lavalink.server.opusEncodingQuality` default (the best).
pub const DEFAULT_OPUS_ENCODING_QUALITY: u8 = 10;
/// `lavalink.server.playerUpdateInterval` default, in seconds.
pub const DEFAULT_PLAYER_UPDATE_INTERVAL_S: u64 = 5;
/// Default of each `lavalink.server.timeouts.*`.
pub const DEFAULT_TIMEOUT_MS: u64 = 3000;
/// `lavalink.server.httpConfig.proxyPort` default (Squid's port).
pub const DEFAULT_PROXY_PORT: u16 = 3128;
/// `metrics.prometheus.endpoint` when unset.
pub const DEFAULT_PROMETHEUS_ENDPOINT: &str = "/metrics";
/// `quaver.engine.maxPlayers` default.
pub const DEFAULT_MAX_PLAYERS: usize = 10_000;

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            port: DEFAULT_PORT,
            address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            http2_enabled: false,
        }
    }
}

impl Default for SourcesConfig {
    fn default() -> Self {
        Self {
            youtube: true,
            bandcamp: true,
            soundcloud: true,
            twitch: true,
            vimeo: true,
            nico: false,
            http: true,
            local: false,
        }
    }
}

impl Default for FiltersConfig {
    fn default() -> Self {
        Self {
            volume: true,
            equalizer: true,
            karaoke: true,
            timescale: true,
            tremolo: true,
            vibrato: true,
            distortion: true,
            rotation: true,
            channel_mix: true,
            low_pass: true,
        }
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            ip_blocks: Vec::new(),
            excluded_ips: Vec::new(),
            strategy: RateLimitStrategy::default(),
            retry_limit: -1,
            search_triggers_fail: true,
        }
    }
}

impl Default for HttpProxyConfig {
    fn default() -> Self {
        Self {
            proxy_host: String::new(),
            proxy_port: DEFAULT_PROXY_PORT,
            proxy_user: String::new(),
            proxy_password: String::new(),
        }
    }
}

impl Default for TimeoutsConfig {
    fn default() -> Self {
        Self {
            connect_timeout_ms: DEFAULT_TIMEOUT_MS,
            connection_request_timeout_ms: DEFAULT_TIMEOUT_MS,
            socket_timeout_ms: DEFAULT_TIMEOUT_MS,
        }
    }
}

impl Default for LavalinkConfig {
    fn default() -> Self {
        Self {
            password: Some(DEFAULT_PASSWORD.to_owned()),
            sources: SourcesConfig::default(),
            filters: FiltersConfig::default(),
            non_allocating_frame_buffer: false,
            buffer_duration_ms: DEFAULT_BUFFER_DURATION_MS as i64,
            frame_buffer_duration_ms: DEFAULT_FRAME_BUFFER_DURATION_MS,
            opus_encoding_quality: DEFAULT_OPUS_ENCODING_QUALITY,
            resampling_quality: ResamplingQuality::default(),
            track_stuck_threshold_ms: DEFAULT_TRACK_STUCK_THRESHOLD_MS,
            use_seek_ghosting: true,
            youtube_playlist_load_limit: None,
            player_update_interval_s: DEFAULT_PLAYER_UPDATE_INTERVAL_S,
            youtube_search_enabled: true,
            soundcloud_search_enabled: true,
            soundcloud_filter_out_preview_tracks: false,
            gc_warnings: true,
            ratelimit: RateLimitConfig::default(),
            youtube_config: Default::default(),
            http_config: HttpProxyConfig::default(),
            timeouts: TimeoutsConfig::default(),
            plugins: Vec::new(),
            plugins_dir: "./plugins".into(),
            default_plugin_repository: "https://maven.lavalink.dev/releases".to_owned(),
            default_plugin_snapshot_repository: "https://maven.lavalink.dev/snapshots".to_owned(),
        }
    }
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            prometheus_enabled: false,
            prometheus_endpoint: DEFAULT_PROMETHEUS_ENDPOINT.to_owned(),
            prometheus_endpoint_configured: false,
        }
    }
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            file_path: None,
            level_root: "INFO".to_owned(),
            levels: BTreeMap::new(),
            request_enabled: true,
            request_include_client_info: false,
            request_include_headers: false,
            request_include_query_string: true,
            request_include_payload: true,
            request_max_payload_length: 10_000,
            request_before_request: false,
            max_file_size: "1GB".to_owned(),
            max_history: 30,
        }
    }
}

impl Default for QuaverConfig {
    fn default() -> Self {
        Self {
            engine_threads: None,
            engine_cpus: Vec::new(),
            engine_realtime_priority: None,
            engine_spin_us: 1_000,
            engine_max_players: DEFAULT_MAX_PLAYERS,
            decode_threads: None,
            voice_allow_insecure_endpoints: false,
            voice_dave: true,
            voice_extra_ca_certificates: Vec::new(),
            local_roots: Vec::new(),
            io_threads: 1,
            server_max_connections: 1_000,
            server_header_timeout_ms: 10_000,
            server_idle_timeout_ms: 10_000,
            server_body_timeout_ms: 30_000,
        }
    }
}

impl LavalinkConfig {
    /// The send-queue length actually used: `None` when `bufferDurationMs` ≤ 0 turns
    /// the queue off, the default for values below 40 ms, else the value.
    pub fn effective_buffer_duration_ms(&self) -> Option<u64> {
        match self.buffer_duration_ms {
            ..=0 => None,
            v if v < MIN_BUFFER_DURATION_MS => Some(DEFAULT_BUFFER_DURATION_MS),
            v => Some(v.unsigned_abs()),
        }
    }

    /// The frame buffer actually used: the default for values below 200 ms.
    pub fn effective_frame_buffer_duration_ms(&self) -> u64 {
        match self.frame_buffer_duration_ms {
            v if v < MIN_FRAME_BUFFER_DURATION_MS => DEFAULT_FRAME_BUFFER_DURATION_MS,
            v => v,
        }
    }

    /// The stuck-track threshold actually used: the default for values below 100 ms.
    pub fn effective_track_stuck_threshold_ms(&self) -> u64 {
        match self.track_stuck_threshold_ms {
            v if v < MIN_TRACK_STUCK_THRESHOLD_MS => DEFAULT_TRACK_STUCK_THRESHOLD_MS,
            v => v,
        }
    }
}

impl QuaverConfig {
    /// Tick threads to start on a machine with `cores` cores: the configured number,
    /// else one per core but one, at least one.
    pub fn effective_engine_threads(&self, cores: usize) -> usize {
        self.engine_threads
            .unwrap_or(cores.saturating_sub(1))
            .max(1)
    }

    /// Decoder threads to start on a machine with `cores` cores: the configured
    /// number, else one per core, at least one.
    pub fn effective_decode_threads(&self, cores: usize) -> usize {
        self.decode_threads.unwrap_or(cores).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn embedded_defaults() {
        let c = Config::default();
        assert_eq!(c.server.port, 2333);
        assert_eq!(c.server.address, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert!(!c.server.http2_enabled);
        assert_eq!(c.lavalink.password.as_deref(), Some("youshallnotpass"));
        assert!(c.lavalink.sources.youtube && c.lavalink.sources.http && !c.lavalink.sources.nico);
        assert!(c.lavalink.filters.channel_mix && c.lavalink.filters.low_pass);
        assert_eq!(c.lavalink.buffer_duration_ms, 400);
        assert_eq!(c.lavalink.frame_buffer_duration_ms, 5000);
        assert_eq!(c.lavalink.opus_encoding_quality, 10);
        assert_eq!(c.lavalink.resampling_quality, ResamplingQuality::Low);
        assert_eq!(c.lavalink.track_stuck_threshold_ms, 10_000);
        assert_eq!(c.lavalink.player_update_interval_s, 5);
        assert_eq!(
            c.lavalink.ratelimit.strategy,
            RateLimitStrategy::RotateOnBan
        );
        assert_eq!(c.lavalink.ratelimit.retry_limit, -1);
        assert_eq!(c.lavalink.http_config.proxy_port, 3128);
        assert_eq!(c.lavalink.timeouts.socket_timeout_ms, 3000);
        assert!(c.lavalink.plugins.is_empty());
        assert_eq!(c.metrics.prometheus_endpoint, "/metrics");
        assert!(!c.metrics.prometheus_endpoint_configured);
        assert_eq!(c.logging.level_root, "INFO");
        assert_eq!(c.logging.max_file_size, "1GB");
        assert_eq!(c.quaver.engine_max_players, 10_000);
        assert_eq!(c.quaver.engine_threads, None);
    }

    #[test]
    fn small_buffer_values_mean_the_default() {
        let mut l = LavalinkConfig::default();
        for (given, used) in [
            (0, None),
            (-5, None),
            (39, Some(400)),
            (40, Some(40)),
            (900, Some(900)),
        ] {
            l.buffer_duration_ms = given;
            assert_eq!(l.effective_buffer_duration_ms(), used, "{given}");
        }
        l.frame_buffer_duration_ms = 199;
        assert_eq!(l.effective_frame_buffer_duration_ms(), 5000);
        l.frame_buffer_duration_ms = 200;
        assert_eq!(l.effective_frame_buffer_duration_ms(), 200);
        l.track_stuck_threshold_ms = 99;
        assert_eq!(l.effective_track_stuck_threshold_ms(), 10_000);
        l.track_stuck_threshold_ms = 100;
        assert_eq!(l.effective_track_stuck_threshold_ms(), 100);
    }

    #[test]
    fn thread_counts_follow_the_cores() {
        let mut q = QuaverConfig::default();
        assert_eq!(q.effective_engine_threads(8), 7);
        assert_eq!(q.effective_engine_threads(1), 1);
        assert_eq!(q.effective_decode_threads(8), 8);
        q.engine_threads = Some(3);
        assert_eq!(q.effective_engine_threads(8), 3);
    }
}
