//! The Huffman code of HPACK string literals (RFC 7541 §5.2).
//!
//! Encoding packs each byte's code into a 64-bit accumulator. Decoding walks
//! the code four bits at a time through a state table built once from the
//! code: each state is an inner node of the code's tree, and each of its 16
//! entries says where four more bits lead and which byte, if any, they
//! complete (no code is shorter than five bits, so four bits complete at
//! most one).

use super::tables::HUFFMAN_CODES;
use bytes::BufMut;
use std::sync::OnceLock;

/// The symbol that ends a Huffman string; seeing it decoded is an error.
const EOS: u16 = 256;

/// The length in bytes of `data` Huffman-encoded.
pub(super) fn encoded_len(data: &[u8]) -> usize {
    let bits: usize = data
        .iter()
        .map(|b| usize::from(HUFFMAN_CODES[usize::from(*b)].1))
        .sum();
    bits.div_ceil(8)
}

/// Append `data` Huffman-encoded to `dst`, padded with the most significant
/// bits of EOS (all ones).
pub(super) fn encode(data: &[u8], dst: &mut impl BufMut) {
    let mut acc: u64 = 0;
    let mut bits: u32 = 0;
    for b in data {
        let (code, len) = HUFFMAN_CODES[usize::from(*b)];
        // at most 7 bits wait in `acc` here, plus at most 30: fits in 64
        acc = (acc << len) | u64::from(code);
        bits += u32::from(len);
        while bits >= 8 {
            bits -= 8;
            dst.put_u8((acc >> bits) as u8);
        }
    }
    if bits > 0 {
        let pad = 8 - bits;
        dst.put_u8(((acc << pad) as u8) | ((1u8 << pad) - 1));
    }
}

/// Decoding failed: the input holds EOS, or ends in padding that is longer
/// than 7 bits or not all ones (RFC 7541 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct InvalidHuffman;

/// Decode `src` into `dst`.
pub(super) fn decode(src: &[u8], dst: &mut Vec<u8>) -> Result<(), InvalidHuffman> {
    let table = decode_table();
    dst.reserve(src.len() * 8 / 5);
    let mut state = 0u8;
    let mut accepting = true;
    for b in src {
        for nibble in [b >> 4, b & 0x0f] {
            let step = table[usize::from(state)][usize::from(nibble)];
            if step.flags & FAIL != 0 {
                return Err(InvalidHuffman);
            }
            if step.flags & EMIT != 0 {
                dst.push(step.symbol);
            }
            state = step.next;
            accepting = step.flags & ACCEPT != 0;
        }
    }
    if accepting {
        Ok(())
    } else {
        Err(InvalidHuffman)
    }
}

const EMIT: u8 = 1;
const FAIL: u8 = 2;
/// The string may end here: at the root, or inside a path of at most 7 ones.
const ACCEPT: u8 = 4;

#[derive(Debug, Clone, Copy, Default)]
struct Step {
    next: u8,
    symbol: u8,
    flags: u8,
}

type DecodeTable = [[Step; 16]; 256];

/// Where one bit leads from an inner node of the code's tree.
#[derive(Debug, Clone, Copy)]
enum Child {
    None,
    Inner(u8),
    Leaf(u16),
}

#[derive(Debug, Clone, Copy)]
struct Node {
    children: [Child; 2],
    /// The bits from the root to here are all ones, and there are at most 7.
    padding: bool,
}

fn decode_table() -> &'static DecodeTable {
    static TABLE: OnceLock<Box<DecodeTable>> = OnceLock::new();
    TABLE.get_or_init(build_decode_table)
}

fn build_decode_table() -> Box<DecodeTable> {
    // the tree: a complete prefix code of 257 symbols has 256 inner nodes,
    // so every inner node's id fits in a byte
    let mut nodes = vec![Node {
        children: [Child::None; 2],
        padding: true,
    }];
    for (symbol, (code, len)) in HUFFMAN_CODES.iter().enumerate() {
        let mut at = 0usize;
        for i in (0..*len).rev() {
            let bit = ((code >> i) & 1) as usize;
            if i == 0 {
                nodes[at].children[bit] = Child::Leaf(symbol as u16);
                break;
            }
            at = match nodes[at].children[bit] {
                Child::Inner(next) => usize::from(next),
                _ => {
                    let depth = len - i;
                    let id = nodes.len();
                    nodes.push(Node {
                        children: [Child::None; 2],
                        padding: nodes[at].padding && bit == 1 && depth <= 7,
                    });
                    // the code has exactly 256 inner nodes (checked by a test)
                    nodes[at].children[bit] = Child::Inner(id as u8);
                    id
                }
            };
        }
    }
    let mut table = Box::new([[Step::default(); 16]; 256]);
    for (id, row) in table.iter_mut().enumerate().take(nodes.len()) {
        for (nibble, step) in row.iter_mut().enumerate() {
            let mut at = id;
            let mut emitted = None;
            let mut failed = false;
            for i in (0..4).rev() {
                match nodes[at].children[(nibble >> i) & 1] {
                    Child::Inner(next) => at = usize::from(next),
                    Child::Leaf(EOS) | Child::None => {
                        failed = true;
                        break;
                    }
                    Child::Leaf(symbol) => {
                        emitted = Some(symbol as u8);
                        at = 0;
                    }
                }
            }
            let mut flags = 0;
            if failed {
                flags |= FAIL;
            }
            if emitted.is_some() {
                flags |= EMIT;
            }
            if at == 0 || nodes[at].padding {
                flags |= ACCEPT;
            }
            *step = Step {
                next: at as u8,
                symbol: emitted.unwrap_or(0),
                flags,
            };
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(src: &[u8]) -> Result<Vec<u8>, InvalidHuffman> {
        let mut out = Vec::new();
        decode(src, &mut out).map(|_| out)
    }

    #[test]
    fn rfc_examples() {
        // RFC 7541 C.4.1 and C.6.1
        let host = [
            0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
        ];
        let mut out = Vec::new();
        encode(b"www.example.com", &mut out);
        assert_eq!(out, host);
        assert_eq!(encoded_len(b"www.example.com"), host.len());
        assert_eq!(decoded(&host).unwrap(), b"www.example.com");
        let date = [
            0xd0, 0x7a, 0xbe, 0x94, 0x10, 0x54, 0xd4, 0x44, 0xa8, 0x20, 0x05, 0x95, 0x04, 0x0b,
            0x81, 0x66, 0xe0, 0x82, 0xa6, 0x2d, 0x1b, 0xff,
        ];
        assert_eq!(decoded(&date).unwrap(), b"Mon, 21 Oct 2013 20:13:21 GMT");
    }

    #[test]
    fn every_byte_round_trips() {
        let all: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
        let mut out = Vec::new();
        encode(&all, &mut out);
        assert_eq!(out.len(), encoded_len(&all));
        assert_eq!(decoded(&out).unwrap(), all);
        for len in 0..40 {
            let s: Vec<u8> = (0..len).map(|i| (i * 37 % 256) as u8).collect();
            let mut out = Vec::new();
            encode(&s, &mut out);
            assert_eq!(decoded(&out).unwrap(), s, "length {len}");
        }
    }

    #[test]
    fn the_tree_has_one_inner_node_per_byte_value() {
        // 256 inner nodes: state ids fit in a u8 and every row is reachable
        let table = decode_table();
        let reachable = table
            .iter()
            .flat_map(|row| row.iter().map(|s| s.next))
            .max()
            .unwrap();
        assert_eq!(reachable, 255);
    }

    #[test]
    fn bad_padding_and_eos_are_refused() {
        // 'a' is 00011 (5 bits): padding of zeros instead of ones
        assert_eq!(decoded(&[0b0001_1000]), Err(InvalidHuffman));
        assert_eq!(decoded(&[0b0001_1111]).unwrap(), b"a");
        // a whole byte of padding after a complete symbol is too long
        assert_eq!(decoded(&[0b0001_1111, 0xff]), Err(InvalidHuffman));
        // EOS itself (30 ones)
        assert_eq!(decoded(&[0xff, 0xff, 0xff, 0xff]), Err(InvalidHuffman));
        assert_eq!(decoded(&[]).unwrap(), b"");
    }
}
