//! The pool with real tick threads: placement, capacity, pacing and stats.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use quaver_engine::clock::SystemClock;
use quaver_engine::message::{ControlToEngine, EngineToControl, NewPlayer, TrackEnd};
use quaver_engine::output::capture;
use quaver_engine::ring::{frame_ring, RecordKind};
use quaver_engine::shared::PlayerShared;
use quaver_engine::{Engine, EngineConfig};
use support::{ConstDecoder, TagEncoder};

fn config(threads: usize, max_players: usize) -> EngineConfig {
    EngineConfig {
        threads,
        cpus: vec![],
        realtime_priority: None,
        max_players,
        spin: Duration::from_micros(200),
    }
}

#[test]
fn capacity_is_fixed_and_placement_spreads_players() {
    let engine = Engine::start(&config(2, 5), Arc::new(SystemClock)).unwrap();
    assert_eq!(
        engine.capacity(),
        6,
        "rounded up to a whole number per thread"
    );
    let placements: Vec<_> = (0..6).map(|_| engine.reserve().unwrap()).collect();
    let on_first = placements.iter().filter(|p| p.thread == 0).count();
    assert_eq!(on_first, 3, "unmeasured players are spread evenly");
    let err = engine.reserve().unwrap_err();
    assert_eq!(
        err.to_string(),
        "the audio engine is at its capacity of 6 players"
    );
    engine.release(placements[2]);
    let again = engine.reserve().unwrap();
    assert_eq!(
        (again.thread, again.key.index),
        (placements[2].thread, placements[2].key.index)
    );
    assert_ne!(
        again.key.generation, placements[2].key.generation,
        "a reused slot gets a new generation"
    );
}

#[test]
fn real_threads_pace_and_deliver_a_whole_track() {
    let engine = Engine::start(&config(1, 4), Arc::new(SystemClock)).unwrap();
    let placement = engine.reserve().unwrap();
    let shared = Arc::new(PlayerShared::default());
    let (out, mut captured) = capture(1 << 20);
    let parts = NewPlayer {
        key: placement.key,
        shared: shared.clone(),
        encoder: Some(Box::new(TagEncoder)),
        decoder: Some(Box::new(ConstDecoder(Arc::default()))),
        output: Some(Box::new(out)),
        stuck_after_ticks: 500,
    };
    engine
        .send(placement.thread, ControlToEngine::Add(Box::new(parts)))
        .unwrap();
    let (mut w, frames) = frame_ring(1 << 20);
    for i in 0..50u8 {
        w.write(RecordKind::Opus, 1, &[i, 9, 9]).unwrap();
    }
    w.write(RecordKind::End, 1, &[]).unwrap();
    let start = Instant::now();
    engine
        .send(
            placement.thread,
            ControlToEngine::Play {
                key: placement.key,
                frames,
                epoch: 1,
            },
        )
        .unwrap();
    let mut ended = None;
    while ended.is_none() && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
        engine.drain_events(|_, e| {
            if let EngineToControl::TrackEnded {
                end: TrackEnd::Finished,
                ..
            } = e
            {
                ended = Some(start.elapsed());
            }
        });
    }
    let took = ended.expect("the track ended");
    // 51 ticks of 20 ms: gross pacing only (shared 2-core machine).
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "{took:?}"
    );
    assert_eq!(captured.drain().len(), 50);
    assert_eq!(shared.frames_sent_in(1), 50);
    let stats = &engine.stats()[0];
    let ticks = stats.ticks.load(std::sync::atomic::Ordering::Relaxed);
    let elapsed_ticks = start.elapsed().as_millis() as u64 / 20;
    assert!(
        ticks + 5 >= elapsed_ticks && ticks <= elapsed_ticks + 5,
        "ticks {ticks} vs {elapsed_ticks}"
    );
    engine.shutdown();
}

/// A player through its handle: built by the engine, told what to do without a thread
/// index, its figures read from the handle, and gone from its thread (slot free,
/// parts retired) when the handle is dropped.
#[test]
fn a_player_handle_commands_and_removes_its_player() {
    use quaver_engine::message::Retired;
    use quaver_engine::PlayerCommand;

    let engine = Arc::new(Engine::start(&config(1, 1), Arc::new(SystemClock)).unwrap());
    let player = engine.add_player(500).unwrap();
    assert!(
        engine.add_player(500).is_err(),
        "the one slot is taken while the handle lives"
    );
    let (out, mut captured) = capture(1 << 20);
    player
        .send(PlayerCommand::SetOutput(Some(Box::new(out))))
        .unwrap();
    let (mut w, frames) = frame_ring(1 << 20);
    for i in 0..10u8 {
        w.write(RecordKind::Opus, 1, &[i, 9, 9]).unwrap();
    }
    w.write(RecordKind::End, 1, &[]).unwrap();
    player
        .send(PlayerCommand::Play { frames, epoch: 1 })
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut ended = false;
    while !ended {
        assert!(Instant::now() < deadline, "the track did not end");
        std::thread::sleep(Duration::from_millis(20));
        engine.drain_events(|_, e| {
            ended |= matches!(e, EngineToControl::TrackEnded { .. });
        });
    }
    assert_eq!(player.shared().frames_sent_in(1), 10);
    assert_eq!(captured.drain().len(), 10);

    let id = player.id();
    drop(player);
    let mut retired = false;
    while !retired {
        assert!(Instant::now() < deadline, "the player was not removed");
        std::thread::sleep(Duration::from_millis(20));
        engine.drain_events(|_, e| {
            retired |= matches!(e, EngineToControl::Retired(Retired::Player(_)));
        });
    }
    let again = engine.add_player(500).unwrap();
    assert_eq!(again.id().key.index, id.key.index, "the slot was freed");
    assert_ne!(again.id().key.generation, id.key.generation);
    drop(again);
    engine.shutdown();
}

/// Under a manual clock the runner ticks exactly once per 20 ms of (fake) time, and
/// its deadlines are absolute: 50 ms at once means two ticks due, not one.
#[test]
fn the_runner_marches_on_absolute_deadlines_under_a_manual_clock() {
    use quaver_engine::clock::ManualClock;
    use std::sync::atomic::Ordering;
    let clock = ManualClock::default();
    // An hour of spin: the runner never sleeps, it only watches the manual clock.
    let config = EngineConfig {
        spin: Duration::from_secs(3600),
        ..config(1, 1)
    };
    let engine = Engine::start(&config, Arc::new(clock.clone())).unwrap();
    let stats = engine.stats()[0].clone();
    let ticks = || stats.ticks.load(Ordering::Relaxed);
    let wait_for = |n: u64| {
        let start = Instant::now();
        while ticks() < n && start.elapsed() < Duration::from_secs(5) {
            std::thread::yield_now();
        }
        std::thread::sleep(Duration::from_millis(20));
        ticks()
    };
    assert_eq!(wait_for(0), 0, "no tick before its deadline");
    for k in 1..=5 {
        clock.advance(Duration::from_millis(20));
        assert_eq!(wait_for(k), k, "one tick per 20 ms");
    }
    clock.advance(Duration::from_millis(50));
    assert_eq!(wait_for(7), 7, "deadlines at +20 and +40 both passed");
    clock.advance(Duration::from_millis(10));
    assert_eq!(
        wait_for(8),
        8,
        "the next deadline was 60 ms after the 5th, not 20 ms after the late wake-up"
    );
    std::thread::spawn(move || {
        // Let the runner see its stop flag: it spins on the clock.
        for _ in 0..100 {
            clock.advance(Duration::from_millis(20));
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    engine.shutdown();
}
