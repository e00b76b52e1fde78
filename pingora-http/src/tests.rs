//! Behaviour shared by both header types: case and order on the wire, mutation, errors.

use super::*;
use http::Uri;
use pingora_error::ErrorType;

fn wire_req(req: &RequestHeader) -> String {
    let mut buf = Vec::new();
    req.header_to_h1_wire(&mut buf);
    String::from_utf8(buf).unwrap()
}

fn wire_resp(resp: &ResponseHeader) -> String {
    let mut buf = bytes::BytesMut::new();
    resp.header_to_h1_wire(&mut buf);
    String::from_utf8(buf.to_vec()).unwrap()
}

#[test]
fn case_and_order_preserved_on_wire() {
    let mut req = RequestHeader::build("GET", b"/", None).unwrap();
    req.append_header("hOsT", "example.com").unwrap();
    req.append_header("X-Custom-ONE", "1").unwrap();
    req.append_header(http::header::ACCEPT, "*/*").unwrap();
    req.append_header(String::from("user-AGENT"), "t").unwrap();
    assert_eq!(
        wire_req(&req),
        "hOsT: example.com\r\nX-Custom-ONE: 1\r\nAccept: */*\r\nuser-AGENT: t\r\n"
    );
    // Lookups stay case-insensitive.
    assert_eq!(req.headers.get("host").unwrap(), "example.com");
    assert_eq!(req.host(), Some("example.com"));
}

#[test]
fn insert_replaces_value_and_spelling_in_place() {
    let mut resp = ResponseHeader::build(200, None).unwrap();
    resp.insert_header("foo", "bar").unwrap();
    resp.insert_header("Other", "x").unwrap();
    resp.insert_header("FoO", "Bar").unwrap();
    assert_eq!(wire_resp(&resp), "FoO: Bar\r\nOther: x\r\n");
    assert_eq!(resp.headers.len(), 2);
}

#[test]
fn multi_value_round_trips_in_order() {
    let mut req = RequestHeader::build("GET", b"/", Some(4)).unwrap();
    req.append_header("Set-Cookie", "a=1").unwrap();
    req.append_header("x", "y").unwrap();
    assert!(req.append_header("set-cookie", "b=2").unwrap());
    assert!(!req.append_header("z", "w").unwrap());
    // Values of one name are grouped after its first occurrence, each keeping its spelling.
    assert_eq!(
        wire_req(&req),
        "Set-Cookie: a=1\r\nset-cookie: b=2\r\nx: y\r\nz: w\r\n"
    );
    let names: Vec<_> = req
        .case_header_iter()
        .map(|(n, v)| (n.as_slice().to_vec(), v.as_bytes().to_vec()))
        .collect();
    assert_eq!(names.len(), 4);
    assert_eq!(names[1], (b"set-cookie".to_vec(), b"b=2".to_vec()));
}

#[test]
fn remove_keeps_maps_in_step() {
    let mut resp = ResponseHeader::build(200, None).unwrap();
    resp.append_header("A", "1").unwrap();
    resp.append_header("B", "2").unwrap();
    resp.append_header("a", "3").unwrap();
    resp.append_header("C", "4").unwrap();
    assert_eq!(resp.remove_header("a").unwrap(), "1");
    assert!(resp.remove_header("missing").is_none());
    // Removal may reorder the remaining names (the value map swaps), but spellings still pair
    // with their own values.
    let mut got: Vec<String> = wire_resp(&resp).split("\r\n").map(String::from).collect();
    got.sort();
    assert_eq!(got, ["", "B: 2", "C: 4"]);
    resp.append_header("a", "5").unwrap();
    assert!(wire_resp(&resp).contains("a: 5\r\n"));
    assert!(resp.case_header_iter().all(|(n, v)| {
        resp.headers
            .get_all(std::str::from_utf8(n.as_slice()).unwrap())
            .iter()
            .any(|x| x == v)
    }));
}

#[test]
fn no_case_uses_title_case_for_known_names() {
    let mut req = RequestHeader::build_no_case("POST", b"/x", None).unwrap();
    req.insert_header("content-LENGTH", "3").unwrap();
    req.insert_header("x-thing", "1").unwrap();
    assert!(!req.has_case());
    assert!(req.case_header_iter().next().is_none());
    assert_eq!(wire_req(&req), "Content-Length: 3\r\nx-thing: 1\r\n");
    let mut seen = Vec::new();
    req.map(|name, _| {
        if let HeaderNameVariant::Titled(t) = name {
            seen.push(t.to_string());
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(seen, ["Content-Length", "x-thing"]);
}

#[test]
fn invalid_headers_are_errors() {
    let mut req = RequestHeader::build("GET", b"/", None).unwrap();
    let e = req.insert_header("bad name", "v").unwrap_err();
    assert_eq!(*e.etype(), ErrorType::InvalidHTTPHeader);
    let e = req.append_header("Good", "bad\r\nvalue").unwrap_err();
    assert_eq!(*e.etype(), ErrorType::InvalidHTTPHeader);
    assert!(req.insert_header("", "v").is_err());
    assert!(req.headers.is_empty());
    assert_eq!(wire_req(&req), "");
    assert!(RequestHeader::build("GE T", b"/", None).is_err());
    assert!(RequestHeader::build("GET", b"a b", None).is_err());
    assert!(ResponseHeader::build(1000, None).is_err());
    let mut resp = ResponseHeader::build(200, None).unwrap();
    assert!(resp.set_reason_phrase(Some("bad\r\n")).is_err());
}

#[test]
fn too_many_headers_is_an_error() {
    let mut req = RequestHeader::build("GET", b"/", None).unwrap();
    let mut failed = false;
    for _ in 0..=crate::case_map::MAX_HEADER_COUNT {
        if req.append_header("X", "1").is_err() {
            failed = true;
            break;
        }
    }
    assert!(failed);
    assert_eq!(req.headers.len(), crate::case_map::MAX_HEADER_COUNT);
    assert_eq!(
        req.case_header_iter().count(),
        crate::case_map::MAX_HEADER_COUNT
    );
}

#[test]
fn request_target_and_fields() {
    let mut req = RequestHeader::build("GET", b"/a/b.html?x=1", None).unwrap();
    assert_eq!(req.raw_path(), b"/a/b.html?x=1");
    assert_eq!(req.uri_file_extension(), Some("html"));
    req.set_method(Method::POST);
    req.set_uri(Uri::from_static("http://h.example/z"));
    assert_eq!(req.method, Method::POST);
    assert_eq!(req.raw_path(), b"/z");
    assert_eq!(req.host(), Some("h.example"));

    let raw = b"/Hello\xF0\x90\x80World";
    req.set_raw_path(raw).unwrap();
    assert_eq!(req.raw_path(), raw);
    assert!(!req.raw_path_is_utf8());
    assert!(req.set_raw_path(b"a b").is_err());
    assert_eq!(req.raw_path(), raw, "a failed set leaves the target alone");

    let connect = RequestHeader::build("CONNECT", b"example.com:443", None).unwrap();
    assert_eq!(connect.raw_path(), b"example.com:443");
    assert_eq!(connect.host(), Some("example.com"));
}

#[test]
fn end_stream_only_for_h2() {
    let mut req = RequestHeader::build("GET", b"/", None).unwrap();
    assert_eq!(req.send_end_stream(), None);
    req.set_version(Version::HTTP_2);
    assert_eq!(req.send_end_stream(), Some(true));
    req.set_send_end_stream(false);
    assert_eq!(req.send_end_stream(), Some(false));
}

#[test]
fn reason_phrase_and_status() {
    let mut resp = ResponseHeader::build(StatusCode::NOT_FOUND, Some(2)).unwrap();
    assert_eq!(resp.get_reason_phrase(), Some("Not Found"));
    resp.set_reason_phrase(Some("Nope")).unwrap();
    assert_eq!(resp.get_reason_phrase(), Some("Nope"));
    resp.set_reason_phrase(None).unwrap();
    assert_eq!(resp.get_reason_phrase(), Some("Not Found"));
    resp.set_status(204).unwrap();
    assert_eq!(resp.status, 204);
    resp.set_content_length(12).unwrap();
    assert_eq!(resp.headers["content-length"], "12");
    resp.set_version(Version::HTTP_10);
    assert_eq!(resp.version, Version::HTTP_10);
}

#[test]
fn clone_and_conversions() {
    let mut req = RequestHeader::build("GET", b"http://a.example/p", None).unwrap();
    req.insert_header("X-A", "1").unwrap();
    req.extensions_mut().insert(7u32);
    let cloned = req.clone();
    assert_eq!(wire_req(&cloned), "X-A: 1\r\n");
    assert_eq!(cloned.raw_path(), b"http://a.example/p");
    assert_eq!(cloned.extensions.get::<u32>(), Some(&7));
    let parts = req.as_owned_parts();
    assert_eq!(parts.headers["x-a"], "1");
    let back = RequestHeader::from(parts);
    assert!(!back.has_case());
    assert_eq!(wire_req(&back), "x-a: 1\r\n");

    let mut resp = ResponseHeader::build(200, None).unwrap();
    resp.insert_header("sErver", "me").unwrap();
    let c = resp.clone();
    assert_eq!(wire_resp(&c), "sErver: me\r\n");
    let parts: http::response::Parts = c.into();
    assert_eq!(ResponseHeader::from(parts).status, 200);
    let boxed: Box<http::response::Parts> = Box::new(resp).into();
    assert_eq!(boxed.headers.len(), 1);
}

#[test]
fn prelude_exports() {
    use crate::prelude::*;
    let _ = RequestHeader::build(Method::GET, b"/", None).unwrap();
    let _ = ResponseHeader::build_no_case(200u16, None).unwrap();
}

#[test]
fn hostile_input_never_panics() {
    let mut next = xorshift(0x9E37_79B9_7F4A_7C15);
    const ALPHABET: &[u8] = b"/?#*:@%[]-._~ aZ09\r\n\t\x00\x7f\x80\xff";
    for _ in 0..20_000 {
        let len = (next() % 24) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
            .collect();
        if let Ok(mut req) = RequestHeader::build("GET", &bytes, None) {
            // Whatever is accepted must be reproducible on the wire.
            assert!(!req.raw_path().is_empty());
            let _ = req.append_header(bytes::Bytes::from(bytes.clone()), &bytes[..]);
            let _ = req.insert_header(bytes::Bytes::from(bytes.clone()), &bytes[..]);
            let mut wire = Vec::new();
            req.header_to_h1_wire(&mut wire);
            let _ = req.remove_header(String::from_utf8_lossy(&bytes).as_ref());
        }
    }
}

#[test]
fn random_mutations_keep_spellings_paired_with_values() {
    let mut next = xorshift(0x2545_F491_4F6C_DD1D);
    const NAMES: [&str; 8] = ["a", "A", "b", "B", "c", "X-Y", "x-y", "Content-Length"];
    let mut resp = ResponseHeader::build(200, None).unwrap();
    for i in 0..5_000u32 {
        let name = NAMES[(next() % NAMES.len() as u64) as usize];
        match next() % 3 {
            0 => drop(resp.append_header(name, i)),
            1 => resp.insert_header(name, i).unwrap(),
            _ => drop(resp.remove_header(name)),
        }
        let pairs: Vec<_> = resp.case_header_iter().collect();
        assert_eq!(pairs.len(), resp.headers.len());
        for ((case, value), (key, value2)) in pairs.into_iter().zip(resp.headers.iter()) {
            assert!(case
                .as_slice()
                .eq_ignore_ascii_case(key.as_str().as_bytes()));
            assert_eq!(value, value2);
        }
    }
}

#[test]
fn spellings_match_a_lock_step_reference_map() {
    // Reference: a second map that receives the same operations, so it orders spellings
    // exactly as the value map orders values.
    let mut next = xorshift(0x9E37_79B9_7F4A_7C15);
    const NAMES: [&str; 14] = [
        "a",
        "A",
        "b",
        "B",
        "c",
        "C",
        "d",
        "X-Y",
        "x-y",
        "X-y",
        "Set-Cookie",
        "set-cookie",
        "Host",
        "content-length",
    ];
    for round in 0..40u64 {
        let mut req = RequestHeader::build("GET", b"/", Some((round % 6) as usize)).unwrap();
        let mut model: HMap<CaseHeaderName> = HMap::default();
        for i in 0..400u32 {
            let spelled = NAMES[(next() % NAMES.len() as u64) as usize];
            let key = http::HeaderName::from_bytes(spelled.as_bytes()).unwrap();
            let case = CaseHeaderName::new(spelled.to_string());
            match next() % 7 {
                0..=2 => {
                    let existed = req.append_header(spelled, i).unwrap();
                    assert_eq!(existed, model.append(key, case));
                }
                3 | 4 => {
                    req.insert_header(spelled, i).unwrap();
                    model.insert(key, case);
                }
                5 => {
                    let a = req.remove_header(spelled).is_some();
                    assert_eq!(a, model.remove(&key).is_some());
                }
                _ => {
                    let a = req.remove_header(&key).is_some();
                    assert_eq!(a, model.remove(key.as_str()).is_some());
                }
            }
            let got: Vec<_> = req.case_header_iter().map(|(c, _)| c.clone()).collect();
            let want: Vec<_> = model.iter().map(|(_, c)| c.clone()).collect();
            assert_eq!(got, want, "round {round} step {i}");
            let values: Vec<_> = req.case_header_iter().map(|(_, v)| v.clone()).collect();
            let direct: Vec<_> = req.headers.iter().map(|(_, v)| v.clone()).collect();
            assert_eq!(values, direct);
            if i % 50 == 0 {
                let clone = req.clone();
                let (mut a, mut b) = (Vec::new(), Vec::new());
                req.header_to_h1_wire(&mut a);
                clone.header_to_h1_wire(&mut b);
                assert_eq!(a, b);
                let mut wire = Vec::new();
                for (c, v) in model.iter().map(|(_, c)| c).zip(req.headers.values()) {
                    wire.extend_from_slice(c.as_slice());
                    wire.extend_from_slice(b": ");
                    wire.extend_from_slice(v.as_bytes());
                    wire.extend_from_slice(b"\r\n");
                }
                assert_eq!(a, wire);
            }
        }
    }
}

#[test]
fn long_lines_written_whole_into_any_buffer() {
    let long = "v".repeat(300);
    let mut resp = ResponseHeader::build(200, None).unwrap();
    resp.append_header("X-Short", "1").unwrap();
    resp.append_header("X-Long", long.as_str()).unwrap();
    resp.append_header("x-after", "2").unwrap();
    let want = format!("X-Short: 1\r\nX-Long: {long}\r\nx-after: 2\r\n");
    // a Vec grows in small steps, a BytesMut may have just a little spare room
    let mut vec = Vec::new();
    resp.header_to_h1_wire(&mut vec);
    assert_eq!(vec, want.as_bytes());
    for cap in [0, 5, 13, 20, 400] {
        let mut buf = bytes::BytesMut::with_capacity(cap);
        resp.header_to_h1_wire(&mut buf);
        assert_eq!(&buf[..], want.as_bytes(), "capacity {cap}");
    }
    let mut no_case = ResponseHeader::build_no_case(200, None).unwrap();
    no_case.append_header("Content-Length", "3").unwrap();
    no_case.append_header("X-Long", long.as_str()).unwrap();
    let mut buf = bytes::BytesMut::new();
    no_case.header_to_h1_wire(&mut buf);
    assert_eq!(
        &buf[..],
        format!("Content-Length: 3\r\nx-long: {long}\r\n").as_bytes()
    );
}

/// A deterministic pseudo-random sequence (xorshift64), so failures reproduce.
fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

/// The known-header bits equal a lookup of each name after every kind of mutation, with and
/// without recorded case, including names spelled in other cases and repeated values.
#[test]
fn known_header_bits_follow_every_mutation() {
    use crate::known;
    let tracked: [(&str, u16); 6] = [
        ("connection", known::CONNECTION),
        ("transfer-encoding", known::TRANSFER_ENCODING),
        ("content-length", known::CONTENT_LENGTH),
        ("keep-alive", known::KEEP_ALIVE),
        ("te", known::TE),
        ("host", known::HOST),
    ];
    let names = [
        "Connection",
        "TRANSFER-encoding",
        "content-length",
        "Keep-Alive",
        "te",
        "Host",
        "x-other",
        "User-Agent",
    ];
    fn expected(headers: &http::HeaderMap, tracked: &[(&str, u16)]) -> u16 {
        tracked
            .iter()
            .filter(|(n, _)| headers.contains_key(*n))
            .fold(0, |bits, (_, b)| bits | b)
            | if headers.get_all("host").iter().count() > 1 {
                crate::known::REPEATED_HOST
            } else {
                0
            }
    }
    for case in [true, false] {
        // a fixed pseudo-random walk over the operations
        let mut seed = 0x2545_f491_u32;
        let mut req = if case {
            RequestHeader::build("GET", b"/", None).unwrap()
        } else {
            RequestHeader::build_no_case("GET", b"/", None).unwrap()
        };
        let mut resp = if case {
            ResponseHeader::build(200, None).unwrap()
        } else {
            ResponseHeader::build_no_case(200, None).unwrap()
        };
        for step in 0..2000 {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let name = names[(seed % names.len() as u32) as usize];
            let value = ["1", "2", "keep-alive", "Close", "5, 5", "07"][(seed >> 16) as usize % 6];
            match (seed >> 8) % 3 {
                0 => {
                    req.append_header(name, value).unwrap();
                    resp.append_header(name, value).unwrap();
                }
                1 => {
                    req.insert_header(name.to_string(), value).unwrap();
                    resp.insert_header(name.to_string(), value).unwrap();
                }
                _ => {
                    req.remove_header(name);
                    if step % 2 == 0 {
                        resp.remove_header(&name.to_ascii_lowercase());
                    } else {
                        let typed = http::header::HeaderName::from_bytes(name.as_bytes()).unwrap();
                        resp.remove_header_named(&typed);
                    }
                }
            }
            assert_eq!(
                req.known_headers(),
                expected(&req.headers, &tracked),
                "{step}"
            );
            assert_eq!(
                resp.known_headers(),
                expected(&resp.headers, &tracked),
                "{step}"
            );
            // the remembered Connection token is there exactly when there is one such value
            for (token, headers) in [
                (req.known_connection(), &req.headers),
                (resp.known_connection(), &resp.headers),
            ] {
                let values: Vec<_> = headers.get_all("connection").iter().collect();
                let single = match values[..] {
                    [v] if v.as_bytes().eq_ignore_ascii_case(b"keep-alive") => {
                        Some(crate::known::ConnectionValue::KeepAlive)
                    }
                    [v] if v.as_bytes().eq_ignore_ascii_case(b"close") => {
                        Some(crate::known::ConnectionValue::Close)
                    }
                    _ => None,
                };
                assert_eq!(token, single, "{step}");
            }
            // the remembered length is there exactly when there is one length value
            for (length, headers) in [
                (req.known_content_length(), &req.headers),
                (resp.known_content_length(), &resp.headers),
            ] {
                let values: Vec<_> = headers.get_all("content-length").iter().collect();
                let single = match values[..] {
                    [v] => v.to_str().ok().and_then(|v| v.parse::<u64>().ok()),
                    _ => None,
                };
                assert_eq!(length, single, "{step}");
            }
            for (bits, headers) in [
                (req.known_headers(), &req.headers),
                (resp.known_headers(), &resp.headers),
            ] {
                let repeated = headers.get_all("host").iter().count() > 1;
                assert_eq!(bits & known::REPEATED_HOST != 0, repeated, "{step}");
            }
            // every recorded spelling still sits next to the value of its name
            if case {
                assert_eq!(resp.case_header_iter().count(), resp.headers.len());
                assert_eq!(req.case_header_iter().count(), req.headers.len());
            }
            let clone = req.clone();
            assert_eq!(clone.known_headers(), req.known_headers());
        }
        let from_parts = RequestHeader::from(req.as_owned_parts());
        assert_eq!(from_parts.known_headers(), req.known_headers());
        let from_parts = ResponseHeader::from(resp.as_owned_parts());
        assert_eq!(from_parts.known_headers(), resp.known_headers());
    }
}

/// Fields appended from a received head keep their spelling whether or not it is the usual
/// title case (which is recorded without referencing the head), and the head may be dropped.
#[test]
fn parsed_fields_keep_their_spelling() {
    let head = bytes::Bytes::from_static(
        b"Content-Length: 5\r\ncontent-type: a\r\nETag: e\r\nEtag: f\r\nX-Custom: x\r\nKeep-Alive: t\r\n",
    );
    let mut fields = Vec::new();
    for line in head.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let start = line.as_ptr() as usize - head.as_ptr() as usize;
        let colon = line.iter().position(|b| *b == b':').unwrap();
        let value = head.slice(start + colon + 2..start + line.len() - 1);
        fields.push((
            start..start + colon,
            http::HeaderValue::from_maybe_shared(value).unwrap(),
        ));
    }
    let mut resp = ResponseHeader::build(200, None).unwrap();
    resp.append_parsed_fields(&head, fields.clone().into_iter())
        .unwrap();
    let mut req = RequestHeader::build("GET", b"/", None).unwrap();
    req.append_parsed_fields(&head, fields.into_iter()).unwrap();
    drop(head);
    let want = "Content-Length: 5\r\ncontent-type: a\r\nETag: e\r\nEtag: f\r\nX-Custom: x\r\nKeep-Alive: t\r\n";
    assert_eq!(wire_resp(&resp), want);
    assert_eq!(wire_req(&req), want);
    assert_eq!(
        resp.known_headers(),
        crate::known::CONTENT_LENGTH | crate::known::KEEP_ALIVE
    );
    assert_eq!(resp.headers.get_all("etag").iter().count(), 2);
}
