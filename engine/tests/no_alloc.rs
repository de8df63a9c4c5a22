//! The realtime rule, checked: a tick allocates and frees nothing, while players are
//! added, played, paused, seeked, re-volumed and removed through the command queue.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use quaver_engine::message::ControlToEngine;
use quaver_engine::ring::{frame_ring, RecordKind};
use support::*;

struct Counting;

thread_local! {
    static MEASURING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
    static FREES: Cell<u64> = const { Cell::new(0) };
}

fn bump(counter: &'static std::thread::LocalKey<Cell<u64>>) {
    if MEASURING.with(Cell::get) {
        counter.with(|c| c.set(c.get() + 1));
    }
}

fn count(counter: &'static std::thread::LocalKey<Cell<u64>>) -> u64 {
    counter.with(Cell::get)
}

// SAFETY: defers every call to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump(&ALLOCS);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        bump(&FREES);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        bump(&ALLOCS);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn measured<T>(f: impl FnOnce() -> T) -> T {
    MEASURING.with(|m| m.set(true));
    let out = f();
    MEASURING.with(|m| m.set(false));
    out
}

#[test]
fn ticks_neither_allocate_nor_free() {
    let mut r = rig(64);
    let mut writers = vec![];
    let mut keys = vec![];
    for round in 0..3u32 {
        // Build everything a command carries outside the measured region, as the
        // control plane does.
        for i in 0..16u32 {
            let (key, _shared, captured) = r.add(i + round * 16, 10);
            std::mem::forget(captured);
            let (mut w, frames) = frame_ring(256 * 1024);
            for n in 0..200u32 {
                let kind = if n % 2 == 0 {
                    RecordKind::Opus
                } else {
                    RecordKind::Pcm
                };
                let payload = if kind == RecordKind::Opus {
                    vec![n as u8; 200]
                } else {
                    vec![1u8; 3840]
                };
                let _ = w.write(kind, 1, &payload);
            }
            r.send(ControlToEngine::Play {
                key,
                frames,
                epoch: 1,
            });
            writers.push(w);
            keys.push(key);
        }
        measured(|| {
            for t in 0..200u32 {
                let key = keys[(t as usize) % keys.len()];
                let cmd = match t % 5 {
                    0 => ControlToEngine::Pause {
                        key,
                        paused: t % 10 == 0,
                    },
                    1 => ControlToEngine::Volume {
                        key,
                        volume: (t % 300) as u16,
                    },
                    2 => ControlToEngine::Seek { key, epoch: 1 },
                    // Late on, a few players start opening a next track: their frames
                    // are retired and the ticks after count the wait towards stuck.
                    3 if t > 180 => ControlToEngine::Open { key, epoch: 2 },
                    _ => ControlToEngine::Volume { key, volume: 100 },
                };
                let _ = r.commands.push(cmd);
                r.tick();
            }
        });
        // Removal hands the players back; dropping them happens here, unmeasured.
        for key in keys.drain(..) {
            r.send(ControlToEngine::Remove(key));
        }
        measured(|| r.tick());
        drop(r.events());
    }
    assert_eq!(count(&ALLOCS), 0, "allocations inside the tick");
    assert_eq!(count(&FREES), 0, "frees inside the tick");
    // The test can fail: the same measurement around an allocation counts it.
    measured(|| drop(std::hint::black_box(vec![1u8; 10])));
    assert_eq!((count(&ALLOCS), count(&FREES)), (1, 1));
}

/// The same with libopus doing the work: passthrough, decode + volume + re-encode of
/// Opus frames, and encoding of PCM frames, with the codecs arriving as they do from
/// the control plane and the decode pool.
#[test]
fn ticks_with_real_opus_neither_allocate_nor_free() {
    use quaver_engine::codec::FrameEncoder;
    use quaver_engine::message::{NewPlayer, PlayerKey};
    use quaver_engine::opus::{OpusDecoder, OpusEncoder};
    use quaver_engine::output::capture;
    use std::sync::Arc;

    let mut r = rig(4);
    let mut enc = OpusEncoder::new(10).unwrap();
    let pcm: Vec<i16> = (0..1920)
        .map(|i| ((i as f32 * 0.05).sin() * 9000.0) as i16)
        .collect();
    let pcm_bytes: Vec<u8> = pcm.iter().flat_map(|s| s.to_ne_bytes()).collect();
    let mut packet = [0u8; 1275];
    let mut writers = vec![];
    for index in 0..4u32 {
        let key = PlayerKey {
            index,
            generation: 1,
        };
        let (out, captured) = capture(1 << 20);
        std::mem::forget(captured);
        let parts = NewPlayer {
            key,
            shared: Arc::default(),
            // Without codecs, as the control plane creates players: the PCM ones
            // get an encoder through their ring, the re-volumed one by command.
            encoder: None,
            decoder: None,
            output: Some(Box::new(out)),
            stuck_after_ticks: 1000,
        };
        r.send(ControlToEngine::Add(Box::new(parts)));
        let (mut w, frames) = frame_ring(1 << 20);
        if index % 2 == 1 {
            w.offer_encoder(Box::new(OpusEncoder::new(10).unwrap()))
                .ok()
                .unwrap();
        }
        for _ in 0..100 {
            if index % 2 == 0 {
                let n = enc.encode(&pcm, &mut packet).unwrap();
                w.write(RecordKind::Opus, 1, &packet[..n]).unwrap();
            } else {
                w.write(RecordKind::Pcm, 1, &pcm_bytes).unwrap();
            }
        }
        r.send(ControlToEngine::Play {
            key,
            frames,
            epoch: 1,
        });
        if index == 2 {
            r.send(ControlToEngine::Codecs {
                key,
                encoder: Box::new(OpusEncoder::new(10).unwrap()),
                decoder: Box::new(OpusDecoder::new().unwrap()),
            });
            r.send(ControlToEngine::Volume { key, volume: 60 });
        }
        writers.push(w);
    }
    // A spare set for a PCM player that has its encoder: the encoder comes back
    // retired, through the event queue, inside the measured ticks.
    let spare = ControlToEngine::Codecs {
        key: PlayerKey {
            index: 1,
            generation: 1,
        },
        encoder: Box::new(OpusEncoder::new(10).unwrap()),
        decoder: Box::new(OpusDecoder::new().unwrap()),
    };
    measured(|| {
        assert_eq!(r.tick(), 4, "codecs taken from the rings");
        let _ = r.commands.push(spare);
        for _ in 0..80 {
            assert_eq!(r.tick(), 4);
        }
    });
    drop(r.events());
    assert_eq!(
        (count(&ALLOCS), count(&FREES)),
        (0, 0),
        "libopus allocated inside the tick"
    );
}

/// The same with the real voice transport: sealing, non-blocking sends on a loopback
/// socket, trailing silence after pauses and a stop, and keepalives while idle, in both
/// encryption modes; with DAVE sender keys installed, replaced and removed on the way.
#[test]
fn ticks_with_voice_output_neither_allocate_nor_free() {
    use quaver_engine::message::{NewPlayer, PlayerKey};
    use quaver_engine::transport::{
        EncryptionMode, RtpState, SenderKey, TransportCipher, VoiceOutput,
    };
    use std::net::UdpSocket;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    let mut r = rig(2);
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut stats = vec![];
    let mut writers = vec![];
    let mut keys = vec![];
    for (index, mode) in EncryptionMode::PREFERENCE.into_iter().enumerate() {
        let key = PlayerKey {
            index: index as u32,
            generation: 1,
        };
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.connect(receiver.local_addr().unwrap()).unwrap();
        let cipher = TransportCipher::new(mode, [index as u8; 32]);
        let out = VoiceOutput::new(socket, cipher, RtpState::new(1 + index as u32)).unwrap();
        stats.push(out.stats());
        r.send(ControlToEngine::Add(Box::new(NewPlayer {
            key,
            shared: Arc::default(),
            encoder: Some(Box::new(TagEncoder)),
            decoder: Some(Box::new(ConstDecoder(Arc::default()))),
            output: Some(Box::new(out)),
            stuck_after_ticks: 100_000,
        })));
        let (mut w, frames) = frame_ring(1 << 20);
        for n in 0..400u32 {
            w.write(RecordKind::Opus, 1, &[n as u8; 160]).unwrap();
        }
        r.send(ControlToEngine::Play {
            key,
            frames,
            epoch: 1,
        });
        writers.push(w);
        keys.push(key);
    }
    r.tick();
    measured(|| {
        for t in 0..600u32 {
            if t % 50 == 0 {
                let paused = t % 100 == 0;
                let _ = r.commands.push(ControlToEngine::Pause {
                    key: keys[0],
                    paused,
                });
            }
            if t == 300 {
                let _ = r.commands.push(ControlToEngine::Stop(keys[1]));
            }
            // DAVE: on, the same epoch again, a new epoch, off, on.
            if t % 60 == 10 {
                let epoch = (t / 120) as u8;
                for &key in &keys {
                    let sender = (t % 240 != 190).then_some(SenderKey([epoch; 16]));
                    let _ = r
                        .commands
                        .push(ControlToEngine::SetSenderKey { key, sender });
                }
            }
            r.tick();
        }
    });
    // The retired frame reader is dropped here, unmeasured.
    drop(r.events());
    assert_eq!(
        (count(&ALLOCS), count(&FREES)),
        (0, 0),
        "the voice transport allocated inside the tick"
    );
    for s in &stats {
        assert!(s.packets_sent.load(Ordering::Relaxed) >= 200);
        assert!(s.dave_packets_sent.load(Ordering::Relaxed) >= 100);
        assert!(s.silence_sent.load(Ordering::Relaxed) >= 5);
        assert_eq!(s.keepalives_sent.load(Ordering::Relaxed), 2);
        assert_eq!(s.errors.load(Ordering::Relaxed), 0);
    }
}
