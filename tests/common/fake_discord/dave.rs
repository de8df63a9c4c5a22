//! The fake's DAVE tier (discord-voice.md §5.3, §7.3): the gateway as the MLS group's
//! external sender, and fake channel members, each a `davey::DaveSession`, that form
//! the group with the client, join, leave and re-form it, and decrypt the client's
//! media frames.
//!
//! [`Dave`] is a state machine without I/O: client ops go in through [`Dave::handle`],
//! scripted steps through [`Dave::join`] and its siblings, and both return the server
//! messages to send. One transition is in flight at a time ([`Step`]); op 22 ends it.

use std::num::NonZeroU16;
use std::sync::Arc;
use std::time::{Duration, Instant};

use davey::{CommitWelcome, DaveSession, MediaType, ProposalsOperationType};
use openmls::prelude::tls_codec::{DeserializeBytes, Serialize as _};
use openmls::prelude::{
    BasicCredential, Ciphersuite, ContentType, CredentialType, ExternalProposal, ExternalSender,
    GroupEpoch, GroupId, KeyPackage, KeyPackageIn, LeafNodeIndex, MlsMessageIn, OpenMlsProvider,
    ProtocolVersion, SenderExtensionIndex, VLBytes, Welcome, WireFormat,
};
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;
use serde_json::{json, Value};

use super::{ConnectionView, Outgoing};

/// How long after a transition executed frames of the previous kind (or key) may
/// still come. When the client switches depends on its scheduling (op 22 crosses its
/// control plane, then the engine's next tick), so the checks go by order: once a
/// frame of the new kind arrived (or a member decrypted one), an old one is an error;
/// before that, only this gross limit applies, which catches a client that never
/// switches.
const SWITCH_LIMIT: Duration = Duration::from_secs(2);

/// The only DAVE protocol version there is.
const VERSION: NonZeroU16 = NonZeroU16::MIN;
/// MLS ciphersuite 2, which DAVE version 1 uses.
const CIPHERSUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMP256_AES128GCM_SHA256_P256;
/// The last two bytes of every DAVE media frame.
const FRAME_MAGIC: [u8; 2] = [0xFA, 0xFA];
/// The smallest supplemental size: 8-byte tag, 1-byte nonce, size byte, magic.
const MIN_SUPPLEMENTAL: usize = 8 + 1 + 1 + FRAME_MAGIC.len();
/// Op 27's operation type for appended proposals.
const APPEND: u8 = 0;

/// The gateway's MLS identity: one P-256 signing key per fake server.
pub(super) struct ExternalSenderKey {
    signer: SignatureKeyPair,
    /// The TLS-serialized `ExternalSender`: op 25's payload.
    package: Vec<u8>,
    provider: OpenMlsRustCrypto,
}

impl ExternalSenderKey {
    pub(super) fn new() -> Self {
        let signer =
            SignatureKeyPair::new(CIPHERSUITE.signature_algorithm()).expect("a P-256 key pair");
        let credential = BasicCredential::new(b"fake-discord-voice".to_vec());
        let sender = ExternalSender::new(signer.public().into(), credential.into());
        ExternalSenderKey {
            signer,
            package: sender.tls_serialize_detached().expect("an external sender"),
            provider: OpenMlsRustCrypto::default(),
        }
    }

    /// Parses and checks a key package the way Discord's gateway does (§5.3): a valid
    /// signature, ciphersuite 2, a basic credential holding `user_id` big-endian, and
    /// the lifetime 0..=u64::MAX.
    fn key_package(&self, bytes: &[u8], user_id: u64) -> Result<KeyPackage, String> {
        let package = KeyPackageIn::tls_deserialize_exact_bytes(bytes)
            .map_err(|e| format!("key package does not parse: {e:?}"))?
            .validate(self.provider.crypto(), ProtocolVersion::Mls10)
            .map_err(|e| format!("key package does not validate: {e:?}"))?;
        if package.ciphersuite() != CIPHERSUITE {
            return Err(format!(
                "key package ciphersuite {:?}, expected {CIPHERSUITE:?}",
                package.ciphersuite()
            ));
        }
        let credential = package.leaf_node().credential();
        if credential.credential_type() != CredentialType::Basic
            || credential.serialized_content() != user_id.to_be_bytes()
        {
            return Err(format!(
                "key package credential {:?} {:?}, expected basic {user_id} big-endian",
                credential.credential_type(),
                credential.serialized_content()
            ));
        }
        let lifetime = package.life_time();
        if (lifetime.not_before(), lifetime.not_after()) != (0, u64::MAX) {
            return Err(format!(
                "key package lifetime {}..{}, expected 0..u64::MAX",
                lifetime.not_before(),
                lifetime.not_after()
            ));
        }
        Ok(package)
    }

    /// An external Add proposal (a serialized `MLSMessage`).
    fn propose_add(&self, group: &GroupId, epoch: u64, package: KeyPackage) -> Vec<u8> {
        ExternalProposal::new_add::<OpenMlsRustCrypto>(
            package,
            group.clone(),
            GroupEpoch::from(epoch),
            &self.signer,
            SenderExtensionIndex::new(0),
        )
        .expect("an external Add proposal")
        .tls_serialize_detached()
        .expect("a serialized proposal")
    }

    /// An external Remove proposal (a serialized `MLSMessage`).
    fn propose_remove(&self, group: &GroupId, epoch: u64, leaf: LeafNodeIndex) -> Vec<u8> {
        ExternalProposal::new_remove::<OpenMlsRustCrypto>(
            leaf,
            group.clone(),
            GroupEpoch::from(epoch),
            &self.signer,
            SenderExtensionIndex::new(0),
        )
        .expect("an external Remove proposal")
        .tls_serialize_detached()
        .expect("a serialized proposal")
    }
}

/// Op 27's `proposals<V>` vector: the messages back to back, length-prefixed.
fn proposals_vector(proposals: &[Vec<u8>]) -> Vec<u8> {
    VLBytes::new(proposals.concat())
        .tls_serialize_detached()
        .expect("a proposals vector")
}

/// A client op the DAVE tier consumes.
pub(super) enum Input<'a> {
    /// Binary op 26's payload.
    KeyPackage(&'a [u8]),
    /// Binary op 28's payload.
    CommitWelcome(&'a [u8]),
    /// Op 23's `d`.
    TransitionReady(&'a Value),
    /// Op 31's `d`.
    InvalidCommitWelcome(&'a Value),
}

/// How the client's media payload turned out.
pub(super) enum Frame {
    /// Not a DAVE frame.
    Plain,
    /// A DAVE frame and the Opus packet a fake member decrypted from it.
    Decrypted(Vec<u8>),
    /// A DAVE frame no fake member could open.
    Unopened,
}

/// One fake user in the voice channel.
struct Member {
    user_id: u64,
    session: DaveSession,
    /// When the transition that put this member's group in force executed; `None`
    /// while that transition is pending (frames it cannot open are then no error).
    receiving_since: Option<Instant>,
    /// This member decrypted a frame since `receiving_since` was set.
    opened: bool,
}

/// What the fake adds the client with once its key package (op 26) arrives.
#[derive(Clone, Copy, Debug)]
enum Rejoin {
    /// The members already in the channel add it to their group.
    Join,
    /// After op 24 (epoch 1), the members re-form a group that includes it.
    Reform,
    /// After op 31, the members remove its stale leaf and add it back.
    Recover,
}

/// The transition in flight.
#[derive(Debug)]
enum Step {
    Idle,
    /// Waiting for a key package (op 26).
    KeyPackage(Rejoin),
    /// Waiting for the commit (op 28) to the proposals sent in op 27.
    Commit,
    /// Waiting for op 23 with this transition id; op 22 then switches to `version`.
    Ready {
        tid: u16,
        version: u16,
    },
    /// The commit announced as `tid` was corrupted: waiting for op 31.
    Invalid {
        tid: u16,
    },
}

/// One voice session's DAVE state (from an Identify with `max_dave_protocol_version`
/// ≥ 1 on a fake with `dave` on).
pub(super) struct Dave {
    sender: Arc<ExternalSenderKey>,
    bot_id: u64,
    group_id: GroupId,
    channel_id: u64,
    /// Fake members in the group (or forming it), the committer first.
    members: Vec<Member>,
    /// A member whose Add is proposed but not yet committed.
    joiner: Option<Member>,
    /// The epoch the client's group is at, which proposals are for.
    epoch: u64,
    step: Step,
    last_tid: u16,
    corrupt_next_commit: bool,
    /// The last executed transition: its version, when, and whether a fake member was
    /// in the group; and whether a frame of the wrong kind was reported since.
    executed: Option<(u16, Instant, bool)>,
    /// A frame of the kind the last executed transition calls for has arrived since.
    switched: bool,
    wrong_kind_reported: bool,
    /// Transitions executed (op 22 sent); scripts wait for it to grow.
    pub(super) completed: u64,
    /// Why the flow in progress stopped, for the script waiting on it.
    pub(super) failure: Option<String>,
}

impl Dave {
    /// A session for `bot_id` in `channel_id`, with `members_before` already in the
    /// channel (two or more form their group now). Returns the ops to send right after
    /// Ready: op 11 naming the members, if any.
    pub(super) fn new(
        sender: Arc<ExternalSenderKey>,
        bot_id: u64,
        channel_id: u64,
        members_before: &[u64],
    ) -> (Dave, Vec<Outgoing>) {
        let mut dave = Dave {
            sender,
            bot_id,
            group_id: GroupId::from_slice(&channel_id.to_be_bytes()),
            channel_id,
            members: Vec::new(),
            joiner: None,
            epoch: 0,
            step: Step::Idle,
            last_tid: 0,
            corrupt_next_commit: false,
            executed: None,
            switched: false,
            wrong_kind_reported: false,
            completed: 0,
            failure: None,
        };
        if members_before.is_empty() {
            return (dave, Vec::new());
        }
        dave.members = members_before.iter().map(|&id| dave.member(id)).collect();
        dave.form_group(None)
            .expect("the members before form their group");
        dave.step = Step::KeyPackage(Rejoin::Join);
        let ids: Vec<String> = members_before.iter().map(u64::to_string).collect();
        (dave, vec![Outgoing::Json(11, json!({ "user_ids": ids }))])
    }

    /// Op 25: the external sender, sent right after op 4.
    pub(super) fn external_sender(&self) -> Outgoing {
        Outgoing::Binary(25, self.sender.package.clone())
    }

    /// No transition is in flight.
    pub(super) fn is_idle(&self) -> bool {
        matches!(self.step, Step::Idle)
    }

    /// Makes the next op 29 to the client carry a corrupted commit.
    pub(super) fn corrupt_next_commit(&mut self) {
        self.corrupt_next_commit = true;
    }

    /// Consumes a client op; a violation is recorded in `view` and stops the flow.
    pub(super) fn handle(
        &mut self,
        view: &mut ConnectionView,
        input: Input<'_>,
        now: Instant,
    ) -> Vec<Outgoing> {
        let result = match input {
            Input::KeyPackage(bytes) => {
                view.dave_key_packages += 1;
                self.on_key_package(bytes)
            }
            Input::CommitWelcome(bytes) => {
                view.dave_commits += 1;
                self.on_commit_welcome(bytes)
            }
            Input::TransitionReady(d) => self.on_transition_ready(view, d, now),
            Input::InvalidCommitWelcome(d) => {
                view.dave_invalid_commits += 1;
                self.on_invalid(d)
            }
        };
        result.unwrap_or_else(|error| {
            view.errors.push(format!("DAVE: {error}"));
            self.failure = Some(error);
            self.step = Step::Idle;
            self.joiner = None;
            Vec::new()
        })
    }

    /// Scripted: `user_id` joins the channel. Op 11, then an external Add of its key
    /// package as op 27; the existing members store the proposal too.
    pub(super) fn join(&mut self, user_id: u64) -> Result<Vec<Outgoing>, String> {
        if user_id == self.bot_id || self.members.iter().any(|m| m.user_id == user_id) {
            return Err(format!("user {user_id} is already in the channel"));
        }
        let mut joiner = self.member(user_id);
        let package = joiner
            .session
            .create_key_package()
            .map_err(|e| format!("member {user_id} key package: {e:?}"))?;
        let package = self.sender.key_package(&package, user_id)?;
        let proposal = self.sender.propose_add(&self.group_id, self.epoch, package);
        let vector = proposals_vector(&[proposal]);
        self.store_proposals(&vector)?;
        self.joiner = Some(joiner);
        self.step = Step::Commit;
        Ok(vec![
            Outgoing::Json(11, json!({ "user_ids": [user_id.to_string()] })),
            Outgoing::Binary(27, [&[APPEND][..], &vector].concat()),
        ])
    }

    /// Scripted: fake member `user_id` leaves. Op 13, then an external Remove of its
    /// leaf as op 27; the remaining members store the proposal too.
    pub(super) fn leave(&mut self, user_id: u64) -> Result<Vec<Outgoing>, String> {
        let index = self
            .members
            .iter()
            .position(|m| m.user_id == user_id)
            .ok_or_else(|| format!("user {user_id} is not a fake member"))?;
        let leaving = self.members.remove(index);
        let leaf = leaving
            .session
            .own_leaf_index()
            .ok_or_else(|| format!("member {user_id} has no group"))?;
        let proposal = self.sender.propose_remove(&self.group_id, self.epoch, leaf);
        let vector = proposals_vector(&[proposal]);
        self.store_proposals(&vector)?;
        self.step = Step::Commit;
        Ok(vec![
            Outgoing::Json(13, json!({ "user_id": user_id.to_string() })),
            Outgoing::Binary(27, [&[APPEND][..], &vector].concat()),
        ])
    }

    /// Scripted: op 21 to protocol version 0.
    pub(super) fn downgrade(&mut self) -> Vec<Outgoing> {
        let tid = self.next_tid();
        self.step = Step::Ready { tid, version: 0 };
        vec![Outgoing::Json(
            21,
            json!({ "protocol_version": 0, "transition_id": tid }),
        )]
    }

    /// Scripted: op 24 (version 1, epoch 1); the members start over with pending groups
    /// and wait for the client's new key package.
    pub(super) fn upgrade(&mut self) -> Result<Vec<Outgoing>, String> {
        if self.members.is_empty() {
            return Err("an upgrade needs a fake member to re-form the group with".into());
        }
        for member in &mut self.members {
            member
                .session
                .reinit(VERSION, member.user_id, self.channel_id, None)
                .map_err(|e| format!("member {} reinit: {e:?}", member.user_id))?;
            member.receiving_since = None;
        }
        self.epoch = 0;
        self.step = Step::KeyPackage(Rejoin::Reform);
        Ok(vec![Outgoing::Json(
            24,
            json!({ "protocol_version": 1, "epoch": 1 }),
        )])
    }

    /// Classifies and opens one media payload (not silence) that arrived at `arrived`,
    /// recording violations: a plain frame after a transition to version 1 with a fake
    /// member, a DAVE frame after one to version 0, and DAVE frames a fake member should
    /// but cannot decrypt (each judged by [`SWITCH_LIMIT`]'s rule).
    pub(super) fn open_frame(
        &mut self,
        payload: &[u8],
        arrived: Instant,
        at: &dyn std::fmt::Display,
        errors: &mut Vec<String>,
        decrypt: bool,
    ) -> Frame {
        let dave = is_dave_frame(payload);
        if let Some((version, executed, with_members)) = self.executed {
            let (right, wrong) = match version {
                0 => (!dave, dave),
                _ => (dave && with_members, !dave && with_members),
            };
            self.switched |= right;
            let late = arrived.saturating_duration_since(executed) > SWITCH_LIMIT;
            if wrong && (self.switched || late) && !self.wrong_kind_reported {
                self.wrong_kind_reported = true;
                let kind = if dave { "a DAVE" } else { "a plain Opus" };
                let when = if self.switched {
                    "after the client had switched"
                } else {
                    "still"
                };
                errors.push(format!(
                    "{at}: {kind} frame {when}, {:?} after the transition to DAVE version {version} executed",
                    arrived - executed
                ));
            }
        }
        if !dave {
            return Frame::Plain;
        }
        if self.members.is_empty() || !decrypt {
            return Frame::Unopened;
        }
        let mut opus = None;
        let mut failures = Vec::new();
        for member in &mut self.members {
            match member
                .session
                .decrypt(self.bot_id, MediaType::AUDIO, payload)
            {
                Ok(plain) => {
                    member.opened |= member.receiving_since.is_some();
                    opus.get_or_insert(plain);
                }
                Err(e) => {
                    let due = member.receiving_since.is_some_and(|t| {
                        member.opened || arrived.saturating_duration_since(t) > SWITCH_LIMIT
                    });
                    if due {
                        failures.push(format!(
                            "{at}: fake member {} cannot decrypt the DAVE frame: {e}",
                            member.user_id
                        ));
                    }
                }
            }
        }
        if opus.is_none() && failures.is_empty() {
            failures.push(format!("{at}: no fake member can decrypt the DAVE frame"));
        }
        errors.extend(failures);
        opus.map_or(Frame::Unopened, Frame::Decrypted)
    }

    fn member(&self, user_id: u64) -> Member {
        let mut session = DaveSession::new(VERSION, user_id, self.channel_id, None)
            .expect("a DAVE session for a fake member");
        session
            .set_external_sender(&self.sender.package)
            .expect("the fake's external sender");
        Member {
            user_id,
            session,
            receiving_since: None,
            opened: false,
        }
    }

    fn next_tid(&mut self) -> u16 {
        self.last_tid = self.last_tid.wrapping_add(1).max(1);
        self.last_tid
    }

    /// Every member processes an op 27 proposal vector (as a client in the group would).
    fn store_proposals(&mut self, vector: &[u8]) -> Result<Option<CommitWelcome>, String> {
        let mut first = None;
        for (i, member) in self.members.iter_mut().enumerate() {
            let commit = member
                .session
                .process_proposals(ProposalsOperationType::APPEND, vector, None)
                .map_err(|e| {
                    format!("member {} cannot process proposals: {e:?}", member.user_id)
                })?;
            if i == 0 {
                first = commit;
            }
        }
        Ok(first)
    }

    /// The first member creates a group (from its pending one) adding the other members
    /// and `extra`; the others join by the Welcome, which is returned.
    fn form_group(&mut self, extra: Option<KeyPackage>) -> Result<Option<Vec<u8>>, String> {
        let (first, rest) = self
            .members
            .split_first_mut()
            .ok_or("no fake member to form a group")?;
        let mut proposals = Vec::new();
        for member in rest.iter_mut() {
            let package = member
                .session
                .create_key_package()
                .map_err(|e| format!("member {} key package: {e:?}", member.user_id))?;
            let package = self.sender.key_package(&package, member.user_id)?;
            proposals.push(self.sender.propose_add(&self.group_id, 0, package));
        }
        if let Some(package) = extra {
            proposals.push(self.sender.propose_add(&self.group_id, 0, package));
        }
        if proposals.is_empty() {
            return Ok(None);
        }
        let commit = first
            .session
            .process_proposals(
                ProposalsOperationType::APPEND,
                &proposals_vector(&proposals),
                None,
            )
            .map_err(|e| format!("member {} cannot process proposals: {e:?}", first.user_id))?
            .ok_or("no commit for the group's Add proposals")?;
        first
            .session
            .process_commit(&commit.commit)
            .map_err(|e| format!("member {} cannot merge its commit: {e:?}", first.user_id))?;
        let welcome = commit.welcome.ok_or("no Welcome for added members")?;
        for member in rest {
            member
                .session
                .process_welcome(&welcome, None)
                .map_err(|e| format!("member {} cannot join: {e:?}", member.user_id))?;
        }
        self.epoch = first.session.epoch().map_or(0, |e| e.as_u64());
        Ok(Some(welcome))
    }

    /// The members commit `proposals` to their group: all store them, the first
    /// commits, all process the commit. Returns the Welcome, if members were added.
    fn commit_in_group(&mut self, proposals: &[Vec<u8>]) -> Result<Option<Vec<u8>>, String> {
        let commit = self
            .store_proposals(&proposals_vector(proposals))?
            .ok_or("no commit from the first fake member")?;
        for member in &mut self.members {
            member.session.process_commit(&commit.commit).map_err(|e| {
                format!("member {} cannot process the commit: {e:?}", member.user_id)
            })?;
        }
        self.epoch += 1;
        Ok(commit.welcome)
    }

    fn prepare_members(&mut self, tid: u16) -> Result<(), String> {
        for member in &mut self.members {
            member
                .session
                .prepare_transition(tid, 1)
                .map_err(|e| format!("member {} prepare transition: {e:?}", member.user_id))?;
        }
        Ok(())
    }

    fn on_key_package(&mut self, bytes: &[u8]) -> Result<Vec<Outgoing>, String> {
        let package = self.sender.key_package(bytes, self.bot_id)?;
        // Otherwise it answers op 25 while the client waits alone (or a script already
        // runs: the gateway reads ops in order, so that one may cross op 27 on the way).
        let Step::KeyPackage(rejoin) = self.step else {
            return Ok(Vec::new());
        };
        let add =
            |dave: &Dave, package| dave.sender.propose_add(&dave.group_id, dave.epoch, package);
        let welcome = match rejoin {
            Rejoin::Join => self.commit_in_group(&[add(self, package)])?,
            Rejoin::Reform => self.form_group(Some(package))?,
            Rejoin::Recover => {
                let leaf = self.bot_leaf()?;
                let remove = self.sender.propose_remove(&self.group_id, self.epoch, leaf);
                self.commit_in_group(&[remove, add(self, package)])?
            }
        };
        let welcome = welcome.ok_or("no Welcome for the client")?;
        let tid = self.next_tid();
        self.prepare_members(tid)?;
        self.step = Step::Ready { tid, version: 1 };
        let payload = [&tid.to_be_bytes()[..], &welcome].concat();
        Ok(vec![Outgoing::Binary(30, payload)])
    }

    /// The client's leaf in the members' group.
    fn bot_leaf(&self) -> Result<LeafNodeIndex, String> {
        let group = self
            .members
            .first()
            .and_then(|m| m.session.group())
            .ok_or("no fake member left to add the client back")?;
        let found = group
            .members()
            .find(|m| m.credential.serialized_content() == self.bot_id.to_be_bytes());
        found
            .map(|m| m.index)
            .ok_or_else(|| "the client is not in the members' group".into())
    }

    fn on_commit_welcome(&mut self, bytes: &[u8]) -> Result<Vec<Outgoing>, String> {
        if !matches!(self.step, Step::Commit) {
            return Err(format!("a commit (op 28) while awaiting {:?}", self.step));
        }
        let (message, rest) = MlsMessageIn::tls_deserialize_bytes(bytes)
            .map_err(|e| format!("op 28 commit does not parse: {e:?}"))?;
        let commit = &bytes[..bytes.len() - rest.len()];
        let message = message
            .try_into_protocol_message()
            .map_err(|e| format!("op 28 holds no handshake message: {e:?}"))?;
        if message.wire_format() != WireFormat::PublicMessage
            || message.content_type() != ContentType::Commit
            || message.group_id() != &self.group_id
            || message.epoch().as_u64() != self.epoch
        {
            return Err(format!(
                "op 28 holds a {:?} {:?} for group {:?} epoch {}, expected a public commit \
                 for {:?} epoch {}",
                message.wire_format(),
                message.content_type(),
                message.group_id(),
                message.epoch().as_u64(),
                self.group_id,
                self.epoch
            ));
        }
        let welcome = (!rest.is_empty()).then_some(rest);
        if let Some(welcome) = welcome {
            Welcome::tls_deserialize_exact_bytes(welcome)
                .map_err(|e| format!("op 28 welcome does not parse: {e:?}"))?;
        }
        for member in &mut self.members {
            match member.session.process_commit(commit) {
                Ok(true) => {}
                Ok(false) => return Err(format!("member {} ignored the commit", member.user_id)),
                Err(e) => {
                    return Err(format!(
                        "member {} cannot process the client's commit: {e:?}",
                        member.user_id
                    ))
                }
            }
        }
        if let Some(mut joiner) = self.joiner.take() {
            let welcome = welcome.ok_or("op 28 adds a member but carries no Welcome")?;
            joiner.session.process_welcome(welcome, None).map_err(|e| {
                format!(
                    "member {} cannot join by the client's Welcome: {e:?}",
                    joiner.user_id
                )
            })?;
            self.members.push(joiner);
        }
        self.epoch += 1;
        let tid = self.next_tid();
        self.prepare_members(tid)?;
        let mut announced = commit.to_vec();
        if std::mem::take(&mut self.corrupt_next_commit) {
            *announced.last_mut().expect("a non-empty commit") ^= 0xFF;
            self.step = Step::Invalid { tid };
        } else {
            self.step = Step::Ready { tid, version: 1 };
        }
        let payload = [&tid.to_be_bytes()[..], &announced].concat();
        Ok(vec![Outgoing::Binary(29, payload)])
    }

    fn on_transition_ready(
        &mut self,
        view: &mut ConnectionView,
        d: &Value,
        now: Instant,
    ) -> Result<Vec<Outgoing>, String> {
        let tid = d["transition_id"].as_u64();
        let (expected, version) = match self.step {
            Step::Ready { tid, version } => (tid, version),
            ref step => return Err(format!("op 23 {d} while awaiting {step:?}")),
        };
        if tid != Some(u64::from(expected)) {
            return Err(format!("op 23 {d}, expected transition {expected}"));
        }
        for member in &mut self.members {
            let _ = member.session.execute_transition(expected);
            if version != 0 && member.receiving_since.is_none() {
                member.receiving_since = Some(now);
                member.opened = false;
            }
        }
        view.dave_protocol_version = version;
        view.dave_epoch = (version != 0).then_some(self.epoch);
        view.dave_transitions.push((expected, version));
        self.executed = Some((version, now, !self.members.is_empty()));
        self.switched = false;
        self.wrong_kind_reported = false;
        self.completed += 1;
        self.step = Step::Idle;
        Ok(vec![Outgoing::Json(
            22,
            json!({ "transition_id": expected }),
        )])
    }

    fn on_invalid(&mut self, d: &Value) -> Result<Vec<Outgoing>, String> {
        match self.step {
            Step::Invalid { tid } if d["transition_id"].as_u64() == Some(u64::from(tid)) => {
                self.step = Step::KeyPackage(Rejoin::Recover);
                Ok(Vec::new())
            }
            ref step => Err(format!(
                "op 31 {d} while awaiting {step:?} (only a corrupted commit is invalid)"
            )),
        }
    }
}

/// Whether `payload` is framed as a DAVE frame (§5.3): magic, a sane supplemental
/// size, and room for it.
fn is_dave_frame(payload: &[u8]) -> bool {
    let Some(rest) = payload.strip_suffix(&FRAME_MAGIC) else {
        return false;
    };
    let Some(&size) = rest.last() else {
        return false;
    };
    let size = usize::from(size);
    (MIN_SUPPLEMENTAL..=payload.len()).contains(&size)
}
