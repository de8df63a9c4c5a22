//! Typed identifiers, parsed once at the protocol edge.

use std::fmt;
use std::num::NonZeroU64;
use std::str::FromStr;

/// A Discord guild snowflake. One player exists per guild per session.
///
/// Discord never issues snowflake 0, so the type cannot hold it; Lavalink's JSON carries
/// guild ids as strings and its URL paths as numbers, and both parse into this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GuildId(pub NonZeroU64);

/// Why a snowflake string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid snowflake {0:?}: expected a positive integer below 2^63")]
pub struct InvalidSnowflake(pub String);

fn parse_snowflake(s: &str) -> Result<NonZeroU64, InvalidSnowflake> {
    s.parse::<u64>()
        .ok()
        .filter(|v| *v <= i64::MAX as u64)
        .and_then(NonZeroU64::new)
        .ok_or_else(|| InvalidSnowflake(s.to_owned()))
}

impl FromStr for GuildId {
    type Err = InvalidSnowflake;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_snowflake(s).map(GuildId)
    }
}

impl fmt::Display for GuildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The Discord user id of the bot that owns a session (`User-Id` handshake header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UserId(pub NonZeroU64);

impl FromStr for UserId {
    type Err = InvalidSnowflake;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_snowflake(s).map(UserId)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A Lavalink session id: 16 characters from `[a-z0-9]`, unique among live sessions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(String);

impl SessionId {
    /// Length of every generated session id.
    pub const LEN: usize = 16;
    const ALPHABET: &'static [u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

    /// A fresh random id; the caller checks uniqueness against live sessions.
    pub fn random() -> Self {
        use rand::RngExt;
        let mut rng = rand::rng();
        let id = (0..Self::LEN)
            .map(|_| Self::ALPHABET[rng.random_range(0..Self::ALPHABET.len())] as char)
            .collect();
        SessionId(id)
    }

    /// Wraps a client-supplied id (from a URL or the `Session-Id` header) for lookup.
    /// Any string is accepted: an id that was never issued simply matches no session.
    pub fn from_client(s: &str) -> Self {
        SessionId(s.to_owned())
    }

    /// The id as sent on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snowflakes_parse_strictly() {
        assert_eq!(
            "817327181659111454".parse::<GuildId>().unwrap().to_string(),
            "817327181659111454"
        );
        for bad in ["0", "-1", "abc", "", " 1", "1.0", "9223372036854775808"] {
            assert!(bad.parse::<GuildId>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn session_ids_use_lavalinks_alphabet() {
        let id = SessionId::random();
        assert_eq!(id.as_str().len(), SessionId::LEN);
        assert!(id
            .as_str()
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        assert_ne!(SessionId::random(), id);
    }
}
