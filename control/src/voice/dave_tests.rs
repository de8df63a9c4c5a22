//! The DAVE flows through the sans-IO gateway, against a test external sender built
//! with openmls and other channel members that are real `davey` sessions. Frames are
//! encrypted with the engine's encryptor and the sender key the gateway hands out, and
//! must decrypt for the other members.

use std::num::NonZeroU16;
use std::time::Instant;

use davey::{DaveSession, MediaType, ProposalsOperationType};
use openmls::prelude::tls_codec::Serialize as _;
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;
use quaver_engine::transport::{DaveEncryptor, SenderKey};
use serde_json::{json, Value};

use super::dave::DaveStatus;
use super::gateway::{GatewayEvent, Transmit, VoiceGateway, VoiceInfo};

const BOT: u64 = 7;
const CHANNEL: u64 = 43;
const MEMBER_B: u64 = 1001;
const V1: NonZeroU16 = NonZeroU16::MIN;

/// The voice server's side: the external sender and the v8 binary seq.
struct Server {
    provider: OpenMlsRustCrypto,
    signer: SignatureKeyPair,
    sender: ExternalSender,
    seq: u16,
}

impl Server {
    fn new() -> Self {
        let suite = Ciphersuite::MLS_128_DHKEMP256_AES128GCM_SHA256_P256;
        let signer = SignatureKeyPair::new(suite.signature_algorithm()).unwrap();
        let sender = ExternalSender::new(
            signer.public().into(),
            BasicCredential::new(b"voice-gateway".to_vec()).into(),
        );
        Server {
            provider: OpenMlsRustCrypto::default(),
            signer,
            sender,
            seq: 100,
        }
    }

    fn external_sender(&self) -> Vec<u8> {
        self.sender.tls_serialize_detached().unwrap()
    }

    /// A server→client binary frame: `[u16 BE seq][op][payload]`.
    fn binary(&mut self, op: u8, payload: &[u8]) -> Vec<u8> {
        self.seq = self.seq.wrapping_add(1);
        let mut frame = self.seq.to_be_bytes().to_vec();
        frame.push(op);
        frame.extend_from_slice(payload);
        frame
    }

    /// Op 27 append payload (after the op-type byte) adding `key_package`'s owner.
    fn propose_add(&self, epoch: u64, key_package: &[u8]) -> Vec<u8> {
        let key_package = KeyPackageIn::tls_deserialize_exact_bytes(key_package)
            .unwrap()
            .validate(self.provider.crypto(), ProtocolVersion::Mls10)
            .unwrap();
        let message = ExternalProposal::new_add::<OpenMlsRustCrypto>(
            key_package,
            GroupId::from_slice(&CHANNEL.to_be_bytes()),
            GroupEpoch::from(epoch),
            &self.signer,
            SenderExtensionIndex::new(0),
        )
        .unwrap();
        VLBytes::new(message.tls_serialize_detached().unwrap())
            .tls_serialize_detached()
            .unwrap()
    }
}

/// Splits op 28's payload into the commit and the (optional) welcome after it.
fn split_commit_welcome(payload: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (_, rest) = MlsMessageIn::tls_deserialize_bytes(payload).unwrap();
    let commit = payload[..payload.len() - rest.len()].to_vec();
    (commit, rest.to_vec())
}

fn with_tid(tid: u16, message: &[u8]) -> Vec<u8> {
    let mut payload = tid.to_be_bytes().to_vec();
    payload.extend_from_slice(message);
    payload
}

/// A gateway that advertised DAVE, got Ready and did discovery (Select Protocol sent
/// and taken): the next step is Session Description.
fn discovered() -> (VoiceGateway, Instant) {
    let t0 = Instant::now();
    let mut g = VoiceGateway::new(VoiceInfo {
        guild_id: 42,
        user_id: BOT,
        session_id: "sess".into(),
        token: "tok".into(),
        max_dave_protocol_version: 1,
        channel_id: CHANNEL,
    });
    g.on_open(t0, false);
    let identify = texts(&mut g);
    assert_eq!(identify[0]["d"]["max_dave_protocol_version"], 1);
    g.handle_text(t0, r#"{"op":8,"d":{"heartbeat_interval":41250}}"#);
    let ready = json!({"op":2,"seq":1,"d":{"ssrc":5,"ip":"127.0.0.1","port":5000,"modes":["aead_aes256_gcm_rtpsize"]}});
    g.handle_text(t0, &ready.to_string());
    g.discovered(t0, "127.0.0.1:6000".parse().unwrap());
    assert_eq!(texts(&mut g)[0]["op"], 1, "Select Protocol");
    (g, t0)
}

/// Session Description (op 4) with DAVE protocol `version`.
fn describe(g: &mut VoiceGateway, t0: Instant, version: u8) {
    let key: Vec<u8> = vec![1; 32];
    let d4 = json!({"op":4,"seq":2,"d":{"mode":"aead_aes256_gcm_rtpsize","secret_key":key,"dave_protocol_version":version}});
    g.handle_text(t0, &d4.to_string());
}

/// A gateway that advertised DAVE and got Session Description with version 1.
fn connected() -> (VoiceGateway, Instant) {
    let (mut g, t0) = discovered();
    describe(&mut g, t0, 1);
    (g, t0)
}

/// Everything queued to send, in order.
fn transmits(g: &mut VoiceGateway) -> Vec<Transmit> {
    std::iter::from_fn(|| g.poll_transmit()).collect()
}

fn texts(g: &mut VoiceGateway) -> Vec<Value> {
    transmits(g)
        .into_iter()
        .map(|t| match t {
            Transmit::Text(t) => serde_json::from_str(&t).unwrap(),
            Transmit::Binary(b) => panic!("unexpected binary {:?}", &b[..1]),
        })
        .collect()
}

/// The one binary frame queued, checked to carry `op`; its payload.
fn binary(g: &mut VoiceGateway, op: u8) -> Vec<u8> {
    let sent = transmits(g);
    match sent.as_slice() {
        [Transmit::Binary(b)] if b[0] == op => b[1..].to_vec(),
        other => panic!("expected one binary op {op}, got {other:?}"),
    }
}

/// Sender-key events queued (other events are dropped).
fn sender_keys(g: &mut VoiceGateway) -> Vec<Option<SenderKey>> {
    std::iter::from_fn(|| g.poll_event())
        .filter_map(|e| match e {
            GatewayEvent::SenderKey(k) => Some(k),
            GatewayEvent::Failed(f) => panic!("gateway failed: {f}"),
            _ => None,
        })
        .collect()
}

/// Encrypts an Opus-like frame as the engine would and has `member` decrypt it.
fn decrypts_for(member: &mut DaveSession, key: SenderKey, nonce_skip: u32) {
    let mut engine = DaveEncryptor::new(key);
    let opus: Vec<u8> = (0..120u8).map(|i| i.wrapping_mul(7)).collect();
    for _ in 0..=nonce_skip {
        let mut buf = [0u8; 256];
        buf[..opus.len()].copy_from_slice(&opus);
        let len = engine.encrypt_in_place(&mut buf, opus.len()).unwrap();
        let plain = member
            .decrypt(BOT, MediaType::AUDIO, &buf[..len])
            .expect("the member decrypts the bot's frame");
        assert_eq!(plain, opus);
    }
}

/// A member that joined through a welcome executes the transition as a client would.
fn member_executes(member: &mut DaveSession, tid: u16) {
    member.prepare_transition(tid, 1).unwrap();
    if tid != 0 {
        member.execute_transition(tid).unwrap();
    }
}

/// The bot answered op 23 for `tid`; B executes it, the server sends op 22, and the
/// gateway hands out exactly one sender key, which is returned.
fn ready_then_execute(
    g: &mut VoiceGateway,
    b: &mut DaveSession,
    t0: Instant,
    tid: u16,
) -> SenderKey {
    assert_eq!(texts(g), vec![json!({"op":23,"d":{"transition_id":tid}})]);
    member_executes(b, tid);
    g.handle_text(
        t0,
        &json!({"op":22,"seq":50,"d":{"transition_id":tid}}).to_string(),
    );
    let keys = sender_keys(g);
    let [Some(key)] = keys.as_slice() else {
        panic!("one sender key on execute, got {keys:?}");
    };
    *key
}

/// The bot is first in the channel; proposals to add B arrive before the external
/// sender (buffered); the bot commits and welcomes B; the key changes only on op 22.
#[test]
fn bot_commits_and_the_key_changes_on_execute() {
    let mut server = Server::new();
    let (mut g, t0) = connected();
    let bot_package = binary(&mut g, 26);
    assert!(!bot_package.is_empty());
    let mut b = DaveSession::new(V1, MEMBER_B, CHANNEL, None).unwrap();
    let b_package = b.create_key_package().unwrap();

    g.handle_text(
        t0,
        &json!({"op":11,"seq":3,"d":{"user_ids":[MEMBER_B.to_string()]}}).to_string(),
    );
    let mut proposals = vec![0u8];
    proposals.extend(server.propose_add(0, &b_package));
    let frame = server.binary(27, &proposals);
    g.handle_binary(t0, &frame);
    assert!(
        transmits(&mut g).is_empty(),
        "proposals wait for the external sender"
    );
    let frame = server.binary(25, &server.external_sender());
    g.handle_binary(t0, &frame);
    let (commit, welcome) = split_commit_welcome(&binary(&mut g, 28));
    assert!(!welcome.is_empty(), "adding a member needs a welcome");

    let frame = server.binary(29, &with_tid(1, &commit));
    g.handle_binary(t0, &frame);
    assert_eq!(
        texts(&mut g),
        vec![json!({"op":23,"d":{"transition_id":1}})]
    );
    assert!(
        sender_keys(&mut g).is_empty(),
        "nothing changes before op 22"
    );
    assert!(!g.dave_status().unwrap().encrypting);

    b.set_external_sender(&server.external_sender()).unwrap();
    b.process_welcome(&welcome, Some(&[BOT, MEMBER_B])).unwrap();
    member_executes(&mut b, 1);

    g.handle_text(t0, r#"{"op":22,"seq":4,"d":{"transition_id":1}}"#);
    let keys = sender_keys(&mut g);
    let [Some(key)] = keys.as_slice() else {
        panic!("one sender key on execute, got {keys:?}");
    };
    assert_eq!(
        g.dave_status(),
        Some(DaveStatus {
            protocol_version: 1,
            epoch: Some(1),
            encrypting: true
        })
    );
    decrypts_for(&mut b, *key, 3);
    // The binary seq counts for seq_ack.
    g.handle_timeout(t0 + std::time::Duration::from_secs(42));
    let beat = texts(&mut g);
    assert_eq!(beat[0]["d"]["seq_ack"], 4);
}

/// Member B's group, already in the channel, and a gateway that got its key package,
/// the op 11 announcing B and the external sender: B has yet to add the bot.
fn others_first(server: &mut Server) -> (VoiceGateway, Instant, DaveSession, Vec<u8>) {
    let mut b = DaveSession::new(V1, MEMBER_B, CHANNEL, None).unwrap();
    b.set_external_sender(&server.external_sender()).unwrap();
    let (mut g, t0) = connected();
    let bot_package = binary(&mut g, 26);
    g.handle_text(
        t0,
        &json!({"op":11,"seq":3,"d":{"user_ids":[MEMBER_B.to_string()]}}).to_string(),
    );
    let frame = server.binary(25, &server.external_sender());
    g.handle_binary(t0, &frame);
    assert!(transmits(&mut g).is_empty());
    (g, t0, b, bot_package)
}

/// B adds the owner of `package` to its group (committing it itself) and the server
/// sends the bot the Welcome as op 30 with transition `tid`.
fn b_welcomes_the_bot(
    server: &mut Server,
    b: &mut DaveSession,
    package: &[u8],
    g: &mut VoiceGateway,
    t0: Instant,
    tid: u16,
) {
    let made = b
        .process_proposals(
            ProposalsOperationType::APPEND,
            &server.propose_add(0, package),
            Some(&[BOT, MEMBER_B]),
        )
        .unwrap()
        .unwrap();
    assert!(b.process_commit(&made.commit).unwrap());
    let frame = server.binary(30, &with_tid(tid, &made.welcome.unwrap()));
    g.handle_binary(t0, &frame);
}

/// Others are already in the channel: B's group adds the bot, which joins through a
/// welcome; a corrupted commit later is answered with op 31 and a fresh key package.
#[test]
fn bot_is_welcomed_and_recovers_from_an_invalid_commit() {
    let mut server = Server::new();
    let (mut g, t0, mut b, bot_package) = others_first(&mut server);
    b_welcomes_the_bot(&mut server, &mut b, &bot_package, &mut g, t0, 5);
    let key = ready_then_execute(&mut g, &mut b, t0, 5);
    decrypts_for(&mut b, key, 0);

    // A commit that does not parse: op 31 with its transition id, then a new key
    // package; the key in force stays until a transition replaces it.
    let frame = server.binary(29, &with_tid(6, &[0xde, 0xad, 0xbe, 0xef]));
    g.handle_binary(t0, &frame);
    let sent = transmits(&mut g);
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(
        sent[0],
        Transmit::Text(json!({"op":31,"d":{"transition_id":6}}).to_string())
    );
    assert!(matches!(&sent[1], Transmit::Binary(p) if p[0] == 26 && p[1..] != bot_package[..]));
    let events: Vec<GatewayEvent> = std::iter::from_fn(|| g.poll_event()).collect();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, GatewayEvent::DaveRecovered(w) if w.contains("invalid commit"))),
        "{events:?}"
    );
    assert!(!events
        .iter()
        .any(|e| matches!(e, GatewayEvent::SenderKey(_))));
}

/// Op 21 to version 0 goes back to plain Opus on op 22; op 24 epoch 1 brings a new key
/// package, and a welcome with transition id 0 applies at once (no op 23).
#[test]
fn downgrade_and_back_with_transition_zero() {
    let mut server = Server::new();
    let (mut g, t0, mut b, bot_package) = others_first(&mut server);
    b_welcomes_the_bot(&mut server, &mut b, &bot_package, &mut g, t0, 0);
    assert!(texts(&mut g).is_empty(), "transition 0 needs no op 23");
    let first = sender_keys(&mut g);
    assert!(matches!(first.as_slice(), [Some(_)]), "{first:?}");

    g.handle_text(
        t0,
        r#"{"op":21,"seq":6,"d":{"protocol_version":0,"transition_id":9}}"#,
    );
    assert_eq!(
        texts(&mut g),
        vec![json!({"op":23,"d":{"transition_id":9}})]
    );
    assert!(sender_keys(&mut g).is_empty());
    g.handle_text(t0, r#"{"op":22,"seq":7,"d":{"transition_id":9}}"#);
    assert_eq!(sender_keys(&mut g), vec![None]);
    assert_eq!(g.dave_status().unwrap().protocol_version, 0);

    // Back to version 1: a new group with B.
    g.handle_text(
        t0,
        r#"{"op":24,"seq":8,"d":{"protocol_version":1,"epoch":1}}"#,
    );
    let package = binary(&mut g, 26);
    assert_ne!(package, bot_package, "key packages are single-use");
    b.reinit(V1, MEMBER_B, CHANNEL, None).unwrap();
    b_welcomes_the_bot(&mut server, &mut b, &package, &mut g, t0, 10);
    let key = ready_then_execute(&mut g, &mut b, t0, 10);
    assert_ne!(Some(key), first[0], "a new group has a new key");
    decrypts_for(&mut b, key, 0);
}

/// An Add for a user the gateway never announced (op 11) is refused, and a Session
/// Description without DAVE leaves the connection in plain mode.
#[test]
fn unannounced_users_and_version_zero() {
    let mut server = Server::new();
    let (mut g, t0) = connected();
    let _ = binary(&mut g, 26);
    let frame = server.binary(25, &server.external_sender());
    g.handle_binary(t0, &frame);
    let mut stranger = DaveSession::new(V1, 999, CHANNEL, None).unwrap();
    let mut proposals = vec![0u8];
    proposals.extend(server.propose_add(0, &stranger.create_key_package().unwrap()));
    let frame = server.binary(27, &proposals);
    g.handle_binary(t0, &frame);
    assert!(transmits(&mut g).is_empty(), "no commit for a stranger");
    let events: Vec<GatewayEvent> = std::iter::from_fn(|| g.poll_event()).collect();
    assert!(
        events.iter().any(
            |e| matches!(e, GatewayEvent::DaveRecovered(w) if w.contains("proposals refused"))
        ),
        "{events:?}"
    );

    let (mut plain, t0) = discovered();
    describe(&mut plain, t0, 0);
    let sent = transmits(&mut plain);
    assert!(sent.is_empty(), "no key package without DAVE: {sent:?}");
    assert_eq!(plain.dave_status().unwrap().protocol_version, 0);
}

/// The external sender and proposals may arrive before Session Description: both wait
/// for the MLS session, then the bot commits as usual.
#[test]
fn external_sender_before_session_description_waits() {
    let mut server = Server::new();
    let (mut g, t0) = discovered();
    let mut b = DaveSession::new(V1, MEMBER_B, CHANNEL, None).unwrap();
    g.handle_text(
        t0,
        &json!({"op":11,"seq":2,"d":{"user_ids":[MEMBER_B.to_string()]}}).to_string(),
    );
    let frame = server.binary(25, &server.external_sender());
    g.handle_binary(t0, &frame);
    let mut proposals = vec![0u8];
    proposals.extend(server.propose_add(0, &b.create_key_package().unwrap()));
    let frame = server.binary(27, &proposals);
    g.handle_binary(t0, &frame);
    assert!(
        transmits(&mut g).is_empty(),
        "nothing before Session Description"
    );

    describe(&mut g, t0, 1);
    let sent = transmits(&mut g);
    let ops: Vec<u8> = sent
        .iter()
        .map(|t| match t {
            Transmit::Binary(b) => b[0],
            Transmit::Text(t) => panic!("unexpected {t}"),
        })
        .collect();
    assert_eq!(ops, [26, 28], "key package, then the commit adding B");
}
