//! Quaver's control plane: the Lavalink v4 REST and WebSocket protocol, sessions,
//! players and track loading. Runs on tokio; talks to the realtime engine only
//! through queues.
//!
//! Layout, from the edge inwards:
//! - [`rest`] and [`ws`]: HTTP routes, authentication, Lavalink's error bodies.
//! - [`session`]: one session per client socket, its ordered outbox and resume.
//! - [`player`]: a guild's player state and the rules that change it.
//! - [`protocol`]: the JSON wire types; [`track`]: the lavaplayer track codec.
//! - [`loader`]: source managers behind `/v4/loadtracks`.
//! - [`stats`]: `stats` figures and per-player frame accounting.

pub mod audio_track;
pub mod config;
pub mod ids;
pub mod loader;
pub mod media;
pub mod metrics;
pub mod node;
pub mod player;
pub mod protocol;
pub mod rest;
pub mod session;
pub mod sources;
pub mod stats;
pub mod tls;
pub mod track;
pub mod voice;
pub mod ws;

pub use config::{BuildInfo, ControlConfig, MetricsEndpoint};
pub use node::Node;
pub use rest::router;
