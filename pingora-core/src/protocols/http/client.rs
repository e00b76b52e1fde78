//! The protocol-independent client session used to talk to upstreams.

use super::v1::client::HttpSession as Http1Session;
use crate::protocols::{Digest, SocketAddr, Stream, UniqueID, UniqueIDType};
use bytes::Bytes;
use pingora_error::Result;
use pingora_http::{RequestHeader, ResponseHeader};
use std::time::Duration;

/// A client session over some HTTP version (only HTTP/1.x so far).
pub enum HttpSession {
    /// An HTTP/1.x session.
    H1(Http1Session),
}

impl HttpSession {
    /// The HTTP/1 session.
    pub fn as_http1(&self) -> Option<&Http1Session> {
        match self {
            Self::H1(s) => Some(s),
        }
    }

    /// The HTTP/1 session, mutable.
    pub fn as_http1_mut(&mut self) -> Option<&mut Http1Session> {
        match self {
            Self::H1(s) => Some(s),
        }
    }

    /// Send the request head; then send the body or read the response.
    pub async fn write_request_header(&mut self, req: Box<RequestHeader>) -> Result<()> {
        match self {
            Self::H1(h1) => h1.write_request_header(req).await.map(|_| ()),
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
        }
    }

    /// End the request body.
    pub async fn finish_request_body(&mut self) -> Result<()> {
        match self {
            Self::H1(h1) => h1.finish_body().await.map(|_| ()),
        }
    }

    /// Limit each read from the upstream.
    pub fn set_read_timeout(&mut self, timeout: Duration) {
        match self {
            Self::H1(h1) => h1.read_timeout = Some(timeout),
        }
    }

    /// Limit each write to the upstream.
    pub fn set_write_timeout(&mut self, timeout: Duration) {
        match self {
            Self::H1(h1) => h1.write_timeout = Some(timeout),
        }
    }

    /// Read the response head (call again after an informational one).
    pub async fn read_response_header(&mut self) -> Result<()> {
        match self {
            Self::H1(h1) => h1.read_response().await.map(|_| ()),
        }
    }

    /// The next piece of response body; `Ok(None)` when complete.
    pub async fn read_response_body(&mut self) -> Result<Option<Bytes>> {
        match self {
            Self::H1(h1) => h1.read_body_bytes().await,
        }
    }

    /// Whether the whole response body was read.
    pub fn response_done(&mut self) -> bool {
        match self {
            Self::H1(h1) => h1.is_body_done(),
        }
    }

    /// Abort: close the connection.
    pub async fn shutdown(&mut self) {
        match self {
            Self::H1(h1) => h1.shutdown().await,
        }
    }

    /// The response head, once read.
    pub fn response_header(&self) -> Option<&ResponseHeader> {
        match self {
            Self::H1(h1) => h1.resp_header(),
        }
    }

    /// Facts about the connection (timing reflects its first use if pooled).
    pub fn digest(&self) -> Option<&Digest> {
        match self {
            Self::H1(h1) => Some(h1.digest()),
        }
    }

    /// Facts about the connection, mutable.
    pub fn digest_mut(&mut self) -> Option<&mut Digest> {
        match self {
            Self::H1(h1) => Some(h1.digest_mut()),
        }
    }

    /// The upstream's address.
    pub fn server_addr(&self) -> Option<&SocketAddr> {
        match self {
            Self::H1(h1) => h1.server_addr(),
        }
    }

    /// Our local address on the connection.
    pub fn client_addr(&self) -> Option<&SocketAddr> {
        match self {
            Self::H1(h1) => h1.client_addr(),
        }
    }

    /// The connection, for HTTP/1.
    pub fn stream(&self) -> Option<&Stream> {
        match self {
            Self::H1(h1) => Some(h1.stream()),
        }
    }
}

/// The id of the underlying connection (e.g. to tell pooled connections
/// apart in logs and callbacks).
impl UniqueID for HttpSession {
    fn id(&self) -> UniqueIDType {
        match self {
            Self::H1(h1) => h1.id(),
        }
    }
}
