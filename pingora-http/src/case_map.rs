//! The machinery shared by request and response headers: a value map plus an optional map of
//! original name spellings that is kept in lock-step with it.
//!
//! Both maps are [`HMap`]s that always receive exactly the same sequence of key operations, so
//! their iteration orders (entries in first-insertion order, each entry's values in append order)
//! line up one to one. That lets the wire writer zip them without any lookups.

use crate::case_header_name::{titled_header_name_str, CaseHeaderName, IntoCaseHeaderName};
use crate::{HMap, HeaderNameVariant};
use bytes::BufMut;
use http::header::{AsHeaderName, HeaderValue};
use pingora_error::{Error, ErrorType::InvalidHTTPHeader, OrErr, Result};

/// Original spellings of header names, parallel to the value map.
pub(crate) type CaseMap = HMap<CaseHeaderName>;

/// Headers allowed in one message. Far below the `http` crate's hard limit (which panics in
/// the infallible APIs), so both maps always have room and can never get out of step.
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

/// Add `value` under `name`, keeping any existing values. Returns whether the name was already
/// present.
pub(crate) fn append(
    case_map: Option<&mut CaseMap>,
    values: &mut HMap,
    name: impl IntoCaseHeaderName,
    value: HeaderValue,
) -> Result<bool> {
    check_room(values)?;
    let (case, name) = name.into_case_and_header_name()?;
    if let Some(case_map) = case_map {
        case_map
            .try_append(name.clone(), case)
            .or_err(InvalidHTTPHeader, "too many headers")?;
    }
    values
        .try_append(name, value)
        .or_err(InvalidHTTPHeader, "too many headers")
}

/// Replace every value under `name` with `value`.
pub(crate) fn insert(
    case_map: Option<&mut CaseMap>,
    values: &mut HMap,
    name: impl IntoCaseHeaderName,
    value: HeaderValue,
) -> Result<()> {
    check_room(values)?;
    let (case, name) = name.into_case_and_header_name()?;
    if let Some(case_map) = case_map {
        case_map
            .try_insert(name.clone(), case)
            .or_err(InvalidHTTPHeader, "too many headers")?;
    }
    values
        .try_insert(name, value)
        .or_err(InvalidHTTPHeader, "too many headers")?;
    Ok(())
}

/// Remove every value under `name`, returning the first one.
pub(crate) fn remove<'a, N: ?Sized>(
    case_map: Option<&mut CaseMap>,
    values: &mut HMap,
    name: &'a N,
) -> Option<HeaderValue>
where
    &'a N: 'a + AsHeaderName,
{
    let removed = values.remove(name);
    if removed.is_some() {
        if let Some(case_map) = case_map {
            case_map.remove(name);
        }
    }
    removed
}

/// Pairs of (recorded spelling, value) in wire order; empty without a case map.
pub(crate) fn case_iter<'a>(
    case_map: Option<&'a CaseMap>,
    values: &'a HMap,
) -> impl Iterator<Item = (&'a CaseHeaderName, &'a HeaderValue)> + 'a {
    case_map.into_iter().flat_map(move |case_map| {
        case_map
            .iter()
            .zip(values.iter())
            .map(|((name, case), (name2, value))| {
                // Lock-step maintenance makes this hold by construction.
                debug_assert_eq!(name, name2, "case map out of step with value map");
                (case, value)
            })
    })
}

/// Call `f` for every header, in wire order, with the spelling that would go on the wire.
pub(crate) fn for_each<F>(case_map: Option<&CaseMap>, values: &HMap, mut f: F) -> Result<()>
where
    F: FnMut(HeaderNameVariant, &HeaderValue) -> Result<()>,
{
    match case_map {
        Some(case_map) => {
            for (case, value) in case_iter(Some(case_map), values) {
                f(HeaderNameVariant::Case(case), value)?;
            }
        }
        None => {
            for (name, value) in values {
                let titled = titled_header_name_str(name).unwrap_or(name.as_str());
                f(HeaderNameVariant::Titled(titled), value)?;
            }
        }
    }
    Ok(())
}

/// Write `Name: value\r\n` for every header, in wire order. The caller writes the start line
/// and the final empty line.
pub(crate) fn write_h1(case_map: Option<&CaseMap>, values: &HMap, buf: &mut impl BufMut) {
    fn line(buf: &mut impl BufMut, name: &[u8], value: &HeaderValue) {
        buf.put_slice(name);
        buf.put_slice(b": ");
        buf.put_slice(value.as_bytes());
        buf.put_slice(b"\r\n");
    }
    match case_map {
        Some(case_map) => {
            for (case, value) in case_iter(Some(case_map), values) {
                line(buf, case.as_slice(), value);
            }
        }
        None => {
            for (name, value) in values {
                let titled = titled_header_name_str(name).unwrap_or(name.as_str());
                line(buf, titled.as_bytes(), value);
            }
        }
    }
}
