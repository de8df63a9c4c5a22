//! Sessions: one per client WebSocket, owning that client's players and its ordered
//! outgoing messages, surviving a disconnect when the client asked to resume.

mod client;
mod outbox;
mod registry;

pub use client::{ResumeConfig, Session, TrackFailure};
pub use outbox::{Mode, Next, Outbox, DEFAULT_LIMIT_BYTES};
pub use registry::Sessions;
