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

pub use l4::Connect as L4Connect;

use crate::protocols::{Stream, ALPN};
use crate::server::configuration::ServerConf;
use crate::upstreams::peer::Peer;
use log::{debug, warn};
use offload::OffloadRuntime;
use parking_lot::RwLock;
use pingora_error::{Error, ErrorSource, ErrorType::*, Result};
use pingora_pool::{ConnectionMeta, ConnectionPool};
use reuse::{test_reusable_stream, IdleStream};
use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

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

type Pool = ConnectionPool<Arc<Mutex<IdleStream>>>;

/// Connects to peers and pools released connections for reuse.
pub struct TransportConnector {
    connection_pool: Arc<Pool>,
    offload: Option<OffloadRuntime>,
    bind_to_v4: Vec<SocketAddr>,
    bind_to_v6: Vec<SocketAddr>,
    preferred_http_version: PreferredHttpVersion,
}

impl TransportConnector {
    /// A connector with the given options (defaults when `None`).
    pub fn new(options: Option<ConnectorOptions>) -> Self {
        let options = options.unwrap_or_else(|| ConnectorOptions::new(DEFAULT_POOL_SIZE));
        TransportConnector {
            connection_pool: Arc::new(ConnectionPool::new(options.keepalive_pool_size)),
            offload: options
                .offload_threadpool
                .map(|(pools, threads)| OffloadRuntime::new(pools, threads)),
            bind_to_v4: options.bind_to_v4,
            bind_to_v6: options.bind_to_v6,
            preferred_http_version: PreferredHttpVersion::default(),
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
            return do_connect(peer, bind_to, alpn).await;
        };
        let rt = offload
            .get_runtime(key)
            .map_err(|e| Error::because(InternalError, "failed to start offload runtime", e))?;
        let peer = peer.clone();
        rt.spawn(async move { do_connect(&peer, bind_to, alpn).await })
            .await
            .map_err(|e| Error::because(InternalError, "offloaded connect failed", e))?
    }

    /// Take a pooled connection to `peer` that is still healthy, if any.
    /// Pooled connections found closed or talking are dropped on the way.
    pub async fn reused_stream<P: Peer + Send + Sync>(&self, peer: &P) -> Option<Stream> {
        self.reused_stream_keyed(peer, peer.reuse_hash()).await
    }

    /// [`Self::reused_stream`] with `peer`'s reuse hash already computed.
    async fn reused_stream_keyed<P: Peer + Send + Sync>(
        &self,
        peer: &P,
        key: u64,
    ) -> Option<Stream> {
        // A custom L4 connector decides itself where it connects, so the
        // socket's remote address need not be the peer's.
        let custom_l4 = peer
            .get_peer_options()
            .is_some_and(|o| o.custom_l4.is_some());
        for _ in 0..MAX_REUSE_ATTEMPTS {
            let shared = self.connection_pool.get(&key)?;
            // The idle watcher holds the lock until it notices the checkout.
            drop(shared.lock().await);
            let Ok(idle) = Arc::try_unwrap(shared) else {
                warn!("pooled stream still shared after checkout, dropping it");
                continue;
            };
            let Some(mut stream) = idle.into_inner().into_undisturbed() else {
                continue;
            };
            if !custom_l4 && !peer.matches_fd(stream.id()) {
                warn!("pooled stream for {peer} is connected elsewhere, dropping it");
                continue;
            }
            if test_reusable_stream(&mut stream) {
                debug!("reusing connection to {peer}");
                return Some(stream);
            }
        }
        None
    }

    /// Give `stream` back for reuse by peers whose reuse hash is `key`.
    ///
    /// The caller vouches that the protocol state allows reuse (e.g. an
    /// HTTP/1 response was fully read). The stream is dropped instead if the
    /// upstream already closed it or sent data, or if no async runtime is
    /// available to watch it. While pooled it is closed after `idle_timeout`
    /// or as soon as the upstream closes it.
    pub fn release_stream(&self, mut stream: Stream, key: u64, idle_timeout: Option<Duration>) {
        if !test_reusable_stream(&mut stream) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            debug!("no runtime to watch the idle connection, closing it");
            return;
        };
        let meta = ConnectionMeta::new(key, stream.id());
        let shared = Arc::new(Mutex::new(IdleStream::new(stream)));
        let Ok(watched) = shared.clone().try_lock_owned() else {
            // Unreachable: nobody else has seen this mutex yet.
            return;
        };
        let (notify_evicted, watch_use) = self.connection_pool.put(&meta, shared);
        let pool = self.connection_pool.clone();
        rt.spawn(async move {
            pool.idle_poll(watched, &meta, idle_timeout, notify_evicted, watch_use)
                .await;
        });
    }

    /// A pooled connection to `peer` if a healthy one exists, else a new
    /// one. The flag tells whether the stream was reused.
    pub async fn get_stream<P: Peer + Send + Sync + 'static>(
        &self,
        peer: &P,
    ) -> Result<(Stream, bool)> {
        // hashed once for the pool lookup, the ALPN preference and the
        // offload runtime pick
        let key = peer.reuse_hash();
        if let Some(stream) = self.reused_stream_keyed(peer, key).await {
            return Ok((stream, true));
        }
        Ok((self.new_stream_keyed(peer, key).await?, false))
    }

    /// Offer only HTTP/1.1 through ALPN to `peer` from now on (e.g. after it
    /// mishandled HTTP/2).
    pub fn prefer_h1(&self, peer: &impl Peer) {
        self.preferred_http_version.add_h1(peer.reuse_hash());
    }
}

impl Drop for TransportConnector {
    fn drop(&mut self) {
        // The idle watchers keep the pool alive; close its connections now
        // rather than when each one times out.
        self.connection_pool.clear();
    }
}

/// Connect to `peer` within its total connection timeout.
async fn do_connect<P: Peer + Send + Sync>(
    peer: &P,
    bind_to: Option<l4::BindTo>,
    alpn_override: Option<ALPN>,
) -> Result<Stream> {
    if peer.tls() {
        // Never fall back to plain text for a peer that asked for TLS.
        let alpn = alpn_override.or_else(|| peer.get_alpn().copied());
        let mut e = Error::explain(
            TLSHandshakeFailure,
            format!(
                "TLS support arrives with the TLS backend features; cannot connect to {peer} \
                 (alpn {alpn:?})"
            ),
        );
        e.esource = ErrorSource::Internal;
        return Err(e);
    }
    let connect = async {
        let stream = l4::connect(peer, bind_to).await?;
        Ok(Box::new(stream) as Stream)
    };
    l4::within(
        peer.total_connection_timeout(),
        || format!("connecting to {peer}"),
        connect,
    )
    .await
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
