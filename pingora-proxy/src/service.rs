//! [`HttpProxy`]: the server app that runs a [`ProxyHttp`], and the functions wrapping it into a
//! listening service.

use async_trait::async_trait;
use log::debug;
use pingora_core::apps::{HttpServerApp, HttpServerOptions, ReusedHttpStream};
use pingora_core::connectors::{http::Connector, ConnectorOptions};
use pingora_core::modules::http::HttpModules;
use pingora_core::protocols::http::ServerSession as HttpSession;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::{ShutdownWatch, SHUTDOWN_IDLE_TIMEOUT};
use pingora_core::services::listening::Service;
use pingora_error::ErrorType;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::Notify;

use crate::{ProxyHttp, Session};

/// The server app that proxies HTTP requests according to a user's [`ProxyHttp`].
///
/// Build one with [`http_proxy_service`] (wrapped in a listening service) or [`http_proxy`]
/// (bare, to drive `process_new_http` from a custom accept loop).
pub struct HttpProxy<SV> {
    pub(crate) inner: SV,
    pub(crate) client_upstream: Connector,
    shutdown: Notify,
    shutdown_flag: Arc<AtomicBool>,
    /// HTTP server options for the connections this app serves.
    pub server_options: Option<HttpServerOptions>,
    pub(crate) max_retries: usize,
    /// The HTTP modules every request runs (set up by `ProxyHttp::init_downstream_modules`).
    downstream_modules: HttpModules,
}

impl<SV> HttpProxy<SV> {
    /// Wrap `inner`, with an upstream connector (and its connection pool) configured by `conf`
    /// (e.g. `upstream_keepalive_pool_size`) and `conf.max_retries` attempts per request.
    pub fn new(inner: SV, conf: Arc<ServerConf>) -> Self {
        HttpProxy {
            inner,
            client_upstream: Connector::new(Some(ConnectorOptions::from_server_conf(&conf))),
            shutdown: Notify::new(),
            shutdown_flag: Arc::new(AtomicBool::new(false)),
            server_options: None,
            // At least one attempt, even if the configuration says 0.
            max_retries: conf.max_retries.max(1),
            downstream_modules: HttpModules::new(),
        }
    }

    /// Let the user's [`ProxyHttp`] add its HTTP modules; called once, when the proxy is made.
    fn handle_init_modules(&mut self)
    where
        SV: ProxyHttp,
    {
        self.inner
            .init_downstream_modules(&mut self.downstream_modules);
    }

    /// The user's [`ProxyHttp`] implementation.
    pub fn inner(&self) -> &SV {
        &self.inner
    }

    /// Read the next request header from the client. `None` when the connection is done: the
    /// client closed it, sent garbage (answered with an error status first), or the service is
    /// shutting down.
    async fn read_downstream_request(
        &self,
        mut downstream: Box<HttpSession>,
    ) -> Option<Box<HttpSession>> {
        // Made before the flag is read: `http_cleanup` sets the flag and then notifies, and a
        // `Notified` sees every `notify_waiters` after its creation even before it is polled,
        // so one of the two is always seen. It is only polled (and joins the waiter list, a
        // lock each way) when the request is not there yet.
        let notified = self.shutdown.notified();
        tokio::pin!(notified);
        // Once shutting down, a request already on its way is still served (with
        // `Connection: close`) instead of racing the close; an idle connection is closed.
        let res = {
            let read = downstream.read_request();
            tokio::pin!(read);
            if self.shutdown_flag.load(Ordering::Acquire) {
                tokio::time::timeout(SHUTDOWN_IDLE_TIMEOUT, read)
                    .await
                    .ok()?
            } else {
                tokio::select! {
                    // Prefer an already buffered request over the shutdown notice.
                    biased;
                    res = &mut read => res,
                    _ = notified => tokio::time::timeout(SHUTDOWN_IDLE_TIMEOUT, read).await.ok()?,
                }
            }
        };
        match res {
            Ok(true) => Some(downstream),
            Ok(false) => None,
            Err(e) => {
                // boxed: rare, and it would otherwise enlarge the state idle connections wait in
                Box::pin(reject_bad_request(downstream, e)).await;
                None
            }
        }
    }

    /// Serve the request just read from `downstream`; `closing` when the connection must end
    /// with it.
    async fn serve_request(
        self: &Arc<Self>,
        downstream: Box<HttpSession>,
        closing: bool,
    ) -> Option<ReusedHttpStream>
    where
        SV: ProxyHttp + Send + Sync + 'static,
        <SV as ProxyHttp>::CTX: Send + Sync,
    {
        let mut session = Session::new(downstream, self.shutdown_flag.clone());
        if !self.downstream_modules.is_empty() {
            session.downstream_modules_ctx = self.downstream_modules.build_ctx();
        }
        if closing {
            // Serve this request, but let the client know the connection ends with it.
            session.set_keepalive(None);
        }
        let ctx = self.inner.new_ctx();
        self.process_request(session, ctx).await
    }
}

/// Answer a request that could not be read with the matching error status (when there is one),
/// then close the connection.
async fn reject_bad_request(mut downstream: Box<HttpSession>, e: Box<pingora_error::Error>) {
    let e = e.into_down();
    let code = match e.etype() {
        ErrorType::InvalidHTTPHeader => Some(400),
        other => other.http_status(),
    };
    if let Some(code) = code {
        debug!("bad request from client: {e}, answering {code}");
        if let Err(write_err) = downstream.respond_error(code).await {
            debug!("failed to send error response to downstream: {write_err}");
        }
    } else {
        debug!("failed to read request from client: {e}");
    }
    downstream.shutdown().await;
}

#[async_trait]
impl<SV> HttpServerApp for HttpProxy<SV>
where
    SV: ProxyHttp + Send + Sync + 'static,
    <SV as ProxyHttp>::CTX: Send + Sync,
{
    // Written out instead of `async fn` so that the session is boxed before the future is made:
    // an argument of an `async fn` stays inside its future for the whole call. (Connections
    // served through `ServerApp::process_new` wait for their next request before this future
    // is made; a custom accept loop calling this directly waits inside it.)
    fn process_new_http<'life0, 'life1, 'async_trait>(
        self: &'life0 Arc<Self>,
        session: HttpSession,
        shutdown: &'life1 ShutdownWatch,
    ) -> Pin<Box<dyn Future<Output = Option<ReusedHttpStream>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        let session = Box::new(session);
        Box::pin(async move {
            let downstream = self.read_downstream_request(session).await?;
            let closing = *shutdown.borrow();
            // The request's flow is a large future: boxed, it is only allocated while a request
            // is served, so a waiting connection holds just the small read state.
            // Allocated first and filled in place: `Box::pin(future)` would build the whole
            // (mostly not yet used) state on the stack and copy it over, once per request.
            // (A helper function doing this brings the copy back.)
            let mut flow = Box::new_uninit();
            flow.write(self.serve_request(downstream, closing));
            // SAFETY: `write` just initialized the box's contents.
            let flow = unsafe { flow.assume_init() };
            Box::into_pin(flow).await
        })
    }

    async fn http_cleanup(&self) {
        self.shutdown_flag.store(true, Ordering::Release);
        // Wake idle keep-alive connections waiting for their next request so they close.
        self.shutdown.notify_waiters();
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        self.server_options.as_ref()
    }
}

/// The default name of the service [`http_proxy_service`] makes.
const DEFAULT_SERVICE_NAME: &str = "Pingora HTTP Proxy Service";

/// Make an [`HttpProxy`] running `inner`, without a service around it, for use in a custom
/// accept loop (call `process_new_http` on an `Arc` of it).
pub fn http_proxy<SV>(conf: &Arc<ServerConf>, inner: SV) -> HttpProxy<SV>
where
    SV: ProxyHttp,
{
    let mut proxy = HttpProxy::new(inner, conf.clone());
    proxy.handle_init_modules();
    proxy
}

/// Make a listening service that proxies HTTP according to `inner`. Add listeners to it
/// (`add_tcp`, ...) and hand it to a `Server`.
pub fn http_proxy_service<SV>(conf: &Arc<ServerConf>, inner: SV) -> Service<HttpProxy<SV>>
where
    SV: ProxyHttp,
{
    http_proxy_service_with_name(conf, inner, DEFAULT_SERVICE_NAME)
}

/// Like [`http_proxy_service`], with the service called `name` (in logs).
pub fn http_proxy_service_with_name<SV>(
    conf: &Arc<ServerConf>,
    inner: SV,
    name: &str,
) -> Service<HttpProxy<SV>>
where
    SV: ProxyHttp,
{
    let mut proxy = HttpProxy::new(inner, conf.clone());
    proxy.handle_init_modules();
    Service::new(name.to_string(), proxy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora_core::apps::ServerApp;
    use pingora_core::protocols::l4::stream::Stream as L4Stream;
    use pingora_core::upstreams::peer::HttpPeer;
    use pingora_error::Result;

    struct Origin;

    #[async_trait]
    impl ProxyHttp for Origin {
        type CTX = ();
        fn new_ctx(&self) {}

        async fn upstream_peer(&self, _s: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
            Ok(Box::new(HttpPeer::new("127.0.0.1:1", false, String::new())))
        }
    }

    async fn server_stream() -> (tokio::net::TcpStream, pingora_core::protocols::Stream) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let c = tokio::net::TcpStream::connect(l.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (s, _) = l.accept().await.expect("accept");
        (c, Box::new(L4Stream::from(s)))
    }

    /// A keep-alive connection waits for its next request inside these futures, so they must
    /// stay small: the per-request proxy flow is boxed separately, only while it runs.
    #[tokio::test]
    async fn waiting_connection_futures_are_small() {
        let conf = Arc::new(ServerConf::default());
        let proxy = Arc::new(http_proxy(&conf, Origin));
        let (_shutdown_tx, shutdown) = tokio::sync::watch::channel(false);

        let (_c, stream) = server_stream().await;
        let fut = proxy.process_new_http(HttpSession::new_http1(stream), &shutdown);
        let http_size = std::mem::size_of_val(&*fut);
        drop(fut);

        let (_c, stream) = server_stream().await;
        let fut = proxy.process_new(stream, &shutdown);
        let conn_size = std::mem::size_of_val(&*fut);
        drop(fut);

        eprintln!("process_new_http future: {http_size} B, process_new future: {conn_size} B");
        assert!(
            http_size <= 1024,
            "process_new_http future is {http_size} B"
        );
        // the state an idle keep-alive connection waits in (see `pingora_core::apps`)
        assert!(conn_size <= 256, "process_new future is {conn_size} B");
    }
}
