//! Standard base64 (RFC 4648, with padding) for gRPC-web-text bodies, which arrive and leave
//! in arbitrary pieces: [`Decoder`] carries an incomplete quantum from one piece to the next
//! and accepts padding in the middle of the stream (senders may encode each message on its
//! own and concatenate the results).

use bytes::{BufMut, Bytes, BytesMut};

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Encode `data` on its own, padded: the result can be concatenated with other encodings.
pub(crate) fn encode(data: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        // `chunks` never yields an empty slice, so `chunk[0]` exists
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.put_u8(ALPHABET[(n >> 18) as usize & 63]);
        out.put_u8(ALPHABET[(n >> 12) as usize & 63]);
        out.put_u8(if chunk.len() > 1 {
            ALPHABET[(n >> 6) as usize & 63]
        } else {
            b'='
        });
        out.put_u8(if chunk.len() > 2 {
            ALPHABET[n as usize & 63]
        } else {
            b'='
        });
    }
    out.freeze()
}

fn value(c: u8) -> Option<u32> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    } as u32)
}

/// A streaming decoder.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    /// Characters of a quantum not complete yet (at most 3).
    quantum: [u8; 4],
    held: usize,
}

impl Decoder {
    /// Decode the next piece of input. Whitespace is skipped. Errors on a character outside
    /// the alphabet or misplaced padding.
    pub(crate) fn decode(&mut self, input: &[u8]) -> Result<Bytes, &'static str> {
        let mut out = BytesMut::with_capacity((input.len() + self.held) / 4 * 3);
        for &c in input {
            if c.is_ascii_whitespace() {
                continue;
            }
            self.quantum[self.held] = c;
            self.held += 1;
            if self.held == 4 {
                self.held = 0;
                decode_quantum(&self.quantum, &mut out)?;
            }
        }
        Ok(out.freeze())
    }

    /// Whether the input so far ended on a quantum boundary (required at end of stream).
    pub(crate) fn is_aligned(&self) -> bool {
        self.held == 0
    }
}

fn decode_quantum(q: &[u8; 4], out: &mut BytesMut) -> Result<(), &'static str> {
    let pad = match (q[2], q[3]) {
        (b'=', b'=') => 2,
        (_, b'=') => 1,
        (b'=', _) => return Err("base64 padding in the middle of a quantum"),
        _ => 0,
    };
    let mut n = 0u32;
    for &c in &q[..4 - pad] {
        n = (n << 6) | value(c).ok_or("invalid base64 character")?;
    }
    n <<= 6 * pad as u32;
    let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
    out.put_slice(&bytes[..3 - pad]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        for (plain, enc) in [
            (&b""[..], &b""[..]),
            (b"f", b"Zg=="),
            (b"fo", b"Zm8="),
            (b"foo", b"Zm9v"),
            (b"foob", b"Zm9vYg=="),
            (b"fooba", b"Zm9vYmE="),
            (b"foobar", b"Zm9vYmFy"),
            (&[0xfb, 0xff, 0xfe], b"+//+"),
        ] {
            assert_eq!(&encode(plain)[..], enc);
            let mut d = Decoder::default();
            assert_eq!(&d.decode(enc).expect("valid")[..], plain);
            assert!(d.is_aligned());
        }
    }

    #[test]
    fn split_anywhere_and_padded_segments() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        // two independently padded segments, concatenated
        let mut wire = encode(&data[..301]).to_vec();
        wire.extend_from_slice(&encode(&data[301..]));
        for step in [1, 2, 3, 5, 7, 64, 1000] {
            let mut d = Decoder::default();
            let mut out = Vec::new();
            for piece in wire.chunks(step) {
                out.extend_from_slice(&d.decode(piece).expect("valid"));
            }
            assert!(d.is_aligned());
            assert_eq!(out, data, "step {step}");
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(Decoder::default().decode(b"Zm9v!A==").is_err());
        assert!(Decoder::default().decode(b"Z=9v").is_err());
        let mut d = Decoder::default();
        d.decode(b"Zm9").expect("partial is fine");
        assert!(!d.is_aligned());
        // whitespace is tolerated
        assert_eq!(
            &Decoder::default().decode(b"Zm\r\n9v").expect("ok")[..],
            b"foo"
        );
    }
}
