//! Tunnelling to a peer through an HTTP CONNECT proxy on a Unix socket.

use crate::protocols::l4::stream::Stream;
use crate::protocols::raw_connect::ProxyDigest;
use crate::protocols::GetProxyDigest;
use crate::upstreams::peer::{Peer, Proxy};
use bytes::{BufMut, BytesMut};
use pingora_error::{Error, ErrorType::*, OrErr, Result};
use pingora_http::ResponseHeader;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// Largest CONNECT response head accepted from a proxy.
const MAX_HEAD: usize = 16 * 1024;
/// Most response headers parsed from a proxy.
const MAX_HEADERS: usize = 64;

/// `host:port` as a request target, bracketing IPv6 literals.
fn authority(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The CONNECT request for `proxy`, with its headers and then `extra` ones.
/// Header names must be tokens and values free of CR, LF and NUL, so
/// configuration cannot smuggle a second request.
pub(crate) fn connect_request<'a>(
    proxy: &'a Proxy,
    extra: impl Iterator<Item = (&'a String, &'a Vec<u8>)>,
) -> Result<BytesMut> {
    let target = authority(&proxy.host, proxy.port);
    let mut req = BytesMut::with_capacity(128);
    req.put_slice(b"CONNECT ");
    req.put_slice(target.as_bytes());
    req.put_slice(b" HTTP/1.1\r\nHost: ");
    req.put_slice(target.as_bytes());
    req.put_slice(b"\r\n");
    for (name, value) in proxy.headers.iter().chain(extra) {
        if !is_token(name) || value.iter().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
            return Error::e_explain(
                InvalidHTTPHeader,
                format!("invalid CONNECT proxy header {name:?}"),
            );
        }
        req.put_slice(name.as_bytes());
        req.put_slice(b": ");
        req.put_slice(value);
        req.put_slice(b"\r\n");
    }
    req.put_slice(b"\r\n");
    Ok(req)
}

/// Parse a complete response head in `buf`: the head and its length, or
/// `None` when more bytes are needed.
pub(crate) fn parse_head(buf: &[u8]) -> Result<Option<(Box<ResponseHeader>, usize)>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => {
            return Error::e_because(ConnectProxyFailure, "invalid CONNECT proxy response", e)
        }
    };
    let code = resp.code.unwrap_or_default();
    let mut head = ResponseHeader::build(code, Some(resp.headers.len()))
        .or_err(ConnectProxyFailure, "invalid CONNECT proxy status")?;
    for h in resp.headers.iter() {
        head.append_header(h.name.to_string(), h.value)
            .or_err(ConnectProxyFailure, "invalid CONNECT proxy header")?;
    }
    Ok(Some((Box::new(head), len)))
}

/// Connect to the proxy of `peer` and ask it for a tunnel to the peer. The
/// proxy's answer is recorded as the stream's proxy digest.
pub(crate) async fn connect<P: Peer>(peer: &P, proxy: &Proxy) -> Result<Stream> {
    let extra = peer
        .get_peer_options()
        .map(|o| o.extra_proxy_headers.iter())
        .into_iter()
        .flatten();
    let req = connect_request(proxy, extra)?;
    let raw = UnixStream::connect(&proxy.next_hop)
        .await
        .or_err_with(ConnectError, || {
            format!(
                "failed to connect to CONNECT proxy {}",
                proxy.next_hop.display()
            )
        })?;
    let mut stream = Stream::from(raw);
    stream
        .write_all(&req)
        .await
        .or_err(WriteError, "sending CONNECT request")?;

    let mut buf = BytesMut::with_capacity(1024);
    let (head, head_len) = loop {
        if buf.len() >= MAX_HEAD {
            return Error::e_explain(ConnectProxyFailure, "CONNECT proxy response too large");
        }
        let n = stream
            .read_buf(&mut buf)
            .await
            .or_err(ReadError, "reading CONNECT response")?;
        if n == 0 {
            return Error::e_explain(ConnectionClosed, "CONNECT proxy closed the connection");
        }
        if let Some(done) = parse_head(&buf)? {
            break done;
        }
    };
    let status = head.status.as_u16();
    if !(200..300).contains(&status) {
        return Error::e_explain(
            ConnectProxyFailure,
            format!("CONNECT proxy refused the tunnel to {peer} with status {status}"),
        );
    }
    // Bytes past the head already belong to the tunnel.
    stream.rewind(&buf[head_len..]);
    stream.set_proxy_digest(ProxyDigest::new(head));
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    fn proxy(host: &str, headers: BTreeMap<String, Vec<u8>>) -> Proxy {
        Proxy {
            next_hop: PathBuf::from("/tmp/p.sock").into(),
            host: host.into(),
            port: 443,
            headers,
        }
    }

    #[test]
    fn request_has_target_and_headers() {
        let mut headers = BTreeMap::new();
        headers.insert("x-a".to_string(), b"1".to_vec());
        let extra = [("x-b".to_string(), b"2".to_vec())];
        let req = connect_request(
            &proxy("10.0.0.1", headers),
            extra.iter().map(|(k, v)| (k, v)),
        )
        .expect("valid");
        assert_eq!(
            &req[..],
            b"CONNECT 10.0.0.1:443 HTTP/1.1\r\nHost: 10.0.0.1:443\r\nx-a: 1\r\nx-b: 2\r\n\r\n"
        );
        let req = connect_request(&proxy("::1", BTreeMap::new()), std::iter::empty()).expect("v6");
        assert!(req.starts_with(b"CONNECT [::1]:443 HTTP/1.1\r\n"));
    }

    #[test]
    fn request_rejects_injection() {
        let mut headers = BTreeMap::new();
        headers.insert("x-a".to_string(), b"1\r\nGET / HTTP/1.1".to_vec());
        assert!(connect_request(&proxy("h", headers), std::iter::empty()).is_err());
        let mut headers = BTreeMap::new();
        headers.insert("bad name".to_string(), b"1".to_vec());
        assert!(connect_request(&proxy("h", headers), std::iter::empty()).is_err());
    }

    #[test]
    fn parses_head_incrementally() {
        let full = b"HTTP/1.1 200 Connection established\r\nVia: p\r\n\r\ntunnel";
        assert!(parse_head(&full[..20]).expect("partial").is_none());
        let (head, len) = parse_head(full).expect("ok").expect("complete");
        assert_eq!(head.status.as_u16(), 200);
        assert_eq!(&full[len..], b"tunnel");
        assert!(parse_head(b"garbage\r\n\r\n").is_err());
    }
}
