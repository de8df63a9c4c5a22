//! Wiring: from a [`Config`] to a listening node, and back down.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quaver_control::loader::TrackLoader;
use quaver_control::player::DetachedFactory;
use quaver_control::{BuildInfo, ControlConfig, Node};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::Config;

/// A running node.
#[derive(Debug)]
pub struct Running {
    addr: SocketAddr,
    node: Arc<Node>,
    server: JoinHandle<io::Result<()>>,
}

/// The control-plane settings derived from the node configuration.
pub fn control_config(config: &Config) -> ControlConfig {
    let l = &config.lavalink;
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
        track_stuck_threshold_ms: l.effective_track_stuck_threshold_ms(),
        disabled_filters: disabled,
        route_planner: false,
        build: build_info(),
        ..ControlConfig::default()
    }
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
        Self::serve(control_config(config), listener).await
    }

    /// Serves the control plane with explicit control settings (tests shorten its
    /// timers this way).
    pub async fn serve(control: ControlConfig, listener: TcpListener) -> io::Result<Running> {
        let addr = listener.local_addr()?;
        let node = Node::new(
            control,
            Arc::new(TrackLoader::default()),
            Arc::new(DetachedFactory),
        );
        let app = quaver_control::router(node.clone());
        let mut shutdown = node.shutdown_signal();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = shutdown.wait_for(|down| *down).await;
                })
                .await
        });
        tracing::info!(%addr, "Quaver is ready to accept connections");
        Ok(Running { addr, node, server })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The control-plane node (for tests and metrics).
    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// Closes every client socket with 1001, destroys all sessions and stops serving.
    pub async fn shutdown(self) -> io::Result<()> {
        self.node.shutdown();
        match tokio::time::timeout(Duration::from_secs(5), self.server).await {
            Ok(joined) => joined.map_err(io::Error::other)?,
            Err(_) => Ok(()),
        }
    }
}
