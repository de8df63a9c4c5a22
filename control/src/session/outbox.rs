//! A session's outgoing message queue, and the proof that the client read it.
//!
//! Every message for a client goes through here, in order. While a socket is
//! attached, its writer drains the queue. A written message is not forgotten when the
//! kernel accepts it: the kernel may still lose it when the connection drops. It moves
//! to the *unacknowledged* list, and after each burst the writer sends a WebSocket
//! Ping carrying the sequence number of the last message written. Pings are answered
//! in order with the data before them (RFC 6455 §5.5.2), so the client's Pong proves
//! that every message up to that number was read; those are dropped. When the socket
//! goes away, unacknowledged messages go back to the front of the queue, and a resume
//! replays them before anything newer.
//!
//! So no message is lost across a drop. What can still repeat after a resume is the
//! tail the client read but whose Pong did not get back before the drop: at most the
//! messages of the last round trip before it. `playerUpdate`s are the exception both
//! ways: pushed with [`Outbox::push_update`], they are dropped instead of replayed,
//! since a resume sends every player's current state anyway.
//!
//! The queue is bounded ([`Outbox::with_limit`]): a client that stops reading while
//! attached falls behind until queue and unacknowledged messages exceed the limit,
//! and its writer is then told to disconnect it ([`Next::TooSlow`]), which leaves the
//! session resumable as any drop does instead of growing the node.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

/// Default bound of one session's queued and unacknowledged bytes (16 MiB).
pub const DEFAULT_LIMIT_BYTES: usize = 16 << 20;

/// What the outbox does with a message nobody can receive right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A socket is attached: queue and wake the writer.
    Attached,
    /// The session waits for a resume: queue for replay.
    Paused,
    /// The session is gone: drop.
    Closed,
}

/// What a socket writer does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Write this message.
    Message(String),
    /// Send a Ping with this sequence number (big-endian `u64`) as its payload.
    Ping(u64),
    /// The client fell too far behind: disconnect it.
    TooSlow,
    /// This writer has been superseded or detached: stop.
    Stop,
}

/// A message and whether a resume replays it.
#[derive(Debug)]
struct Queued {
    text: String,
    replay: bool,
}

#[derive(Debug)]
struct Inner {
    /// Not written yet.
    queue: VecDeque<Queued>,
    /// Written with these sequence numbers, not yet proven read.
    unacked: VecDeque<(u64, Queued)>,
    /// Sequence number of the next message written.
    next_seq: u64,
    /// Highest sequence number a Ping has been sent for.
    pinged: u64,
    /// Whether that Ping still waits for its Pong. One Ping is in flight at a time,
    /// so a busy session sends at most one per round trip, not one per burst.
    ping_in_flight: bool,
    /// Bytes in `queue` and `unacked`.
    bytes: usize,
    limit: usize,
    /// `bytes` above which the attached client counts as too slow: `limit` more
    /// than the backlog it was attached with, so a resume's replay never trips it.
    threshold: usize,
    mode: Mode,
    /// Bumped on every attach and detach so a stale writer stops draining.
    generation: u64,
}

impl Inner {
    /// Puts unacknowledged messages back in front of the queue, oldest first, and
    /// forgets those a resume does not replay.
    fn requeue_unacked(&mut self) {
        while let Some((_, msg)) = self.unacked.pop_back() {
            self.queue.push_front(msg);
        }
        let before = self.queue.len();
        let mut freed = 0;
        self.queue.retain(|m| {
            if !m.replay {
                freed += m.text.len();
            }
            m.replay
        });
        if self.queue.len() != before {
            self.bytes -= freed;
        }
    }

    fn clear(&mut self) {
        self.queue.clear();
        self.unacked.clear();
        self.bytes = 0;
    }

    fn over_limit(&self) -> bool {
        self.bytes > self.threshold && self.queue.len() + self.unacked.len() > 1
    }
}

/// The ordered queue of JSON messages for one session.
#[derive(Debug, Clone)]
pub struct Outbox {
    inner: Arc<Mutex<Inner>>,
    notify: Arc<Notify>,
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox::with_limit(DEFAULT_LIMIT_BYTES)
    }
}

impl Outbox {
    /// An outbox whose attached client is disconnected once more than `limit` bytes
    /// are queued or unacknowledged.
    pub fn with_limit(limit: usize) -> Self {
        Outbox {
            inner: Arc::new(Mutex::new(Inner {
                queue: VecDeque::new(),
                unacked: VecDeque::new(),
                next_seq: 1,
                pinged: 0,
                ping_in_flight: false,
                bytes: 0,
                limit,
                threshold: limit,
                mode: Mode::Closed,
                generation: 0,
            })),
            notify: Arc::new(Notify::new()),
        }
    }

    /// Queues a message (or drops it when the session is closed).
    pub fn push(&self, message: String) {
        self.enqueue(message, true);
    }

    /// Queues a `playerUpdate`: sent while a socket is attached, never replayed.
    pub fn push_update(&self, message: String) {
        self.enqueue(message, false);
    }

    fn enqueue(&self, text: String, replay: bool) {
        let mut inner = self.inner.lock();
        if inner.mode == Mode::Closed || (inner.mode == Mode::Paused && !replay) {
            return;
        }
        inner.bytes += text.len();
        inner.queue.push_back(Queued { text, replay });
        if inner.mode == Mode::Attached {
            self.notify.notify_one();
        }
    }

    /// Attaches a new socket writer. `first` goes out before anything already queued
    /// (the `ready` message before the replay); messages the previous socket wrote but
    /// never saw acknowledged are replayed. Returns the writer's generation.
    pub fn attach(&self, first: String) -> u64 {
        let mut inner = self.inner.lock();
        inner.requeue_unacked();
        inner.bytes += first.len();
        // A `ready` belongs to its own socket: never replayed to the next one.
        inner.queue.push_front(Queued {
            text: first,
            replay: false,
        });
        inner.mode = Mode::Attached;
        inner.ping_in_flight = false;
        inner.threshold = inner.bytes.saturating_add(inner.limit);
        inner.generation += 1;
        self.notify.notify_one();
        inner.generation
    }

    /// The socket is gone; keep (`Paused`) or drop (`Closed`) what is queued.
    /// Unacknowledged messages count as not delivered.
    pub fn detach(&self, mode: Mode) {
        let mut inner = self.inner.lock();
        inner.mode = mode;
        match mode {
            Mode::Closed => inner.clear(),
            _ => inner.requeue_unacked(),
        }
        inner.generation += 1;
    }

    /// Current mode.
    pub fn mode(&self) -> Mode {
        self.inner.lock().mode
    }

    /// The generation of the current writer (or of the last detach).
    pub fn generation(&self) -> u64 {
        self.inner.lock().generation
    }

    /// Number of messages not yet proven read (queued or unacknowledged).
    pub fn len(&self) -> usize {
        let inner = self.inner.lock();
        inner.queue.len() + inner.unacked.len()
    }

    /// Whether nothing waits to be written or acknowledged.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes queued or unacknowledged.
    pub fn bytes(&self) -> usize {
        self.inner.lock().bytes
    }

    /// Waits for what the writer of `generation` does next. A written message stays
    /// held until [`ack`](Self::ack) covers it.
    pub async fn next(&self, generation: u64) -> Next {
        loop {
            let notified = self.notify.notified();
            if let Some(next) = self.poll_next(generation) {
                return next;
            }
            notified.await;
        }
    }

    fn poll_next(&self, generation: u64) -> Option<Next> {
        let mut inner = self.inner.lock();
        if inner.generation != generation || inner.mode != Mode::Attached {
            return Some(Next::Stop);
        }
        if inner.over_limit() {
            return Some(Next::TooSlow);
        }
        if let Some(msg) = inner.queue.pop_front() {
            let seq = inner.next_seq;
            inner.next_seq += 1;
            let text = msg.text.clone();
            inner.unacked.push_back((seq, msg));
            return Some(Next::Message(text));
        }
        // The burst is over: ask the client to prove it read it.
        let last = inner.next_seq - 1;
        if last > inner.pinged && !inner.unacked.is_empty() && !inner.ping_in_flight {
            inner.pinged = last;
            inner.ping_in_flight = true;
            return Some(Next::Ping(last));
        }
        None
    }

    /// The client answered the Ping for `seq` on the writer of `generation`: every
    /// message up to `seq` was read.
    pub fn ack(&self, generation: u64, seq: u64) {
        let mut inner = self.inner.lock();
        if inner.generation != generation {
            return;
        }
        if seq == inner.pinged && inner.ping_in_flight {
            inner.ping_in_flight = false;
            // More may have been written since that Ping: the writer pings again.
            self.notify.notify_one();
        }
        while inner.unacked.front().is_some_and(|(s, _)| *s <= seq) {
            if let Some((_, msg)) = inner.unacked.pop_front() {
                inner.bytes -= msg.text.len();
            }
        }
    }

    /// Wakes a waiting writer so it notices a detach.
    pub fn wake(&self) {
        self.notify.notify_waiters();
        self.notify.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn message(o: &Outbox, g: u64) -> String {
        match o.next(g).await {
            Next::Message(m) => m,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn queues_while_paused_and_replays_after_first() {
        let o = Outbox::default();
        o.push("dropped while closed".into());
        let g = o.attach("ready".into());
        o.push("a".into());
        assert_eq!(message(&o, g).await, "ready");
        assert_eq!(message(&o, g).await, "a");
        assert_eq!(o.next(g).await, Next::Ping(2));
        o.ack(g, 2);
        o.push("b".into());
        assert_eq!(message(&o, g).await, "b");
        // "b" was written but never acknowledged: it must survive the pause.
        o.detach(Mode::Paused);
        assert_eq!(o.next(g).await, Next::Stop, "stale writer stops");
        o.push("c".into());
        let g2 = o.attach("ready2".into());
        let mut got = vec![];
        for _ in 0..3 {
            got.push(message(&o, g2).await);
        }
        assert_eq!(got, ["ready2", "b", "c"]);
        o.detach(Mode::Closed);
        o.push("d".into());
        assert!(o.is_empty());
        assert_eq!(o.bytes(), 0);
    }

    #[tokio::test]
    async fn only_acknowledged_messages_are_forgotten() {
        let o = Outbox::default();
        let g = o.attach("ready".into());
        for m in ["a", "b", "c"] {
            o.push(m.into());
        }
        for _ in 0..4 {
            message(&o, g).await;
        }
        assert_eq!(o.next(g).await, Next::Ping(4));
        o.ack(g, 2); // "ready" and "a"
        o.ack(g + 7, 4); // another writer's pong counts for nothing
        o.detach(Mode::Paused);
        let g2 = o.attach("ready2".into());
        let mut got = vec![];
        for _ in 0..3 {
            got.push(message(&o, g2).await);
        }
        assert_eq!(got, ["ready2", "b", "c"]);
    }

    #[tokio::test]
    async fn one_ping_in_flight_at_a_time() {
        let o = Outbox::default();
        let g = o.attach("ready".into());
        message(&o, g).await;
        assert_eq!(o.next(g).await, Next::Ping(1));
        o.push("a".into());
        message(&o, g).await;
        // No second Ping while the first is unanswered.
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(50), o.next(g));
        assert!(waiting.await.is_err());
        o.ack(g, 1);
        assert_eq!(o.next(g).await, Next::Ping(2));
        o.ack(g, 2);
        assert!(o.is_empty());
    }

    #[tokio::test]
    async fn player_updates_are_never_replayed() {
        let o = Outbox::default();
        let g = o.attach("ready".into());
        o.push_update("update 1".into());
        o.push("event".into());
        o.push_update("update 2".into());
        message(&o, g).await;
        message(&o, g).await;
        o.detach(Mode::Paused);
        o.push_update("update during the gap".into());
        let g2 = o.attach("ready2".into());
        let mut got = vec![];
        for _ in 0..2 {
            got.push(message(&o, g2).await);
        }
        assert_eq!(
            got,
            ["ready2", "event"],
            "neither updates nor the old ready"
        );
        assert_eq!(o.next(g2).await, Next::Ping(4));
        o.ack(g2, 4);
        assert_eq!(o.bytes(), 0);
    }

    #[tokio::test]
    async fn a_new_socket_takes_over_what_the_old_one_never_had_acknowledged() {
        let o = Outbox::default();
        let g = o.attach("ready".into());
        o.push("a".into());
        message(&o, g).await;
        message(&o, g).await;
        let g2 = o.attach("ready2".into());
        assert_eq!(o.next(g).await, Next::Stop);
        assert_eq!(message(&o, g2).await, "ready2");
        assert_eq!(message(&o, g2).await, "a");
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_is_too_slow_past_the_limit() {
        let o = Outbox::with_limit(10);
        let g = o.attach("r".into());
        assert_eq!(message(&o, g).await, "r");
        o.push("12345".into());
        o.push("678901".into());
        assert_eq!(o.bytes(), 12);
        assert_eq!(o.next(g).await, Next::TooSlow);
        // Reading (acknowledging) brings it back under the limit.
        o.ack(g, 1);
        assert_eq!(message(&o, g).await, "12345");
        // One oversized message alone is still delivered.
        let o = Outbox::with_limit(4);
        let g = o.attach("r".into());
        assert_eq!(message(&o, g).await, "r");
        assert_eq!(o.next(g).await, Next::Ping(1));
        o.ack(g, 1);
        o.push("a big message".into());
        assert_eq!(message(&o, g).await, "a big message");
        // While paused the queue keeps what it has for the resume, and the backlog a
        // client resumes with does not count against it.
        o.detach(Mode::Paused);
        o.push("more".into());
        assert_eq!(o.len(), 2);
        let g = o.attach("r".into());
        assert_eq!(message(&o, g).await, "r");
        assert_eq!(message(&o, g).await, "a big message");
        o.push("12345".into());
        assert_eq!(o.next(g).await, Next::TooSlow, "but what comes after does");
    }
}
