//! Handles the host uses to name clients and upstream connections, and the slot maps behind them.
//!
//! An id packs a slot index with a generation, so a stale id held by the host after a close
//! can never reach the session that reuses the slot. Ids stay below 2^53, so hosts whose
//! numbers are doubles (JavaScript) carry them exactly: the generation has
//! [`GENERATION_BITS`] bits and wraps, so a stale id could only match again after a host held
//! it across 2^21 reuses of the same slot.

/// A client session, as handed to the host by [`Engine::client_open`](super::Engine::client_open).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(pub u64);

/// An upstream (database) connection, as announced by
/// [`Action::ConnectUpstream`](super::Action::ConnectUpstream).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UpstreamId(pub u64);

/// A connection the host holds for the Engine: a client or an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Peer {
    /// A client connection.
    Client(ClientId),
    /// An upstream connection.
    Upstream(UpstreamId),
}

/// A map from generational ids to values with O(1) insert, lookup and removal.
#[derive(Debug)]
pub(crate) struct Slots<T> {
    entries: Vec<Entry<T>>,
    free: Vec<u32>,
    len: usize,
}

#[derive(Debug)]
struct Entry<T> {
    generation: u32,
    value: Option<T>,
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Slots {
            entries: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slots<T> {
    /// Stores `value` and returns its id.
    pub(crate) fn insert(&mut self, value: T) -> u64 {
        self.len += 1;
        if let Some(index) = self.free.pop() {
            let entry = &mut self.entries[index as usize];
            entry.generation = entry.generation.wrapping_add(1) & GENERATION_MASK;
            entry.value = Some(value);
            return pack(index, entry.generation);
        }
        let index = u32::try_from(self.entries.len()).unwrap_or(u32::MAX);
        self.entries.push(Entry {
            generation: 1,
            value: Some(value),
        });
        pack(index, 1)
    }

    /// The value stored under `id`, unless it was removed.
    pub(crate) fn get(&self, id: u64) -> Option<&T> {
        let (index, generation) = unpack(id);
        self.entries
            .get(index as usize)
            .filter(|e| e.generation == generation)
            .and_then(|e| e.value.as_ref())
    }

    /// The value stored under `id`, mutably.
    pub(crate) fn get_mut(&mut self, id: u64) -> Option<&mut T> {
        let (index, generation) = unpack(id);
        self.entries
            .get_mut(index as usize)
            .filter(|e| e.generation == generation)
            .and_then(|e| e.value.as_mut())
    }

    /// Removes and returns the value under `id`.
    pub(crate) fn remove(&mut self, id: u64) -> Option<T> {
        let (index, generation) = unpack(id);
        let entry = self
            .entries
            .get_mut(index as usize)
            .filter(|e| e.generation == generation)?;
        let value = entry.value.take()?;
        self.free.push(index);
        self.len -= 1;
        Some(value)
    }

    /// How many values are stored.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Ids and values of every stored entry.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, &T)> {
        self.entries.iter().enumerate().filter_map(|(i, e)| {
            let index = u32::try_from(i).ok()?;
            e.value.as_ref().map(|v| (pack(index, e.generation), v))
        })
    }
}

/// Bits of an id that hold the slot's generation, above the 32 of its index.
pub(crate) const GENERATION_BITS: u32 = 21;
const GENERATION_MASK: u32 = (1 << GENERATION_BITS) - 1;

fn pack(index: u32, generation: u32) -> u64 {
    (u64::from(generation) << 32) | u64::from(index)
}

fn unpack(id: u64) -> (u32, u32) {
    ((id & 0xffff_ffff) as u32, (id >> 32) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_ids_do_not_reach_a_reused_slot() {
        let mut slots = Slots::default();
        let a = slots.insert("a");
        assert_eq!(slots.remove(a), Some("a"));
        let b = slots.insert("b");
        assert_ne!(a, b);
        assert_eq!(slots.get(a), None);
        assert_eq!(slots.get(b), Some(&"b"));
    }

    #[test]
    fn ids_fit_a_javascript_number_after_many_reuses_of_a_slot() {
        let mut slots = Slots::default();
        let first = slots.insert(0u32);
        let mut id = first;
        for i in 1..(1u32 << GENERATION_BITS) + 3 {
            assert!(slots.remove(id).is_some());
            id = slots.insert(i);
            assert!(id < 1 << 53, "id {id:#x} after {i} reuses");
            assert_eq!(slots.get(id), Some(&i));
        }
        let stale = pack(0, 5);
        assert_ne!(stale, id);
        assert_eq!(slots.get(stale), None);
        assert_eq!(slots.get(first | 1 << 60), None);
    }
}
