//! The listening service: accepts connections on its endpoints and runs an
//! app ([`ServerApp`]) on each.

use async_trait::async_trait;
use log::{debug, error, info};
use pingora_error::Result;
use std::fs::Permissions;
use std::sync::Arc;
use std::time::Duration;

use crate::apps::prometheus_http_app::PrometheusServer;
use crate::apps::{ServerApp, ServiceConn};
use crate::listeners::{Listeners, ServerAddress, TcpSocketOptions, TransportStack};
use crate::protocols::Stream;
use crate::server::runtime::current_handle;
use crate::server::{ListenFds, ShutdownWatch};
use crate::services::Service as ServiceTrait;

mod tracker;
pub(crate) use tracker::ConnGuard;
use tracker::ConnTracker;

/// How long the accept loop pauses when the process is out of file
/// descriptors: accept() would fail again at once and spin.
const EMFILE_BACKOFF: Duration = Duration::from_millis(500);
/// The first pause after a failed accept; it doubles while accept keeps
/// failing, up to [`MAX_ACCEPT_BACKOFF`].
const MIN_ACCEPT_BACKOFF: Duration = Duration::from_millis(5);
/// The longest pause between failing accepts.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// A service that listens on endpoints and runs `A` on each connection.
pub struct Service<A> {
    name: String,
    listeners: Listeners,
    app_logic: Option<A>,
    /// Threads of this service's runtime; `None` follows the server's
    /// `threads` setting.
    pub threads: Option<usize>,
}

impl<A> Service<A> {
    /// A service named `name` running `app_logic`, with no endpoints yet.
    pub fn new(name: String, app_logic: A) -> Self {
        Self::with_listeners(name, Listeners::new(), app_logic)
    }

    /// A service named `name` running `app_logic` on `listeners`.
    pub fn with_listeners(name: String, listeners: Listeners, app_logic: A) -> Self {
        Service {
            name,
            listeners,
            app_logic: Some(app_logic),
            threads: None,
        }
    }

    /// The endpoints, to add more. Changes after the service started have
    /// no effect.
    pub fn endpoints(&mut self) -> &mut Listeners {
        &mut self.listeners
    }

    /// Listen on a TCP address such as `0.0.0.0:80`.
    pub fn add_tcp(&mut self, addr: &str) {
        self.listeners.add_tcp(addr);
    }

    /// Listen on a TCP address with socket options.
    pub fn add_tcp_with_settings(&mut self, addr: &str, sock_opt: TcpSocketOptions) {
        self.listeners.add_tcp_with_settings(addr, sock_opt);
    }

    /// Listen with TLS on a TCP address, with the certificate chain and key
    /// in the PEM files `cert_path` and `key_path` (Mozilla intermediate
    /// profile, see [`TlsSettings`](crate::listeners::TlsSettings)).
    #[cfg(any(feature = "openssl", feature = "boringssl"))]
    pub fn add_tls(&mut self, addr: &str, cert_path: &str, key_path: &str) -> Result<()> {
        self.listeners.add_tls(addr, cert_path, key_path)
    }

    /// Listen with TLS on a TCP address with socket options and TLS settings
    /// (certificate callbacks, ALPN / HTTP/2, client certificates ...).
    #[cfg(any(feature = "openssl", feature = "boringssl"))]
    pub fn add_tls_with_settings(
        &mut self,
        addr: &str,
        sock_opt: Option<TcpSocketOptions>,
        settings: crate::listeners::TlsSettings,
    ) {
        self.listeners
            .add_tls_with_settings(addr, sock_opt, settings);
    }

    /// Without a TLS backend this stops the build with a message saying
    /// which feature to enable.
    #[cfg(not(any(feature = "openssl", feature = "boringssl")))]
    pub fn add_tls<P: crate::listeners::TlsBackendRequired>(
        &mut self,
        _addr: &str,
        _cert_path: P,
        _key_path: P,
    ) -> Result<()> {
        unreachable!("TlsBackendRequired has no implementations")
    }

    /// Listen on a Unix socket at path `addr`; `perm` defaults to `0o666`.
    pub fn add_uds(&mut self, addr: &str, perm: Option<Permissions>) {
        self.listeners.add_uds(addr, perm);
    }

    /// Listen on `addr`.
    pub fn add_address(&mut self, addr: ServerAddress) {
        self.listeners.add_address(addr);
    }

    /// The app; `None` once the service has started (it moved into the
    /// running service).
    pub fn app_logic(&self) -> Option<&A> {
        self.app_logic.as_ref()
    }

    /// The app, mutably; `None` once the service has started.
    pub fn app_logic_mut(&mut self) -> Option<&mut A> {
        self.app_logic.as_mut()
    }
}

/// Whether an accept error means the process ran out of descriptors.
fn out_of_fds(e: &pingora_error::Error) -> bool {
    e.root_cause()
        .downcast_ref::<std::io::Error>()
        .and_then(|e| e.raw_os_error())
        .is_some_and(|code| code == libc::EMFILE || code == libc::ENFILE)
}

impl<A: ServerApp + Send + Sync + 'static> Service<A> {
    /// Run `app_logic` on a connection, again and again while it hands the
    /// connection back for reuse, unless the server is shutting down.
    pub async fn handle_event(event: Stream, app_logic: Arc<A>, shutdown: ShutdownWatch) {
        let mut next = app_logic.process_new(event, &shutdown).await;
        while let Some(stream) = next {
            if *shutdown.borrow() {
                debug!("shutting down: closing a reusable connection");
                break;
            }
            next = app_logic.process_new(stream, &shutdown).await;
        }
    }

    /// The accept loop of one endpoint; returns once shutdown starts.
    async fn run_endpoint(
        app_logic: Arc<A>,
        stack: TransportStack,
        mut shutdown: ShutdownWatch,
        conns: Arc<ConnTracker>,
    ) {
        let mut backoff = Duration::ZERO;
        loop {
            if *shutdown.borrow_and_update() {
                break;
            }
            let accepted = tokio::select! {
                biased;
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        // the server is gone: nothing will ever signal again
                        info!("shutdown watch closed, stop accepting on {}", stack.as_str());
                        break;
                    }
                    continue;
                }
                accepted = stack.accept() => accepted,
            };
            match accepted {
                Ok(io) => {
                    backoff = Duration::ZERO;
                    let app = app_logic.clone();
                    let shutdown = shutdown.clone();
                    let mut conn = ServiceConn::new(conns.track());
                    // The connection's task keeps the size of its largest state for its whole
                    // life: the handshake (a TLS one is large) is boxed so that it takes heap
                    // only while it runs, not in every idle keep-alive connection. The loop is
                    // written out here on the task's own app, watch and count (`conn`, which
                    // an HTTP app may take along when it parks the connection): an `async fn`
                    // would keep copies of them.
                    let handshake = Box::pin(io.handshake());
                    current_handle().spawn(async move {
                        let stream = match handshake.await {
                            Ok(stream) => stream,
                            Err(e) => {
                                debug!("downstream handshake failed: {e}");
                                return;
                            }
                        };
                        let mut next = app
                            .process_new_in_service(stream, &shutdown, &mut conn)
                            .await;
                        while let Some(stream) = next {
                            if *shutdown.borrow() {
                                debug!("shutting down: closing a reusable connection");
                                break;
                            }
                            next = app
                                .process_new_in_service(stream, &shutdown, &mut conn)
                                .await;
                        }
                    });
                }
                Err(e) => {
                    error!("{e}");
                    // A failing accept usually fails again at once (no fds
                    // left, or the runtime whose reactor owns the listener is
                    // stopping). Never spin: on a current-thread runtime a
                    // loop that does not yield starves every other task,
                    // including the one that stops the runtime.
                    backoff = if out_of_fds(&e) {
                        // let other tasks close connections first
                        EMFILE_BACKOFF
                    } else {
                        (backoff * 2).clamp(MIN_ACCEPT_BACKOFF, MAX_ACCEPT_BACKOFF)
                    };
                    tokio::select! {
                        biased;
                        // re-checked at the top of the loop
                        _ = shutdown.changed() => {}
                        _ = tokio::time::sleep(backoff) => {}
                    }
                }
            }
        }
        info!("stopped accepting on {}", stack.as_str());
    }

    async fn bind(&self, fds: Option<ListenFds>) -> Result<Vec<TransportStack>> {
        self.listeners.build(fds).await
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServiceTrait for Service<A> {
    async fn start_service(
        &mut self,
        fds: Option<ListenFds>,
        shutdown: ShutdownWatch,
        listeners_per_fd: usize,
    ) {
        let Some(app_logic) = self.app_logic.take() else {
            error!("service {} can only be started once", self.name);
            return;
        };
        let endpoints = match self.bind(fds).await {
            Ok(e) => e,
            Err(e) => {
                error!("service {} cannot listen: {e}", self.name);
                return;
            }
        };
        let app_logic = Arc::new(app_logic);
        let conns = Arc::new(ConnTracker::default());
        let runtime = current_handle();
        let mut accept_loops = Vec::with_capacity(endpoints.len() * listeners_per_fd.max(1));
        for endpoint in endpoints {
            match endpoint.tcp_local_addr() {
                Some(bound) => info!(
                    "service {} listening on {} ({bound})",
                    self.name,
                    endpoint.as_str()
                ),
                None => info!("service {} listening on {}", self.name, endpoint.as_str()),
            }
            for _ in 0..listeners_per_fd.max(1) {
                let app = app_logic.clone();
                let stack = endpoint.clone();
                let shutdown = shutdown.clone();
                let conns = conns.clone();
                accept_loops.push(runtime.spawn(Self::run_endpoint(app, stack, shutdown, conns)));
            }
        }
        for result in futures::future::join_all(accept_loops).await {
            if let Err(e) = result {
                error!("an accept loop of service {} failed: {e}", self.name);
            }
        }
        // wakes idle connections of apps that wait for their next request
        app_logic.cleanup().await;
        let live = conns.live();
        if live > 0 {
            info!("service {}: draining {live} connection(s)", self.name);
            conns.wait_idle().await;
        }
        info!("service {}: all connections closed", self.name);
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn threads(&self) -> Option<usize> {
        self.threads
    }
}

impl Service<PrometheusServer> {
    /// A service exposing the Prometheus metrics of the process over HTTP;
    /// add an endpoint to it with [`Service::add_tcp()`].
    pub fn prometheus_http_service() -> Self {
        Service::new(
            "Prometheus metric HTTP".to_string(),
            PrometheusServer::new(),
        )
    }
}

#[cfg(test)]
mod tests;
