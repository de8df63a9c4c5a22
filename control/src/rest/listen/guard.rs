//! Which connections are still strangers, and when each must go: the connection cap
//! and the header and idle timeouts, as plain state and a [`Conn::watch`] that takes
//! the time as a parameter; the connection's task only sleeps until the next verdict.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::config::EdgeLimits;

/// The connections that have not authenticated yet, oldest first.
#[derive(Debug)]
pub(super) struct Registry {
    cap: usize,
    next_id: AtomicU64,
    waiting: Mutex<BTreeMap<u64, Arc<Conn>>>,
}

impl Registry {
    pub(super) fn new(cap: usize) -> Self {
        Registry {
            cap: cap.max(1),
            next_id: AtomicU64::new(0),
            waiting: Mutex::new(BTreeMap::new()),
        }
    }

    /// Registers a new connection, evicting the oldest unauthenticated ones beyond the cap.
    pub(super) fn admit(self: &Arc<Self>) -> Arc<Conn> {
        let conn = Arc::new(Conn::new(self.next_id.fetch_add(1, SeqCst), self.clone()));
        let mut evicted = Vec::new();
        {
            let mut waiting = self.waiting.lock();
            while waiting.len() >= self.cap {
                match waiting.pop_first() {
                    Some((_, old)) => evicted.push(old),
                    None => break,
                }
            }
            waiting.insert(conn.id, conn.clone());
        }
        if !evicted.is_empty() {
            tracing::debug!(
                count = evicted.len(),
                "connection cap reached; closing the oldest unauthenticated connection"
            );
        }
        for old in evicted {
            old.evict.notify_one();
        }
        conn
    }

    pub(super) fn evict_oldest(&self) {
        let oldest = self.waiting.lock().pop_first();
        if let Some((_, old)) = oldest {
            old.evict.notify_one();
        }
    }

    pub(super) fn forget(&self, id: u64) {
        self.waiting.lock().remove(&id);
    }
}

/// What the watchdog knows about one connection.
#[derive(Debug)]
pub(super) struct Conn {
    pub(super) id: u64,
    pub(super) registry: Arc<Registry>,
    started: Instant,
    authenticated: AtomicBool,
    /// Requests handed to the router and not answered yet.
    in_flight: AtomicU32,
    /// Bytes read from the socket so far.
    bytes_read: AtomicU64,
    /// `bytes_read` when the last response was produced: more means a new request
    /// head is arriving.
    read_mark: AtomicU64,
    /// Milliseconds from `started` to the last response (0 before the first).
    last_done_ms: AtomicU64,
    /// Milliseconds from `started` to the first byte read after `read_mark`.
    head_started_ms: AtomicU64,
    /// Woken when a request head starts to arrive.
    pub(super) head_started: Notify,
    /// Set when a request body missed its deadline.
    pub(super) body_timed_out: AtomicBool,
    pub(super) evict: Notify,
}

/// What the watchdog does next.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Watch {
    /// Nothing to watch: the connection is authenticated.
    Exempt,
    /// Look again at this time.
    At(Instant),
    /// Close it now.
    Close,
}

impl Conn {
    pub(super) fn new(id: u64, registry: Arc<Registry>) -> Self {
        Conn {
            id,
            registry,
            started: Instant::now(),
            authenticated: AtomicBool::new(false),
            in_flight: AtomicU32::new(0),
            bytes_read: AtomicU64::new(0),
            read_mark: AtomicU64::new(0),
            last_done_ms: AtomicU64::new(0),
            head_started_ms: AtomicU64::new(0),
            head_started: Notify::new(),
            body_timed_out: AtomicBool::new(false),
            evict: Notify::new(),
        }
    }

    fn at(&self, offset_ms: &AtomicU64) -> Instant {
        self.started + Duration::from_millis(offset_ms.load(SeqCst))
    }

    /// Counts bytes read; the first after the last response starts the header clock.
    pub(super) fn read(&self, n: usize) {
        let before = self.bytes_read.fetch_add(n as u64, SeqCst);
        if before == self.read_mark.load(SeqCst) {
            self.head_started_ms
                .store(self.started.elapsed().as_millis() as u64, SeqCst);
            self.head_started.notify_one();
        }
    }

    pub(super) fn authenticate(&self) {
        if !self.authenticated.swap(true, SeqCst) {
            self.registry.forget(self.id);
        }
    }

    pub(super) fn watch(&self, limits: &EdgeLimits, now: Instant) -> Watch {
        if self.authenticated.load(SeqCst) {
            return Watch::Exempt;
        }
        if self.in_flight.load(SeqCst) > 0 {
            // The body timeout bounds the request; look again later.
            return Watch::At(now + limits.idle_timeout);
        }
        let head_arriving = self.bytes_read.load(SeqCst) > self.read_mark.load(SeqCst);
        let deadline = if head_arriving {
            self.at(&self.head_started_ms) + limits.header_timeout
        } else {
            self.at(&self.last_done_ms) + limits.idle_timeout
        };
        if now >= deadline {
            Watch::Close
        } else {
            Watch::At(deadline)
        }
    }
}

/// Counts a request as in flight until its response is produced (or it is dropped).
pub(super) struct InFlight(Arc<Conn>);

impl InFlight {
    pub(super) fn new(conn: &Arc<Conn>) -> Self {
        conn.in_flight.fetch_add(1, SeqCst);
        InFlight(conn.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let c = &self.0;
        c.last_done_ms
            .store(c.started.elapsed().as_millis() as u64, SeqCst);
        c.read_mark.store(c.bytes_read.load(SeqCst), SeqCst);
        c.in_flight.fetch_sub(1, SeqCst);
    }
}

/// The connection a request arrived on, in the request's extensions.
#[derive(Debug, Clone)]
pub struct EdgeConnection(pub(super) Arc<Conn>);

impl EdgeConnection {
    /// Marks the connection as authenticated: exempt from the cap and idle timeouts.
    pub fn authenticate(&self) {
        self.0.authenticate();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> EdgeLimits {
        EdgeLimits {
            max_connections: 2,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(20),
            body_timeout: Duration::from_secs(30),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn watchdog_times_heads_and_idleness_until_authenticated() {
        let registry = Arc::new(Registry::new(2));
        let conn = registry.admit();
        let t0 = conn.started;
        // Nothing read: idle timeout from the connection.
        assert_eq!(
            conn.watch(&limits(), t0),
            Watch::At(t0 + Duration::from_secs(20))
        );
        // A head starting to arrive at +2 s: the header timeout from then.
        tokio::time::advance(Duration::from_secs(2)).await;
        conn.read(10);
        assert_eq!(
            conn.watch(&limits(), t0),
            Watch::At(t0 + Duration::from_secs(12))
        );
        conn.read(10);
        assert_eq!(
            conn.watch(&limits(), t0),
            Watch::At(t0 + Duration::from_secs(12))
        );
        assert_eq!(
            conn.watch(&limits(), t0 + Duration::from_secs(12)),
            Watch::Close
        );
        // A request in flight is not judged by the watchdog.
        let guard = InFlight::new(&conn);
        assert!(matches!(
            conn.watch(&limits(), t0 + Duration::from_secs(60)),
            Watch::At(_)
        ));
        tokio::time::advance(Duration::from_secs(5)).await;
        drop(guard);
        // Answered at +7 s with nothing new read: idle from then.
        assert_eq!(
            conn.watch(&limits(), t0),
            Watch::At(t0 + Duration::from_secs(27))
        );
        conn.authenticate();
        assert_eq!(
            conn.watch(&limits(), t0 + Duration::from_secs(999)),
            Watch::Exempt
        );
    }

    #[tokio::test]
    async fn cap_evicts_the_oldest_unauthenticated() {
        let registry = Arc::new(Registry::new(2));
        let a = registry.admit();
        let b = registry.admit();
        b.authenticate();
        let c = registry.admit();
        // b left the registry: a and c fit.
        assert_eq!(registry.waiting.lock().len(), 2);
        let _d = registry.admit();
        // a, the oldest waiting, was told to go; c was not.
        tokio::time::timeout(Duration::from_secs(1), a.evict.notified())
            .await
            .expect("oldest evicted");
        assert!(
            tokio::time::timeout(Duration::from_millis(50), c.evict.notified())
                .await
                .is_err()
        );
    }
}
