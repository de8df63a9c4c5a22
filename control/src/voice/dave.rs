//! DAVE (Discord's audio end-to-end encryption) for one voice connection, without IO.
//!
//! The voice gateway feeds it the DAVE opcodes (21–31) and the version from Session
//! Description; it answers with gateway messages to send (key packages, commits,
//! transition-ready, invalid-commit) and, on the exact transition the gateway executes,
//! the sender key the engine must encrypt with from then on ([`DaveOut::SenderKey`]).
//! The MLS group lives in a [`davey::DaveSession`]; davey's own frame encryptor is not
//! used, since frames are encrypted on the tick thread (`quaver_engine::transport::dave`)
//! with the secret exported here.
//!
//! The rules, from `shared/reference/discord-voice.md` §5.3:
//! - a fresh key package (op 26) whenever Session Description has a non-zero version,
//!   op 24 starts epoch 1, or after an invalid commit/welcome (op 31);
//! - proposals (op 27) that arrive before the external sender (op 25) wait for it;
//!   Add proposals for users not seen in op 11 (or ourselves) are refused by davey;
//! - a processed commit (op 29) or welcome (op 30) prepares a transition to the new
//!   epoch's key and answers op 23, unless its id is 0, which applies at once;
//! - op 21 prepares a protocol version change (0 = back to plain Opus) the same way;
//! - op 22 executes a prepared transition: only then does the engine's key change;
//! - a commit or welcome that cannot be processed is answered with op 31, and the
//!   session starts over with a new key package.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::num::NonZeroU16;

use davey::{DaveSession, ProposalsOperationType};
use openmls_rust_crypto::RustCrypto;
use quaver_engine::transport::SenderKey;
use serde_json::{json, Value};

/// Proposals (op 27) kept while the external sender (op 25) is still missing; a
/// server that sends more is not one whose proposals we could validate anyway, and
/// the memory is ours.
const MAX_EARLY_PROPOSALS: usize = 64;
/// The exporter label of DAVE's per-sender media key.
const SENDER_KEY_LABEL: &str = "Discord Secure Frames v0";

/// Client → server binary opcodes.
const OP_KEY_PACKAGE: u8 = 26;
const OP_COMMIT_WELCOME: u8 = 28;

/// Something for the gateway's driver.
#[derive(Debug, Clone, PartialEq)]
pub enum DaveOut {
    /// A JSON gateway message to send.
    Text(Value),
    /// A binary gateway message to send (`[opcode][payload]`).
    Binary(Vec<u8>),
    /// From now on, encrypt audio with this key (`None`: send plain Opus).
    SenderKey(Option<SenderKey>),
    /// The state changed (for logs and per-player reporting).
    Status(DaveStatus),
    /// Something went wrong and was recovered from (logged by the driver).
    Recovered(String),
}

/// DAVE's state as a player reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DaveStatus {
    /// The protocol version in force (0 = transport encryption only).
    pub protocol_version: u16,
    /// The MLS epoch of the established group, if any.
    pub epoch: Option<u64>,
    /// Whether audio leaves end-to-end encrypted now.
    pub encrypting: bool,
}

/// What a prepared transition switches to.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Transition {
    protocol_version: u16,
    key: Option<SenderKey>,
}

/// A fatal DAVE error: the connection cannot go on (reported to the client).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("DAVE: {0}")]
pub struct DaveFatal(pub String);

/// One connection's DAVE state.
pub struct Dave {
    user_id: u64,
    channel_id: u64,
    session: Option<DaveSession>,
    external_sender: bool,
    /// An op 25 that came before Session Description created the session.
    early_external_sender: Option<Vec<u8>>,
    /// Op 27 payloads that came before the external sender.
    early_proposals: Vec<Vec<u8>>,
    /// Users in the call (op 11 / op 13), ourselves included.
    recognized: BTreeSet<u64>,
    /// Prepared transitions by id.
    pending: HashMap<u16, Transition>,
    status: DaveStatus,
    out: VecDeque<DaveOut>,
}

impl std::fmt::Debug for Dave {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dave")
            .field("channel_id", &self.channel_id)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl Dave {
    /// DAVE for `user_id` in the voice channel `channel_id` (the MLS group id).
    pub fn new(user_id: u64, channel_id: u64) -> Self {
        Dave {
            user_id,
            channel_id,
            session: None,
            external_sender: false,
            early_external_sender: None,
            early_proposals: Vec::new(),
            recognized: BTreeSet::from([user_id]),
            pending: HashMap::new(),
            status: DaveStatus::default(),
            out: VecDeque::new(),
        }
    }

    /// The current state.
    pub fn status(&self) -> DaveStatus {
        self.status
    }

    /// The next output.
    pub fn poll(&mut self) -> Option<DaveOut> {
        self.out.pop_front()
    }

    /// A new voice session (a fresh Identify): forget the group; audio is plain until
    /// the new session's first transition.
    pub fn restart(&mut self) {
        self.session = None;
        self.external_sender = false;
        self.early_external_sender = None;
        self.early_proposals.clear();
        self.recognized = BTreeSet::from([self.user_id]);
        self.pending.clear();
        if self.status != DaveStatus::default() {
            self.out.push_back(DaveOut::SenderKey(None));
        }
        self.set_status(DaveStatus::default());
    }

    /// Session Description's `dave_protocol_version`.
    pub fn on_session_description(&mut self, version: u16) -> Result<(), DaveFatal> {
        self.status.protocol_version = version;
        self.publish_status();
        if version == 0 {
            return Ok(());
        }
        self.start_session(version)
    }

    /// Op 11: users joined the call.
    pub fn on_clients_connect(&mut self, user_ids: impl IntoIterator<Item = u64>) {
        self.recognized.extend(user_ids);
    }

    /// Op 13: a user left the call.
    pub fn on_client_disconnect(&mut self, user_id: u64) {
        if user_id != self.user_id {
            self.recognized.remove(&user_id);
        }
    }

    /// Op 21: prepare a protocol version change.
    pub fn on_prepare_transition(&mut self, protocol_version: u16, transition_id: u16) {
        let key = if protocol_version == 0 {
            None
        } else {
            self.current_key()
        };
        self.prepare(
            transition_id,
            Transition {
                protocol_version,
                key,
            },
        );
    }

    /// Op 22: execute a prepared transition.
    pub fn on_execute_transition(&mut self, transition_id: u16) {
        match self.pending.remove(&transition_id) {
            Some(transition) => self.apply(transition),
            None => tracing::debug!(transition_id, "DAVE: no prepared transition to execute"),
        }
    }

    /// Op 24: prepare a new epoch; epoch 1 means a new group, so a new key package.
    pub fn on_prepare_epoch(&mut self, protocol_version: u16, epoch: u64) -> Result<(), DaveFatal> {
        if epoch != 1 || protocol_version == 0 {
            return Ok(());
        }
        self.start_session(protocol_version)
    }

    /// A binary DAVE message: `op` and the payload after it.
    pub fn on_binary(&mut self, op: u8, payload: &[u8]) {
        match op {
            25 => self.on_external_sender(payload),
            27 => {
                if self.external_sender {
                    self.on_proposals(payload);
                } else if self.early_proposals.len() < MAX_EARLY_PROPOSALS {
                    self.early_proposals.push(payload.to_vec());
                } else {
                    tracing::debug!("DAVE: too many proposals before the external sender");
                }
            }
            29 => self.on_commit_or_welcome(payload, true),
            30 => self.on_commit_or_welcome(payload, false),
            _ => {}
        }
    }

    /// Creates (or re-creates) the MLS session for `version` and sends a key package.
    fn start_session(&mut self, version: u16) -> Result<(), DaveFatal> {
        let version = NonZeroU16::new(version).ok_or_else(|| DaveFatal("version 0".into()))?;
        match &mut self.session {
            Some(session) => session
                .reinit(version, self.user_id, self.channel_id, None)
                .map_err(|e| DaveFatal(format!("cannot restart the MLS session: {e:?}")))?,
            None => {
                let session = DaveSession::new(version, self.user_id, self.channel_id, None)
                    .map_err(|e| DaveFatal(format!("cannot start an MLS session: {e:?}")))?;
                self.session = Some(session);
            }
        }
        self.send_key_package()?;
        if let Some(early) = self.early_external_sender.take() {
            self.on_external_sender(&early);
        }
        Ok(())
    }

    fn send_key_package(&mut self) -> Result<(), DaveFatal> {
        let Some(session) = &mut self.session else {
            return Ok(());
        };
        let package = session
            .create_key_package()
            .map_err(|e| DaveFatal(format!("cannot create a key package: {e:?}")))?;
        let mut frame = Vec::with_capacity(1 + package.len());
        frame.push(OP_KEY_PACKAGE);
        frame.extend_from_slice(&package);
        self.out.push_back(DaveOut::Binary(frame));
        Ok(())
    }

    fn on_external_sender(&mut self, payload: &[u8]) {
        let Some(session) = &mut self.session else {
            // Before Session Description: kept for when the session starts.
            self.early_external_sender = Some(payload.to_vec());
            return;
        };
        match session.set_external_sender(payload) {
            Ok(()) => {
                self.external_sender = true;
                for proposals in std::mem::take(&mut self.early_proposals) {
                    self.on_proposals(&proposals);
                }
            }
            Err(e) => self.recovered(format!("external sender refused: {e:?}")),
        }
    }

    fn on_proposals(&mut self, payload: &[u8]) {
        let Some(session) = &mut self.session else {
            return;
        };
        let Some((&kind, proposals)) = payload.split_first() else {
            return self.recovered("empty proposals message; ignored".into());
        };
        let kind = match kind {
            0 => ProposalsOperationType::APPEND,
            1 => ProposalsOperationType::REVOKE,
            other => return self.recovered(format!("unknown proposals operation {other}")),
        };
        let expected: Vec<u64> = self.recognized.iter().copied().collect();
        match session.process_proposals(kind, proposals, Some(&expected)) {
            Ok(Some(commit_welcome)) => {
                let welcome = commit_welcome.welcome.unwrap_or_default();
                let mut frame = Vec::with_capacity(1 + commit_welcome.commit.len() + welcome.len());
                frame.push(OP_COMMIT_WELCOME);
                frame.extend_from_slice(&commit_welcome.commit);
                frame.extend_from_slice(&welcome);
                self.out.push_back(DaveOut::Binary(frame));
            }
            Ok(None) => {}
            Err(e) => self.recovered(format!("proposals refused: {e:?}")),
        }
    }

    /// Op 29 (`commit`) or op 30: `[u16 BE transition id][message]`.
    fn on_commit_or_welcome(&mut self, payload: &[u8], commit: bool) {
        let (Some(id), Some(session)) = (payload.get(..2), &mut self.session) else {
            return;
        };
        let transition_id = u16::from_be_bytes([id[0], id[1]]);
        let message = &payload[2..];
        let result = if commit {
            session
                .process_commit(message)
                .map_err(|e| format!("{e:?}"))
        } else {
            let recognized: Vec<u64> = self.recognized.iter().copied().collect();
            session
                .process_welcome(message, Some(&recognized))
                .map(|()| true)
                .map_err(|e| format!("{e:?}"))
        };
        match result {
            Ok(true) => {
                let transition = Transition {
                    protocol_version: session.protocol_version().get(),
                    key: self.current_key(),
                };
                self.prepare(transition_id, transition);
            }
            Ok(false) => {}
            Err(error) => {
                let what = if commit { "commit" } else { "welcome" };
                self.recovered(format!(
                    "invalid {what} for transition {transition_id} ({error}); starting over"
                ));
                self.out.push_back(DaveOut::Text(
                    json!({"op": 31, "d": {"transition_id": transition_id}}),
                ));
                let version = self.session.as_ref().map(|s| s.protocol_version().get());
                if let Err(e) = version.map_or(Ok(()), |v| self.start_session(v)) {
                    self.recovered(e.0);
                }
            }
        }
    }

    /// Our sender key in the established group, if there is one.
    fn current_key(&self) -> Option<SenderKey> {
        let group = self.session.as_ref()?.group()?;
        if group.epoch().as_u64() == 0 {
            return None;
        }
        let secret = group
            .export_secret(
                &RustCrypto::default(),
                SENDER_KEY_LABEL,
                &self.user_id.to_le_bytes(),
                16,
            )
            .ok()?;
        Some(SenderKey(secret.try_into().ok()?))
    }

    fn prepare(&mut self, transition_id: u16, transition: Transition) {
        if transition_id == 0 {
            return self.apply(transition);
        }
        self.pending.insert(transition_id, transition);
        self.out.push_back(DaveOut::Text(
            json!({"op": 23, "d": {"transition_id": transition_id}}),
        ));
    }

    fn apply(&mut self, transition: Transition) {
        if transition.protocol_version == 0 {
            // The group is gone; davey keeps the external sender for the next one.
            if let Some(session) = &mut self.session {
                let _ = session.reset();
            }
        }
        self.out.push_back(DaveOut::SenderKey(transition.key));
        let epoch = self
            .session
            .as_ref()
            .and_then(|s| s.epoch())
            .map(|e| e.as_u64())
            .filter(|&e| e != 0 && transition.protocol_version != 0);
        self.set_status(DaveStatus {
            protocol_version: transition.protocol_version,
            epoch,
            encrypting: transition.key.is_some(),
        });
    }

    fn set_status(&mut self, status: DaveStatus) {
        self.status = status;
        self.publish_status();
    }

    fn publish_status(&mut self) {
        self.out.push_back(DaveOut::Status(self.status));
    }

    fn recovered(&mut self, what: String) {
        self.out.push_back(DaveOut::Recovered(what));
    }
}
