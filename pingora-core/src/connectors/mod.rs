//! Connecting to upstream servers, with connection reuse.
//!
//! [`TransportConnector`] establishes L4 connections (TLS arrives with the TLS
//! backend features) and pools released ones per [`Peer::reuse_hash`].
//! [`http::Connector`] builds HTTP client sessions on top of it.

mod bind_to;
pub mod http;
pub mod l4;
mod offload;
mod proxy;
mod reuse;
#[cfg(any(feature = "openssl", feature = "boringssl"))]
pub(crate) mod tls;

pub use l4::Connect as L4Connect;

use crate::protocols::{Digest, Stream, ALPN};
use crate::server::configuration::ServerConf;
use crate::upstreams::peer::Peer;
use log::{debug, warn};
use offload::OffloadRuntime;
use parking_lot::RwLock;
use pingora_error::{Error, ErrorSource, ErrorType::*, Result};
use pingora_pool::{ConnectionMeta, ConnectionPool};
use reuse::{count_connection, IdleStream, Pool, Sweeper};
pub use reuse::{upstream_reuse_stats, UpstreamReuseStats};
use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Settings of a [`TransportConnector`].
#[derive(Clone, Debug)]
pub struct ConnectorOptions {
    /// CA file to verify upstream certificates with (`None`: system default).
    pub ca_file: Option<String>,
    /// Default client certificate and key files for mutual TLS; peers may
    /// override them.
    pub cert_key_file: Option<(String, String)>,
    /// Log TLS session keys to the file named by `SSLKEYLOGFILE`.
    pub debug_ssl_keylog: bool,
    /// Idle connections kept per reuse group (see [`ConnectionPool::new`]).
    pub keepalive_pool_size: usize,
    /// Establish connections on dedicated runtimes: `(pools, threads per
    /// pool)`, isolating connect cost from request processing.
    pub offload_threadpool: Option<(usize, usize)>,
    /// Local IPv4 addresses to bind outgoing connections to (one picked at
    /// random per connection).
    pub bind_to_v4: Vec<SocketAddr>,
    /// Local IPv6 addresses to bind outgoing connections to.
    pub bind_to_v6: Vec<SocketAddr>,
}

/// Parse configured source IPs into bindable addresses (port 0), skipping
/// invalid entries with a warning rather than failing the whole server.
fn parse_bind_ips(ips: &[String]) -> Vec<SocketAddr> {
    ips.iter()
        .filter_map(|ip| match ip.parse::<IpAddr>() {
            Ok(ip) => Some(SocketAddr::new(ip, 0)),
            Err(e) => {
                warn!("ignoring invalid client bind address {ip:?}: {e}");
                None
            }
        })
        .collect()
}

impl ConnectorOptions {
    /// Options taken from the server configuration.
    pub fn from_server_conf(server_conf: &ServerConf) -> Self {
        let offload_threadpool = server_conf
            .upstream_connect_offload_threadpools
            .zip(server_conf.upstream_connect_offload_thread_per_pool)
            .filter(|(pools, threads)| *pools > 0 && *threads > 0);
        ConnectorOptions {
            ca_file: server_conf.ca_file.clone(),
            cert_key_file: None,
            debug_ssl_keylog: server_conf.upstream_debug_ssl_keylog,
            keepalive_pool_size: server_conf.upstream_keepalive_pool_size,
            offload_threadpool,
            bind_to_v4: parse_bind_ips(&server_conf.client_bind_to_ipv4),
            bind_to_v6: parse_bind_ips(&server_conf.client_bind_to_ipv6),
        }
    }

    /// Default options with the given keepalive pool size.
    pub fn new(keepalive_pool_size: usize) -> Self {
        ConnectorOptions {
            ca_file: None,
            cert_key_file: None,
            debug_ssl_keylog: false,
            keepalive_pool_size,
            offload_threadpool: None,
            bind_to_v4: vec![],
            bind_to_v6: vec![],
        }
    }
}

/// Pool size when no [`ConnectorOptions`] are given.
const DEFAULT_POOL_SIZE: usize = 128;
/// How many pooled candidates a checkout examines before connecting anew.
const MAX_REUSE_ATTEMPTS: usize = 8;

/// Connects to peers and pools released connections for reuse.
pub struct TransportConnector {
    connection_pool: Arc<Pool>,
    sweeper: Sweeper,
    offload: Option<OffloadRuntime>,
    bind_to_v4: Vec<SocketAddr>,
    bind_to_v6: Vec<SocketAddr>,
    preferred_http_version: PreferredHttpVersion,
    tls_ctx: TlsCtx,
}

/// The TLS client context (none without a TLS backend, or when it could not
/// be created: TLS peers then fail to connect).
#[cfg(any(feature = "openssl", feature = "boringssl"))]
type TlsCtx = Option<Arc<tls::TlsConnector>>;
#[cfg(not(any(feature = "openssl", feature = "boringssl")))]
type TlsCtx = Option<NoTls>;

/// Without a TLS backend there is no TLS context (uninhabited).
#[cfg(not(any(feature = "openssl", feature = "boringssl")))]
#[derive(Clone)]
enum NoTls {}

#[cfg(any(feature = "openssl", feature = "boringssl"))]
fn new_tls_ctx(options: &ConnectorOptions) -> TlsCtx {
    match tls::TlsConnector::new(Some(options)) {
        Ok(ctx) => Some(Arc::new(ctx)),
        Err(e) => {
            log::error!("{e}");
            None
        }
    }
}

#[cfg(not(any(feature = "openssl", feature = "boringssl")))]
fn new_tls_ctx(_options: &ConnectorOptions) -> TlsCtx {
    None
}

impl TransportConnector {
    /// A connector with the given options (defaults when `None`).
    pub fn new(options: Option<ConnectorOptions>) -> Self {
        let options = options.unwrap_or_else(|| ConnectorOptions::new(DEFAULT_POOL_SIZE));
        let tls_ctx = new_tls_ctx(&options);
        TransportConnector {
            connection_pool: Arc::new(ConnectionPool::new(options.keepalive_pool_size)),
            sweeper: Sweeper::default(),
            offload: options
                .offload_threadpool
                .map(|(pools, threads)| OffloadRuntime::new(pools, threads)),
            bind_to_v4: options.bind_to_v4,
            bind_to_v6: options.bind_to_v6,
            preferred_http_version: PreferredHttpVersion::default(),
            tls_ctx,
        }
    }

    /// Open a new connection to `peer` (never a pooled one).
    pub async fn new_stream<P: Peer + Send + Sync + 'static>(&self, peer: &P) -> Result<Stream> {
        self.new_stream_keyed(peer, peer.reuse_hash()).await
    }

    /// [`Self::new_stream`] with `peer`'s reuse hash already computed.
    async fn new_stream_keyed<P: Peer + Send + Sync + 'static>(
        &self,
        peer: &P,
        key: u64,
    ) -> Result<Stream> {
        let bind_to = l4::bind_to_random(peer, &self.bind_to_v4, &self.bind_to_v6);
        let alpn = self.preferred_http_version.get(key);
        let Some(offload) = &self.offload else {
            return do_connect(peer, bind_to, alpn, &self.tls_ctx).await;
        };
        let rt = offload
            .get_runtime(key)
            .map_err(|e| Error::because(InternalError, "failed to start offload runtime", e))?;
        let peer = peer.clone();
        let tls_ctx = self.tls_ctx.clone();
        rt.spawn(async move { do_connect(&peer, bind_to, alpn, &tls_ctx).await })
            .await
            .map_err(|e| Error::because(InternalError, "offloaded connect failed", e))?
    }

    /// Take a pooled connection to `peer` that is still healthy, if any.
    /// Pooled connections found closed or talking are dropped on the way.
    pub async fn reused_stream<P: Peer + Send + Sync>(&self, peer: &P) -> Option<Stream> {
        self.reused_stream_keyed(peer, peer.reuse_hash())
            .await
            .map(|(stream, _)| stream)
    }

    /// [`Self::reused_stream`] with `peer`'s reuse hash already computed, and the digest of
    /// the connection when its last session left one with it.
    pub(crate) async fn reused_stream_keyed<P: Peer + Send + Sync>(
        &self,
        peer: &P,
        key: u64,
    ) -> Option<(Stream, Option<Box<Digest>>)> {
        // A custom L4 connector decides itself where it connects, so the
        // socket's remote address need not be the peer's.
        let custom_l4 = peer
            .get_peer_options()
            .is_some_and(|o| o.custom_l4.is_some());
        for _ in 0..MAX_REUSE_ATTEMPTS {
            let idle = self.connection_pool.get(&key)?;
            if !custom_l4 && !connected_to(idle.stream(), peer) {
                warn!("pooled stream for {peer} is connected elsewhere, dropping it");
                continue;
            }
            if let Some(reused) = idle.into_reusable_with_digest() {
                debug!("reusing connection to {peer}");
                return Some(reused);
            }
        }
        None
    }

    /// Give `stream` back for reuse by peers whose reuse hash is `key`.
    ///
    /// The caller vouches that the protocol state allows reuse (e.g. an
    /// HTTP/1 response was fully read). The stream is dropped instead if no
    /// async runtime is available to sweep the pool. While pooled it is never
    /// handed out after `idle_timeout`, once the upstream closed it or sent
    /// data, and the connector's sweeper closes such streams within about a
    /// second.
    pub fn release_stream(&self, stream: Stream, key: u64, idle_timeout: Option<Duration>) {
        self.release_stream_with_digest(stream, None, key, idle_timeout)
    }

    /// [`Self::release_stream`], keeping `digest` (the facts of this connection a session
    /// gathered) for the next session on it.
    pub(crate) fn release_stream_with_digest(
        &self,
        stream: Stream,
        digest: Option<Box<Digest>>,
        key: u64,
        idle_timeout: Option<Duration>,
    ) {
        // Pooled without a look at the socket: the checkout (which knows how long the stream
        // idled) and the sweeper check it, so a look now would only repeat theirs.
        // The runtime (a thread-local lookup, a reference counted up and down) is only needed
        // to start the sweeper; while one runs, the pool is swept already.
        let rt = if self.sweeper.is_running() {
            None
        } else {
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => Some(rt),
                Err(_) => {
                    debug!("no runtime to sweep the idle connection, closing it");
                    return;
                }
            }
        };
        let meta = ConnectionMeta::new(key, stream.id());
        self.connection_pool.put_unwatched(
            &meta,
            IdleStream::new(stream, idle_timeout).with_digest(digest),
        );
        let rt = match rt {
            Some(rt) => Some(rt),
            // the sweeper may have stopped (finding the pool empty) just before the put
            None if !self.sweeper.is_running() => tokio::runtime::Handle::try_current().ok(),
            None => None,
        };
        if let Some(rt) = rt {
            self.sweeper.ensure(&self.connection_pool, &rt);
        }
    }

    /// A pooled connection to `peer` if a healthy one exists, else a new
    /// one. The flag tells whether the stream was reused.
    pub async fn get_stream<P: Peer + Send + Sync + 'static>(
        &self,
        peer: &P,
    ) -> Result<(Stream, bool)> {
        self.get_stream_with_key(peer, peer.reuse_hash())
            .await
            .map(|(stream, reused, _)| (stream, reused))
    }

    /// [`Self::get_stream`] with `peer`'s reuse hash `key` already computed: hashed once for
    /// the pool lookup, the ALPN preference, the offload runtime pick and the release. A
    /// reused stream comes with the digest its last session left with it, if any.
    pub(crate) async fn get_stream_with_key<P: Peer + Send + Sync + 'static>(
        &self,
        peer: &P,
        key: u64,
    ) -> Result<(Stream, bool, Option<Box<Digest>>)> {
        if let Some((stream, digest)) = self.reused_stream_keyed(peer, key).await {
            count_connection(true);
            return Ok((stream, true, digest));
        }
        let stream = self.new_stream_keyed(peer, key).await?;
        count_connection(false);
        Ok((stream, false, None))
    }

    /// Offer only HTTP/1.1 through ALPN to `peer` from now on (e.g. after it
    /// mishandled HTTP/2).
    pub fn prefer_h1(&self, peer: &impl Peer) {
        self.preferred_http_version.add_h1(peer.reuse_hash());
    }
}

impl Drop for TransportConnector {
    fn drop(&mut self) {
        // Close the pooled connections now rather than when the sweeper
        // notices the connector is gone.
        self.connection_pool.clear();
    }
}

/// Whether `stream` is connected to `peer`'s address. Uses the address the
/// stream's socket digest remembers (looked up once per connection) rather
/// than a `getpeername` per reuse.
fn connected_to<P: Peer>(stream: &Stream, peer: &P) -> bool {
    let cached = stream
        .get_socket_digest()
        .and_then(|d| d.peer_addr().cloned());
    match cached {
        Some(addr) => addr == *peer.address(),
        None => peer.matches_fd(stream.id()),
    }
}

/// Connect to `peer` within its total connection timeout: L4, then TLS
/// when the peer asks for it (never falling back to plain text).
async fn do_connect<P: Peer + Send + Sync>(
    peer: &P,
    bind_to: Option<l4::BindTo>,
    alpn_override: Option<ALPN>,
    tls_ctx: &TlsCtx,
) -> Result<Stream> {
    let connect = async {
        if peer.tls() {
            let Some(ctx) = tls_ctx else {
                let mut e = Error::explain(
                    TLSHandshakeFailure,
                    format!(
                        "cannot connect to {peer} with TLS: built without a TLS backend \
                         (enable the `openssl` or `boringssl` feature)"
                    ),
                );
                e.esource = ErrorSource::Internal;
                return Err(e);
            };
            let stream = l4::connect(peer, bind_to).await?;
            tls_connect(ctx, stream, peer, alpn_override).await
        } else {
            let stream = l4::connect(peer, bind_to).await?;
            Ok(Box::new(stream) as Stream)
        }
    };
    l4::within(
        peer.total_connection_timeout(),
        || format!("connecting to {peer}"),
        connect,
    )
    .await
}

#[cfg(any(feature = "openssl", feature = "boringssl"))]
async fn tls_connect<P: Peer + Send + Sync>(
    ctx: &tls::TlsConnector,
    stream: crate::protocols::l4::stream::Stream,
    peer: &P,
    alpn_override: Option<ALPN>,
) -> Result<Stream> {
    Ok(Box::new(ctx.connect(stream, peer, alpn_override).await?))
}

#[cfg(not(any(feature = "openssl", feature = "boringssl")))]
async fn tls_connect<P: Peer + Send + Sync>(
    ctx: &NoTls,
    _stream: crate::protocols::l4::stream::Stream,
    _peer: &P,
    _alpn_override: Option<ALPN>,
) -> Result<Stream> {
    match *ctx {}
}

/// Remembers peers (by reuse hash) that must be offered HTTP/1.1 only.
#[derive(Default)]
struct PreferredHttpVersion {
    h1_only: RwLock<HashSet<u64>>,
}

impl PreferredHttpVersion {
    fn add_h1(&self, key: u64) {
        self.h1_only.write().insert(key);
    }

    /// The ALPN override for the peer whose reuse hash is `key`.
    fn get(&self, key: u64) -> Option<ALPN> {
        let h1_only = self.h1_only.read();
        // skip hashing the key while nobody was ever downgraded
        (!h1_only.is_empty() && h1_only.contains(&key)).then_some(ALPN::H1)
    }
}
