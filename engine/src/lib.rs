//! Quaver's realtime audio engine.
//!
//! A fixed pool of pinned OS threads ticks every 20 ms; each owns a [`Worker`] with its
//! share of the players. The engine never depends on tokio: the control plane talks
//! to it only through single-producer single-consumer queues, so a busy control plane
//! cannot delay a tick.
//!
//! # The tick, in this order, every 20 ms
//! 1. Drain the command queue and apply each command ([`message::ControlToEngine`]).
//! 2. Retire what is finished: removed players, replaced frame readers and outputs go
//!    back to the control plane ([`message::Retired`]) to be dropped there.
//! 3. Produce one packet per playing player into its preallocated slot
//!    ([`batch::PacketBatch`]), timing the pass: pass an Opus frame through, or
//!    scale and encode PCM. An empty frame ring is a nulled frame, never a wait.
//! 4. Wait for the deadline. Deadlines march: `deadline += 20 ms`.
//! 5. Send every packet through its player's non-blocking output; every other output
//!    gets `tick_idle` (trailing silence, keepalives).
//! 6. Publish what was actually sent (the position counters) and queue events.
//!
//! Steps 1–3 are [`Worker::produce`], 5–6 [`Worker::send`]; the runner owns step 4.
//! On the tick path nothing allocates, frees, locks, blocks or formats a log line; a
//! counting-allocator test holds the engine to that.

pub mod audio;
pub mod batch;
pub mod clock;
pub mod codec;
pub mod decode;
pub mod handle;
pub mod message;
pub mod opus;
pub mod output;
pub mod pool;
pub mod prefetch;
pub mod ring;
pub mod runner;
pub mod shared;
pub mod transport;
pub mod volume;
pub mod worker;

pub use handle::{AddPlayerError, PlayerCommand, PlayerCommands, PlayerHandle};
pub use pool::{Engine, EngineConfig, EngineFull, Placement, QueueFull};
pub use runner::RunnerStats;
pub use worker::Worker;
