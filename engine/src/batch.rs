//! The caller-owned packet slots one tick fills: produced before the deadline, sent
//! right after it.

use crate::ring::MAX_OPUS_PACKET;

/// One packet waiting for the deadline.
#[derive(Debug, Clone)]
pub struct PacketSlot {
    /// Index of the producing player's slot.
    pub player: u32,
    /// Bytes used in `data`.
    pub len: usize,
    /// The Opus packet.
    pub data: [u8; MAX_OPUS_PACKET],
}

/// Preallocated slots for every player a worker can hold.
#[derive(Debug)]
pub struct PacketBatch {
    slots: Vec<PacketSlot>,
    used: usize,
}

impl PacketBatch {
    /// A batch for up to `capacity` packets per tick.
    pub fn new(capacity: usize) -> Self {
        PacketBatch {
            slots: vec![
                PacketSlot {
                    player: 0,
                    len: 0,
                    data: [0; MAX_OPUS_PACKET]
                };
                capacity
            ],
            used: 0,
        }
    }

    /// Empties the batch (keeps the memory).
    pub fn clear(&mut self) {
        self.used = 0;
    }

    /// The next free slot, claimed for `player`; `None` when full.
    pub(crate) fn claim(&mut self, player: u32) -> Option<&mut PacketSlot> {
        let slot = self.slots.get_mut(self.used)?;
        slot.player = player;
        slot.len = 0;
        Some(slot)
    }

    /// Keeps the slot last claimed (its packet was produced).
    pub(crate) fn commit(&mut self) {
        self.used += 1;
    }

    /// The produced packets.
    pub fn packets(&self) -> &[PacketSlot] {
        &self.slots[..self.used]
    }

    /// Number of produced packets.
    pub fn len(&self) -> usize {
        self.used
    }

    /// Whether nothing was produced.
    pub fn is_empty(&self) -> bool {
        self.used == 0
    }
}
