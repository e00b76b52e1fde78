//! Encoding header blocks (RFC 7541 §6).
//!
//! A proxy sends the same names again and again, mostly with the values it
//! sent last time. So every field is looked up by its name alone, in one map
//! that holds both the static table's entries of that name and the newest
//! dynamic entry of that name; the values are compared directly. Only when
//! the newest entry of the name holds another value is the value hashed, to
//! find an older entry. Dynamic entries are named by insertion number, which
//! stays valid as entries come and go; numbers of entries that left the
//! table are pruned once they outnumber the live ones.

use super::huffman;
use super::table::{entry_size, DynamicTable};
use super::tables::STATIC_TABLE;
use bytes::{BufMut, Bytes, BytesMut};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

/// One field to encode.
#[derive(Debug, Clone, Copy)]
pub struct Field<'a> {
    /// The name, lower case as HTTP/2 requires.
    pub name: &'a [u8],
    /// The value.
    pub value: &'a [u8],
    /// Never index this field, here or at any later hop (RFC 7541 §7.1.3):
    /// for values such as credentials, whose guessing an attacker could
    /// test through the compression ratio.
    pub sensitive: bool,
}

/// Names whose values are per-message or private enough that indexing
/// them would mostly push reusable entries out of the table.
const NOT_INDEXED: &[&[u8]] = &[
    b":path",
    b"content-length",
    b"set-cookie",
    b"authorization",
    b"cookie",
];

/// The sending side of an HPACK context: one per HTTP/2 connection, used
/// for every header block sent on it, in order.
#[derive(Debug)]
pub struct Encoder {
    table: DynamicTable,
    /// Hash of a name to where entries of that name are.
    names: HashMap<u64, NameSlot, BuildHasherDefault<PassThrough>>,
    /// Hash of (name, value) to the insertion number of the newest entry
    /// with both.
    by_field: HashMap<u64, u64, BuildHasherDefault<PassThrough>>,
    /// Size changes the peer has not been told about: the smallest size
    /// since the last block and the current one (RFC 7541 §4.2).
    pending_update: Option<(usize, usize)>,
}

impl Encoder {
    /// An encoder with a dynamic table of `max_table_size` bytes (the
    /// peer's `SETTINGS_HEADER_TABLE_SIZE`, 4,096 by default).
    pub fn new(max_table_size: usize) -> Self {
        Encoder {
            table: DynamicTable::new(max_table_size),
            names: static_names().clone(),
            by_field: HashMap::default(),
            pending_update: None,
        }
    }

    /// Use a table of `size` bytes from the next block on (the peer's
    /// `SETTINGS_HEADER_TABLE_SIZE` changed, or we choose to use less).
    pub fn set_max_table_size(&mut self, size: usize) {
        if size == self.table.max_size() && self.pending_update.is_none() {
            return;
        }
        let smallest = self
            .pending_update
            .map_or(size, |(smallest, _)| smallest.min(size));
        self.pending_update = Some((smallest, size));
        self.table.set_max_size(size);
    }

    /// Append the header block of `fields` to `dst`.
    pub fn encode<'a>(&mut self, fields: impl IntoIterator<Item = Field<'a>>, dst: &mut BytesMut) {
        if let Some((smallest, current)) = self.pending_update.take() {
            if smallest < current {
                encode_int(smallest, 5, 0x20, dst);
            }
            encode_int(current, 5, 0x20, dst);
        }
        for field in fields {
            self.encode_field(field, dst);
        }
    }

    fn encode_field(&mut self, field: Field<'_>, dst: &mut BytesMut) {
        let name_hash = hash_name(field.name);
        let found = self.find(field, name_hash);
        if let (Some(index), false) = (found.field, field.sensitive) {
            encode_int(index, 7, 0x80, dst);
            return;
        }
        let index = !field.sensitive
            && entry_size(field.name, field.value) <= self.table.max_size() * 3 / 4
            && !NOT_INDEXED.contains(&field.name);
        let (prefix, flags) = match (index, field.sensitive) {
            (true, _) => (6, 0x40),
            (false, true) => (4, 0x10),
            (false, false) => (4, 0x00),
        };
        match found.name {
            Some(i) => encode_int(i, prefix, flags, dst),
            None => {
                dst.put_u8(flags);
                encode_string(field.name, dst);
            }
        }
        encode_string(field.value, dst);
        if index {
            self.insert(field, name_hash);
        }
    }

    /// Where `field`, or at least its name, is in the tables (indices of the
    /// combined index space: static 1-61, dynamic from 62).
    fn find(&self, field: Field<'_>, name_hash: u64) -> Found {
        let mut found = Found::default();
        let Some(slot) = self.names.get(&name_hash) else {
            return found;
        };
        let first = usize::from(slot.static_first);
        if first != 0 && STATIC_TABLE[first - 1].0 == field.name {
            found.name = Some(first);
            let count = usize::from(slot.static_count);
            found.field = (first..first + count).find(|i| STATIC_TABLE[i - 1].1 == field.value);
            if found.field.is_some() {
                return found;
            }
        }
        let Some(newest) = slot.dynamic.and_then(|i| self.table.index_of_insertion(i)) else {
            return found;
        };
        let Some((name, value)) = self.table.get(newest) else {
            return found;
        };
        if name != field.name {
            return found;
        }
        found.name = found.name.or(Some(newest + 62));
        if value == field.value {
            found.field = Some(newest + 62);
            return found;
        }
        // an older entry of the name may hold the value
        let older = self
            .by_field
            .get(&hash_field(name_hash, field.value))
            .and_then(|i| self.table.index_of_insertion(*i))
            .filter(|i| {
                self.table
                    .get(*i)
                    .is_some_and(|(n, v)| n == field.name && v == field.value)
            });
        found.field = older.map(|i| i + 62);
        found
    }

    fn insert(&mut self, field: Field<'_>, name_hash: u64) {
        let insertion = self.table.next_insertion();
        self.table.insert(
            Bytes::copy_from_slice(field.name),
            Bytes::copy_from_slice(field.value),
        );
        self.names.entry(name_hash).or_default().dynamic = Some(insertion);
        self.by_field
            .insert(hash_field(name_hash, field.value), insertion);
        // numbers of entries that left the table stay in the maps until they
        // outnumber the live ones: prune them then, at a cost spread over
        // the inserts
        if self.by_field.len() > 2 * self.table.len() + 16 {
            let oldest = self.table.oldest_insertion();
            self.by_field.retain(|_, i| *i >= oldest);
            self.names.retain(|_, slot| {
                slot.dynamic = slot.dynamic.filter(|i| *i >= oldest);
                slot.static_first != 0 || slot.dynamic.is_some()
            });
        }
    }
}

/// What [`Encoder::find`] found.
#[derive(Debug, Default)]
struct Found {
    /// An entry with the field's name and value.
    field: Option<usize>,
    /// An entry with the field's name.
    name: Option<usize>,
}

/// The entries of one name.
#[derive(Debug, Clone, Copy, Default)]
struct NameSlot {
    /// The static table's first entry of the name (0: none) and how many
    /// there are (they are adjacent).
    static_first: u8,
    static_count: u8,
    /// The insertion number of the newest dynamic entry of the name.
    dynamic: Option<u64>,
}

/// The static table's names, from which each encoder's name map starts.
fn static_names() -> &'static HashMap<u64, NameSlot, BuildHasherDefault<PassThrough>> {
    static NAMES: OnceLock<HashMap<u64, NameSlot, BuildHasherDefault<PassThrough>>> =
        OnceLock::new();
    NAMES.get_or_init(|| {
        let mut map = HashMap::default();
        for (i, (name, _)) in STATIC_TABLE.iter().enumerate() {
            let slot: &mut NameSlot = map.entry(hash_name(name)).or_default();
            if slot.static_first == 0 {
                // the table has 61 entries: every index fits in a byte
                slot.static_first = (i + 1) as u8;
            }
            slot.static_count += 1;
        }
        map
    })
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder::new(4096)
    }
}

/// Encode `value` with a `prefix`-bit prefix into a first byte that also
/// holds `flags` (RFC 7541 §5.1).
pub(super) fn encode_int(value: usize, prefix: u8, flags: u8, dst: &mut BytesMut) {
    let max = (1usize << prefix) - 1;
    if value < max {
        dst.put_u8(flags | value as u8);
        return;
    }
    dst.put_u8(flags | max as u8);
    let mut rest = value - max;
    while rest >= 0x80 {
        dst.put_u8(0x80 | (rest & 0x7f) as u8);
        rest >>= 7;
    }
    dst.put_u8(rest as u8);
}

/// A string literal, Huffman-coded when that is shorter.
fn encode_string(s: &[u8], dst: &mut BytesMut) {
    let coded = huffman::encoded_len(s);
    if coded < s.len() {
        encode_int(coded, 7, 0x80, dst);
        huffman::encode(s, dst);
    } else {
        encode_int(s.len(), 7, 0, dst);
        dst.put_slice(s);
    }
}

/// A hash of `bytes`, continuing from `seed`: eight bytes per step (a
/// multiply-and-rotate mix), then the length. Lookups compare the entry
/// they find, so a collision costs compression, never correctness; the maps
/// it feeds are pruned to a few hundred entries, which bounds what crafted
/// collisions can cost.
fn hash_bytes(seed: u64, bytes: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mix = |h: u64, word: u64| (h.rotate_left(5) ^ word).wrapping_mul(K);
    let mut h = seed;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let mut word = [0u8; 8];
        word.copy_from_slice(w);
        h = mix(h, u64::from_le_bytes(word));
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        h = mix(h, u64::from_le_bytes(word));
    }
    mix(h, bytes.len() as u64)
}

/// The hash of a name alone.
fn hash_name(name: &[u8]) -> u64 {
    hash_bytes(0, name)
}

/// The hash of a name and value, from the name's hash.
fn hash_field(name_hash: u64, value: &[u8]) -> u64 {
    hash_bytes(name_hash, value)
}

/// A hasher for keys that are hashes already.
#[derive(Debug, Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // only u64 keys are hashed with it; fold anything else in anyway
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}
