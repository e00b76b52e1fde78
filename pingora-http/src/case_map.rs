//! The machinery shared by request and response headers: a value map plus an optional list of
//! original name spellings that is kept aligned with it.
//!
//! The list holds one spelling per *value*, in the order [`HMap::iter`] yields the values: the
//! map's entries in their storage order, each entry's values in append order. Every mutation
//! goes through the functions below, which replay on the list what the map does to its order:
//!
//! * a value under a new name becomes a new last entry: its spelling is pushed;
//! * a value appended under a known name joins the end of that name's group;
//! * an insert under a known name replaces the group with one value, in place;
//! * a removal drops the group, and the map moves its last entry into the hole.
//!
//! Spellings are matched to groups by comparing them ASCII-case-insensitively with each other:
//! two spellings name the same header exactly when they are equal that way. No hashing, and no
//! second map to allocate, fill, clone and drop. Should the two ever disagree in length (which
//! the rules above exclude), the list is rebuilt from the map with canonical spellings rather
//! than pairing a spelling with the wrong value.

use crate::case_header_name::sealed::Internal;
use crate::case_header_name::{titled_header_name_str, CaseHeaderName, IntoCaseHeaderName};
use crate::{known, HMap, HeaderNameVariant};
use bytes::BufMut;
use http::header::{AsHeaderName, HeaderName, HeaderValue};
use pingora_error::{Error, ErrorType::InvalidHTTPHeader, OrErr, Result};

/// Original spellings of header names, one per value, in the value map's iteration order.
pub(crate) type CaseMap = Vec<CaseHeaderName>;

/// Headers allowed in one message. Far below the `http` crate's hard limit (which panics in
/// the infallible APIs).
pub(crate) const MAX_HEADER_COUNT: usize = 4096;

/// The initial map capacity for a size hint, capped so a hostile hint cannot over-allocate.
///
/// A hint (typically the number of headers just parsed) gets a few spare slots: a proxy
/// usually sets some headers of its own (`Host`, `Date`, `Connection`, ...), and a map that
/// is exactly full has to grow, and rehash everything, on the next insert, even one that
/// replaces an existing name. Clones keep the spare room.
pub(crate) fn capacity_for(size_hint: Option<usize>) -> usize {
    const DEFAULT_CAPACITY: usize = 8;
    const SPARE: usize = 4;
    size_hint
        .map_or(DEFAULT_CAPACITY, |n| n.saturating_add(SPARE))
        .min(MAX_HEADER_COUNT)
}

fn check_room(values: &HMap) -> Result<()> {
    if values.len() >= MAX_HEADER_COUNT {
        return Error::e_explain(InvalidHTTPHeader, "too many headers");
    }
    Ok(())
}

/// Whether two spellings name the same header (names are ASCII, compared without case).
#[inline]
fn same_name(a: &CaseHeaderName, b: &CaseHeaderName) -> bool {
    let (a, b) = (a.as_slice(), b.as_slice());
    // lengths differ for most pairs of names; within a group the spellings are usually equal
    a.len() == b.len() && (a == b || a.eq_ignore_ascii_case(b))
}

/// Rebuild the spellings from the value map, canonically spelled. Only reached if the list got
/// out of step with the map, which the bookkeeping in this module rules out.
#[cold]
fn resync(case_map: &mut CaseMap, values: &HMap) {
    debug_assert!(false, "case map out of step with value map");
    case_map.clear();
    case_map.extend(values.iter().map(|(name, _)| name.into_case_header_name()));
}

/// Add `value` under `name`, keeping any existing values. Returns whether the name was already
/// present. `present` holds what is [`known`] about `values` and is kept exact.
pub(crate) fn append(
    case_map: Option<&mut CaseMap>,
    values: &mut HMap,
    present: &mut known::Known,
    name: impl IntoCaseHeaderName,
    value: HeaderValue,
) -> Result<bool> {
    append_inline(case_map, values, present, name, value)
}

/// [`append`] for every header of a received head, in order: one loop with the per-header
/// work inlined, as this runs for every header of every message parsed.
pub(crate) fn append_all<N: IntoCaseHeaderName>(
    mut case_map: Option<&mut CaseMap>,
    values: &mut HMap,
    present: &mut known::Known,
    headers: impl Iterator<Item = (N, HeaderValue)>,
) -> Result<()> {
    for (name, value) in headers {
        append_inline(case_map.as_deref_mut(), values, present, name, value)?;
    }
    Ok(())
}

#[inline(always)]
fn append_inline(
    case_map: Option<&mut CaseMap>,
    values: &mut HMap,
    present: &mut known::Known,
    name: impl IntoCaseHeaderName,
    value: HeaderValue,
) -> Result<bool> {
    check_room(values)?;
    let (case, name, bit) = name.into_case_and_header_name(Internal(()))?;
    // most names are none of the known ones: nothing to note or update for them
    let noted = (bit != 0).then(|| known::Known::note(bit, &value));
    let existed = values
        .try_append(name, value)
        .or_err(InvalidHTTPHeader, "too many headers")?;
    if let Some(noted) = noted {
        present.appended(bit, existed, noted);
    }
    if let Some(case_map) = case_map {
        if !existed {
            // a new name is the map's new last entry
            case_map.push(case);
        } else {
            // the value went to the end of its name's group
            match case_map.iter().rposition(|c| same_name(c, &case)) {
                Some(last) => case_map.insert(last + 1, case),
                None => resync(case_map, values),
            }
        }
        if case_map.len() != values.len() {
            resync(case_map, values);
        }
    }
    Ok(existed)
}

/// Replace every value under `name` with `value`.
pub(crate) fn insert(
    case_map: Option<&mut CaseMap>,
    values: &mut HMap,
    present: &mut known::Known,
    name: impl IntoCaseHeaderName,
    value: HeaderValue,
) -> Result<()> {
    check_room(values)?;
    let (case, name, bit) = name.into_case_and_header_name(Internal(()))?;
    let noted = (bit != 0).then(|| known::Known::note(bit, &value));
    let replaced = values
        .try_insert(name, value)
        .or_err(InvalidHTTPHeader, "too many headers")?;
    if let Some(noted) = noted {
        present.inserted(bit, noted);
    }
    if let Some(case_map) = case_map {
        if replaced.is_none() {
            case_map.push(case);
        } else {
            // the group of `old` values shrank to one value, in place
            let old = (case_map.len() + 1).saturating_sub(values.len());
            let start = case_map.iter().position(|c| same_name(c, &case));
            match start {
                Some(start) if old >= 1 && start + old <= case_map.len() => {
                    case_map[start] = case;
                    if old > 1 {
                        case_map.drain(start + 1..start + old);
                    }
                }
                _ => resync(case_map, values),
            }
        }
        if case_map.len() != values.len() {
            resync(case_map, values);
        }
    }
    Ok(())
}

/// The position in iteration order of the value at `first` and the [`known`] bit of its
/// name, found by address (one pointer compare per value).
fn find_value(values: &HMap, first: *const HeaderValue) -> Option<(usize, u16)> {
    values
        .iter()
        .enumerate()
        .find(|(_, (_, v))| std::ptr::eq(*v, first))
        .map(|(at, (name, _))| (at, known::bit(name)))
}

/// Where the group starting at `start` in iteration order ends, and where the last group
/// starts: `(start, count, last_start)`. Group extents come from the spellings, which are
/// equal without case exactly within a group.
fn locate(case_map: &CaseMap, start: usize) -> Option<(usize, usize, usize)> {
    let head = case_map.get(start)?;
    let count = 1 + case_map
        .get(start + 1..)?
        .iter()
        .take_while(|c| same_name(c, head))
        .count();
    let (last, before) = case_map.split_last()?;
    let last_len = 1 + before
        .iter()
        .rev()
        .take_while(|c| same_name(c, last))
        .count();
    Some((start, count, case_map.len() - last_len))
}

/// Remove every value under `name`, returning the first one.
pub(crate) fn remove<'a, N: ?Sized>(
    case_map: Option<&mut CaseMap>,
    values: &mut HMap,
    present: &mut known::Known,
    name: &'a N,
) -> Option<HeaderValue>
where
    &'a N: 'a + AsHeaderName,
{
    // The group is identified by the address of its first value: `name` can be looked up but
    // not compared with the names the iteration yields.
    let first: *const HeaderValue = values.get(name)?;
    let found = if case_map.is_some() || present.bits() != 0 {
        find_value(values, first)
    } else {
        None
    };
    // Not finding the value just looked up is impossible; should it happen anyway, the bits
    // are recounted rather than left stale.
    remove_found(case_map, values, present, found, |values| {
        values.remove(name)
    })
}

/// [`remove`] for a [`HeaderName`]: the group is found by comparing names in one pass over
/// the values, instead of a hashed lookup followed by that pass (and an absent name costs no
/// lookup at all).
pub(crate) fn remove_named(
    case_map: Option<&mut CaseMap>,
    values: &mut HMap,
    present: &mut known::Known,
    name: &HeaderName,
) -> Option<HeaderValue> {
    // Without repeated names a name's place among the names is its place among the values,
    // and the names are a plain slice to scan; otherwise the values are walked.
    let at = if values.keys_len() == values.len() {
        values.keys().position(|n| n == name)?
    } else {
        values.iter().position(|(n, _)| n == name)?
    };
    let found = Some((at, known::bit(name)));
    remove_found(case_map, values, present, found, |values| {
        values.remove(name)
    })
}

/// The bookkeeping of a removal: `found` is where the group starts in iteration order and the
/// name's known bit (`None` if that could not be found, which the callers rule out), `remove`
/// removes the group from the map.
fn remove_found(
    case_map: Option<&mut CaseMap>,
    values: &mut HMap,
    present: &mut known::Known,
    found: Option<(usize, u16)>,
    remove: impl FnOnce(&mut HMap) -> Option<HeaderValue>,
) -> Option<HeaderValue> {
    let recount = found.is_none() && present.bits() != 0;
    if let Some((_, bit)) = found {
        present.removed(bit);
    }
    let Some(case_map) = case_map else {
        let removed = remove(values);
        if recount {
            *present = known::Known::of_map(values);
        }
        return removed;
    };
    let len = values.len();
    let located = match found {
        Some((start, _)) if case_map.len() == len => locate(case_map, start),
        _ => None,
    };
    let removed = remove(values);
    if recount {
        *present = known::Known::of_map(values);
    }
    match located {
        Some((start, count, last_start)) => {
            // The map swap-removes the entry: its last entry (group) takes the freed place,
            // ahead of the groups that followed the removed one.
            if count == 1 && last_start + 1 == len {
                // single values both (the usual case): exactly a swap-remove
                case_map.swap_remove(start);
            } else {
                case_map.drain(start..start + count);
                if last_start > start {
                    case_map[start..].rotate_right(len - last_start);
                }
            }
            if case_map.len() != values.len() {
                resync(case_map, values);
            }
        }
        _ => resync(case_map, values),
    }
    removed
}

/// Every header in wire order with the spelling to write: the recorded one, or the canonical
/// one (title case for well-known names) where none is recorded.
///
/// Each recorded spelling is checked against the name it is paired with. They always agree
/// (see the module notes), but the pairing depends on the `http` crate's map keeping its
/// documented order; if a version of it ever did otherwise, a wrong pairing must not put one
/// header's value under another's name, so such a header falls back to its canonical spelling.
fn spelled<'a>(
    case_map: Option<&'a CaseMap>,
    values: &'a HMap,
) -> impl Iterator<Item = (HeaderNameVariant<'a>, &'a HeaderValue)> + 'a {
    let case_map = case_map.filter(|case_map| case_map.len() == values.len());
    let mut cases = case_map.map(|c| c.iter());
    values.iter().map(move |(name, value)| {
        let case = cases.as_mut().and_then(Iterator::next);
        match case {
            Some(case) if spells(case.as_slice(), name.as_str().as_bytes()) => {
                (HeaderNameVariant::Case(case), value)
            }
            _ => {
                let titled = titled_header_name_str(name).unwrap_or(name.as_str());
                (HeaderNameVariant::Titled(titled), value)
            }
        }
    })
}

/// Whether `spelling` is `lower` (a `HeaderName`, always lower case) in some letter case.
/// Runs for every header written, so it compares eight bytes at a time: whole words, then one
/// last word overlapping the previous one (no partial-word copies). Inlined into the loops
/// over the headers: as a call it cost about as much again as the compares.
#[inline(always)]
fn spells(spelling: &[u8], lower: &[u8]) -> bool {
    /// Lower-case the ASCII capitals of eight bytes at once; other bytes are unchanged.
    #[inline(always)]
    fn lower_word(word: u64) -> u64 {
        const ONES: u64 = u64::from_le_bytes([1; 8]);
        const HIGH: u64 = ONES * 0x80;
        // adding to 7-bit bytes cannot carry into the next byte
        let low7 = word & !HIGH;
        let at_least_a = low7 + ONES * (0x80 - b'A' as u64);
        let past_z = low7 + ONES * (0x80 - b'Z' as u64 - 1);
        let capitals = at_least_a & !past_z & !word & HIGH;
        word | (capitals >> 2)
    }
    /// The `W` bytes at `at`, zero-extended (zero bytes are not capitals).
    #[inline(always)]
    fn word<const W: usize>(bytes: &[u8], at: usize) -> Option<u64> {
        let chunk: [u8; W] = bytes.get(at..at + W)?.try_into().ok()?;
        let mut buf = [0u8; 8];
        buf[..W].copy_from_slice(&chunk);
        Some(u64::from_le_bytes(buf))
    }
    #[inline(always)]
    fn same<const W: usize>(spelling: &[u8], lower: &[u8], at: usize) -> bool {
        match (word::<W>(spelling, at), word::<W>(lower, at)) {
            (Some(s), Some(l)) => lower_word(s) == l,
            // out of range: the callers only pass offsets within both slices
            _ => false,
        }
    }
    let n = spelling.len();
    if n != lower.len() {
        return false;
    }
    if n >= 8 {
        let mut at = 0;
        while at + 8 < n {
            if !same::<8>(spelling, lower, at) {
                return false;
            }
            at += 8;
        }
        same::<8>(spelling, lower, n - 8)
    } else if n >= 4 {
        same::<4>(spelling, lower, 0) && same::<4>(spelling, lower, n - 4)
    } else {
        spelling
            .iter()
            .zip(lower)
            .all(|(s, l)| s.to_ascii_lowercase() == *l)
    }
}

/// Pairs of (recorded spelling, value) in wire order; empty without a case map.
pub(crate) fn case_iter<'a>(
    case_map: Option<&'a CaseMap>,
    values: &'a HMap,
) -> impl Iterator<Item = (&'a CaseHeaderName, &'a HeaderValue)> + 'a {
    // without a usable case map every header comes out `Titled`, so nothing is yielded
    spelled(case_map, values).filter_map(|(name, value)| match name {
        HeaderNameVariant::Case(case) => Some((case, value)),
        HeaderNameVariant::Titled(_) => None,
    })
}

/// Call `f` for every header, in wire order, with the spelling that would go on the wire.
pub(crate) fn for_each<F>(case_map: Option<&CaseMap>, values: &HMap, mut f: F) -> Result<()>
where
    F: FnMut(HeaderNameVariant, &HeaderValue) -> Result<()>,
{
    for (name, value) in spelled(case_map, values) {
        f(name, value)?;
    }
    Ok(())
}

/// Write `Name: value\r\n` for every header, in wire order. The caller writes the start line
/// and the final empty line.
pub(crate) fn write_h1(case_map: Option<&CaseMap>, values: &HMap, buf: &mut impl BufMut) {
    for (name, value) in spelled(case_map, values) {
        let name = match name {
            HeaderNameVariant::Case(case) => case.as_slice(),
            HeaderNameVariant::Titled(titled) => titled.as_bytes(),
        };
        put_h1_line(buf, name, value.as_bytes());
    }
}

/// Write `name: value\r\n`.
///
/// Runs for every header of every message written. When the buffer's spare room holds the
/// whole line (the usual case: callers reserve ahead) the line is stored with one bounds check
/// and no calls for short fields, instead of four `put_slice` calls each checking capacity and
/// calling `memcpy`; otherwise `put_slice` grows the buffer.
#[inline]
pub(crate) fn put_h1_line(buf: &mut impl BufMut, name: &[u8], value: &[u8]) {
    let len = name.len() + value.len() + 4;
    let room = buf.chunk_mut();
    if room.len() >= len {
        let dst = room.as_mut_ptr();
        // SAFETY: `dst` has `len` writable bytes (checked above), which is exactly what is
        // written; `name` and `value` are not part of `buf` (it is borrowed mutably while they
        // are borrowed), so source and destination cannot overlap. The `len` bytes are then
        // initialized, which is what `advance_mut` requires.
        unsafe {
            copy_short(name, dst);
            let sep = dst.add(name.len());
            sep.cast::<[u8; 2]>().write_unaligned(*b": ");
            copy_short(value, sep.add(2));
            sep.add(2 + value.len())
                .cast::<[u8; 2]>()
                .write_unaligned(*b"\r\n");
            buf.advance_mut(len);
        }
    } else {
        buf.put_slice(name);
        buf.put_slice(b": ");
        buf.put_slice(value);
        buf.put_slice(b"\r\n");
    }
}

/// Copy `src` to `dst`: up to 32 bytes as two overlapping loads and stores of one width,
/// longer ones with `memcpy`. Header names and most values are short, and a call to `memcpy`
/// costs more than the copy.
///
/// # Safety
/// `dst` must be valid for `src.len()` bytes of writes and must not overlap `src`.
#[inline(always)]
unsafe fn copy_short(src: &[u8], dst: *mut u8) {
    let n = src.len();
    let s = src.as_ptr();
    // SAFETY (all branches): every read lies within `src` and every write within the
    // `n` bytes at `dst`, which the caller guarantees; unaligned accesses are used throughout
    unsafe {
        if n >= 16 {
            if n > 32 {
                std::ptr::copy_nonoverlapping(s, dst, n);
            } else {
                let (a, b) = (
                    s.cast::<u128>().read_unaligned(),
                    s.add(n - 16).cast::<u128>().read_unaligned(),
                );
                dst.cast::<u128>().write_unaligned(a);
                dst.add(n - 16).cast::<u128>().write_unaligned(b);
            }
        } else if n >= 8 {
            let (a, b) = (
                s.cast::<u64>().read_unaligned(),
                s.add(n - 8).cast::<u64>().read_unaligned(),
            );
            dst.cast::<u64>().write_unaligned(a);
            dst.add(n - 8).cast::<u64>().write_unaligned(b);
        } else if n >= 4 {
            let (a, b) = (
                s.cast::<u32>().read_unaligned(),
                s.add(n - 4).cast::<u32>().read_unaligned(),
            );
            dst.cast::<u32>().write_unaligned(a);
            dst.add(n - 4).cast::<u32>().write_unaligned(b);
        } else if n > 0 {
            // 1..=3 bytes: first, middle and last cover them all
            *dst = *s;
            *dst.add(n / 2) = *s.add(n / 2);
            *dst.add(n - 1) = *s.add(n - 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spellings paired with the wrong names (a map whose order changed under us) never put a
    /// value under another header's name: those headers get their canonical spelling.
    #[test]
    fn mismatched_spellings_fall_back_to_canonical_names() {
        let mut values = HMap::new();
        values.insert("content-length", HeaderValue::from_static("5"));
        values.insert("x-a", HeaderValue::from_static("a"));
        let swapped = vec![
            CaseHeaderName::from_slice(b"X-A"),
            CaseHeaderName::from_slice(b"x-A"),
        ];
        let mut buf = Vec::new();
        write_h1(Some(&swapped), &values, &mut buf);
        assert_eq!(buf, b"Content-Length: 5\r\nx-A: a\r\n");
    }

    /// Every short-copy width, with the line fitting the spare room exactly, not quite
    /// fitting (the `put_slice` path), and after other content.
    #[test]
    fn h1_lines_of_every_length() {
        let src: Vec<u8> = (0..80u8).map(|i| b'!' + i).collect();
        for n in 0..src.len() {
            for v in [0, 1, 2, 3, 7, 8, 15, 16, 17, 31, 32, 33, 79] {
                let (name, value) = (&src[..n], &src[80 - v..]);
                let mut want = name.to_vec();
                want.extend_from_slice(b": ");
                want.extend_from_slice(value);
                want.extend_from_slice(b"\r\n");
                for room in [0, 1, want.len() - 1, want.len(), want.len() + 9] {
                    let mut buf = bytes::BytesMut::with_capacity(3 + room);
                    buf.put_slice(b"abc");
                    put_h1_line(&mut buf, name, value);
                    assert_eq!(&buf[..3], b"abc");
                    assert_eq!(&buf[3..], &want[..], "{n} {v} {room}");
                }
                let mut vec = Vec::new();
                put_h1_line(&mut vec, name, value);
                assert_eq!(vec, want);
            }
        }
    }

    #[test]
    fn spelling_comparison_ignores_letter_case_only() {
        let names = [
            "a",
            "x-forwarded-for",
            "content-length",
            "x_y^z~1`|",
            "abcdefgh",
            "abcdefghi",
        ];
        for name in names {
            assert!(
                spells(name.to_ascii_uppercase().as_bytes(), name.as_bytes()),
                "{name}"
            );
            assert!(spells(name.as_bytes(), name.as_bytes()), "{name}");
        }
        for (spelling, name) in [
            ("Content-Length", "content-lengti"),
            ("X-A", "x-a-"),
            ("X^", "x~"),
            ("X_", "x\x7f"),
            ("[", "{"),
            ("@", "`"),
            ("ABCDEFGHIJ", "abcdefghik"),
        ] {
            assert!(
                !spells(spelling.as_bytes(), name.as_bytes()),
                "{spelling} {name}"
            );
        }
        // one differing byte at every position of names of every length
        for len in 1..=40 {
            let lower: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            assert!(spells(&lower.to_ascii_uppercase(), &lower), "{len}");
            for at in 0..len {
                let mut spelling = lower.to_ascii_uppercase();
                spelling[at] = b'-';
                assert!(!spells(&spelling, &lower), "{len} {at}");
                spelling[at] = lower[at] + 1;
                assert!(!spells(&spelling, &lower), "{len} {at}");
            }
        }
        // every byte against every other, at one position of names taking each path
        for len in [3, 5, 9] {
            for a in 0u8..=255 {
                for b in 0u8..=255 {
                    let mut spelling = b"x-?yz0123".to_vec();
                    let mut lower = spelling.clone();
                    (spelling[2], lower[2]) = (a, b);
                    let (spelling, lower) = (&spelling[..len], &lower[..len]);
                    let expect = a.to_ascii_lowercase() == b;
                    assert_eq!(spells(spelling, lower), expect, "{len} {a} {b}");
                }
            }
        }
    }
}
