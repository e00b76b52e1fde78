//! The dynamic table both ends of an HPACK context keep (RFC 7541 §2.3.2,
//! §4): newest entry first, bounded by the size of its entries.

use bytes::Bytes;
use std::collections::VecDeque;

/// What an entry counts against the table size besides its name and value
/// (RFC 7541 §4.1).
pub(super) const ENTRY_OVERHEAD: usize = 32;

/// The size an entry of `name` and `value` counts for.
pub(super) fn entry_size(name: &[u8], value: &[u8]) -> usize {
    name.len() + value.len() + ENTRY_OVERHEAD
}

#[derive(Debug, Default)]
pub(super) struct DynamicTable {
    /// Newest first.
    entries: VecDeque<(Bytes, Bytes)>,
    size: usize,
    max_size: usize,
    /// Entries ever inserted and ever evicted: the encoder names entries by
    /// their insertion number, which stays valid while entries come and go.
    inserted: u64,
    evicted: u64,
}

impl DynamicTable {
    pub(super) fn new(max_size: usize) -> Self {
        DynamicTable {
            max_size,
            ..Default::default()
        }
    }

    pub(super) fn max_size(&self) -> usize {
        self.max_size
    }

    /// Entry `index` (0: the newest).
    pub(super) fn get(&self, index: usize) -> Option<&(Bytes, Bytes)> {
        self.entries.get(index)
    }

    /// Change the maximum size, evicting what no longer fits.
    pub(super) fn set_max_size(&mut self, max_size: usize) {
        self.max_size = max_size;
        self.evict_to(max_size);
    }

    /// Insert an entry, evicting the oldest ones to make room. An entry
    /// larger than the whole table empties it and is not kept (§4.4).
    pub(super) fn insert(&mut self, name: Bytes, value: Bytes) {
        let size = entry_size(&name, &value);
        if size > self.max_size {
            self.evict_to(0);
            // counted as inserted and at once evicted, so insertion numbers
            // stay in step with the peer's
            self.inserted += 1;
            self.evicted += 1;
            return;
        }
        self.evict_to(self.max_size - size);
        self.entries.push_front((name, value));
        self.size += size;
        self.inserted += 1;
    }

    fn evict_to(&mut self, target: usize) {
        while self.size > target {
            let Some((name, value)) = self.entries.pop_back() else {
                break;
            };
            self.size -= entry_size(&name, &value);
            self.evicted += 1;
        }
    }

    /// The insertion number the next entry gets.
    pub(super) fn next_insertion(&self) -> u64 {
        self.inserted
    }

    /// The current index (0: newest) of the entry inserted as `insertion`,
    /// if it is still in the table.
    pub(super) fn index_of_insertion(&self, insertion: u64) -> Option<usize> {
        if insertion < self.evicted || insertion >= self.inserted {
            return None;
        }
        Some((self.inserted - 1 - insertion) as usize)
    }

    /// The insertion number of the oldest entry (the next to be evicted).
    pub(super) fn oldest_insertion(&self) -> u64 {
        self.evicted
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub(super) fn size(&self) -> usize {
        self.size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[test]
    fn evicts_oldest_first_and_keeps_insertion_numbers() {
        let mut t = DynamicTable::new(141);
        t.insert(b("a"), b("1")); // 34
        t.insert(b("b"), b("2"));
        t.insert(b("c"), b("3"));
        t.insert(b("d"), b("4"));
        assert_eq!(t.len(), 4);
        assert_eq!(t.size(), 136);
        t.insert(b("eeeeee"), b("5")); // 39: "a" must go
        assert_eq!(t.len(), 4);
        assert_eq!(t.get(0).unwrap().0, "eeeeee");
        assert_eq!(t.get(3).unwrap().0, "b");
        assert_eq!(t.index_of_insertion(0), None);
        assert_eq!(t.index_of_insertion(1), Some(3));
        assert_eq!(t.index_of_insertion(4), Some(0));
        assert_eq!(t.index_of_insertion(5), None);
        t.set_max_size(70);
        assert_eq!(t.len(), 1);
        assert_eq!(t.oldest_insertion(), 4);
        // larger than the table: empties it
        t.insert(b("x"), Bytes::from(vec![b'y'; 100]));
        assert_eq!(t.len(), 0);
        assert_eq!(t.next_insertion(), 6);
        assert_eq!(t.max_size(), 70);
    }
}
