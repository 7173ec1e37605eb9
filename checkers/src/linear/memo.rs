//! The memo table of explored configurations, and the budget shared by all partitions.
//!
//! A configuration is (bitset of linearized ops, model state). Its hash is computed by the
//! caller: the bitset's part is kept incrementally (Zobrist), so a lookup never walks the
//! bitset unless two hashes collide. Entries live in flat arenas (hashes, bitset words, states)
//! and the hash table holds only `u32` indices into them.
//!
//! Memory is counted before it is allocated: every growth of the table or of an arena is priced
//! first (old and new buffers both, since a reallocation holds both for a moment) and reserved
//! against the shared cap; a reservation that would pass the cap stops the search instead.

use hashbrown::HashTable;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Why a search stopped before reaching a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopReason {
    TimeLimit,
    MemoryCap,
    /// Another partition proved the history invalid; this one's verdict no longer matters.
    Cancelled,
}

/// Budget and cancellation shared by the searches of one check.
pub(crate) struct Control {
    stop: AtomicBool,
    reason: Mutex<Option<StopReason>>,
    deadline: Option<Instant>,
    memory_bytes_max: u64,
    memory_bytes_used: AtomicU64,
    memory_bytes_peak: AtomicU64,
}

/// Bytes a search reserves at once, so that the shared counter is touched rarely.
const RESERVE_CHUNK_BYTES: u64 = 256 << 10;

impl Control {
    pub(crate) fn new(deadline: Option<Instant>, memory_bytes_max: Option<u64>) -> Self {
        Control {
            stop: AtomicBool::new(false),
            reason: Mutex::new(None),
            deadline,
            memory_bytes_max: memory_bytes_max.unwrap_or(u64::MAX),
            memory_bytes_used: AtomicU64::new(0),
            memory_bytes_peak: AtomicU64::new(0),
        }
    }

    /// Stops every search; the first reason given wins.
    pub(crate) fn stop(&self, reason: StopReason) {
        let mut r = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        r.get_or_insert(reason);
        self.stop.store(true, Ordering::Relaxed);
    }

    pub(crate) fn reason(&self) -> Option<StopReason> {
        *self.reason.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Polled every few thousand search steps.
    pub(crate) fn should_stop(&self) -> bool {
        if self.stop.load(Ordering::Relaxed) {
            return true;
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            self.stop(StopReason::TimeLimit);
            return true;
        }
        false
    }

    /// Takes `bytes` from the cap, or stops everything and says no.
    fn reserve(&self, bytes: u64) -> bool {
        let before = self.memory_bytes_used.fetch_add(bytes, Ordering::Relaxed);
        let after = before.saturating_add(bytes);
        if after > self.memory_bytes_max {
            self.memory_bytes_used.fetch_sub(bytes, Ordering::Relaxed);
            return false;
        }
        self.memory_bytes_peak.fetch_max(after, Ordering::Relaxed);
        true
    }

    fn release(&self, bytes: u64) {
        self.memory_bytes_used.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// The most bytes reserved at once by all searches together.
    pub(crate) fn peak_bytes(&self) -> u64 {
        self.memory_bytes_peak.load(Ordering::Relaxed)
    }

    pub(crate) fn memory_bytes_max(&self) -> u64 {
        self.memory_bytes_max
    }
}

/// The memo table of one partition's search.
pub(crate) struct Memo<'c, S> {
    table: HashTable<u32>,
    hashes: Vec<u64>,
    words: Vec<u64>,
    states: Vec<S>,
    /// Bitset words per entry.
    width: usize,
    /// Heap bytes owned by stored states (beyond their inline size).
    state_heap_bytes: u64,
    /// Bytes taken from the shared cap and not yet given back.
    reserved: u64,
    peak: u64,
    control: &'c Control,
}

/// Bytes of a hashbrown table of `u32` with room for `capacity` items (buckets are a power of
/// two, 7/8 of them usable; one control byte per bucket plus a group of padding).
fn table_bytes(capacity: usize) -> u64 {
    if capacity == 0 {
        return 0;
    }
    let buckets = (capacity * 8 / 7).next_power_of_two() as u64;
    buckets * (std::mem::size_of::<u32>() as u64 + 1) + 16
}

/// Entries the arenas start with, and the table's first capacity.
const INITIAL_ENTRIES: usize = 1024;

impl<'c, S: Eq> Memo<'c, S> {
    pub(crate) fn new(width: usize, control: &'c Control) -> Self {
        Memo {
            table: HashTable::new(),
            hashes: Vec::new(),
            words: Vec::new(),
            states: Vec::new(),
            width,
            state_heap_bytes: 0,
            reserved: 0,
            peak: 0,
            control,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Bytes held now: table, arenas (by capacity) and the states' heap.
    fn bytes(&self) -> u64 {
        table_bytes(self.table.capacity())
            + self.arena_bytes(self.hashes.capacity())
            + self.state_heap_bytes
    }

    fn arena_bytes(&self, entries: usize) -> u64 {
        (entries * (8 + self.width * 8 + std::mem::size_of::<S>())) as u64
    }

    /// The most bytes this table held at once.
    pub(crate) fn peak_bytes(&self) -> u64 {
        self.peak
    }

    /// Records (bits, state) under `hash`. `Ok(true)`: new; `Ok(false)`: explored before;
    /// `Err(())`: the memory cap does not allow it (the search must stop).
    pub(crate) fn insert(
        &mut self,
        hash: u64,
        bits: &[u64],
        state: &S,
        state_heap_bytes: usize,
    ) -> Result<bool, ()>
    where
        S: Clone,
    {
        debug_assert_eq!(bits.len(), self.width);
        let w = self.width;
        let (hashes, words, states) = (&self.hashes, &self.words, &self.states);
        let found = self.table.find(hash, |&i| {
            let i = i as usize;
            hashes[i] == hash && &words[i * w..(i + 1) * w] == bits && states[i] == *state
        });
        if found.is_some() {
            return Ok(false);
        }
        self.make_room(state_heap_bytes as u64)?;
        let index = self.hashes.len() as u32;
        let hashes = &self.hashes;
        self.table
            .insert_unique(hash, index, |&i| hashes[i as usize]);
        self.hashes.push(hash);
        self.words.extend_from_slice(bits);
        self.states.push(state.clone());
        self.state_heap_bytes += state_heap_bytes as u64;
        Ok(true)
    }

    /// Grows the table and arenas for one more entry, after pricing the growth.
    fn make_room(&mut self, state_heap_bytes: u64) -> Result<(), ()> {
        let len = self.hashes.len();
        let now = self.bytes();
        let mut need = now + state_heap_bytes;
        let arena_cap = self.hashes.capacity();
        let arena_new = if len == arena_cap {
            (arena_cap * 2).max(INITIAL_ENTRIES)
        } else {
            arena_cap
        };
        if arena_new != arena_cap {
            // The old and the new buffers coexist while the arenas move.
            need += self.arena_bytes(arena_new);
        }
        let table_cap = self.table.capacity();
        let table_new = if self.table.len() == table_cap {
            (table_cap * 2).max(INITIAL_ENTRIES)
        } else {
            table_cap
        };
        if table_new != table_cap {
            need += table_bytes(table_new);
        }
        if need > self.reserved {
            let missing = need - self.reserved;
            let ask = missing.max(RESERVE_CHUNK_BYTES);
            if self.control.reserve(ask) {
                self.reserved += ask;
            } else if self.control.reserve(missing) {
                self.reserved += missing;
            } else {
                self.control.stop(StopReason::MemoryCap);
                return Err(());
            }
        }
        self.peak = self.peak.max(need);
        if arena_new != arena_cap {
            let extra = arena_new - len;
            self.hashes.reserve_exact(extra);
            self.words.reserve_exact(extra * self.width);
            self.states.reserve_exact(extra);
        }
        if table_new != table_cap {
            let hashes = &self.hashes;
            self.table
                .reserve(table_new - self.table.len(), |&i| hashes[i as usize]);
        }
        // Give back what the moved buffers freed, beyond one chunk of slack.
        let held = self.bytes();
        if self.reserved > held + 2 * RESERVE_CHUNK_BYTES {
            let give = self.reserved - held - RESERVE_CHUNK_BYTES;
            self.control.release(give);
            self.reserved -= give;
        }
        Ok(())
    }
}

impl<S> Drop for Memo<'_, S> {
    fn drop(&mut self) {
        self.control.release(self.reserved);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configuration_is_new_once() {
        let control = Control::new(None, None);
        let mut memo: Memo<u32> = Memo::new(2, &control);
        assert_eq!(memo.insert(7, &[1, 0], &3, 0), Ok(true));
        assert_eq!(memo.insert(7, &[1, 0], &3, 0), Ok(false));
        // Same hash, different bits or state: distinct configurations.
        assert_eq!(memo.insert(7, &[1, 1], &3, 0), Ok(true));
        assert_eq!(memo.insert(7, &[1, 0], &4, 0), Ok(true));
        assert_eq!(memo.len(), 3);
    }

    #[test]
    fn growth_past_the_cap_stops_the_search() {
        let control = Control::new(None, Some(64 << 10));
        let mut memo: Memo<u32> = Memo::new(1, &control);
        let mut inserted = 0u64;
        let outcome = loop {
            match memo.insert(inserted.wrapping_mul(0x9e37_79b9_7f4a_7c15), &[inserted], &0, 0) {
                Ok(_) => inserted += 1,
                Err(()) => break inserted,
            }
            assert!(inserted < 1 << 20, "the cap never bit");
        };
        assert!(outcome > 0);
        assert_eq!(control.reason(), Some(StopReason::MemoryCap));
        assert!(control.peak_bytes() <= 64 << 10);
        drop(memo);
        assert_eq!(control.memory_bytes_used.load(Ordering::Relaxed), 0);
    }
}
