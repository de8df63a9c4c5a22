//! Sessions: one per client WebSocket, owning that client's players and its ordered
//! outgoing messages, surviving a disconnect when the client asked to resume.

mod outbox;
mod registry;
mod client;

pub use outbox::{Mode, Outbox};
pub use registry::Sessions;
pub use client::{ResumeConfig, Session};
