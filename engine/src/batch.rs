//! The caller-owned packet slots one tick fills: produced before the deadline, sent
//! right after it.
//!
//! Each player slot of a worker has its own packet slot, so a packet stays where it
//! was produced until the same player's next packet overwrites it: the last
//! passthrough packet is still there when a player switches to decoding and needs it
//! to prime its decoder, without a copy per tick. The order list says which slots hold
//! this tick's packets.

use crate::ring::MAX_OPUS_PACKET;

/// Preallocated packet slots for every player a worker can hold.
#[derive(Debug)]
pub struct PacketBatch {
    /// Zero-initialised, so the allocator hands out untouched pages: a slot's memory
    /// becomes resident only once a player uses it.
    data: Vec<[u8; MAX_OPUS_PACKET]>,
    lens: Vec<u16>,
    /// Player indexes with a packet this tick, in production order.
    order: Vec<u32>,
}

impl PacketBatch {
    /// A batch for players with indexes below `capacity`.
    pub fn new(capacity: usize) -> Self {
        PacketBatch {
            data: vec![[0; MAX_OPUS_PACKET]; capacity],
            lens: vec![0; capacity],
            order: Vec::with_capacity(capacity),
        }
    }

    /// Forgets this tick's packets (keeps the memory and the slots' contents).
    pub fn clear(&mut self) {
        self.order.clear();
    }

    /// The packet buffer of `player`, holding its last packet until overwritten;
    /// `None` beyond the capacity.
    pub(crate) fn slot(&mut self, player: u32) -> Option<&mut [u8; MAX_OPUS_PACKET]> {
        self.data.get_mut(player as usize)
    }

    /// Marks `player`'s slot as holding this tick's packet of `len` bytes. A player
    /// commits at most once per tick, so the order list never outgrows the capacity it
    /// was made with.
    pub(crate) fn commit(&mut self, player: u32, len: usize) {
        let Some(l) = self.lens.get_mut(player as usize) else {
            return;
        };
        *l = len.min(MAX_OPUS_PACKET) as u16;
        if self.order.len() < self.order.capacity() {
            self.order.push(player);
        }
    }

    /// Indexes of the players with a packet this tick, in production order.
    pub fn order(&self) -> &[u32] {
        &self.order
    }

    /// The packet `player` produced (meaningful for the players in [`Self::order`]).
    pub fn packet(&self, player: u32) -> &[u8] {
        let i = player as usize;
        match (self.data.get(i), self.lens.get(i)) {
            (Some(d), Some(&l)) => &d[..l as usize],
            _ => &[],
        }
    }

    /// Number of produced packets.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether nothing was produced.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}
