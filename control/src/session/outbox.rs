//! A session's outgoing message queue.
//!
//! Every message for a client goes through here, in order. While a socket is
//! attached, its writer task drains the queue; when the socket drops, whatever the
//! writer had not written stays queued, and if the session is resumable the queue
//! keeps growing until the client resumes (replay) or the timeout destroys it. A
//! message is removed only after the socket accepted it, so none is lost or repeated
//! across a resume.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

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

#[derive(Debug)]
struct Inner {
    queue: VecDeque<String>,
    mode: Mode,
    /// Bumped on every attach so a stale writer stops draining.
    generation: u64,
}

/// The ordered queue of JSON messages for one session.
#[derive(Debug, Clone)]
pub struct Outbox {
    inner: Arc<Mutex<Inner>>,
    notify: Arc<Notify>,
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox {
            inner: Arc::new(Mutex::new(Inner {
                queue: VecDeque::new(),
                mode: Mode::Closed,
                generation: 0,
            })),
            notify: Arc::new(Notify::new()),
        }
    }
}

impl Outbox {
    /// Queues a message (or drops it when the session is closed).
    pub fn push(&self, message: String) {
        let mut inner = self.inner.lock();
        if inner.mode == Mode::Closed {
            return;
        }
        inner.queue.push_back(message);
        if inner.mode == Mode::Attached {
            self.notify.notify_one();
        }
    }

    /// Attaches a new socket writer. `first` goes out before anything already queued
    /// (the `ready` message before the replay). Returns the writer's generation.
    pub fn attach(&self, first: String) -> u64 {
        let mut inner = self.inner.lock();
        inner.queue.push_front(first);
        inner.mode = Mode::Attached;
        inner.generation += 1;
        self.notify.notify_one();
        inner.generation
    }

    /// The socket is gone; keep (`Paused`) or drop (`Closed`) what is queued.
    pub fn detach(&self, mode: Mode) {
        let mut inner = self.inner.lock();
        inner.mode = mode;
        if mode == Mode::Closed {
            inner.queue.clear();
        }
        inner.generation += 1;
    }

    /// Current mode.
    pub fn mode(&self) -> Mode {
        self.inner.lock().mode
    }

    /// Number of queued messages.
    pub fn len(&self) -> usize {
        self.inner.lock().queue.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits for the next message for the writer of `generation`; `None` once that
    /// writer has been superseded or detached.
    pub async fn next(&self, generation: u64) -> Option<String> {
        loop {
            let notified = self.notify.notified();
            {
                let mut inner = self.inner.lock();
                if inner.generation != generation || inner.mode != Mode::Attached {
                    return None;
                }
                if let Some(msg) = inner.queue.pop_front() {
                    return Some(msg);
                }
            }
            notified.await;
        }
    }

    /// Puts back a message the socket refused, so the next writer sends it first.
    pub fn unsend(&self, message: String) {
        let mut inner = self.inner.lock();
        if inner.mode != Mode::Closed {
            inner.queue.push_front(message);
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

    #[tokio::test]
    async fn queues_while_paused_and_replays_after_first() {
        let o = Outbox::default();
        o.push("dropped while closed".into());
        let g = o.attach("ready".into());
        o.push("a".into());
        assert_eq!(o.next(g).await.as_deref(), Some("ready"));
        assert_eq!(o.next(g).await.as_deref(), Some("a"));
        let msg = {
            o.push("b".into());
            o.next(g).await.unwrap()
        };
        // The socket refused "b": it must survive the pause.
        o.unsend(msg);
        o.detach(Mode::Paused);
        assert_eq!(o.next(g).await, None, "stale writer stops");
        o.push("c".into());
        let g2 = o.attach("ready2".into());
        let mut got = vec![];
        for _ in 0..3 {
            got.push(o.next(g2).await.unwrap());
        }
        assert_eq!(got, ["ready2", "b", "c"]);
        o.detach(Mode::Closed);
        o.push("d".into());
        assert!(o.is_empty());
    }
}
