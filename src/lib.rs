//! The `quaver` node: configuration, wiring, startup and shutdown.

pub mod config;
