//! DAVE end to end through the real `quaver` binary: a Lavalink client plays a track,
//! the binary connects to the fake Discord voice server's DAVE tier, joins the MLS
//! group, and every media frame after a transition must carry the DAVE trailer and
//! decrypt, as a fake channel member (a real `davey` session), to Opus of the
//! expected 440 Hz sine. Both transport modes, passthrough (Ogg Opus) and transcode
//! (MP3 44.1 kHz).

mod common;

use std::time::Duration;

use common::fake_discord::{
    ConnectionView, FakeDiscord, FakeDiscordOptions, MODE_AES, MODE_XCHACHA,
};
use common::*;
use serde_json::json;

const GUILD: u64 = 881_000_000_000_000_001;
const MEMBER_B: u64 = 900_000_000_000_000_002;
const MEMBER_C: u64 = 900_000_000_000_000_003;
const WAIT: Duration = Duration::from_secs(10);

fn user() -> u64 {
    USER_ID.parse().unwrap()
}

async fn fake(modes: &[&str], members_before: &[u64]) -> FakeDiscord {
    FakeDiscord::start(FakeDiscordOptions {
        modes: modes.iter().map(|m| m.to_string()).collect(),
        heartbeat_interval_ms: 500.0,
        dave: true,
        dave_members_before: members_before.to_vec(),
        ..Default::default()
    })
    .await
}

/// Connects a player of the binary to `fake`, waits for its DAVE key package, and
/// starts the 60 s sine in `file`.
async fn play(node: &TestNode, fake: &FakeDiscord, file: &str) -> (Client, String) {
    let mut c = node.connect().await;
    let path = node.player_path(&c, &GUILD.to_string());
    node.patch(&path, json!({"voice": fake.voice_state(GUILD, user())}))
        .await;
    fake.wait_for(GUILD, WAIT, |v| v.dave_key_packages >= 1)
        .await;
    let track = local_track(file, "long", 60_000, 0, false);
    let (status, _) = node.patch(&path, json!({"encodedTrack": track})).await;
    assert_eq!(status, 200);
    c.wait_event("TrackStartEvent").await;
    (c, path)
}

/// Waits until `n` more DAVE audio frames arrived after the packets already counted
/// in `before`, and returns the view.
async fn dave_frames_after(fake: &FakeDiscord, before: usize, n: usize) -> ConnectionView {
    fake.wait_for(GUILD, WAIT, |v| {
        v.packets[before.min(v.packets.len())..]
            .iter()
            .filter(|p| p.dave && !p.silence)
            .count()
            >= n
    })
    .await
}

fn frequency(left: &[i16]) -> f32 {
    let body = &left[left.len() / 10..left.len() * 9 / 10];
    let crossings = body.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
    crossings as f32 / 2.0 / (body.len() as f32 / 48_000.0)
}

/// No violations, the tail of the stream is DAVE-encrypted and decrypts, and the
/// whole stream (plain and decrypted frames) is the 440 Hz sine.
fn assert_encrypted_sine(view: &ConnectionView, what: &str) {
    assert!(view.errors.is_empty(), "{what}: {:#?}", view.errors);
    let audio: Vec<_> = view.audio_packets().collect();
    let tail = &audio[audio.len().saturating_sub(20)..];
    assert!(
        tail.iter().all(|p| p.dave && !p.opus.is_empty()),
        "{what}: the last frames are DAVE frames that decrypt: {tail:?}"
    );
    let hz = frequency(&view.decode_left());
    assert!((hz - 440.0).abs() < 10.0, "{what}: {hz} Hz");
}

/// The bot is first in the channel (plain Opus while its group is pending); a member
/// joins, the bot commits and welcomes it, and from the executed transition on every
/// frame is DAVE: in both transport modes, passthrough and transcode.
#[tokio::test]
async fn bot_first_then_a_member_joins_in_every_mode_and_path() {
    for mode in [MODE_AES, MODE_XCHACHA] {
        for file in ["long.opus", "long.mp3"] {
            let what = format!("{mode} {file}");
            let fake = fake(&[mode], &[]).await;
            let node = TestNode::start_binary(&[]).await;
            let (_c, _) = play(&node, &fake, file).await;
            let view = fake
                .wait_for(GUILD, WAIT, |v| v.audio_packets().count() >= 10)
                .await;
            assert!(
                view.audio_packets().all(|p| !p.dave),
                "{what}: plain Opus while the group is pending"
            );
            fake.dave_join(GUILD, MEMBER_B).await;
            let before = fake.connection(GUILD).unwrap().packets.len();
            let view = dave_frames_after(&fake, before, 50).await;
            assert_eq!(view.mode.as_deref(), Some(mode));
            assert_eq!(view.dave_protocol_version, 1, "{what}");
            assert_eq!(view.dave_commits, 1, "{what}: the bot committed the add");
            assert_encrypted_sine(&view, &what);
            let log = node.log();
            assert!(
                log.contains("DAVE state") && log.contains("encrypting=true"),
                "{what}: the binary logs its DAVE state:\n{log}"
            );
        }
    }
}

/// Two members are already in the channel: their group welcomes the bot. Then one
/// leaves (a new epoch, committed by the bot) and the other still decrypts.
#[tokio::test]
async fn others_first_then_a_member_leaves() {
    let fake = fake(&[MODE_AES, MODE_XCHACHA], &[MEMBER_B, MEMBER_C]).await;
    let node = TestNode::start_binary(&[]).await;
    let (_c, _) = play(&node, &fake, "long.opus").await;
    let view = dave_frames_after(&fake, 0, 25).await;
    let epoch = view.dave_epoch.expect("an epoch after the welcome");
    assert_eq!(view.dave_commits, 0, "welcomed, not committing");
    fake.dave_leave(GUILD, MEMBER_C).await;
    let before = fake.connection(GUILD).unwrap().packets.len();
    let view = dave_frames_after(&fake, before, 50).await;
    assert!(
        view.dave_epoch.is_some_and(|e| e > epoch),
        "a new epoch: {:?} after {epoch}",
        view.dave_epoch
    );
    assert_eq!(view.dave_commits, 1, "the bot committed the removal");
    assert_encrypted_sine(&view, "after a leave");
}

/// Op 21 to version 0: after op 22 the bot sends plain Opus; op 24 brings version 1
/// back with a fresh key package, and DAVE frames again after the new transition.
#[tokio::test]
async fn downgrade_to_transport_only_and_back() {
    let fake = fake(&[MODE_XCHACHA], &[MEMBER_B]).await;
    let node = TestNode::start_binary(&[]).await;
    let (_c, _) = play(&node, &fake, "long.mp3").await;
    dave_frames_after(&fake, 0, 25).await;

    fake.dave_downgrade(GUILD).await;
    let before = fake.connection(GUILD).unwrap().packets.len();
    let view = fake
        .wait_for(GUILD, WAIT, |v| {
            v.packets[before..]
                .iter()
                .filter(|p| !p.dave && !p.silence)
                .count()
                >= 25
        })
        .await;
    assert_eq!(view.dave_protocol_version, 0);
    assert!(view.errors.is_empty(), "{:#?}", view.errors);

    fake.dave_upgrade(GUILD).await;
    let before = fake.connection(GUILD).unwrap().packets.len();
    let view = dave_frames_after(&fake, before, 50).await;
    assert_eq!(view.dave_protocol_version, 1);
    assert!(
        view.dave_key_packages >= 2,
        "a fresh key package for the new group"
    );
    assert_encrypted_sine(&view, "after downgrade and upgrade");
}

/// A corrupted commit: the bot answers op 31 and a fresh key package, logs the
/// recovery, is welcomed back and encrypts again.
#[tokio::test]
async fn a_corrupted_commit_is_recovered() {
    let fake = fake(&[MODE_AES], &[]).await;
    let node = TestNode::start_binary(&[]).await;
    let (_c, _) = play(&node, &fake, "long.opus").await;
    fake.dave_corrupt_next_commit(GUILD);
    fake.dave_join(GUILD, MEMBER_B).await;
    let before = fake.connection(GUILD).unwrap().packets.len();
    let view = dave_frames_after(&fake, before, 50).await;
    assert_eq!(view.dave_invalid_commits, 1);
    assert!(view.dave_key_packages >= 2);
    assert_encrypted_sine(&view, "after recovery");
    assert!(
        node.log().contains("invalid commit"),
        "the recovery is logged:\n{}",
        node.log()
    );
}

/// A node identifying without DAVE (`QUAVER_VOICE_DAVE=false`) against a server that
/// demands it: 4017 reaches the client once, and there is no reconnect loop.
#[tokio::test]
async fn without_dave_a_dave_channel_reports_4017_once() {
    let fake = FakeDiscord::start(FakeDiscordOptions {
        require_dave: true,
        dave: true,
        ..Default::default()
    })
    .await;
    let node = TestNode::start_binary(&[("QUAVER_VOICE_DAVE", "false")]).await;
    let mut c = node.connect().await;
    let path = node.player_path(&c, &GUILD.to_string());
    node.patch(&path, json!({"voice": fake.voice_state(GUILD, user())}))
        .await;
    let closed = c.wait_event("WebSocketClosedEvent").await;
    assert_eq!(closed["code"], 4017);
    assert_eq!(closed["byRemote"], true);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let view = fake.connection(GUILD).unwrap();
    assert_eq!(view.max_dave_protocol_version, Some(0));
    assert_eq!(view.identifies, 1, "no reconnect loop on 4017");
    while let Some(m) = c.try_next_json(Duration::from_millis(200)).await {
        assert_ne!(m["type"], "WebSocketClosedEvent", "reported once");
    }
}
