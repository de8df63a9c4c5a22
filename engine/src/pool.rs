//! The engine as the control plane sees it: a fixed pool of tick threads started at
//! startup, a fixed player capacity, placement of new players on the least loaded
//! thread, and the queues to each thread.
//!
//! Locks here are on the control side only: they serialise the many control-plane
//! tasks that write to one thread's single-producer queue. The tick threads never
//! touch them.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rtrb::{Consumer, Producer, RingBuffer};

use crate::clock::Clock;
use crate::message::{ControlToEngine, EngineToControl, PlayerKey};
use crate::runner::{self, RunnerConfig, RunnerHandle, RunnerStats};
use crate::Worker;

/// Cost assumed for a player the thread has not measured yet, in ns per tick.
const UNMEASURED_PLAYER_COST_NS: u64 = 5_000;

/// Engine settings (`quaver.engine.*`).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Tick threads.
    pub threads: usize,
    /// CPUs to pin them to, in order (fewer CPUs than threads leaves the rest unpinned).
    pub cpus: Vec<usize>,
    /// SCHED_FIFO priority, if any.
    pub realtime_priority: Option<u8>,
    /// Total player capacity.
    pub max_players: usize,
    /// Sleep until this long before each deadline, then spin.
    pub spin: Duration,
}

/// The engine is at capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the audio engine is at its capacity of {capacity} players")]
pub struct EngineFull {
    /// Configured capacity.
    pub capacity: usize,
}

/// A thread's command queue is full (the thread is not keeping up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the audio engine's command queue is full")]
pub struct QueueFull;

/// A reserved player slot on one thread; unique across threads and reuses, so it
/// also names the player in engine events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Placement {
    /// Index of the tick thread.
    pub thread: usize,
    /// Slot key on that thread.
    pub key: PlayerKey,
}

struct Lane {
    commands: Mutex<Producer<ControlToEngine>>,
    events: Mutex<Consumer<EngineToControl>>,
    slots: Mutex<SlotTable>,
    runner: Mutex<Option<RunnerHandle>>,
    stats: Arc<RunnerStats>,
}

struct SlotTable {
    free: Vec<u32>,
    generations: Vec<u32>,
}

/// The running engine.
pub struct Engine {
    lanes: Vec<Lane>,
    capacity: usize,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("threads", &self.lanes.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl Engine {
    /// Starts the tick threads.
    pub fn start(config: &EngineConfig, clock: Arc<dyn Clock>) -> std::io::Result<Engine> {
        let threads = config.threads.max(1);
        let per_thread = config.max_players.div_ceil(threads).max(1);
        let mut lanes = Vec::with_capacity(threads);
        for i in 0..threads {
            // Each command yields at most two events; leave room for a burst.
            let (cmd_tx, cmd_rx) = RingBuffer::new(per_thread * 4 + 256);
            let (ev_tx, ev_rx) = RingBuffer::new(per_thread * 8 + 512);
            let worker = Worker::new(per_thread, cmd_rx, ev_tx);
            let runner_config = RunnerConfig {
                name: format!("quaver-tick-{i}"),
                cpu: config.cpus.get(i).copied(),
                realtime_priority: config.realtime_priority,
                spin: config.spin,
            };
            let handle = runner::spawn(runner_config, worker, per_thread, clock.clone())?;
            lanes.push(Lane {
                commands: Mutex::new(cmd_tx),
                events: Mutex::new(ev_rx),
                slots: Mutex::new(SlotTable {
                    free: (0..per_thread as u32).rev().collect(),
                    generations: vec![0; per_thread],
                }),
                stats: handle.stats.clone(),
                runner: Mutex::new(Some(handle)),
            });
        }
        Ok(Engine {
            lanes,
            capacity: per_thread * threads,
        })
    }

    /// Player capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Number of tick threads.
    pub fn threads(&self) -> usize {
        self.lanes.len()
    }

    /// Reserves a slot on the thread with the lowest estimated cost.
    pub fn reserve(&self) -> Result<Placement, EngineFull> {
        let mut best: Option<(u64, usize)> = None;
        for (i, lane) in self.lanes.iter().enumerate() {
            let table = lane.slots.lock();
            if table.free.is_empty() {
                continue;
            }
            let reserved = (table.generations.len() - table.free.len()) as u64;
            let measured = lane.stats.players.load(Ordering::Relaxed);
            let cost = lane.stats.player_cost.load(Ordering::Relaxed)
                + reserved.saturating_sub(measured) * UNMEASURED_PLAYER_COST_NS;
            if best.is_none_or(|(c, _)| cost < c) {
                best = Some((cost, i));
            }
        }
        let (_, thread) = best.ok_or(EngineFull {
            capacity: self.capacity,
        })?;
        let mut table = self.lanes[thread].slots.lock();
        let index = table.free.pop().ok_or(EngineFull {
            capacity: self.capacity,
        })?;
        table.generations[index as usize] += 1;
        let generation = table.generations[index as usize];
        Ok(Placement {
            thread,
            key: PlayerKey { index, generation },
        })
    }

    /// Returns a slot after its player was removed (or never added).
    pub fn release(&self, placement: Placement) {
        let mut table = self.lanes[placement.thread].slots.lock();
        if table.generations.get(placement.key.index as usize) == Some(&placement.key.generation)
            && !table.free.contains(&placement.key.index)
        {
            table.free.push(placement.key.index);
        }
    }

    /// Queues a command for a thread. On a full queue the command comes back.
    pub fn send(
        &self,
        thread: usize,
        cmd: ControlToEngine,
    ) -> Result<(), (QueueFull, ControlToEngine)> {
        match self.lanes[thread].commands.lock().push(cmd) {
            Ok(()) => Ok(()),
            Err(rtrb::PushError::Full(cmd)) => Err((QueueFull, cmd)),
        }
    }

    /// Takes every pending event of every thread.
    pub fn drain_events(&self, mut f: impl FnMut(usize, EngineToControl)) {
        for (i, lane) in self.lanes.iter().enumerate() {
            let mut events = lane.events.lock();
            while let Ok(e) = events.pop() {
                f(i, e);
            }
        }
    }

    /// Each thread's published figures.
    pub fn stats(&self) -> Vec<Arc<RunnerStats>> {
        self.lanes.iter().map(|l| l.stats.clone()).collect()
    }

    /// Stops every tick thread.
    pub fn shutdown(&self) {
        for lane in &self.lanes {
            if let Some(r) = lane.runner.lock().take() {
                r.stop();
            }
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown();
    }
}
