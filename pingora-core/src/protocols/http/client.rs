//! The protocol-independent client session used to talk to upstreams.

use super::v1::client::HttpSession as Http1Session;
use super::v2::client::Http2Session;
use crate::protocols::{Digest, SocketAddr, Stream, UniqueID, UniqueIDType};
use bytes::Bytes;
use pingora_error::Result;
use pingora_http::{RequestHeader, ResponseHeader};
use std::time::Duration;

/// A client session over HTTP/1.x or a stream of a shared HTTP/2 connection.
pub enum HttpSession {
    /// An HTTP/1.x session.
    H1(Http1Session),
    /// One stream of an HTTP/2 connection.
    H2(Http2Session),
}

impl HttpSession {
    /// The HTTP/2 session.
    pub fn as_http2(&self) -> Option<&Http2Session> {
        match self {
            Self::H2(s) => Some(s),
            Self::H1(_) => None,
        }
    }

    /// The HTTP/2 session, mutable.
    pub fn as_http2_mut(&mut self) -> Option<&mut Http2Session> {
        match self {
            Self::H2(s) => Some(s),
            Self::H1(_) => None,
        }
    }

    /// The HTTP/1 session.
    pub fn as_http1(&self) -> Option<&Http1Session> {
        match self {
            Self::H1(s) => Some(s),
            Self::H2(_) => None,
        }
    }

    /// The HTTP/1 session, mutable.
    pub fn as_http1_mut(&mut self) -> Option<&mut Http1Session> {
        match self {
            Self::H1(s) => Some(s),
            Self::H2(_) => None,
        }
    }

    /// Send the request head; then send the body or read the response.
    pub async fn write_request_header(&mut self, req: Box<RequestHeader>) -> Result<()> {
        match self {
            Self::H1(h1) => h1.write_request_header(req).await.map(|_| ()),
            Self::H2(h2) => h2.write_request_header(req, false),
        }
    }

    /// Send a piece of request body; `end` finishes it.
    pub async fn write_request_body(&mut self, data: Bytes, end: bool) -> Result<()> {
        match self {
            Self::H1(h1) => {
                if !data.is_empty() {
                    h1.write_body(&data).await?;
                }
                if end {
                    h1.finish_body().await?;
                }
                Ok(())
            }
            Self::H2(h2) => h2.write_request_body(data, end).await,
        }
    }

    /// End the request body.
    pub async fn finish_request_body(&mut self) -> Result<()> {
        match self {
            Self::H1(h1) => h1.finish_body().await.map(|_| ()),
            Self::H2(h2) => h2.finish_request_body(),
        }
    }

    /// Limit each read from the upstream.
    pub fn set_read_timeout(&mut self, timeout: Duration) {
        match self {
            Self::H1(h1) => h1.read_timeout = Some(timeout),
            Self::H2(h2) => h2.read_timeout = Some(timeout),
        }
    }

    /// Limit each write to the upstream.
    pub fn set_write_timeout(&mut self, timeout: Duration) {
        match self {
            Self::H1(h1) => h1.write_timeout = Some(timeout),
            Self::H2(h2) => h2.write_timeout = Some(timeout),
        }
    }

    /// Read the response head (call again after an informational one).
    pub async fn read_response_header(&mut self) -> Result<()> {
        match self {
            Self::H1(h1) => h1.read_response().await.map(|_| ()),
            Self::H2(h2) => h2.read_response_header().await,
        }
    }

    /// The next piece of response body; `Ok(None)` when complete.
    pub async fn read_response_body(&mut self) -> Result<Option<Bytes>> {
        match self {
            Self::H1(h1) => h1.read_body_bytes().await,
            Self::H2(h2) => h2.read_response_body().await,
        }
    }

    /// Whether the whole response body was read.
    pub fn response_done(&mut self) -> bool {
        match self {
            Self::H1(h1) => h1.is_body_done(),
            Self::H2(h2) => h2.response_finished(),
        }
    }

    /// Abort: close the connection.
    pub async fn shutdown(&mut self) {
        match self {
            Self::H1(h1) => h1.shutdown().await,
            Self::H2(h2) => h2.shutdown(),
        }
    }

    /// The response head, once read.
    pub fn response_header(&self) -> Option<&ResponseHeader> {
        match self {
            Self::H1(h1) => h1.resp_header(),
            Self::H2(h2) => h2.response_header(),
        }
    }

    /// Facts about the connection (timing reflects its first use if pooled).
    pub fn digest(&self) -> Option<&Digest> {
        match self {
            Self::H1(h1) => Some(h1.digest()),
            Self::H2(h2) => h2.digest(),
        }
    }

    /// Facts about the connection, mutable.
    pub fn digest_mut(&mut self) -> Option<&mut Digest> {
        match self {
            Self::H1(h1) => Some(h1.digest_mut()),
            Self::H2(_) => None,
        }
    }

    /// The upstream's address.
    pub fn server_addr(&self) -> Option<&SocketAddr> {
        match self {
            Self::H1(h1) => h1.server_addr(),
            Self::H2(h2) => h2.server_addr(),
        }
    }

    /// Our local address on the connection.
    pub fn client_addr(&self) -> Option<&SocketAddr> {
        match self {
            Self::H1(h1) => h1.client_addr(),
            Self::H2(h2) => h2.client_addr(),
        }
    }

    /// The connection, for HTTP/1.
    pub fn stream(&self) -> Option<&Stream> {
        match self {
            Self::H1(h1) => Some(h1.stream()),
            Self::H2(_) => None,
        }
    }
}

/// The id of the underlying connection (e.g. to tell pooled connections
/// apart in logs and callbacks).
impl UniqueID for HttpSession {
    fn id(&self) -> UniqueIDType {
        match self {
            Self::H1(h1) => h1.id(),
            Self::H2(h2) => h2.id(),
        }
    }
}
