//! HPACK, the header compression of HTTP/2 (RFC 7541).
//!
//! A [`Decoder`] and an [`Encoder`] each keep one side of a connection's
//! compression context. They work on whole header blocks and know nothing of
//! frames or streams. Decoded names and values share the block's memory or
//! the table's; only Huffman-coded literals are copied.
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use pingora_core::protocols::http::v2::hpack::{Decoder, Encoder, Field};
//!
//! let mut encoder = Encoder::default();
//! let mut block = BytesMut::new();
//! let fields = [
//!     Field { name: b":status", value: b"200", sensitive: false },
//!     Field { name: b"server", value: b"example", sensitive: false },
//! ];
//! encoder.encode(fields, &mut block);
//!
//! let mut decoder = Decoder::new(4096);
//! let mut seen = Vec::new();
//! decoder.decode(&block.freeze(), |f| seen.push((f.name, f.value))).unwrap();
//! assert_eq!(seen[1], (Bytes::from("server"), Bytes::from("example")));
//! ```

mod decoder;
mod encoder;
mod huffman;
mod table;
mod tables;

pub use decoder::{DecodedField, Decoder};
pub use encoder::{Encoder, Field};

/// Why a header block could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HpackError {
    /// The block ends inside a field.
    Truncated,
    /// An integer is larger than any length or index can be.
    IntegerOverflow,
    /// An index names no entry.
    BadIndex,
    /// A Huffman-coded string holds EOS or is padded wrongly.
    BadHuffman,
    /// A table size update is too large, comes after a field, or is
    /// missing where one was required.
    BadSizeUpdate,
    /// The decoded fields exceed the header list limit. The block was
    /// decoded to its end and the context is intact: only the stream fails.
    HeaderListTooLarge,
}

impl HpackError {
    /// Whether the shared context is broken, so that the connection must
    /// end with `COMPRESSION_ERROR` (RFC 9113 §4.3).
    pub fn is_connection_error(&self) -> bool {
        *self != HpackError::HeaderListTooLarge
    }
}

impl std::fmt::Display for HpackError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self {
            HpackError::Truncated => "header block ends inside a field",
            HpackError::IntegerOverflow => "integer too large in header block",
            HpackError::BadIndex => "header block names a table entry that does not exist",
            HpackError::BadHuffman => "invalid Huffman-coded string in header block",
            HpackError::BadSizeUpdate => "invalid dynamic table size update",
            HpackError::HeaderListTooLarge => "header list larger than allowed",
        };
        f.write_str(what)
    }
}

impl std::error::Error for HpackError {}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{Bytes, BytesMut};

    fn unhex(s: &str) -> Bytes {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect::<Vec<_>>()
            .into()
    }

    fn decode_all(d: &mut Decoder, block: &str) -> Result<Vec<(String, String)>, HpackError> {
        let mut out = Vec::new();
        d.decode(&unhex(block), |f| {
            out.push((
                String::from_utf8(f.name.to_vec()).unwrap(),
                String::from_utf8(f.value.to_vec()).unwrap(),
            ))
        })?;
        Ok(out)
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn fields<'a>(list: &'a [(&'a str, &'a str)]) -> impl Iterator<Item = Field<'a>> {
        list.iter().map(|(n, v)| Field {
            name: n.as_bytes(),
            value: v.as_bytes(),
            sensitive: false,
        })
    }

    /// RFC 7541 C.4: three requests on one connection, Huffman-coded.
    const C4: [(&str, &[(&str, &str)]); 3] = [
        (
            "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
            &[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com"),
            ],
        ),
        (
            "8286 84be 5886 a8eb 1064 9cbf",
            &[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com"),
                ("cache-control", "no-cache"),
            ],
        ),
        (
            "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
            &[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/index.html"),
                (":authority", "www.example.com"),
                ("custom-key", "custom-value"),
            ],
        ),
    ];

    #[test]
    fn rfc_requests_decode() {
        let mut d = Decoder::new(4096);
        for (block, expected) in C4 {
            assert_eq!(decode_all(&mut d, block).unwrap(), pairs(expected));
        }
        // RFC 7541 C.3.1, without Huffman coding
        let mut d = Decoder::new(4096);
        let block = "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d";
        assert_eq!(decode_all(&mut d, block).unwrap(), pairs(C4[0].1));
    }

    #[test]
    fn rfc_requests_encode_byte_for_byte() {
        let mut e = Encoder::default();
        for (block, list) in C4 {
            let mut out = BytesMut::new();
            e.encode(fields(list), &mut out);
            assert_eq!(out.freeze(), unhex(block));
        }
    }

    #[test]
    fn rfc_responses_evict_from_a_small_table() {
        // RFC 7541 C.6: a 256-byte table, entries evicted as the blocks go
        let mut d = Decoder::new(256);
        let first = decode_all(
            &mut d,
            "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0
             82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
        )
        .unwrap();
        assert_eq!(first[0], pairs(&[(":status", "302")])[0]);
        let second = decode_all(&mut d, "4883 640e ffc1 c0bf").unwrap();
        assert_eq!(
            second,
            pairs(&[
                (":status", "307"),
                ("cache-control", "private"),
                ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
                ("location", "https://www.example.com"),
            ])
        );
        let third = decode_all(
            &mut d,
            "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
             77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
             9587 3160 65c0 03ed 4ee5 b106 3d50 07",
        )
        .unwrap();
        assert_eq!(third.len(), 6);
        assert_eq!(
            third[5].1,
            "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"
        );
    }

    #[test]
    fn encoder_and_decoder_stay_in_step() {
        let mut e = Encoder::new(256);
        let mut d = Decoder::new(256);
        for round in 0..200 {
            let date = format!("Mon, 21 Oct 2013 20:13:{:02} GMT", round % 60);
            let etag = format!("\"{round:x}-abc\"");
            let list: Vec<(&str, &str)> = vec![
                (":status", if round % 3 == 0 { "200" } else { "404" }),
                ("server", "nginx"),
                ("date", &date),
                ("etag", &etag),
                ("content-length", "1024"),
                ("x-custom-header", "the same value every time"),
            ];
            let mut block = BytesMut::new();
            e.encode(fields(&list), &mut block);
            let block = block.freeze();
            let mut got = Vec::new();
            d.decode(&block, |f| got.push(f)).unwrap();
            let got: Vec<(&[u8], &[u8])> =
                got.iter().map(|f| (&f.name[..], &f.value[..])).collect();
            let want: Vec<(&[u8], &[u8])> = list
                .iter()
                .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
                .collect();
            assert_eq!(got, want, "round {round}");
            if round == 100 {
                // the peer shrinks the table, then lets it grow again
                e.set_max_table_size(64);
                e.set_max_table_size(200);
            }
        }
        // once indexed, repeated fields cost one byte each
        let list = [
            ("server", "nginx"),
            ("x-custom-header", "the same value every time"),
        ];
        e.encode(fields(&list), &mut BytesMut::new());
        let mut block = BytesMut::new();
        e.encode(fields(&list), &mut block);
        assert_eq!(block.len(), 2);
    }

    #[test]
    fn the_table_does_not_hold_on_to_blocks() {
        let mut d = Decoder::new(4096);
        // C.3.1: a literal with indexing, not Huffman-coded, so the decoder
        // hands out slices of the block
        let block = unhex("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d");
        let mut got = Vec::new();
        d.decode(&block, |f| got.push(f)).unwrap();
        assert_eq!(got[3].value, "www.example.com");
        drop(got);
        assert!(block.is_unique(), "a table entry still refers to the block");
        // the entry is there all the same
        let mut got = Vec::new();
        d.decode(&unhex("be"), |f| got.push(f)).unwrap();
        assert_eq!(got[0].value, "www.example.com");
    }

    #[test]
    fn sensitive_fields_are_never_indexed() {
        let mut e = Encoder::default();
        let mut block = BytesMut::new();
        let secret = Field {
            name: b"authorization",
            value: b"Bearer abc",
            sensitive: true,
        };
        e.encode([secret], &mut block);
        e.encode([secret], &mut block);
        let mut d = Decoder::new(4096);
        let mut got = Vec::new();
        d.decode(&block.freeze(), |f| got.push(f)).unwrap();
        assert_eq!(got.len(), 2);
        assert!(got
            .iter()
            .all(|f| f.never_indexed && f.value == "Bearer abc"));
    }

    #[test]
    fn hostile_blocks_are_refused() {
        let mut d = Decoder::new(4096);
        // index 0, and an index past the tables
        assert_eq!(decode_all(&mut d, "80"), Err(HpackError::BadIndex));
        assert_eq!(decode_all(&mut d, "ff00"), Err(HpackError::BadIndex));
        // a literal longer than the block
        assert_eq!(decode_all(&mut d, "0085 6162"), Err(HpackError::Truncated));
        assert_eq!(decode_all(&mut d, "ff"), Err(HpackError::Truncated));
        // an integer that never ends, and one too large
        assert_eq!(
            decode_all(&mut d, "ff ff ff ff ff ff ff 01"),
            Err(HpackError::IntegerOverflow)
        );
        assert_eq!(
            decode_all(&mut d, "ff 80 80 80 80 80 00"),
            Err(HpackError::IntegerOverflow)
        );
        // a size update above the limit (4,097), and one after a field
        assert_eq!(
            decode_all(&mut d, "3fe2 1f"),
            Err(HpackError::BadSizeUpdate)
        );
        assert_eq!(decode_all(&mut d, "82 20"), Err(HpackError::BadSizeUpdate));
        // bad Huffman: EOS inside a string
        assert_eq!(
            decode_all(&mut d, "00 01 61 84 ff ff ff ff"),
            Err(HpackError::BadHuffman)
        );
    }

    #[test]
    fn a_lowered_limit_requires_a_size_update() {
        let mut d = Decoder::new(4096);
        d.set_max_table_size(100);
        assert_eq!(decode_all(&mut d, "82"), Err(HpackError::BadSizeUpdate));
        let mut d = Decoder::new(4096);
        d.set_max_table_size(100);
        // 0x3f 0x45: size update to 31 + 69 = 100
        assert_eq!(decode_all(&mut d, "3f45 82").unwrap().len(), 1);
    }

    #[test]
    fn an_oversized_list_fails_the_stream_but_keeps_the_context() {
        let mut d = Decoder::new(4096);
        d.set_max_header_list_size(60);
        // two new entries of 42 bytes each: the second one is over the limit
        let mut e = Encoder::default();
        let mut block = BytesMut::new();
        e.encode(
            fields(&[("aaaa", "bbbbbb"), ("cccc", "dddddd")]),
            &mut block,
        );
        let mut got = 0;
        let res = d.decode(&block.freeze(), |_| got += 1);
        assert_eq!(res, Err(HpackError::HeaderListTooLarge));
        assert!(!res.unwrap_err().is_connection_error());
        assert_eq!(got, 1);
        // both entries were still added: the next block refers to them
        d.set_max_header_list_size(usize::MAX);
        let mut block = BytesMut::new();
        e.encode(
            fields(&[("cccc", "dddddd"), ("aaaa", "bbbbbb")]),
            &mut block,
        );
        assert_eq!(block.len(), 2);
        let mut names = Vec::new();
        d.decode(&block.freeze(), |f| names.push(f.name)).unwrap();
        assert_eq!(names, ["cccc", "aaaa"]);
    }

    #[test]
    fn mutated_blocks_never_panic() {
        // valid blocks of every representation, then bytes flipped, cut,
        // repeated and spliced in: decoding may fail, never panic, and never
        // yields more than the list limit allows
        let mut e = Encoder::new(256);
        let mut seeds: Vec<Vec<u8>> = C4.iter().map(|(b, _)| unhex(b).to_vec()).collect();
        for i in 0..20 {
            let mut block = BytesMut::new();
            let value = format!("value-{i}-{}", "x".repeat(i * 7));
            let secret = Field {
                name: b"authorization",
                value: value.as_bytes(),
                sensitive: true,
            };
            e.encode(
                fields(&[(":status", "200"), ("x-name", value.as_str())]),
                &mut block,
            );
            e.encode([secret], &mut block);
            seeds.push(block.to_vec());
            e.set_max_table_size(64 + i * 10);
        }
        let mut next = crate::protocols::http::v2::xorshift(0x9e37_79b9_7f4a_7c15);
        for round in 0..20_000 {
            let mut block = seeds[round % seeds.len()].clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % (block.len() + 1);
                match next() % 4 {
                    0 if at < block.len() => block[at] ^= 1 << (next() % 8),
                    1 => block.truncate(at),
                    2 => block.insert(at, next() as u8),
                    _ => {
                        let other = &seeds[(next() as usize) % seeds.len()];
                        block.splice(at..at, other.iter().copied());
                    }
                }
            }
            let mut d = Decoder::new(128);
            d.set_max_header_list_size(1024);
            let mut size = 0;
            let res = d.decode(&Bytes::from(block), |f| {
                size += f.name.len() + f.value.len() + 32
            });
            assert!(
                size <= 1024,
                "round {round}: {size} bytes emitted ({res:?})"
            );
        }
    }
}
