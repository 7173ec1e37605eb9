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
    /// One attempt of a partition's search used up its share; the next attempt takes over
    /// (never leaves the partition's search).
    Restart,
}

/// Budget and cancellation shared by the searches of one check.
pub(crate) struct Control {
    stop: AtomicBool,
    reason: Mutex<Option<StopReason>>,
    deadline: Option<Instant>,
    memory_bytes_max: u64,
    memory_bytes_used: AtomicU64,
    memory_bytes_peak: AtomicU64,
    /// Configurations the first attempt of a partition's search may explore before the search
    /// restarts with the other order (see `search::search`).
    pub(crate) restart_first_states: u64,
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
            restart_first_states: super::search::RESTART_FIRST_STATES,
        }
    }

    /// Stops every search; the first reason given wins.
    pub(crate) fn stop(&self, reason: StopReason) {
        self.note(reason);
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Records why one search stopped, without stopping the others: a partition that hit the
    /// memory cap gives its memory back, and the next one may well fit.
    fn note(&self, reason: StopReason) {
        let mut r = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        r.get_or_insert(reason);
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
///
/// A configuration is split in two: the definite ops placed (`ok` words) and the info ops
/// placed (`info` words). Besides exact repeats, the table answers "dominated": a configuration
/// whose definite ops and state equal those of one that already failed, and whose info ops
/// include that one's, fails too (info ops are optional: the failed one could have used the
/// extra ones and found no way). Only failed entries ([`Memo::fail`]) dominate.
///
/// Two indexes over one arena: `exact`, by the hash of the whole configuration, and `failed`,
/// by the hash of its definite ops and state only. `failed` holds one entry per (definite ops,
/// state) that has failed entries, the head of their list (linked through `next_failed`): a
/// lookup compares the definite ops and state once, with the head's, then only info words, of
/// at most [`DOMINATORS_MAX`] entries, so that it stays bounded.
pub(crate) struct Memo<'c, S> {
    exact: HashTable<u32>,
    failed: HashTable<u32>,
    /// Per entry: the hash of the whole configuration, and of its definite ops and state.
    hashes: Vec<(u64, u64)>,
    ok_words: Vec<u64>,
    info_words: Vec<u64>,
    states: Vec<S>,
    /// Per failed entry in a list of `failed`: the next one with the same definite ops and
    /// state, or `NONE`.
    next_failed: Vec<u32>,
    ok_width: usize,
    info_width: usize,
    /// Heap bytes owned by stored states (beyond their inline size).
    state_heap_bytes: u64,
    /// Bytes taken from the shared cap and not yet given back.
    reserved: u64,
    peak: u64,
    control: &'c Control,
}

/// The end of a list of failed entries.
const NONE: u32 = u32::MAX;

/// Failed configurations kept per (definite ops, state) for the dominance test.
const DOMINATORS_MAX: usize = 1024;

/// Bytes of a hashbrown table of `u32` with room for `capacity` items (buckets are a power of
/// two, 7/8 of them usable; one control byte per bucket plus a group of padding).
fn table_bytes(capacity: usize) -> u64 {
    if capacity == 0 {
        return 0;
    }
    let buckets = (capacity * 8 / 7).next_power_of_two() as u64;
    buckets * (std::mem::size_of::<u32>() as u64 + 1) + 16
}

/// Entries the arenas start with, and the tables' first capacity.
const INITIAL_ENTRIES: usize = 64;

/// The answer to [`Memo::visit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Visit {
    /// Not seen before: explore it; its entry is this index.
    New(u32),
    /// Seen before, or dominated by a configuration that failed: skip it.
    Known,
}

/// The capacity a full table or arena grows to.
fn grown(len: usize, capacity: usize) -> usize {
    if len == capacity {
        (capacity * 2).max(INITIAL_ENTRIES)
    } else {
        capacity
    }
}

impl<'c, S: Eq + Clone> Memo<'c, S> {
    pub(crate) fn new(ok_width: usize, info_width: usize, control: &'c Control) -> Self {
        Memo {
            exact: HashTable::new(),
            failed: HashTable::new(),
            hashes: Vec::new(),
            ok_words: Vec::new(),
            info_words: Vec::new(),
            states: Vec::new(),
            next_failed: Vec::new(),
            ok_width,
            info_width,
            state_heap_bytes: 0,
            reserved: 0,
            peak: 0,
            control,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Bytes held now: tables, arenas (by capacity) and the states' heap.
    fn bytes(&self) -> u64 {
        table_bytes(self.exact.capacity())
            + table_bytes(self.failed.capacity())
            + self.arena_bytes(self.hashes.capacity())
            + self.state_heap_bytes
    }

    fn arena_bytes(&self, entries: usize) -> u64 {
        let per_entry = 16 + 4 + (self.ok_width + self.info_width) * 8 + std::mem::size_of::<S>();
        (entries * per_entry) as u64
    }

    /// The most bytes this table held at once.
    pub(crate) fn peak_bytes(&self) -> u64 {
        self.peak
    }

    fn same_core(&self, i: usize, partial: u64, ok: &[u64], state: &S) -> bool {
        let ow = self.ok_width;
        self.hashes[i].1 == partial
            && &self.ok_words[i * ow..(i + 1) * ow] == ok
            && self.states[i] == *state
    }

    fn info_of(&self, i: usize) -> &[u64] {
        &self.info_words[i * self.info_width..(i + 1) * self.info_width]
    }

    /// Marks an entry's configuration as failed (fully explored without success), so that it
    /// may dominate later ones. Err(()): the memory cap does not allow it.
    pub(crate) fn fail(&mut self, entry: u32) -> Result<(), ()> {
        if self.info_width == 0 {
            return Ok(()); // Without info ops, dominance is equality: `exact` answers it.
        }
        let i = entry as usize;
        let partial = self.hashes[i].1;
        let (ow, iw) = (self.ok_width, self.info_width);
        let (hashes, ok_words, info_words, states) =
            (&self.hashes, &self.ok_words, &self.info_words, &self.states);
        let same_core = |j: u32| {
            let j = j as usize;
            j == i
                || (hashes[j].1 == partial
                    && ok_words[j * ow..(j + 1) * ow] == ok_words[i * ow..(i + 1) * ow]
                    && states[j] == states[i])
        };
        if let Some(head) = self.failed.find_mut(partial, |&j| same_core(j)) {
            // Keep the list an antichain: unlink the entries this one dominates.
            let next_failed = &mut self.next_failed;
            let mine = &info_words[i * iw..(i + 1) * iw];
            let (mut at, mut kept, mut last, mut count) = (*head, NONE, NONE, 0usize);
            while at != NONE {
                let j = at as usize;
                let next = next_failed[j];
                let theirs = &info_words[j * iw..(j + 1) * iw];
                if !mine.iter().zip(theirs).all(|(m, t)| m & !t == 0) {
                    match last {
                        NONE => kept = at,
                        l => next_failed[l as usize] = at,
                    }
                    last = at;
                    count += 1;
                }
                at = next;
            }
            if last != NONE {
                next_failed[last as usize] = NONE;
            }
            if count < DOMINATORS_MAX {
                next_failed[i] = kept;
                *head = entry;
            } else {
                // Full (which this entry's own dominated entries cannot make it).
                *head = kept;
            }
            return Ok(());
        }
        // The first failure with these definite ops and state.
        let table_new = grown(self.failed.len(), self.failed.capacity());
        if table_new != self.failed.capacity() {
            self.reserve(table_bytes(table_new))?;
            let hashes = &self.hashes;
            self.failed
                .reserve(table_new - self.failed.len(), |&j| hashes[j as usize].1);
        }
        let hashes = &self.hashes;
        self.failed
            .insert_unique(partial, entry, |&j| hashes[j as usize].1);
        self.next_failed[i] = NONE;
        Ok(())
    }

    /// Looks up (ok, info, state) and records it when new. `hash` covers the whole
    /// configuration, `partial` only `ok` and `state`. `Err(())`: the memory cap does not allow
    /// it.
    pub(crate) fn visit(
        &mut self,
        (hash, partial): (u64, u64),
        ok: &[u64],
        info: &[u64],
        state: &S,
        state_heap_bytes: usize,
    ) -> Result<Visit, ()> {
        debug_assert_eq!(ok.len(), self.ok_width);
        debug_assert_eq!(info.len(), self.info_width);
        let seen = self.exact.find(hash, |&i| {
            let i = i as usize;
            self.hashes[i].0 == hash
                && self.same_core(i, partial, ok, state)
                && self.info_of(i) == info
        });
        if seen.is_some() {
            return Ok(Visit::Known);
        }
        if self.info_width > 0 {
            let head = self
                .failed
                .find(partial, |&j| self.same_core(j as usize, partial, ok, state));
            let mut at = head.map_or(NONE, |&j| j);
            let mut dominated = false;
            while at != NONE {
                let j = at as usize;
                if self.info_of(j).iter().zip(info).all(|(t, m)| t & !m == 0) {
                    dominated = true;
                    break;
                }
                at = self.next_failed[j];
            }
            if dominated {
                return Ok(Visit::Known);
            }
        }
        self.make_room(state_heap_bytes as u64)?;
        let index = self.hashes.len() as u32;
        let hashes = &self.hashes;
        self.exact
            .insert_unique(hash, index, |&i| hashes[i as usize].0);
        self.hashes.push((hash, partial));
        self.ok_words.extend_from_slice(ok);
        self.info_words.extend_from_slice(info);
        self.states.push(state.clone());
        self.next_failed.push(NONE);
        self.state_heap_bytes += state_heap_bytes as u64;
        Ok(Visit::New(index))
    }

    /// Makes sure `extra` more bytes than held now are reserved against the cap.
    fn reserve(&mut self, extra: u64) -> Result<(), ()> {
        let need = self.bytes() + extra;
        if need > self.reserved {
            let missing = need - self.reserved;
            let ask = missing.max(RESERVE_CHUNK_BYTES);
            if self.control.reserve(ask) {
                self.reserved += ask;
            } else if self.control.reserve(missing) {
                self.reserved += missing;
            } else {
                self.control.note(StopReason::MemoryCap);
                return Err(());
            }
        }
        self.peak = self.peak.max(need);
        Ok(())
    }

    /// Grows the exact table and the arenas for one more entry, after pricing the growth.
    fn make_room(&mut self, state_heap_bytes: u64) -> Result<(), ()> {
        let len = self.hashes.len();
        let arena_cap = self.hashes.capacity();
        let arena_new = grown(len, arena_cap);
        let table_cap = self.exact.capacity();
        let table_new = grown(self.exact.len(), table_cap);
        let mut extra = state_heap_bytes;
        if arena_new != arena_cap {
            // The old and the new buffers coexist while the arenas move.
            extra += self.arena_bytes(arena_new);
        }
        if table_new != table_cap {
            extra += table_bytes(table_new);
        }
        self.reserve(extra)?;
        if arena_new != arena_cap {
            let more = arena_new - len;
            self.hashes.reserve_exact(more);
            self.ok_words.reserve_exact(more * self.ok_width);
            self.info_words.reserve_exact(more * self.info_width);
            self.states.reserve_exact(more);
            self.next_failed.reserve_exact(more);
        }
        if table_new != table_cap {
            let hashes = &self.hashes;
            self.exact
                .reserve(table_new - self.exact.len(), |&i| hashes[i as usize].0);
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
        let mut memo: Memo<u32> = Memo::new(2, 0, &control);
        assert_eq!(memo.visit((7, 7), &[1, 0], &[], &3, 0), Ok(Visit::New(0)));
        assert_eq!(memo.visit((7, 7), &[1, 0], &[], &3, 0), Ok(Visit::Known));
        // Same hash, different bits or state: distinct configurations.
        assert_eq!(memo.visit((7, 7), &[1, 1], &[], &3, 0), Ok(Visit::New(1)));
        assert_eq!(memo.visit((7, 7), &[1, 0], &[], &4, 0), Ok(Visit::New(2)));
        assert_eq!(memo.len(), 3);
    }

    #[test]
    fn only_a_failed_configuration_dominates_one_with_more_info_ops() {
        let control = Control::new(None, None);
        let mut memo: Memo<u32> = Memo::new(1, 1, &control);
        let Ok(Visit::New(first)) = memo.visit((5, 5), &[1], &[0b01], &3, 0) else {
            panic!("new")
        };
        // Still being explored: a superset of its info ops is a configuration of its own.
        assert_eq!(memo.visit((5, 5), &[1], &[0b11], &3, 0), Ok(Visit::New(1)));
        memo.fail(first).unwrap();
        assert_eq!(memo.visit((5, 5), &[1], &[0b111], &3, 0), Ok(Visit::Known));
        // Not a superset, another state, or other definite ops: not dominated.
        assert_eq!(memo.visit((5, 5), &[1], &[0b10], &3, 0), Ok(Visit::New(2)));
        assert_eq!(memo.visit((5, 5), &[1], &[0b101], &4, 0), Ok(Visit::New(3)));
        assert_eq!(memo.visit((5, 5), &[3], &[0b101], &3, 0), Ok(Visit::New(4)));
    }

    #[test]
    fn every_failed_set_of_a_core_dominates_and_a_smaller_one_replaces_those_it_covers() {
        let control = Control::new(None, None);
        let mut memo: Memo<u32> = Memo::new(1, 1, &control);
        let new = |memo: &mut Memo<u32>, info: u64| match memo.visit((9, 9), &[1], &[info], &3, 0) {
            Ok(Visit::New(e)) => e,
            other => panic!("{info:#b}: {other:?}"),
        };
        let a = new(&mut memo, 0b0011);
        let b = new(&mut memo, 0b0101);
        memo.fail(a).unwrap();
        memo.fail(b).unwrap();
        // Either failed set dominates; a set including neither does not.
        assert_eq!(memo.visit((9, 9), &[1], &[0b1011], &3, 0), Ok(Visit::Known));
        assert_eq!(memo.visit((9, 9), &[1], &[0b1101], &3, 0), Ok(Visit::Known));
        let c = new(&mut memo, 0b0001);
        let d = new(&mut memo, 0b1000);
        // The failure of a subset of both leaves one dominator that covers what they did.
        memo.fail(c).unwrap();
        assert_eq!(memo.visit((9, 9), &[1], &[0b1001], &3, 0), Ok(Visit::Known));
        memo.fail(d).unwrap();
        assert_eq!(
            memo.visit((9, 9), &[1], &[0b11000], &3, 0),
            Ok(Visit::Known)
        );
        assert_eq!(
            memo.visit((9, 9), &[1], &[0b10110], &3, 0),
            Ok(Visit::New(4))
        );
        let head = *memo.failed.find(9, |_| true).unwrap();
        let mut listed = vec![head];
        while let Some(&next) = listed.last().map(|&j| &memo.next_failed[j as usize]) {
            if next == NONE {
                break;
            }
            listed.push(next);
        }
        assert_eq!(listed, vec![d, c], "a and b are covered by c, so unlisted");
    }

    #[test]
    fn growth_past_the_cap_stops_the_search() {
        let control = Control::new(None, Some(64 << 10));
        let mut memo: Memo<u32> = Memo::new(1, 0, &control);
        let mut inserted = 0u64;
        let outcome = loop {
            let hash = inserted.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            match memo.visit((hash, hash), &[inserted], &[], &0, 0) {
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
