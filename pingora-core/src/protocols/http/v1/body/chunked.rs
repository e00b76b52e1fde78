//! Strict decoder for the chunked transfer coding (RFC 9112 section 7.1).
//!
//! It works on a buffer the caller fills, so it never reads more than it
//! needs and leaves any bytes after the last chunk (a pipelined message) in
//! the buffer. Everything ambiguous is rejected rather than guessed, since
//! two parsers disagreeing on message boundaries is how requests get
//! smuggled: size lines must be hex digits only (no sign, no leading space,
//! at most 16 digits), lines must end in CRLF (no bare LF), chunk data must
//! be followed by CRLF, extensions and trailers are bounded and may not hold
//! control characters, and trailer fields may not be folded.

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};

/// Longest accepted chunk size line, extensions included.
pub const MAX_CHUNK_LINE: usize = 4096;
/// Largest accepted trailer section.
pub const MAX_TRAILER_SIZE: usize = 16 * 1024;
/// Most trailer fields accepted.
pub const MAX_TRAILERS: usize = 64;

/// What one decoding step produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A piece of body data.
    Data(Bytes),
    /// The buffer holds no complete element: read more and call again.
    NeedMore,
    /// The last chunk and trailers were consumed.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
    Done,
}

/// The chunked decoding state of one message body.
#[derive(Debug)]
pub struct ChunkDecoder {
    state: State,
    trailer_bytes: usize,
    trailers: Option<Box<HeaderMap>>,
}

impl Default for ChunkDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkDecoder {
    /// A decoder expecting the first chunk size line.
    pub fn new() -> Self {
        ChunkDecoder {
            state: State::Size,
            trailer_bytes: 0,
            trailers: None,
        }
    }

    /// Whether the last chunk and trailer section were consumed.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Take the trailer fields received after the last chunk, if any.
    pub fn take_trailers(&mut self) -> Option<Box<HeaderMap>> {
        self.trailers.take()
    }

    /// Decode from the front of `buf`, consuming what was decoded.
    /// Errors describe the protocol violation.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, &'static str> {
        loop {
            match self.state {
                State::Size => {
                    let Some(line) = take_line(buf, MAX_CHUNK_LINE)? else {
                        return Ok(Decoded::NeedMore);
                    };
                    let size = parse_size_line(&line)?;
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::Data(size)
                    };
                }
                State::Data(remaining) => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let n = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(buf.len());
                    let data = buf.split_to(n).freeze();
                    let left = remaining - n as u64;
                    self.state = if left == 0 {
                        State::DataEnd
                    } else {
                        State::Data(left)
                    };
                    return Ok(Decoded::Data(data));
                }
                State::DataEnd => {
                    if buf.len() < 2 {
                        if buf.first().is_some_and(|b| *b != b'\r') {
                            return Err("chunk data not followed by CRLF");
                        }
                        return Ok(Decoded::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err("chunk data not followed by CRLF");
                    }
                    buf.advance(2);
                    self.state = State::Size;
                }
                State::Trailers => {
                    let limit = MAX_TRAILER_SIZE.saturating_sub(self.trailer_bytes).max(2);
                    let Some(line) = take_line(buf, limit)? else {
                        return Ok(Decoded::NeedMore);
                    };
                    self.trailer_bytes += line.len() + 2;
                    if self.trailer_bytes > MAX_TRAILER_SIZE {
                        return Err("trailer section too large");
                    }
                    if line.is_empty() {
                        self.state = State::Done;
                        return Ok(Decoded::Done);
                    }
                    self.add_trailer(&line)?;
                }
                State::Done => return Ok(Decoded::Done),
            }
        }
    }

    fn add_trailer(&mut self, line: &[u8]) -> Result<(), &'static str> {
        if matches!(line.first(), Some(b' ' | b'\t')) {
            return Err("obsolete line folding in trailers");
        }
        let colon = line
            .iter()
            .position(|b| *b == b':')
            .ok_or("trailer field without colon")?;
        // no whitespace allowed between the name and the colon
        let name = HeaderName::from_bytes(&line[..colon]).map_err(|_| "invalid trailer name")?;
        let value = HeaderValue::from_bytes(line[colon + 1..].trim_ascii())
            .map_err(|_| "invalid trailer value")?;
        let map = self.trailers.get_or_insert_with(Default::default);
        if map.len() >= MAX_TRAILERS {
            return Err("too many trailer fields");
        }
        map.append(name, value);
        Ok(())
    }
}

/// Take one CRLF terminated line (without the CRLF) off the front of `buf`.
/// `Ok(None)` when the line is incomplete but may still fit in `limit`.
fn take_line(buf: &mut BytesMut, limit: usize) -> Result<Option<BytesMut>, &'static str> {
    let window = &buf[..buf.len().min(limit)];
    match window.iter().position(|b| *b == b'\n') {
        Some(lf) => {
            if lf == 0 || buf[lf - 1] != b'\r' {
                return Err("bare LF in chunked framing");
            }
            let mut line = buf.split_to(lf + 1);
            line.truncate(lf - 1);
            if line.contains(&b'\r') {
                return Err("bare CR in chunked framing");
            }
            Ok(Some(line))
        }
        None if buf.len() >= limit => Err("chunk size line or trailer too long"),
        None => Ok(None),
    }
}

/// Parse `hex-size [ BWS ; ext ... ]` from a size line (CRLF removed).
fn parse_size_line(line: &[u8]) -> Result<u64, &'static str> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err("invalid chunk size");
    }
    // a 64-bit size has at most 16 significant hex digits
    let significant = line[..digits].iter().skip_while(|b| **b == b'0').count();
    if significant > 16 {
        return Err("chunk size overflow");
    }
    let mut size: u64 = 0;
    for d in &line[..digits] {
        let v = (*d as char).to_digit(16).ok_or("invalid chunk size")?;
        size = (size << 4) | u64::from(v);
    }
    let rest = &line[digits..];
    let ext = rest.trim_ascii_start();
    if ext.is_empty() && rest.is_empty() {
        return Ok(size);
    }
    // whitespace is only allowed before an extension
    if !ext.starts_with(b";") {
        return Err("invalid chunk size");
    }
    if ext.iter().any(|b| (*b < 0x20 && *b != b'\t') || *b == 0x7f) {
        return Err("control character in chunk extension");
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Result<(Vec<u8>, BytesMut, ChunkDecoder), &'static str> {
        let mut d = ChunkDecoder::new();
        let mut buf = BytesMut::from(input);
        let mut out = vec![];
        loop {
            match d.decode(&mut buf)? {
                Decoded::Data(b) => out.extend_from_slice(&b),
                Decoded::NeedMore => return Err("incomplete"),
                Decoded::Done => return Ok((out, buf, d)),
            }
        }
    }

    #[test]
    fn decodes_chunks_extensions_trailers_and_keeps_rest() {
        let input = b"4;name=val\r\nWiki\r\n5 ;x\r\npedia\r\n0\r\nX-Sum: 1\r\n\r\nGET /";
        let (out, rest, mut d) = decode_all(input).unwrap();
        assert_eq!(out, b"Wikipedia");
        assert_eq!(&rest[..], b"GET /");
        assert_eq!(d.take_trailers().unwrap().get("x-sum").unwrap(), "1");
        assert!(d.is_done());
    }

    #[test]
    fn byte_by_byte() {
        let input = b"A\r\n0123456789\r\n0000000000000000001\r\nZ\r\n0\r\n\r\n";
        let mut d = ChunkDecoder::new();
        let mut buf = BytesMut::new();
        let mut out = vec![];
        for b in input.iter() {
            buf.extend_from_slice(&[*b]);
            loop {
                match d.decode(&mut buf).unwrap() {
                    Decoded::Data(x) => out.extend_from_slice(&x),
                    Decoded::NeedMore => break,
                    Decoded::Done => break,
                }
            }
        }
        assert!(d.is_done());
        assert_eq!(out, b"0123456789Z");
    }

    #[test]
    fn rejects_bad_framing() {
        let bad: &[&[u8]] = &[
            b"-5\r\nhello\r\n0\r\n\r\n",
            b"+5\r\nhello\r\n0\r\n\r\n",
            b" 5\r\nhello\r\n0\r\n\r\n",
            b"0x5\r\nhello\r\n0\r\n\r\n",
            b"g\r\n",
            b"\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloXX0\r\n\r\n",
            b"5\r\nhello\n0\r\n\r\n",
            b"5 6\r\nhello\r\n0\r\n\r\n",
            b"5;\x00\r\nhello\r\n0\r\n\r\n",
            b"10000000000000000\r\n",
            b"ffffffffffffffffff\r\n",
            b"0\r\n folded: x\r\n\r\n",
            b"0\r\nbad name: x\r\n\r\n",
            b"0\r\nx: a\x00b\r\n\r\n",
            b"0\r\nx: a\n\r\n",
            b"0\r\n\n",
            b"5\r\nhel\rlo\r\n0\r\n\r\n",
        ];
        for input in bad {
            let r = decode_all(input);
            assert!(
                matches!(r, Err(e) if e != "incomplete"),
                "not rejected: {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn bounded_lines() {
        let mut line = b"1;".to_vec();
        line.extend(std::iter::repeat_n(b'a', MAX_CHUNK_LINE));
        let mut d = ChunkDecoder::new();
        let mut buf = BytesMut::from(&line[..]);
        assert!(d.decode(&mut buf).is_err());

        let mut t = b"0\r\n".to_vec();
        for i in 0..=MAX_TRAILERS {
            t.extend_from_slice(format!("x{i}: v\r\n").as_bytes());
        }
        t.extend_from_slice(b"\r\n");
        assert!(decode_all(&t).is_err());
        let mut big = b"0\r\nx: ".to_vec();
        big.extend(std::iter::repeat_n(b'v', MAX_TRAILER_SIZE));
        assert!(decode_all(&big).is_err());
    }
}
