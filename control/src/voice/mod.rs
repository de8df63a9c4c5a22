//! Discord voice: the gateway protocol (sans-IO), DAVE end-to-end encryption (sans-IO),
//! its close-code policy, and the tokio driver that connects a player to a voice server.

pub mod close;
pub mod connection;
pub mod dave;
pub mod gateway;
pub mod speaking;

#[cfg(test)]
mod dave_tests;
#[cfg(test)]
mod gateway_tests;
