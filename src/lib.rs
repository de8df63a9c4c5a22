//! The `quaver` node: configuration, wiring, startup and shutdown.
//!
//! [`config`] reads Lavalink's `application.yml`; [`server`] turns a [`config::Config`]
//! into a running node (the control plane's HTTP server, and later the engine) and
//! shuts it down cleanly.

pub mod config;
pub mod server;
