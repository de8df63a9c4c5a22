//! Node statistics: process and system figures, and per-player frame accounting.

pub mod counters;
pub mod loss;
pub mod system;

pub use loss::AudioLossCounter;
pub use system::{ProcessFigures, SystemStats};
