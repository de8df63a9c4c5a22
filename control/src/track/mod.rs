//! Tracks as Lavalink clients see them: the opaque `encoded` string a client keeps and
//! hands back, and the track info carried inside it.

pub mod codec;
