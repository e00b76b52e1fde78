//! Connecting to HTTP/1.x servers.

use crate::connectors::{ConnectorOptions, TransportConnector};
use crate::protocols::http::v1::client::HttpSession;
use crate::upstreams::peer::Peer;
use pingora_error::Result;
use std::time::Duration;

/// Hands out HTTP/1.x client sessions, reusing pooled connections.
pub struct Connector {
    transport: TransportConnector,
}

impl Connector {
    /// A connector with the given options (defaults when `None`).
    pub fn new(options: Option<ConnectorOptions>) -> Self {
        Connector {
            transport: TransportConnector::new(options),
        }
    }

    /// The underlying transport connector.
    pub fn transport(&self) -> &TransportConnector {
        &self.transport
    }

    /// A session to `peer` over a healthy pooled connection or a new one; the
    /// flag tells whether the connection was reused.
    pub async fn get_http_session<P: Peer + Send + Sync + 'static>(
        &self,
        peer: &P,
    ) -> Result<(HttpSession, bool)> {
        let key = peer.reuse_hash();
        let (stream, reused, digest) = self.transport.get_stream_with_key(peer, key).await?;
        Ok((HttpSession::new_keyed(stream, key, digest), reused))
    }

    /// A session over a healthy pooled connection to `peer`, if any.
    pub async fn reused_http_session<P: Peer + Send + Sync + 'static>(
        &self,
        peer: &P,
    ) -> Option<HttpSession> {
        let key = peer.reuse_hash();
        self.transport
            .reused_stream_keyed(peer, key)
            .await
            .map(|(stream, digest)| HttpSession::new_keyed(stream, key, digest))
    }

    /// Return a finished session: its connection is pooled under `peer`'s
    /// reuse hash if the exchange completed with keep-alive, else closed.
    pub async fn release_http_session<P: Peer + Send + Sync + 'static>(
        &self,
        mut session: HttpSession,
        peer: &P,
        idle_timeout: Option<Duration>,
    ) {
        session.respect_keepalive();
        if let Some(stream) = session.reuse().await {
            self.transport
                .release_stream(stream, peer.reuse_hash(), idle_timeout);
        }
    }

    /// Return a finished session whose connection was obtained from this connector for
    /// `peer` (so its reuse hash is known), without waiting when it is reusable: the
    /// connection is pooled and `None` returned. A session that cannot be reused comes back
    /// for the caller to end ([`Self::release_http_session`] shuts it down).
    pub fn release_reusable_session<P: Peer>(
        &self,
        session: HttpSession,
        peer: &P,
        idle_timeout: Option<Duration>,
    ) -> Option<HttpSession> {
        let key = session.pool_key();
        match session.reuse_now_with_digest() {
            Ok((stream, digest)) => {
                let key = key.unwrap_or_else(|| peer.reuse_hash());
                self.transport
                    .release_stream_with_digest(stream, Some(digest), key, idle_timeout);
                None
            }
            Err(session) => Some(*session),
        }
    }
}
