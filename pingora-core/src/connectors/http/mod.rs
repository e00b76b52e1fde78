//! Connecting to HTTP servers.
//!
//! HTTP/1.1 only for now; the [`HttpSession`] enum and the ALPN preferences
//! of peers leave room for HTTP/2.

use crate::connectors::ConnectorOptions;
use crate::protocols::http::client::HttpSession;
use crate::upstreams::peer::Peer;
use pingora_error::{Error, ErrorType::H2Error, Result};
use std::time::Duration;

pub mod v1;

/// Hands out HTTP client sessions to peers, reusing pooled connections.
pub struct Connector {
    h1: v1::Connector,
}

impl Connector {
    /// A connector with the given options (defaults when `None`).
    pub fn new(options: Option<ConnectorOptions>) -> Self {
        Connector {
            h1: v1::Connector::new(options),
        }
    }

    /// A session to `peer`, over a pooled connection when a healthy one
    /// exists. The flag tells whether the connection was reused: requests
    /// failing on a reused connection are usually worth retrying.
    ///
    /// Peers that only accept HTTP/2 get an `H2Error` until HTTP/2 support
    /// lands; peers that accept both get HTTP/1.1.
    pub async fn get_http_session<P: Peer + Send + Sync + 'static>(
        &self,
        peer: &P,
    ) -> Result<(HttpSession, bool)> {
        let h2_only = peer
            .get_peer_options()
            .is_some_and(|o| o.alpn.get_min_http_version() == 2);
        if h2_only {
            return Error::e_explain(
                H2Error,
                format!("HTTP/2 upstreams are not supported yet: {peer}"),
            );
        }
        let (h1, reused) = self.h1.get_http_session(peer).await?;
        Ok((HttpSession::H1(h1), reused))
    }

    /// Return a finished session; its connection is pooled for `peer` when
    /// the exchange left it reusable, and closed otherwise.
    pub async fn release_http_session<P: Peer + Send + Sync + 'static>(
        &self,
        session: HttpSession,
        peer: &P,
        idle_timeout: Option<Duration>,
    ) {
        match session {
            HttpSession::H1(h1) => self.h1.release_http_session(h1, peer, idle_timeout).await,
        }
    }

    /// Offer only HTTP/1.1 to `peer` from now on.
    pub fn prefer_h1(&self, peer: &impl Peer) {
        self.h1.transport().prefer_h1(peer);
    }
}
