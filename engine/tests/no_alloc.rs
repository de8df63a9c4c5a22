//! The realtime rule, checked: a tick allocates and frees nothing, while players are
//! added, played, paused, seeked, re-volumed and removed through the command queue.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use quaver_engine::message::ControlToEngine;
use quaver_engine::ring::{frame_ring, RecordKind};
use support::*;

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static FREES: AtomicU64 = AtomicU64::new(0);
thread_local! {
    static MEASURING: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: defers every call to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if MEASURING.with(Cell::get) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if MEASURING.with(Cell::get) {
            FREES.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        if MEASURING.with(Cell::get) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
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
    assert_eq!(
        ALLOCS.load(Ordering::Relaxed),
        0,
        "allocations inside the tick"
    );
    assert_eq!(FREES.load(Ordering::Relaxed), 0, "frees inside the tick");
    // The test can fail: the same measurement around an allocation counts it.
    measured(|| drop(std::hint::black_box(vec![1u8; 10])));
    assert_eq!(ALLOCS.load(Ordering::Relaxed), 1);
}
