//! Quaver's realtime audio engine.
//!
//! The engine is a fixed pool of pinned OS threads that tick every 20 ms, produce one
//! Opus packet per playing player and send it without blocking. It never depends on
//! tokio: the control plane talks to it only through single-producer single-consumer
//! queues, so a busy control plane can never delay a tick.
//!
//! This crate currently holds the audio constants every layer agrees on; the tick
//! threads, decoders and transports arrive with the engine issue.

pub mod audio;
