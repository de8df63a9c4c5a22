//! Discord voice: the gateway protocol (sans-IO), its close-code policy, and the
//! tokio driver that connects a player to a voice server.

pub mod close;
pub mod connection;
pub mod gateway;

#[cfg(test)]
mod gateway_tests;
