//! The tick's behaviour, driven synchronously with fake codecs and capture outputs.

mod support;

use quaver_engine::message::{ControlToEngine, EngineToControl, Retired, TrackEnd};
use quaver_engine::ring::{frame_ring, RecordKind};
use support::*;

fn opus(n: u8) -> Vec<u8> {
    vec![n, 1, 2, 3]
}

#[test]
fn passthrough_sends_packets_untouched_then_ends() {
    let mut r = rig(4);
    let (key, shared, mut captured) = r.add(0, 100);
    let (mut w, frames) = frame_ring(64 * 1024);
    for i in 0..10 {
        w.write(RecordKind::Opus, 1, &opus(i)).unwrap();
    }
    w.write(RecordKind::End, 1, &[]).unwrap();
    r.send(ControlToEngine::Play {
        key,
        frames,
        epoch: 1,
    });
    for _ in 0..10 {
        assert_eq!(r.tick(), 1);
    }
    let got = captured.drain();
    assert_eq!(
        got,
        (0..10).map(opus).collect::<Vec<_>>(),
        "bit-identical passthrough"
    );
    assert_eq!(
        shared.frames_sent_in(1),
        10,
        "position counts frames actually sent"
    );
    assert_eq!(
        r.decodes.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "no decoding in passthrough"
    );
    assert_eq!(r.tick(), 0);
    let ev = r.events();
    assert!(
        matches!(
            ev.as_slice(),
            [EngineToControl::TrackEnded {
                epoch: 1,
                end: TrackEnd::Finished,
                ..
            }]
        ),
        "{ev:?}"
    );
    assert_eq!(r.tick(), 0, "an ended track sends nothing");
    assert!(r.events().is_empty());
}

#[test]
fn empty_ring_is_nulled_and_stuck_is_reported_once() {
    let mut r = rig(2);
    let (key, shared, _c) = r.add(1, 5);
    let (_w, frames) = frame_ring(64 * 1024);
    r.send(ControlToEngine::Play {
        key,
        frames,
        epoch: 7,
    });
    for _ in 0..20 {
        assert_eq!(r.tick(), 0);
    }
    assert_eq!(shared.frames_nulled(), 20);
    let ev = r.events();
    let stuck: Vec<_> = ev
        .iter()
        .filter(|e| matches!(e, EngineToControl::Stuck { epoch: 7, .. }))
        .collect();
    assert_eq!(stuck.len(), 1, "{ev:?}");
}

#[test]
fn pause_freezes_and_seek_discards_old_frames() {
    let mut r = rig(1);
    let (key, shared, mut captured) = r.add(0, 1000);
    let mut w = r.play_opus(key, 0, 5);
    r.tick();
    r.send(ControlToEngine::Pause { key, paused: true });
    for _ in 0..5 {
        assert_eq!(r.tick(), 0);
    }
    assert_eq!(shared.frames_sent_in(1), 1);
    assert_eq!(
        shared.frames_nulled(),
        0,
        "paused ticks are not nulled frames"
    );
    // Seek: the four queued epoch-1 frames are skipped, epoch-2 frames play.
    r.send(ControlToEngine::Seek { key, epoch: 2 });
    r.send(ControlToEngine::Pause { key, paused: false });
    w.write(RecordKind::Opus, 2, &opus(50)).unwrap();
    assert_eq!(r.tick(), 1);
    assert_eq!(captured.drain(), vec![opus(0), opus(50)]);
    assert_eq!((shared.frames_sent_in(1), shared.frames_sent_in(2)), (0, 1));
}

#[test]
fn volume_switches_opus_to_decode_and_encode_and_back() {
    let mut r = rig(1);
    let (key, _shared, mut captured) = r.add(0, 1000);
    let (mut w, frames) = frame_ring(256 * 1024);
    for i in 0..130 {
        w.write(RecordKind::Opus, 1, &opus(i % 100 + 10)).unwrap();
    }
    r.send(ControlToEngine::Play {
        key,
        frames,
        epoch: 1,
    });
    r.tick();
    r.send(ControlToEngine::Volume { key, volume: 50 });
    for _ in 0..60 {
        r.tick();
    }
    let got = captured.drain();
    assert_eq!(got[0], opus(10));
    // The first processed frame primes the decoder with the previous packet.
    assert_eq!(r.decodes.load(std::sync::atomic::Ordering::Relaxed), 61);
    let sample = |p: &Vec<u8>| i16::from_le_bytes([p[1], p[2]]);
    assert_eq!(got[1][0], 0xEE, "re-encoded");
    // Ramp: the first processed frame is still at volume 100, an exact bypass.
    assert_eq!(sample(&got[1]), 1100);
    // Halfway through the ramp: volume 75, multiplier 6731.
    assert_eq!(sample(&got[26]), ((36 * 100) * 6731 / 10000) as i16);
    // After 50 frames the volume is 50: multiplier 4169.
    assert_eq!(
        sample(&got[60]),
        (((60 + 10) as i64 * 100) * 4169 / 10000) as i16
    );
    r.send(ControlToEngine::Volume { key, volume: 100 });
    for _ in 0..60 {
        r.tick();
    }
    let got = captured.drain();
    assert_eq!(got[48][0], 0xEE, "still ramping back up");
    assert_eq!(
        got.last().unwrap(),
        &opus(30),
        "back to passthrough once the ramp reached 100"
    );
}

/// Players start without codecs: a PCM track brings its encoder through the ring, a
/// volume gets both by command (a spare comes back retired), and until then Opus
/// passes through unprocessed rather than not at all.
#[test]
fn codecs_arrive_when_needed_and_spares_come_back() {
    let mut r = rig(1);
    let (key, mut captured) = r.add_bare(0);
    let (mut w, frames) = frame_ring(256 * 1024);
    r.send(ControlToEngine::Play {
        key,
        frames,
        epoch: 1,
    });
    r.send(ControlToEngine::Volume { key, volume: 50 });
    w.write(RecordKind::Opus, 1, &opus(10)).unwrap();
    r.tick();
    assert_eq!(captured.drain(), vec![opus(10)], "no codecs: as it came");

    let pcm: Vec<u8> = std::iter::repeat_n(10000i16.to_ne_bytes(), 1920)
        .flatten()
        .collect();
    w.offer_encoder(Box::new(TagEncoder)).ok().unwrap();
    w.write(RecordKind::Pcm, 1, &pcm).unwrap();
    r.tick();
    let got = captured.drain();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0][0], 0xEE, "encoded with the offered encoder");

    r.send(ControlToEngine::Codecs {
        key,
        encoder: Box::new(TagEncoder),
        decoder: Box::new(ConstDecoder(r.decodes.clone())),
    });
    w.write(RecordKind::Opus, 1, &opus(20)).unwrap();
    r.tick();
    let got = captured.drain();
    assert_eq!(got[0][0], 0xEE, "decoded, scaled and re-encoded");
    assert!(r.decodes.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    let retired: Vec<&str> = r
        .events()
        .iter()
        .filter_map(|e| match e {
            EngineToControl::Retired(Retired::Encoder(_)) => Some("encoder"),
            EngineToControl::Retired(Retired::Decoder(_)) => Some("decoder"),
            _ => None,
        })
        .collect();
    assert_eq!(retired, ["encoder"], "the player had an encoder already");
}

#[test]
fn pcm_frames_are_scaled_and_encoded() {
    let mut r = rig(1);
    let (key, _s, mut captured) = r.add(0, 1000);
    let (mut w, frames) = frame_ring(64 * 1024);
    let pcm: Vec<u8> = std::iter::repeat_n(10000i16.to_ne_bytes(), 1920)
        .flatten()
        .collect();
    w.write(RecordKind::Pcm, 1, &pcm).unwrap();
    r.send(ControlToEngine::Play {
        key,
        frames,
        epoch: 1,
    });
    r.tick();
    assert_eq!(
        captured.drain(),
        vec![vec![0xEE, 0x10, 0x27]],
        "10000 at unity"
    );
}

#[test]
fn failures_and_removal_hand_everything_back() {
    let mut r = rig(2);
    let (key, _s, _c) = r.add(0, 1000);
    let (mut w, frames) = frame_ring(64 * 1024);
    w.write(RecordKind::Failed, 1, &42u32.to_le_bytes())
        .unwrap();
    r.send(ControlToEngine::Play {
        key,
        frames,
        epoch: 1,
    });
    r.tick();
    let (_w2, frames2) = frame_ring(64 * 1024);
    r.send(ControlToEngine::Play {
        key,
        frames: frames2,
        epoch: 2,
    });
    r.send(ControlToEngine::Remove(key));
    r.tick();
    let ev = r.events();
    assert!(
        matches!(
            ev[0],
            EngineToControl::TrackEnded {
                end: TrackEnd::Failed(42),
                ..
            }
        ),
        "{ev:?}"
    );
    assert!(
        matches!(ev[1], EngineToControl::Retired(Retired::Frames(_))),
        "replaced reader comes back"
    );
    assert!(matches!(
        ev[2],
        EngineToControl::Retired(Retired::Frames(_))
    ));
    assert!(matches!(
        ev[3],
        EngineToControl::Retired(Retired::Player(_))
    ));
    assert_eq!(r.worker.player_count(), 0);
    // A command for a stale key is ignored.
    r.send(ControlToEngine::Pause { key, paused: true });
    r.tick();
}

#[test]
fn without_an_output_nobody_pulls_audio() {
    let mut r = rig(1);
    let (key, shared, mut captured) = r.add(0, 3);
    let _w = r.play_opus(key, 0, 5);
    r.send(ControlToEngine::SetOutput { key, output: None });
    for _ in 0..10 {
        assert_eq!(r.tick(), 0);
    }
    assert_eq!(
        (shared.frames_sent_in(1), shared.frames_nulled()),
        (0, 0),
        "no voice: frozen, not nulled"
    );
    assert!(
        r.events()
            .iter()
            .all(|e| matches!(e, EngineToControl::Retired(Retired::Output(_)))),
        "no stuck event"
    );
    let (out, mut captured2) = quaver_engine::output::capture(1 << 16);
    r.send(ControlToEngine::SetOutput {
        key,
        output: Some(Box::new(out)),
    });
    r.tick();
    assert!(captured.drain().is_empty());
    assert_eq!(
        captured2.drain(),
        vec![opus(0)],
        "audio resumes where it stopped"
    );
}

#[test]
fn an_active_filter_chain_stops_passthrough() {
    let mut r = rig(1);
    let (key, _s, mut captured) = r.add(0, 1000);
    let (mut w, frames) = frame_ring(64 * 1024);
    for i in 0..4 {
        w.write(RecordKind::Opus, 1, &opus(i + 10)).unwrap();
    }
    r.send(ControlToEngine::Play {
        key,
        frames,
        epoch: 1,
    });
    r.tick();
    r.send(ControlToEngine::Process { key, active: true });
    r.tick();
    r.send(ControlToEngine::Process { key, active: false });
    r.tick();
    let got = captured.drain();
    assert_eq!(got[0], opus(10));
    assert_eq!(
        got[1][0], 0xEE,
        "processed at unity volume: decoded and re-encoded"
    );
    assert_eq!(
        i16::from_le_bytes([got[1][1], got[1][2]]),
        1100,
        "unity gain"
    );
    assert_eq!(got[2], opus(12), "passthrough again");
}
