//! The node's sessions: live ones (socket attached) and resumable ones (socket gone,
//! waiting for the client to come back within its timeout).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::client::Session;
use super::outbox::Mode;
use crate::config::ControlConfig;
use crate::ids::{SessionId, UserId};

#[derive(Debug, Default)]
struct Inner {
    live: HashMap<SessionId, Arc<Session>>,
    resumable: HashMap<SessionId, (Arc<Session>, tokio::task::AbortHandle)>,
}

/// Every session on the node.
#[derive(Debug, Default)]
pub struct Sessions {
    inner: Mutex<Inner>,
}

impl Sessions {
    /// Creates a live session with an id unique among all sessions.
    pub fn create(
        &self,
        user_id: UserId,
        client_name: Option<String>,
        config: Arc<ControlConfig>,
    ) -> Arc<Session> {
        let mut inner = self.inner.lock();
        let id = loop {
            let id = SessionId::random();
            if !inner.live.contains_key(&id) && !inner.resumable.contains_key(&id) {
                break id;
            }
        };
        let session = Session::new(id.clone(), user_id, client_name, config);
        inner.live.insert(id, session.clone());
        session
    }

    /// A live session by id (REST answers 404 for resumable ones, as Lavalink).
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.inner
            .lock()
            .live
            .get(&SessionId::from_client(id))
            .cloned()
    }

    /// Whether `id` names a session a new socket may resume: one waiting for a
    /// resume, or a live resumable one whose old socket the node has not yet seen
    /// drop (a half-open connection, or a reconnect that overtook the close).
    pub fn can_resume(&self, id: &str) -> bool {
        let inner = self.inner.lock();
        let id = SessionId::from_client(id);
        inner.resumable.contains_key(&id)
            || inner
                .live
                .get(&id)
                .is_some_and(|s| s.resume_config().resuming)
    }

    /// Takes a resumable session back into the live table, cancelling its timeout.
    /// A live session that allows resuming is taken over: attaching the new socket
    /// stops the old one's writer.
    pub fn resume(&self, id: &str) -> Option<Arc<Session>> {
        let mut inner = self.inner.lock();
        let id = SessionId::from_client(id);
        if let Some(live) = inner.live.get(&id) {
            if !live.resume_config().resuming {
                return None;
            }
            // Retire the old socket's generation under this lock, so its late
            // `on_socket_closed` cannot detach the session from the new one.
            live.outbox().detach(Mode::Paused);
            live.outbox().wake();
            return Some(live.clone());
        }
        let (session, timeout) = inner.resumable.remove(&id)?;
        timeout.abort();
        inner.live.insert(session.id().clone(), session.clone());
        Some(session)
    }

    /// The socket whose writer had `generation` closed: keep the session for a
    /// resume if it asked to be resumable, else shut it down. Nothing happens when a
    /// newer socket has taken the session over.
    pub fn on_socket_closed(self: &Arc<Self>, session: &Arc<Session>, generation: u64) {
        let mut inner = self.inner.lock();
        if !inner
            .live
            .get(session.id())
            .is_some_and(|s| Arc::ptr_eq(s, session))
        {
            return; // already shut down (node shutdown)
        }
        if session.outbox().generation() != generation {
            return; // taken over by a newer socket
        }
        inner.live.remove(session.id());
        let resume = session.resume_config();
        if !resume.resuming {
            drop(inner);
            tracing::info!(session = %session.id(), "connection closed; session shut down");
            session.shutdown();
            return;
        }
        session.outbox().detach(Mode::Paused);
        session.outbox().wake();
        let timeout = Duration::from_secs(resume.timeout_s.max(0) as u64);
        let sessions = Arc::downgrade(self);
        let id = session.id().clone();
        let task = tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            if let Some(sessions) = sessions.upgrade() {
                sessions.expire(&id);
            }
        });
        tracing::info!(session = %session.id(), timeout_s = resume.timeout_s, "connection closed; session can be resumed");
        inner
            .resumable
            .insert(session.id().clone(), (session.clone(), task.abort_handle()));
    }

    fn expire(&self, id: &SessionId) {
        let removed = self.inner.lock().resumable.remove(id);
        if let Some((session, _)) = removed {
            tracing::info!(session = %id, "resume timeout passed; session shut down");
            session.shutdown();
        }
    }

    /// Every session, live and resumable.
    pub fn all(&self) -> Vec<Arc<Session>> {
        let inner = self.inner.lock();
        inner
            .live
            .values()
            .cloned()
            .chain(inner.resumable.values().map(|(s, _)| s.clone()))
            .collect()
    }

    /// Live sessions only.
    pub fn live(&self) -> Vec<Arc<Session>> {
        self.inner.lock().live.values().cloned().collect()
    }

    /// Shuts every session down (node shutdown).
    pub fn shutdown_all(&self) {
        let (live, resumable) = {
            let mut inner = self.inner.lock();
            let live: Vec<_> = inner.live.drain().map(|(_, s)| s).collect();
            let resumable: Vec<_> = inner
                .resumable
                .drain()
                .map(|(_, (s, t))| {
                    t.abort();
                    s
                })
                .collect();
            (live, resumable)
        };
        for s in live.into_iter().chain(resumable) {
            s.shutdown();
        }
    }
}
