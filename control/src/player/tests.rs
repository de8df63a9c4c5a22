use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::*;

/// An audio path whose sent-frame count the test sets, recording every call.
#[derive(Debug, Default, Clone)]
struct FakeAudio {
    frames: Arc<AtomicU64>,
    calls: Arc<Mutex<Vec<String>>>,
}

impl PlayerAudio for FakeAudio {
    fn play(&mut self, _: &AudioTrack, start_ms: u64, epoch: u32) {
        self.frames.store(0, Ordering::Relaxed);
        self.calls
            .lock()
            .unwrap()
            .push(format!("play {start_ms} e{epoch}"));
    }
    fn stop(&mut self) {
        self.calls.lock().unwrap().push("stop".into());
    }
    fn seek(&mut self, position_ms: u64, epoch: u32) {
        self.frames.store(0, Ordering::Relaxed);
        self.calls
            .lock()
            .unwrap()
            .push(format!("seek {position_ms} e{epoch}"));
    }
    fn set_paused(&mut self, paused: bool) {
        self.calls.lock().unwrap().push(format!("paused {paused}"));
    }
    fn set_volume(&mut self, volume: u16) {
        self.calls.lock().unwrap().push(format!("volume {volume}"));
    }
    fn set_filters(&mut self, _: &Filters) {}
    fn set_voice(&mut self, _: &VoiceState) {}
    fn frames_sent(&self, _: u32) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }
    fn frames_sent_total(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }
    fn frames_nulled(&self) -> u64 {
        self.frames.load(Ordering::Relaxed) / 10
    }
}

fn fake_player() -> (Player, FakeAudio) {
    let audio = FakeAudio::default();
    (Player::new(guild(), Box::new(audio.clone())), audio)
}
use crate::track::codec::{SourceData, TrackBlob};

fn track(length_ms: i64, is_stream: bool, position_ms: i64) -> AudioTrack {
    AudioTrack::from_blob(TrackBlob {
        version: 3,
        title: "t".into(),
        author: "a".into(),
        length_ms,
        identifier: "id".into(),
        is_stream,
        uri: None,
        artwork_url: None,
        isrc: None,
        source_name: "youtube".into(),
        source_data: SourceData::None,
        position_ms,
    })
}

fn guild() -> GuildId {
    "42".parse().unwrap()
}

fn kinds(out: &[Emitted]) -> Vec<String> {
    out.iter()
        .map(|e| match e {
            Emitted::PlayerUpdate => "update".to_owned(),
            Emitted::Event(Event::TrackEndEvent { reason, .. }) => format!("end:{reason:?}"),
            Emitted::Event(Event::TrackStartEvent { .. }) => "start".to_owned(),
            Emitted::Event(other) => format!("{other:?}"),
        })
        .collect()
}

#[test]
fn position_counts_frames_actually_sent() {
    let (mut p, audio) = fake_player();
    let mut out = vec![];
    p.play(track(60_000, false, 1_000), None, 1, 0, &mut out);
    assert_eq!(kinds(&out), ["start", "update"]);
    assert_eq!(p.position_ms(), 1_000);
    audio.frames.store(150, Ordering::Relaxed);
    assert_eq!(p.state(0).position, 1_000 + 150 * 20);
    // Never past the track's length.
    audio.frames.store(1_000_000, Ordering::Relaxed);
    assert_eq!(p.state(0).position, 60_000);
}

#[test]
fn seek_starts_a_new_epoch_and_streams_ignore_it() {
    let (mut p, audio) = fake_player();
    let mut out = vec![];
    p.play(track(60_000, false, 0), None, 1, 0, &mut out);
    audio.frames.store(10, Ordering::Relaxed);
    p.seek(30_000, 0, &mut out);
    assert_eq!(p.state(0).position, 30_000);
    p.seek(-5, 0, &mut out);
    assert_eq!(p.state(0).position, 0);
    p.set_paused(true, 0);
    p.set_volume(50);
    assert_eq!(
        *audio.calls.lock().unwrap(),
        [
            "play 0 e1",
            "seek 30000 e2",
            "seek 0 e3",
            "paused true",
            "volume 50"
        ]
    );
    let epoch = p.playback().unwrap().epoch();
    assert!(p.playback().unwrap().owns_epoch(1) && p.playback().unwrap().owns_epoch(epoch));

    let (mut s, audio) = fake_player();
    s.play(track(i64::MAX, true, 0), None, 2, 0, &mut out);
    audio.frames.store(100, Ordering::Relaxed);
    s.seek(5_000, 0, &mut out);
    assert_eq!(s.state(0).position, 2_000, "a stream keeps its position");
    assert!(!audio
        .calls
        .lock()
        .unwrap()
        .iter()
        .any(|c| c.starts_with("seek")));
}

#[test]
fn end_marker_rules() {
    let mut p = Player::new(guild(), Box::new(FakeAudio::default()));
    let mut out = vec![];
    // A marker at or before the start position is ignored on play.
    p.play(track(60_000, false, 5_000), Some(5_000), 1, 0, &mut out);
    out.clear();
    p.seek(59_000, 0, &mut out);
    assert_eq!(kinds(&out), ["update"], "no marker, no end");
    // A marker at or before the current position is ignored when set.
    p.set_end_time(1_000);
    p.seek(59_500, 0, &mut out);
    assert!(p.playback().is_some());
    p.seek(10_000, 0, &mut out);
    p.set_end_time(20_000);
    out.clear();
    p.seek(25_000, 0, &mut out);
    assert_eq!(kinds(&out), ["update", "end:Finished"]);
    assert!(p.playback().is_none());
}

#[test]
fn replace_stop_and_volume() {
    let mut p = Player::new(guild(), Box::new(FakeAudio::default()));
    let mut out = vec![];
    assert!(
        !p.end_track(TrackEndReason::Stopped, 0, &mut out),
        "idle stop emits nothing"
    );
    assert!(out.is_empty());
    p.play(track(1_000, false, 0), None, 1, 0, &mut out);
    p.play(track(1_000, false, 0), None, 2, 0, &mut out);
    assert_eq!(
        kinds(&out),
        ["start", "update", "end:Replaced", "start", "update"]
    );
    p.set_volume(5_000);
    assert_eq!(p.to_json(0).volume, 1_000);
    p.set_volume(-1);
    assert_eq!(p.to_json(0).volume, 0);
}

#[test]
fn playing_means_a_track_and_not_paused() {
    let mut p = Player::new(guild(), Box::new(FakeAudio::default()));
    assert!(!p.is_playing());
    p.set_paused(true, 0);
    let mut out = vec![];
    p.play(track(1_000, false, 0), None, 1, 0, &mut out);
    assert!(
        !p.is_playing(),
        "play keeps the pause state; the PATCH rules set it first"
    );
    p.set_paused(false, 10);
    assert!(p.is_playing());
    p.set_paused(true, 20);
    assert!(!p.is_playing() && p.is_paused());
}

#[test]
fn voice_state_reuse() {
    let mut p = Player::new(guild(), Box::new(FakeAudio::default()));
    let v = VoiceState {
        token: "t".into(),
        endpoint: "e".into(),
        session_id: "s".into(),
        channel_id: Some("1".into()),
    };
    assert!(p.set_voice(v.clone()));
    assert!(
        !p.set_voice(v.clone()),
        "an unchanged voice state is not a reconnect"
    );
    assert!(p.set_voice(VoiceState {
        token: "t2".into(),
        ..v
    }));
}

#[test]
fn engine_counts_feed_the_loss_counter_per_minute() {
    let (mut p, audio) = fake_player();
    let mut out = vec![];
    let minute = 60_000;
    p.play(track(600_000, false, 0), None, 1, 10 * minute, &mut out);
    // Sample once a second for three minutes: 50 frames sent a second, 1 in 10 nulled.
    for second in 0..180 {
        audio.frames.store(50 * (second + 1), Ordering::Relaxed);
        p.sample_frames(10 * minute + (second as i64 + 1) * 1000);
    }
    let c = p.loss_counter();
    assert_eq!(c.last_minute_sent(), 3000, "the last whole minute");
    assert_eq!(c.last_minute_nulled(), 300);
    assert!(c.is_usable(13 * minute));
}
