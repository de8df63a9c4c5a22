//! One watcher for every connection's "speaking" flag.
//!
//! The engine flips a connection's flag when audio starts, and after the trailing
//! silence when it stops; the connection must then send the Speaking op. Polling the
//! flag from each connection's own task meant one timer wake-up per connection every
//! 20 ms: 150 000 task wake-ups per second at 3 000 players, which was a quarter of a
//! core of the control plane with nothing changing. Here one task scans all flags
//! every 20 ms (a few microseconds for thousands) and wakes only the connections whose
//! flag changed.

use std::sync::atomic::{AtomicBool, Ordering};
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
    started: Once,
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            entries: parking_lot::Mutex::new(Vec::new()),
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
        });
        self.inner.entries.lock().push(Arc::downgrade(&watched));
        watched
    }
}

async fn scan(inner: Weak<Inner>) {
    let mut every = tokio::time::interval(SCAN_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        every.tick().await;
        let Some(inner) = inner.upgrade() else { return };
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
