//! Facts about HTTP CONNECT proxy tunnels a connection goes through.

use pingora_http::ResponseHeader;

/// What the CONNECT proxy answered when the tunnel was set up.
#[derive(Debug)]
pub struct ProxyDigest {
    /// The proxy's response to the CONNECT request.
    pub response: Box<ResponseHeader>,
}

impl ProxyDigest {
    /// Record the proxy's CONNECT response.
    pub fn new(response: Box<ResponseHeader>) -> Self {
        ProxyDigest { response }
    }
}
