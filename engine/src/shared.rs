//! State the engine publishes per player through atomics ("commands in, atomics
//! out"): the control plane reads it without a lock and without a round trip.

use std::sync::atomic::{AtomicU64, Ordering};

/// Frames sent are counted per epoch: a seek starts a new epoch, and the count is
/// packed with the epoch it belongs to, so a reader can never combine a new start
/// position with frames sent before the seek.
const EPOCH_SHIFT: u32 = 40;
const FRAMES_MASK: u64 = (1 << EPOCH_SHIFT) - 1;

/// Per-player counters shared by one engine player and its control-plane handle.
#[derive(Debug, Default)]
pub struct PlayerShared {
    sent: AtomicU64,
    nulled: AtomicU64,
    total_sent: AtomicU64,
}

impl PlayerShared {
    /// Frames sent in `epoch` (0 when the engine has not reached that epoch yet).
    pub fn frames_sent_in(&self, epoch: u32) -> u64 {
        let v = self.sent.load(Ordering::Acquire);
        if (v >> EPOCH_SHIFT) as u32 == epoch & 0xFF_FFFF {
            v & FRAMES_MASK
        } else {
            0
        }
    }

    /// Frames that were due but had no audio ready, since the player was created.
    pub fn frames_nulled(&self) -> u64 {
        self.nulled.load(Ordering::Relaxed)
    }

    /// Frames sent since the player was created.
    pub fn frames_sent_total(&self) -> u64 {
        self.total_sent.load(Ordering::Relaxed)
    }

    /// Engine side: a new epoch begins with zero frames sent.
    pub(crate) fn start_epoch(&self, epoch: u32) {
        self.sent.store(
            u64::from(epoch & 0xFF_FFFF) << EPOCH_SHIFT,
            Ordering::Release,
        );
    }

    /// Engine side: publishes the frames sent so far in `epoch` and in total. The
    /// owning tick thread is the only writer and keeps the counts itself, so this is
    /// two plain stores: a `fetch_add` would stall the tick on a cold line.
    pub(crate) fn publish_sent(&self, epoch: u32, in_epoch: u64, total: u64) {
        self.sent.store(
            (u64::from(epoch & 0xFF_FFFF) << EPOCH_SHIFT) | (in_epoch & FRAMES_MASK),
            Ordering::Release,
        );
        self.total_sent.store(total, Ordering::Relaxed);
    }

    /// Engine side: publishes the frames nulled so far (kept by the tick thread).
    pub(crate) fn publish_nulled(&self, nulled: u64) {
        self.nulled.store(nulled, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_belong_to_their_epoch() {
        let s = PlayerShared::default();
        s.start_epoch(1);
        s.publish_sent(1, 2, 2);
        assert_eq!(s.frames_sent_in(1), 2);
        assert_eq!(
            s.frames_sent_in(2),
            0,
            "a reader that already seeked sees no stale frames"
        );
        s.start_epoch(2);
        assert_eq!(s.frames_sent_in(2), 0);
        s.publish_sent(2, 1, 3);
        assert_eq!((s.frames_sent_in(1), s.frames_sent_in(2)), (0, 1));
        assert_eq!(s.frames_sent_total(), 3);
    }
}
