//! The settings the control plane needs, filled in by the binary from
//! `application.yml` (the control crate does not parse files).

use std::time::Duration;

use crate::protocol::filters::BUILTIN_FILTERS;

/// Control-plane settings.
#[derive(Debug, Clone)]
pub struct ControlConfig {
    /// `lavalink.server.password`; `None` refuses every REST request.
    pub password: Option<String>,
    /// How often `playerUpdate` is sent for a playing player.
    pub player_update_interval: Duration,
    /// How often each session receives `stats` (Lavalink: one minute).
    pub stats_interval: Duration,
    /// A playing track whose audio nobody pulls for this long ends with `cleanup`
    /// (lavaplayer's player cleanup threshold, one minute).
    pub cleanup_threshold: Duration,
    /// Names of filters disabled in the config (`lavalink.server.filters.<name>: false`).
    pub disabled_filters: Vec<String>,
    /// What `/version` and `/v4/info` report.
    pub build: BuildInfo,
    /// Bytes a session may hold queued or unacknowledged while its client is
    /// connected; a client that stops reading is disconnected past this (it can resume).
    pub outbox_limit_bytes: usize,
    /// Connection limits and timeouts of the HTTP edge (`quaver.server.*`).
    pub edge: EdgeLimits,
    /// `metrics.prometheus.*`: where Prometheus metrics are served, when enabled.
    pub metrics: Option<MetricsEndpoint>,
}

/// Where Prometheus metrics are served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsEndpoint {
    /// Request path (`/metrics` unless configured).
    pub path: String,
    /// Served without `Authorization`: Lavalink skips authentication only for an
    /// endpoint configured explicitly (`metrics.prometheus.endpoint`).
    pub open: bool,
}

/// How the HTTP edge protects itself from clients that connect and never finish a
/// request (`quaver.server.*`). A connection counts as authenticated once it has
/// made a REST request with the right password or upgraded to a WebSocket;
/// authenticated connections are exempt from the cap and the idle timeouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeLimits {
    /// Most connections that have not authenticated yet; when one more arrives, the
    /// oldest of them is closed.
    pub max_connections: usize,
    /// Time an unauthenticated connection gets to send a complete request head,
    /// counted from the connection (or its previous response).
    pub header_timeout: Duration,
    /// Time an unauthenticated connection may sit without a request.
    pub idle_timeout: Duration,
    /// Time any request gets to deliver its whole body, counted from its head.
    pub body_timeout: Duration,
}

impl Default for EdgeLimits {
    fn default() -> Self {
        EdgeLimits {
            max_connections: 1000,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
        }
    }
}

/// Version and build facts reported by `/version` and `/v4/info`.
#[derive(Debug, Clone)]
pub struct BuildInfo {
    /// The Lavalink API version this node speaks, as a semver string. Clients gate
    /// features on it, so it names the Lavalink release whose behaviour Quaver matches.
    pub semver: String,
    /// Build time, epoch ms.
    pub build_time: u64,
    /// Git branch of the build.
    pub git_branch: String,
    /// Abbreviated git commit.
    pub git_commit: String,
    /// Commit time, epoch ms.
    pub git_commit_time: u64,
    /// Reported in `jvm` (Quaver has no JVM; it names itself and its toolchain).
    pub runtime: String,
    /// Reported in `lavaplayer` (Quaver's own version: its audio stack replaces lavaplayer).
    pub player_library: String,
}

impl ControlConfig {
    /// Whether a filter may be used.
    pub fn filter_enabled(&self, name: &str) -> bool {
        !self.disabled_filters.iter().any(|d| d == name)
    }

    /// The built-in filters that are enabled, in Lavalink's order.
    pub fn enabled_filters(&self) -> Vec<String> {
        BUILTIN_FILTERS
            .iter()
            .filter(|f| self.filter_enabled(f))
            .map(|f| f.to_string())
            .collect()
    }
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            password: Some("youshallnotpass".into()),
            player_update_interval: Duration::from_secs(5),
            stats_interval: Duration::from_secs(60),
            cleanup_threshold: Duration::from_secs(60),
            disabled_filters: Vec::new(),
            build: BuildInfo::default(),
            outbox_limit_bytes: crate::session::DEFAULT_LIMIT_BYTES,
            edge: EdgeLimits::default(),
            metrics: None,
        }
    }
}

impl Default for BuildInfo {
    fn default() -> Self {
        BuildInfo {
            semver: "4.2.2".into(),
            build_time: 0,
            git_branch: "unknown".into(),
            git_commit: "unknown".into(),
            git_commit_time: 0,
            runtime: format!("quaver {}", env!("CARGO_PKG_VERSION")),
            player_library: format!("quaver {}", env!("CARGO_PKG_VERSION")),
        }
    }
}
