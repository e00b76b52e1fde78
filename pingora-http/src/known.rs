//! Which of a few headers that decide framing and connection handling a message holds.
//!
//! Proxies ask about these names for every message (is there a `Transfer-Encoding`, a
//! `Content-Length`, any hop-by-hop header to strip?) and nearly always get "no". Each header
//! type keeps one bit per name below, exact at all times: every mutation of its headers goes
//! through a method that updates the bits (see `case_map`). A clear bit answers "absent"
//! without hashing and probing the map; a set bit still means looking at the values.

use crate::standard_name::eq_lower;
use crate::HMap;
use http::header::HeaderName;

/// `Connection`.
pub const CONNECTION: u16 = 1 << 0;
/// `Keep-Alive`.
pub const KEEP_ALIVE: u16 = 1 << 1;
/// `Proxy-Connection`.
pub const PROXY_CONNECTION: u16 = 1 << 2;
/// `TE`.
pub const TE: u16 = 1 << 3;
/// `Upgrade`.
pub const UPGRADE: u16 = 1 << 4;
/// `Transfer-Encoding`.
pub const TRANSFER_ENCODING: u16 = 1 << 5;
/// `Content-Length`.
pub const CONTENT_LENGTH: u16 = 1 << 6;
/// `Trailer`.
pub const TRAILER: u16 = 1 << 7;
/// `Host`.
pub const HOST: u16 = 1 << 8;
/// `Date`.
pub const DATE: u16 = 1 << 9;
/// `Expect`.
pub const EXPECT: u16 = 1 << 10;
/// `Sec-WebSocket-Key`.
pub const SEC_WEBSOCKET_KEY: u16 = 1 << 11;

/// Not a name: set while there is more than one `Host` value (a request to refuse).
pub const REPEATED_HOST: u16 = 1 << 12;

/// The hop-by-hop headers a proxy removes by name.
pub const HOP_BY_HOP: u16 = CONNECTION | KEEP_ALIVE | PROXY_CONNECTION | TE | UPGRADE;

/// The bit of `name`, or 0 when it is not one of the names above. Runs for every header added,
/// so the length picks the candidates before any comparison.
#[inline]
pub(crate) fn bit(name: &HeaderName) -> u16 {
    let name = name.as_str().as_bytes();
    macro_rules! by_length {
        ($($len:literal => [$($lit:literal => $bit:ident),+],)+) => {
            match name.len() {
                $($len => {
                    // the length was just matched, so the conversion succeeds
                    let Ok(name) = <&[u8; $len]>::try_from(name) else { return 0 };
                    $(if name == $lit {
                        return $bit;
                    })+
                    0
                })+
                _ => 0,
            }
        };
    }
    by_length! {
        2 => [b"te" => TE],
        4 => [b"host" => HOST, b"date" => DATE],
        6 => [b"expect" => EXPECT],
        7 => [b"upgrade" => UPGRADE, b"trailer" => TRAILER],
        10 => [b"connection" => CONNECTION, b"keep-alive" => KEEP_ALIVE],
        14 => [b"content-length" => CONTENT_LENGTH],
        16 => [b"proxy-connection" => PROXY_CONNECTION],
        17 => [b"transfer-encoding" => TRANSFER_ENCODING, b"sec-websocket-key" => SEC_WEBSOCKET_KEY],
    }
}

/// The number a `Content-Length` value states if it is a plain decimal number.
fn length_of(digits: &[u8]) -> Option<u64> {
    // 18 digits always fit; longer ones take the full check
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, d| {
        let d = d.wrapping_sub(b'0');
        (d <= 9).then(|| n * 10 + u64::from(d))
    })
}

/// The bits of every name in `map` (for headers built from plain `Parts`).
pub(crate) fn of_map(map: &HMap) -> u16 {
    map.keys().fold(0, |bits, name| bits | bit(name))
}

/// A `Connection` header whose only value is one of these tokens (any letter case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionValue {
    /// `keep-alive`
    KeepAlive,
    /// `close`
    Close,
}

/// What a header type knows about its headers without looking: the bits above, the
/// `Content-Length` when it is one plain number and the `Connection` value when it is one
/// usual token (read when the header was added, as framing and hop-by-hop handling ask for
/// them more than once per message).
///
/// Packed into six bytes without alignment: together with a flag of the request header it
/// fills what was padding, so the header types (moved around whole) do not grow.
#[derive(Debug, Clone, Copy)]
#[repr(C, packed)]
pub(crate) struct Known {
    /// The `Content-Length` while there is exactly one value and it is a plain decimal number
    /// below `NO_LENGTH`; `NO_LENGTH` means "look".
    length: u32,
    /// The name bits (low 12), `REPEATED_HOST` and the `Connection` token (the 2 bits at `CONNECTION_SHIFT`,
    /// while there is exactly one value and it is one of the tokens; 0 means "look").
    bits: u16,
}

const NO_LENGTH: u32 = u32::MAX;
const NAME_BITS: u16 = (1 << 13) - 1;
const CONNECTION_SHIFT: u16 = 13;

impl Default for Known {
    fn default() -> Self {
        Known {
            length: NO_LENGTH,
            bits: 0,
        }
    }
}

/// What is read from a value when its header is added: only a `Content-Length` or a
/// `Connection` value is looked at.
#[derive(Clone, Copy)]
pub(crate) enum Noted {
    Nothing,
    Length(Option<u64>),
    Connection(Option<ConnectionValue>),
}

impl Known {
    /// For headers whose names were not seen one by one.
    pub(crate) fn of_map(map: &HMap) -> Self {
        let mut bits = of_map(map);
        if bits & HOST != 0 && map.get_all(http::header::HOST).iter().nth(1).is_some() {
            bits |= REPEATED_HOST;
        }
        Known {
            length: NO_LENGTH,
            bits,
        }
    }

    /// The name bits.
    #[inline]
    pub(crate) fn bits(&self) -> u16 {
        self.bits & NAME_BITS
    }

    /// The single plain `Content-Length`, if that is what the message has.
    #[inline]
    pub(crate) fn content_length(&self) -> Option<u64> {
        let length = self.length;
        (length != NO_LENGTH).then_some(u64::from(length))
    }

    /// The single usual `Connection` token, if that is what the message has.
    #[inline]
    pub(crate) fn connection(&self) -> Option<ConnectionValue> {
        match self.bits >> CONNECTION_SHIFT {
            1 => Some(ConnectionValue::KeepAlive),
            2 => Some(ConnectionValue::Close),
            _ => None,
        }
    }

    fn set_length(&mut self, length: Option<u64>) {
        self.length = length
            .and_then(|l| u32::try_from(l).ok())
            .unwrap_or(NO_LENGTH);
    }

    fn set_connection(&mut self, connection: Option<ConnectionValue>) {
        let token = match connection {
            Some(ConnectionValue::KeepAlive) => 1,
            Some(ConnectionValue::Close) => 2,
            None => 0,
        };
        self.bits = (self.bits & NAME_BITS) | (token << CONNECTION_SHIFT);
    }

    /// What to remember of `value`, added under a name with `bit`.
    #[inline]
    pub(crate) fn note(bit: u16, value: &http::HeaderValue) -> Noted {
        match bit {
            0 => Noted::Nothing,
            CONTENT_LENGTH => Noted::Length(length_of(value.as_bytes())),
            CONNECTION => {
                // compared a word at a time, without case
                let value = value.as_bytes();
                let token = if let Ok(v) = <&[u8; 10]>::try_from(value) {
                    eq_lower(v, b"keep-alive").then_some(ConnectionValue::KeepAlive)
                } else if let Ok(v) = <&[u8; 5]>::try_from(value) {
                    eq_lower(v, b"close").then_some(ConnectionValue::Close)
                } else {
                    None
                };
                Noted::Connection(token)
            }
            _ => Noted::Nothing,
        }
    }

    /// A value was appended under a name with `bit`; `existed`: the name had values already.
    #[inline]
    pub(crate) fn appended(&mut self, bit: u16, existed: bool, noted: Noted) {
        self.bits |= bit;
        if bit == HOST && existed {
            self.bits |= REPEATED_HOST;
        }
        match noted {
            Noted::Nothing => {}
            Noted::Length(len) => self.set_length(if existed { None } else { len }),
            Noted::Connection(c) => self.set_connection(if existed { None } else { c }),
        }
    }

    /// The values of a name with `bit` were replaced by one value.
    #[inline]
    pub(crate) fn inserted(&mut self, bit: u16, noted: Noted) {
        self.bits |= bit;
        if bit == HOST {
            self.bits &= !REPEATED_HOST;
        }
        match noted {
            Noted::Nothing => {}
            Noted::Length(len) => self.set_length(len),
            Noted::Connection(c) => self.set_connection(c),
        }
    }

    /// Every value of a name with `bit` was removed.
    #[inline]
    pub(crate) fn removed(&mut self, bit: u16) {
        self.bits &= !bit;
        if bit == HOST {
            self.bits &= !REPEATED_HOST;
        }
        if bit == CONTENT_LENGTH {
            self.set_length(None);
        }
        if bit == CONNECTION {
            self.set_connection(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header;

    #[test]
    fn every_bit_names_one_header() {
        let named = [
            (header::CONNECTION, CONNECTION),
            (HeaderName::from_static("keep-alive"), KEEP_ALIVE),
            (
                HeaderName::from_static("proxy-connection"),
                PROXY_CONNECTION,
            ),
            (header::TE, TE),
            (header::UPGRADE, UPGRADE),
            (header::TRANSFER_ENCODING, TRANSFER_ENCODING),
            (header::CONTENT_LENGTH, CONTENT_LENGTH),
            (header::TRAILER, TRAILER),
            (header::HOST, HOST),
            (header::DATE, DATE),
            (header::EXPECT, EXPECT),
            (header::SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_KEY),
        ];
        let mut all = 0;
        for (name, b) in &named {
            assert_eq!(bit(name), *b, "{name}");
            assert_eq!(b.count_ones(), 1);
            assert_eq!(all & b, 0, "{name} shares a bit");
            all |= b;
        }
        for other in [
            "t",
            "ta",
            "user-agent",
            "content-type",
            "x-connection",
            "trailers",
        ] {
            assert_eq!(bit(&HeaderName::from_static(other)), 0, "{other}");
        }
    }
}
