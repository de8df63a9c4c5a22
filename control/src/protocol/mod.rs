//! Lavalink v4 wire types: what clients send and what they receive.
//!
//! Serialization follows the real server (kotlinx-serialization with
//! `encodeDefaults = false`, `explicitNulls = true`): nullable fields without a default
//! are always emitted, fields are written in the server's declaration order, and
//! request parsing is strictly typed. See `reference/lavalink-protocol.md` §0.

pub mod filters;
pub mod messages;
pub mod patch;
pub mod player;
pub mod track;

pub use filters::Filters;
pub use patch::Patch;
