//! Our HPACK encoder and decoder against an independent implementation:
//! Python's `hpack` (installed with the `h2` package). The same header lists
//! go both ways over one compression context each: blocks we encode must
//! decode there to the same lists, and blocks it encodes (Huffman-coded,
//! with its own indexing choices) must decode here to the same lists.

use bytes::{Bytes, BytesMut};
use pingora_core::protocols::http::v2::hpack::{Decoder, Encoder, Field};
use std::io::Write;
use std::process::{Command, Stdio};

/// Reads our blocks (one hex line each), a `--` line, then the lists (one
/// line each: `name:value` pairs in hex, space separated); writes the lists
/// it decoded from our blocks, a `--` line, and its own blocks.
const PEER: &str = r#"
import sys
from hpack import Decoder, Encoder
ours, lists = sys.stdin.read().split("--\n")
dec, enc = Decoder(), Encoder()
for block in ours.split():
    fields = dec.decode(bytes.fromhex(block), raw=True)
    print(" ".join(n.hex() + ":" + v.hex() for n, v in fields))
print("--")
for line in lists.splitlines():
    pairs = [p.split(":") for p in line.split()]
    print(enc.encode([(bytes.fromhex(n), bytes.fromhex(v)) for n, v in pairs]).hex())
"#;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

fn list_line(list: &[(String, String)]) -> String {
    let pairs: Vec<String> = list
        .iter()
        .map(|(n, v)| format!("{}:{}", hex(n.as_bytes()), hex(v.as_bytes())))
        .collect();
    pairs.join(" ")
}

/// Header lists shaped like a proxy's traffic: fixed names, values that
/// repeat, change now and then, or are new every time; some long.
fn lists() -> Vec<Vec<(String, String)>> {
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        seed >> 33
    };
    (0..300)
        .map(|i| {
            let mut l = vec![
                (
                    ":status".to_string(),
                    ["200", "404", "302", "418"][i % 4].to_string(),
                ),
                ("server".to_string(), "nginx/1.26.3".to_string()),
                (
                    "date".to_string(),
                    format!("Fri, 27 Nov 2026 19:{:02}:00 GMT", i / 10 % 60),
                ),
                ("content-length".to_string(), (next() % 100_000).to_string()),
                ("etag".to_string(), format!("\"{:x}\"", next() % 50)),
            ];
            if next() % 3 == 0 {
                l.push(("x-request-id".to_string(), format!("{:016x}", next())));
            }
            if next() % 7 == 0 {
                // longer than a quarter of the table: never indexed by us
                l.push((
                    "x-blob".to_string(),
                    "z".repeat(800 + next() as usize % 3000),
                ));
            }
            if next() % 5 == 0 {
                // bytes outside ASCII letters, for the Huffman code's long codes
                let v: String = (0..20)
                    .map(|_| char::from(b' ' + (next() % 94) as u8))
                    .collect();
                l.push(("x-mixed".to_string(), v));
            }
            l
        })
        .collect()
}

#[test]
fn python_hpack_and_ours_agree_both_ways() {
    let lists = lists();
    let mut encoder = Encoder::default();
    let ours: Vec<String> = lists
        .iter()
        .map(|l| {
            let mut block = BytesMut::new();
            let fields = l.iter().map(|(n, v)| Field {
                name: n.as_bytes(),
                value: v.as_bytes(),
                sensitive: false,
            });
            encoder.encode(fields, &mut block);
            hex(&block)
        })
        .collect();
    let mut job = ours.join("\n");
    job.push_str("\n--\n");
    for l in &lists {
        job.push_str(&list_line(l));
        job.push('\n');
    }

    let mut peer = Command::new("python3")
        .args(["-c", PEER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    peer.stdin
        .take()
        .expect("stdin")
        .write_all(job.as_bytes())
        .expect("job written");
    let out = peer.wait_with_output().expect("python3 finishes");
    assert!(
        out.status.success(),
        "python's hpack failed (is h2 installed?)"
    );
    let reply = String::from_utf8(out.stdout).expect("ascii");
    let (decoded, encoded) = reply.split_once("--\n").expect("two sections");

    let decoded: Vec<&str> = decoded.lines().collect();
    assert_eq!(decoded.len(), lists.len());
    for (i, (line, list)) in decoded.iter().zip(&lists).enumerate() {
        assert_eq!(
            *line,
            list_line(list),
            "python decoded our block {i} differently"
        );
    }

    let mut decoder = Decoder::new(4096);
    let encoded: Vec<&str> = encoded.lines().collect();
    assert_eq!(encoded.len(), lists.len());
    for (i, hex) in encoded.iter().enumerate() {
        let block = Bytes::from(unhex(hex));
        let mut got = Vec::new();
        decoder
            .decode(&block, |f| {
                got.push((
                    String::from_utf8(f.name.to_vec()).expect("utf-8"),
                    String::from_utf8(f.value.to_vec()).expect("utf-8"),
                ))
            })
            .unwrap_or_else(|e| panic!("block {i}: {e}"));
        assert_eq!(got, lists[i], "block {i} decoded differently");
    }
}
