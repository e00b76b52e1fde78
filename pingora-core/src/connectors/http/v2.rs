//! Connecting to HTTP/2 servers: shared, multiplexed, pooled connections.
//!
//! Every live connection to a peer stays in the pool (keyed by the peer's
//! reuse hash) and carries up to `min(max_h2_streams, the server's
//! SETTINGS_MAX_CONCURRENT_STREAMS)` requests at once. A connection is
//! dropped from the pool once it closed, received GOAWAY, missed a PING or
//! stayed idle for the peer's `idle_timeout`.

use crate::connectors::{ConnectorOptions, TransportConnector};
use crate::protocols::http::client::HttpSession;
use crate::protocols::http::v1::client::HttpSession as Http1Session;
use crate::protocols::http::v2::client::{drive_connection, sync_settings, Http2Session};

/// A shared handle to an upstream HTTP/2 connection.
pub use crate::protocols::http::v2::client::ConnectionRef;
use crate::protocols::{Digest, Stream, ALPN};
use crate::upstreams::peer::Peer;
use log::debug;
use parking_lot::{Mutex, RwLock};
use pingora_error::{Error, ErrorType, Result};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Per-stream receive window of upstream connections: response bytes the
/// upstream may send ahead of what the client took.
const STREAM_WINDOW: u32 = 256 * 1024;
/// Receive window of a whole upstream connection.
const CONNECTION_WINDOW: u32 = 1024 * 1024;
/// Response header lists larger than this are refused.
const MAX_HEADER_LIST: u32 = 256 * 1024;
/// How long a new connection may take to answer its first PING when the
/// peer sets no connection timeout.
const SETTINGS_WAIT: Duration = Duration::from_secs(10);
/// Request bytes buffered per stream before writes wait for window.
const SEND_BUFFER: usize = 256 * 1024;

/// Hands out streams of shared HTTP/2 connections.
pub struct Connector {
    transport: TransportConnector,
    pool: Mutex<HashMap<u64, Vec<ConnectionRef>>>,
    /// One connection attempt per peer at a time, so that a burst of
    /// requests shares the connection being opened instead of opening many.
    connecting: Mutex<HashMap<u64, Arc<tokio::sync::Mutex<()>>>>,
    h1_only: RwLock<HashSet<u64>>,
}

impl Connector {
    /// A connector with the given options (defaults when `None`).
    pub fn new(options: Option<ConnectorOptions>) -> Self {
        Connector {
            transport: TransportConnector::new(options),
            pool: Mutex::new(HashMap::new()),
            connecting: Mutex::new(HashMap::new()),
            h1_only: RwLock::new(HashSet::new()),
        }
    }

    /// The underlying transport connector.
    pub fn transport(&self) -> &TransportConnector {
        &self.transport
    }

    /// A stream on a pooled connection to `peer` that has room, if any.
    pub async fn reused_http_session<P: Peer + Send + Sync + 'static>(
        &self,
        peer: &P,
    ) -> Result<Option<Http2Session>> {
        let key = peer.reuse_hash();
        let mut pool = self.pool.lock();
        let Some(conns) = pool.get_mut(&key) else {
            return Ok(None);
        };
        conns.retain(|c| !c.is_closed());
        let session = conns.iter().find_map(|c| c.spawn_stream());
        if conns.is_empty() {
            pool.remove(&key);
        }
        Ok(session)
    }

    /// Open a new connection to `peer` and a stream on it. Over TLS the
    /// server picks the protocol by ALPN: when it picks HTTP/1.1 (and the
    /// peer accepts it) an HTTP/1 session is returned instead.
    pub async fn new_http_session<P: Peer + Send + Sync + 'static>(
        &self,
        peer: &P,
    ) -> Result<HttpSession> {
        let key = peer.reuse_hash();
        let gate = self.connecting.lock().entry(key).or_default().clone();
        let _turn = gate.lock().await;
        // the connection opened while we waited may have room for us
        if let Some(s) = self.reused_http_session(peer).await? {
            return Ok(HttpSession::H2(s));
        }
        let stream = self.transport.new_stream(peer).await?;
        let alpn = peer.get_alpn().copied().unwrap_or_default();
        if peer.tls() && stream.selected_alpn_proto() != Some(ALPN::H2) {
            if alpn.get_min_http_version() == 1 {
                debug!("{peer} did not choose h2 by ALPN, using HTTP/1.1");
                return Ok(HttpSession::H1(Http1Session::new(stream)));
            }
            return Error::e_explain(
                ErrorType::H2Downgrade,
                format!("{peer} does not offer HTTP/2 (ALPN)"),
            );
        }
        let conn = self.connect_h2(stream, peer).await?;
        match conn.spawn_stream() {
            Some(s) => Ok(HttpSession::H2(s)),
            None => Error::e_explain(
                ErrorType::H2Error,
                format!("new HTTP/2 connection to {peer} refuses streams"),
            ),
        }
    }

    /// Run the HTTP/2 handshake on `stream`, start its driver and pool it.
    async fn connect_h2<P: Peer + Send + Sync + 'static>(
        &self,
        stream: Stream,
        peer: &P,
    ) -> Result<ConnectionRef> {
        let digest = Digest {
            ssl_digest: stream.get_ssl_digest(),
            timing_digest: stream.get_timing_digest(),
            proxy_digest: stream.get_proxy_digest(),
            socket_digest: stream.get_socket_digest(),
        };
        let id = stream.id();
        let (send_req, mut conn) = h2::client::Builder::new()
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_header_list_size(MAX_HEADER_LIST)
            .max_send_buffer_size(SEND_BUFFER)
            .enable_push(false)
            .handshake(stream)
            .await
            .map_err(|e| {
                let mut err = Error::because(
                    ErrorType::H2Downgrade,
                    format!("HTTP/2 handshake with {peer} failed"),
                    e,
                );
                err.esource = pingora_error::ErrorSource::Upstream;
                err
            })?;
        let mut ping_pong = conn.ping_pong();
        if let Some(pp) = ping_pong.as_mut() {
            let limit = peer.connection_timeout().unwrap_or(SETTINGS_WAIT);
            sync_settings(&mut conn, pp, limit).await.map_err(|mut e| {
                e.etype = ErrorType::H2Downgrade;
                e.esource = pingora_error::ErrorSource::Upstream;
                e
            })?;
        }
        let options = peer.get_peer_options();
        let max_streams = options.map_or(1, |o| o.max_h2_streams);
        let (closed_tx, closed_rx) = watch::channel(false);
        let conn_ref = ConnectionRef::new(send_req, closed_rx, digest, id, max_streams, peer.tls());
        tokio::spawn(drive_connection(
            conn,
            ping_pong,
            conn_ref.clone(),
            closed_tx,
            peer.h2_ping_interval(),
            peer.idle_timeout(),
        ));
        let mut pool = self.pool.lock();
        let conns = pool.entry(peer.reuse_hash()).or_default();
        conns.retain(|c| !c.is_closed());
        conns.push(conn_ref.clone());
        Ok(conn_ref)
    }

    /// Give a finished stream back: its slot frees up on its connection,
    /// which stays pooled while it is healthy.
    pub async fn release_http_session<P: Peer + Send + Sync + 'static>(
        &self,
        session: Http2Session,
        _peer: &P,
        _idle_timeout: Option<Duration>,
    ) {
        // the stream slot is returned when the session drops; the
        // connection's driver enforces the idle timeout it was created with
        drop(session);
    }

    /// Use HTTP/1.1 for `peer` from now on (it failed at HTTP/2).
    pub fn prefer_h1(&self, peer: &impl Peer) {
        self.transport.prefer_h1(peer);
        self.h1_only.write().insert(peer.reuse_hash());
    }

    /// Whether [`Self::prefer_h1`] was called for `peer`.
    pub fn h1_is_preferred(&self, peer: &impl Peer) -> bool {
        let h1_only = self.h1_only.read();
        !h1_only.is_empty() && h1_only.contains(&peer.reuse_hash())
    }

    /// How many pooled connections to `peer` are open (for tests and stats).
    pub fn open_connections(&self, peer: &impl Peer) -> usize {
        self.pool
            .lock()
            .get(&peer.reuse_hash())
            .map_or(0, |c| c.iter().filter(|c| !c.is_closed()).count())
    }
}
