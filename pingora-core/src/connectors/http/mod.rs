//! Connecting to HTTP servers over HTTP/1.x ([`v1`]) or shared HTTP/2
//! connections ([`v2`]), as each peer's ALPN preference says.
//!
//! * `ALPN::H1`: HTTP/1.1 only.
//! * `ALPN::H2`: HTTP/2 only; over plaintext with prior knowledge (h2c).
//! * `ALPN::H2H1`: HTTP/2 preferred: over TLS the server chooses by ALPN;
//!   plaintext peers get HTTP/1.1. A peer that fails the HTTP/2 handshake is
//!   remembered as HTTP/1.1-only ([`Connector::prefer_h1`]).

use crate::connectors::ConnectorOptions;
use crate::protocols::http::client::HttpSession;
use crate::upstreams::peer::Peer;
use log::warn;
use pingora_error::{ErrorType, Result};
use std::time::Duration;

pub mod v1;
pub mod v2;

/// Hands out HTTP client sessions to peers, reusing pooled connections.
pub struct Connector {
    h1: v1::Connector,
    h2: v2::Connector,
}

impl Connector {
    /// A connector with the given options (defaults when `None`).
    pub fn new(options: Option<ConnectorOptions>) -> Self {
        Connector {
            h1: v1::Connector::new(options.clone()),
            h2: v2::Connector::new(options),
        }
    }

    /// A session to `peer`, over a pooled connection (or a free stream of a
    /// shared HTTP/2 connection) when one exists. The flag tells whether the
    /// connection was reused: requests failing on a reused connection are
    /// usually worth retrying.
    pub async fn get_http_session<P: Peer + Send + Sync + 'static>(
        &self,
        peer: &P,
    ) -> Result<(HttpSession, bool)> {
        let alpn = peer.get_alpn().copied().unwrap_or_default();
        let h2_only = alpn.get_min_http_version() == 2;
        let h2_wanted = alpn.get_max_http_version() == 2
            && (h2_only || (peer.tls() && !self.h2.h1_is_preferred(peer)));
        if !h2_wanted {
            // The session is made in its final place, not moved out of a nested future.
            let key = peer.reuse_hash();
            let (stream, reused, digest) =
                self.h1.transport().get_stream_with_key(peer, key).await?;
            return Ok((
                HttpSession::H1(crate::protocols::http::v1::client::HttpSession::new_keyed(
                    stream, key, digest,
                )),
                reused,
            ));
        }
        if let Some(h2) = self.h2.reused_http_session(peer).await? {
            return Ok((HttpSession::H2(h2), true));
        }
        if !h2_only {
            if let Some(h1) = self.h1.reused_http_session(peer).await {
                return Ok((HttpSession::H1(h1), true));
            }
        }
        match self.h2.new_http_session(peer).await {
            Ok(s) => Ok((s, false)),
            Err(e) if !h2_only && e.etype() == &ErrorType::H2Downgrade => {
                warn!("{peer} failed HTTP/2 ({e}), using HTTP/1.1 from now on");
                self.prefer_h1(peer);
                let (h1, reused) = self.h1.get_http_session(peer).await?;
                Ok((HttpSession::H1(h1), reused))
            }
            Err(e) => Err(e),
        }
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
            HttpSession::H2(h2) => self.h2.release_http_session(h2, peer, idle_timeout).await,
        }
    }

    /// Return a finished HTTP/1 session obtained from this connector for `peer` without
    /// waiting when its connection is reusable (pooled, `None` returned). One that cannot be
    /// reused comes back, for [`Self::release_http_session`] to shut it down.
    pub fn release_reusable_h1_session<P: Peer>(
        &self,
        session: crate::protocols::http::v1::client::HttpSession,
        peer: &P,
        idle_timeout: Option<Duration>,
    ) -> Option<crate::protocols::http::v1::client::HttpSession> {
        self.h1
            .release_reusable_session(session, peer, idle_timeout)
    }

    /// Use only HTTP/1.1 with `peer` from now on.
    pub fn prefer_h1(&self, peer: &impl Peer) {
        self.h1.transport().prefer_h1(peer);
        self.h2.prefer_h1(peer);
    }

    /// The HTTP/2 connector (its pool of shared connections).
    pub fn h2(&self) -> &v2::Connector {
        &self.h2
    }
}
