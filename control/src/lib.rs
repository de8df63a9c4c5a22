//! Quaver's control plane: the Lavalink v4 REST and WebSocket protocol, sessions,
//! players and track loading. Runs on tokio; talks to the realtime engine only through
//! queues.

pub mod track;
