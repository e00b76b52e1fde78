//! [`PeerOptions`]: how to connect to a peer.

use super::{Tracer, X509};
use crate::connectors::l4::BindTo;
use crate::connectors::L4Connect;
use crate::protocols::{TcpKeepalive, ALPN};
use pingora_error::Result;
use std::collections::BTreeMap;
use std::fmt;
use std::fmt::{Display, Formatter, Result as FmtResult};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpSocket;

/// A callback that adjusts an upstream TCP socket before it connects.
pub type TcpSockTweakHook = Arc<dyn Fn(&TcpSocket) -> Result<()> + Send + Sync + 'static>;

/// Connection preferences of a peer. The [`Peer`](super::Peer) accessors
/// document each field; every field that shapes the connection takes part in
/// the peer's reuse hash.
///
/// Non-exhaustive: start from [`PeerOptions::new`] (or `Default`) and set
/// fields.
#[derive(Clone)]
#[non_exhaustive]
pub struct PeerOptions {
    /// Local address (and source port range) to bind to before connecting.
    pub bind_to: Option<BindTo>,
    /// Limit on the TCP (or Unix socket) connect step.
    pub connection_timeout: Option<Duration>,
    /// Limit on connecting as a whole, TLS handshake included.
    pub total_connection_timeout: Option<Duration>,
    /// Limit on each read from the upstream.
    pub read_timeout: Option<Duration>,
    /// How long an idle pooled connection is kept; `None` keeps it until
    /// the upstream closes it or it is evicted.
    pub idle_timeout: Option<Duration>,
    /// Limit on each write to the upstream.
    pub write_timeout: Option<Duration>,
    /// Verify the upstream's certificate chain.
    pub verify_cert: bool,
    /// Verify the upstream's certificate matches the SNI.
    pub verify_hostname: bool,
    /// Another name the upstream's certificate may carry instead of the SNI.
    pub alternative_cn: Option<String>,
    /// The HTTP versions to offer through ALPN.
    pub alpn: ALPN,
    /// CA certificates to trust instead of the default ones.
    pub ca: Option<Arc<Box<[X509]>>>,
    /// TCP keepalive probes for the upstream socket.
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// Size limit of the socket receive buffer (`SO_RCVBUF`).
    pub tcp_recv_buf: Option<usize>,
    /// DSCP value (RFC 2474) for sent packets.
    pub dscp: Option<u8>,
    /// Interval of HTTP/2 pings to keep the connection verified alive.
    pub h2_ping_interval: Option<Duration>,
    /// Concurrent HTTP/2 streams allowed on one connection.
    pub max_h2_streams: usize,
    /// Accept HTTP/1 responses with an invalid `Content-Length` (read them
    /// until the connection closes) instead of failing.
    pub allow_h1_response_invalid_content_length: bool,
    /// Extra headers for a CONNECT request through a proxy.
    pub extra_proxy_headers: BTreeMap<String, Vec<u8>>,
    /// Colon-separated TLS curve list; `None` uses the library default.
    pub curves: Option<&'static str>,
    /// Send a second key share in TLS 1.3 (relevant with post-quantum curves).
    pub second_keyshare: bool,
    /// Use TCP fast open.
    pub tcp_fast_open: bool,
    /// Callbacks on connect/disconnect.
    pub tracer: Option<Tracer>,
    /// Custom way to establish the L4 connection instead of plain TCP/UDS.
    pub custom_l4: Option<Arc<dyn L4Connect + Send + Sync>>,
    /// Adjust the TCP socket (e.g. extra socket options) before connecting.
    pub upstream_tcp_sock_tweak_hook: Option<TcpSockTweakHook>,
}

impl PeerOptions {
    /// Defaults: no timeouts, certificate and hostname verification on,
    /// HTTP/1.1 only, one HTTP/2 stream, second key share on.
    pub fn new() -> Self {
        PeerOptions {
            bind_to: None,
            connection_timeout: None,
            total_connection_timeout: None,
            read_timeout: None,
            idle_timeout: None,
            write_timeout: None,
            verify_cert: true,
            verify_hostname: true,
            alternative_cn: None,
            alpn: ALPN::H1,
            ca: None,
            tcp_keepalive: None,
            tcp_recv_buf: None,
            dscp: None,
            h2_ping_interval: None,
            max_h2_streams: 1,
            allow_h1_response_invalid_content_length: false,
            extra_proxy_headers: BTreeMap::new(),
            curves: None,
            second_keyshare: true,
            tcp_fast_open: false,
            tracer: None,
            custom_l4: None,
            upstream_tcp_sock_tweak_hook: None,
        }
    }

    /// Offer HTTP versions between `min` and `max` (1 or 2) through ALPN.
    pub fn set_http_version(&mut self, max: u8, min: u8) {
        self.alpn = ALPN::new(max, min);
    }

    /// Feed every option that changes what connection is established into
    /// `state` (timeouts and tracing do not).
    pub(crate) fn hash_connection_shape<H: Hasher>(&self, state: &mut H) {
        self.bind_to.hash(state);
        self.verify_cert.hash(state);
        self.verify_hostname.hash(state);
        self.alternative_cn.hash(state);
        self.alpn.hash(state);
        self.ca.as_deref().map(|cas| &cas[..]).hash(state);
        self.tcp_keepalive
            .as_ref()
            .map(|k| (k.idle, k.interval, k.count))
            .hash(state);
        self.tcp_recv_buf.hash(state);
        self.dscp.hash(state);
        self.tcp_fast_open.hash(state);
        self.curves.hash(state);
        self.second_keyshare.hash(state);
        self.extra_proxy_headers.hash(state);
        // Custom connectors and socket hooks make different connections.
        self.custom_l4
            .as_ref()
            .map(|c| Arc::as_ptr(c) as *const () as usize)
            .hash(state);
        self.upstream_tcp_sock_tweak_hook
            .as_ref()
            .map(|h| Arc::as_ptr(h) as *const () as usize)
            .hash(state);
    }
}

impl Default for PeerOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for PeerOptions {
    fn fmt(&self, f: &mut Formatter<'_>) -> FmtResult {
        f.debug_struct("PeerOptions")
            .field("bind_to", &self.bind_to)
            .field("connection_timeout", &self.connection_timeout)
            .field("total_connection_timeout", &self.total_connection_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("write_timeout", &self.write_timeout)
            .field("verify_cert", &self.verify_cert)
            .field("verify_hostname", &self.verify_hostname)
            .field("alternative_cn", &self.alternative_cn)
            .field("alpn", &self.alpn)
            .field("ca", &self.ca)
            .field("tcp_keepalive", &self.tcp_keepalive)
            .field("tcp_recv_buf", &self.tcp_recv_buf)
            .field("dscp", &self.dscp)
            .field("h2_ping_interval", &self.h2_ping_interval)
            .field("max_h2_streams", &self.max_h2_streams)
            .field(
                "allow_h1_response_invalid_content_length",
                &self.allow_h1_response_invalid_content_length,
            )
            .field("extra_proxy_headers", &self.extra_proxy_headers)
            .field("curves", &self.curves)
            .field("second_keyshare", &self.second_keyshare)
            .field("tcp_fast_open", &self.tcp_fast_open)
            .field("tracer", &self.tracer)
            .field("custom_l4", &self.custom_l4)
            .field(
                "upstream_tcp_sock_tweak_hook",
                &self.upstream_tcp_sock_tweak_hook.as_ref().map(|_| "<hook>"),
            )
            .finish()
    }
}

impl Display for PeerOptions {
    fn fmt(&self, f: &mut Formatter<'_>) -> FmtResult {
        if let Some(b) = &self.bind_to {
            write!(f, "bind_to: {b:?},")?;
        }
        if let Some(t) = self.connection_timeout {
            write!(f, "conn_timeout: {t:?},")?;
        }
        if let Some(t) = self.total_connection_timeout {
            write!(f, "total_conn_timeout: {t:?},")?;
        }
        if self.verify_cert {
            write!(f, "verify_cert: true,")?;
        }
        if self.verify_hostname {
            write!(f, "verify_hostname: true,")?;
        }
        if let Some(cn) = &self.alternative_cn {
            write!(f, "alt_cn: {cn},")?;
        }
        write!(f, "alpn: {},", self.alpn)?;
        if let Some(cas) = &self.ca {
            write!(f, "ca: {} certs,", cas.len())?;
        }
        if let Some(k) = &self.tcp_keepalive {
            write!(f, "tcp_keepalive: {k:?},")?;
        }
        if let Some(i) = self.h2_ping_interval {
            write!(f, "h2_ping_interval: {i:?},")?;
        }
        Ok(())
    }
}
