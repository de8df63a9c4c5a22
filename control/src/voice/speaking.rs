//! One watcher for every connection's "speaking" flag.
//!
//! The engine flips a connection's flag when audio starts, and after the trailing
//! silence when it stops; the connection must then send the Speaking op. Polling the
//! flag from each connection's own task meant one timer wake-up per connection every
//! 20 ms: 150 000 task wake-ups per second at 3 000 players, which was a quarter of a
//! core of the control plane with nothing changing. Here one task scans all flags
//! every 20 ms and wakes only the connections whose flag changed. The outputs also
//! count every change in one shared counter ([`SpeakingWatch::changes`]), and a scan
//! that finds the counter where it was skips the flags: with thousands of players
//! playing steadily, walking every flag (a pointer chase each) was a fifth of the
//! control plane's time.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Once, Weak};
use std::time::Duration;

use tokio::sync::Notify;

/// How often the flags are scanned: one tick, as often as the engine can flip them.
const SCAN_EVERY: Duration = Duration::from_millis(20);

/// The watcher, shared by all connections of a node (cheap to clone).
#[derive(Clone, Default)]
pub struct SpeakingWatch {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SpeakingWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpeakingWatch")
            .field("watched", &self.inner.entries.lock().len())
            .finish()
    }
}

struct Inner {
    entries: parking_lot::Mutex<Vec<Weak<Watched>>>,
    /// Bumped by the outputs after each flag change, and by each new watch.
    changes: Arc<AtomicU64>,
    started: Once,
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            entries: parking_lot::Mutex::new(Vec::new()),
            changes: Arc::default(),
            started: Once::new(),
        }
    }
}

/// One connection's flag under watch; dropping it ends the watch.
#[derive(Debug)]
pub struct Watched {
    flag: Arc<AtomicBool>,
    seen: AtomicBool,
    changed: Notify,
    /// The watcher's change counter: a dropped watch bumps it, so the next scan
    /// forgets the watch.
    changes: Arc<AtomicU64>,
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.changes.fetch_add(1, Ordering::Release);
    }
}

impl Watched {
    /// The flag's value now.
    pub fn speaking(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }

    /// Resolves once the flag has changed since the last scan that woke this
    /// connection (a change before the call is not lost: it leaves a permit).
    pub async fn changed(&self) {
        self.changed.notified().await;
    }
}

impl SpeakingWatch {
    /// The counter every watched flag's owner must bump (after storing the flag) each
    /// time the flag changes; a flag changed without it is seen only at the next
    /// counted change.
    pub fn changes(&self) -> Arc<AtomicU64> {
        self.inner.changes.clone()
    }

    /// Starts watching `flag`. The first call starts the scanning task on the current
    /// tokio runtime; it ends when the last clone of this watch is dropped.
    pub fn watch(&self, flag: Arc<AtomicBool>) -> Arc<Watched> {
        self.inner.started.call_once(|| {
            tokio::spawn(scan(Arc::downgrade(&self.inner)));
        });
        let seen = AtomicBool::new(flag.load(Ordering::Relaxed));
        let watched = Arc::new(Watched {
            flag,
            seen,
            changed: Notify::new(),
            changes: self.inner.changes.clone(),
        });
        self.inner.entries.lock().push(Arc::downgrade(&watched));
        // A flag that changed between its creation and this watch is seen.
        self.inner.changes.fetch_add(1, Ordering::Release);
        watched
    }
}

async fn scan(inner: Weak<Inner>) {
    let mut every = tokio::time::interval(SCAN_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut scanned_at = 0;
    loop {
        every.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        // Read before the flags: a change during the scan leaves the counter ahead,
        // and the next scan looks again.
        let changes = inner.changes.load(Ordering::Acquire);
        if changes == scanned_at {
            continue;
        }
        scanned_at = changes;
        inner.entries.lock().retain(|entry| {
            let Some(w) = entry.upgrade() else {
                return false;
            };
            let now = w.flag.load(Ordering::Relaxed);
            if w.seen.swap(now, Ordering::Relaxed) != now {
                w.changed.notify_one();
            }
            true
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wakes_only_on_a_change_and_forgets_dropped_watches() {
        let watch = SpeakingWatch::default();
        let flag = Arc::new(AtomicBool::new(true));
        let w = watch.watch(flag.clone());
        let quiet = tokio::time::timeout(Duration::from_millis(100), w.changed()).await;
        assert!(quiet.is_err(), "no change, no wake-up");
        flag.store(false, Ordering::Relaxed);
        let uncounted = tokio::time::timeout(Duration::from_millis(100), w.changed()).await;
        assert!(
            uncounted.is_err(),
            "a change the counter does not show is not scanned for"
        );
        watch.changes().fetch_add(1, Ordering::Release);
        tokio::time::timeout(Duration::from_secs(2), w.changed())
            .await
            .expect("a change wakes the connection");
        assert!(!w.speaking());
        let other = watch.watch(Arc::new(AtomicBool::new(false)));
        drop(w);
        tokio::time::sleep(SCAN_EVERY * 3).await;
        assert_eq!(
            watch.inner.entries.lock().len(),
            1,
            "the dropped watch is gone"
        );
        drop(other);
    }
}
