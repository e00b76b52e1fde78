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
            // The block is taken first (from the thread's spares, see `flow_box`) and filled
            // in place: `Box::pin(future)` would build the whole (mostly not yet used) state
            // on the stack and copy it over, once per request.
            flow_box::FlowBox::new_uninit()
                .write(self.serve_request(downstream, closing))
                .await
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

/// Heap blocks of the per-request flow future, kept for the next requests of the thread.
///
/// The flow future is a few KiB: above the allocator's small-object size, where an allocation
/// takes its slow path (a page-queue search, and an over-allocation to meet the alignment when
/// the size is not a power of two) at several hundred instructions for the pair. Every request
/// needs exactly one such block, so each thread keeps up to [`SPARES`](flow_box::SPARES)
/// freed ones (the most recently used first, still in cache) for the next flows: memory stays
/// bounded, and blocks of another size are simply allocated and freed as usual.
mod flow_box {
    use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
    use std::cell::{Cell, UnsafeCell};
    use std::future::Future;
    use std::pin::Pin;
    use std::ptr::NonNull;
    use std::task::{Context, Poll};

    /// How many free blocks a thread keeps: about the number of requests one thread has in
    /// flight at once under load (a block is a few KiB).
    pub(super) const SPARES: usize = 16;

    /// The thread's free blocks, all of `layout`; freed when the thread ends.
    struct Spares {
        layout: Cell<Option<Layout>>,
        len: Cell<usize>,
        blocks: UnsafeCell<[*mut u8; SPARES]>,
    }

    impl Spares {
        /// A free block of `layout`, if one is kept.
        fn take(&self, layout: Layout) -> Option<NonNull<u8>> {
            let len = self.len.get();
            if len == 0 || self.layout.get() != Some(layout) {
                return None;
            }
            self.len.set(len - 1);
            // SAFETY: only this thread reaches `blocks`, and no reference to it outlives this
            // call; entries below `len` are blocks owned by the stack.
            NonNull::new(unsafe { (*self.blocks.get())[len - 1] })
        }

        /// Keep `block` of `layout`, or hand it back when there is no room for it.
        fn put(&self, block: NonNull<u8>, layout: Layout) -> Result<(), NonNull<u8>> {
            let len = self.len.get();
            if len == 0 {
                // Empty: the stack takes whatever size comes (one flow type in practice).
                self.layout.set(Some(layout));
            } else if len == SPARES || self.layout.get() != Some(layout) {
                return Err(block);
            }
            // SAFETY: as in `take`; `len < SPARES` here.
            unsafe { (*self.blocks.get())[len] = block.as_ptr() };
            self.len.set(len + 1);
            Ok(())
        }
    }

    impl Drop for Spares {
        fn drop(&mut self) {
            let Some(layout) = self.layout.get() else {
                return;
            };
            for &block in &self.blocks.get_mut()[..self.len.get()] {
                // SAFETY: every kept block was allocated with `layout` and is owned here.
                unsafe { dealloc(block, layout) }
            }
        }
    }

    thread_local! {
        static SPARE: Spares = const {
            Spares {
                layout: Cell::new(None),
                len: Cell::new(0),
                blocks: UnsafeCell::new([std::ptr::null_mut(); SPARES]),
            }
        };
    }

    /// A block of the right size for an `F`, not yet holding one.
    pub(super) struct FlowBox<F> {
        ptr: NonNull<F>,
    }

    /// A pinned `F` in its block; the block goes back to the thread's spares when dropped.
    pub(super) struct Flow<F> {
        ptr: NonNull<F>,
    }

    // SAFETY: `Flow` owns its `F` exclusively, like a `Box<F>`.
    unsafe impl<F: Send> Send for Flow<F> {}
    // SAFETY: as above; `&Flow` gives no access to the `F`.
    unsafe impl<F: Sync> Sync for Flow<F> {}

    impl<F> FlowBox<F> {
        /// Take the thread's spare block when it fits an `F`, else allocate one.
        pub(super) fn new_uninit() -> Self {
            let layout = Layout::new::<F>();
            if layout.size() == 0 {
                return FlowBox {
                    ptr: NonNull::dangling(),
                };
            }
            let spare = SPARE.try_with(|s| s.take(layout)).ok().flatten();
            let ptr = spare.unwrap_or_else(|| {
                // SAFETY: the layout's size is not zero.
                let raw = unsafe { alloc(layout) };
                NonNull::new(raw).unwrap_or_else(|| handle_alloc_error(layout))
            });
            FlowBox { ptr: ptr.cast() }
        }

        /// Move `value` into the block. Inlined so that the value is built in place instead
        /// of on the stack and copied (the flow is large).
        #[inline(always)]
        pub(super) fn write(self, value: F) -> Flow<F> {
            // SAFETY: the block is valid for writes of an `F` and holds nothing yet.
            unsafe { self.ptr.as_ptr().write(value) };
            Flow { ptr: self.ptr }
        }
    }

    impl<F: Future> Future for Flow<F> {
        type Output = F::Output;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
            // SAFETY: the `F` never moves out of its block until it is dropped in place.
            let fut = unsafe { Pin::new_unchecked(&mut *self.ptr.as_ptr()) };
            fut.poll(cx)
        }
    }

    impl<F> Drop for Flow<F> {
        fn drop(&mut self) {
            // SAFETY: the block holds an initialized `F`, dropped exactly once here.
            unsafe { std::ptr::drop_in_place(self.ptr.as_ptr()) };
            let layout = Layout::new::<F>();
            if layout.size() == 0 {
                return;
            }
            let block = self.ptr.cast::<u8>();
            let kept = SPARE
                .try_with(|s| s.put(block, layout))
                .unwrap_or(Err(block));
            if let Err(block) = kept {
                // SAFETY: allocated with this layout, and not kept by the spares.
                unsafe { dealloc(block.as_ptr(), layout) }
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;

        struct CountDrop(Arc<AtomicUsize>, [u64; 300]);
        impl Drop for CountDrop {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }

        #[tokio::test(flavor = "current_thread")]
        async fn blocks_are_reused_and_values_dropped() {
            let drops = Arc::new(AtomicUsize::new(0));
            let make = |d: &Arc<AtomicUsize>| {
                let guard = CountDrop(d.clone(), [7; 300]);
                async move { guard.1.iter().sum::<u64>() }
            };
            let a = FlowBox::new_uninit().write(make(&drops));
            let first = a.ptr.cast::<u8>();
            assert_eq!(a.await, 2100);
            assert_eq!(drops.load(Ordering::SeqCst), 1);
            // the freed block is the next one handed out
            let b = FlowBox::new_uninit().write(make(&drops));
            assert_eq!(b.ptr.cast::<u8>(), first);
            // a second flow alive at the same time gets a block of its own
            let c = FlowBox::new_uninit().write(make(&drops));
            let second = c.ptr.cast::<u8>();
            assert_ne!(second, first);
            // dropped without being polled: the value is still dropped
            drop(b);
            drop(c);
            assert_eq!(drops.load(Ordering::SeqCst), 3);
            // both blocks were kept, the last freed handed out first
            let d = FlowBox::new_uninit().write(make(&drops));
            let e = FlowBox::new_uninit().write(make(&drops));
            assert_eq!((d.ptr.cast::<u8>(), e.ptr.cast::<u8>()), (second, first));
            drop((d, e));
            // no more than `SPARES` are kept
            let many: Vec<_> = (0..SPARES + 4)
                .map(|_| FlowBox::new_uninit().write(make(&drops)))
                .collect();
            drop(many);
            assert_eq!(SPARE.with(|s| s.len.get()), SPARES);
            // a block of another layout is not handed out for this one
            let other = FlowBox::new_uninit().write(async { 1u8 });
            assert_ne!(other.ptr.cast::<u8>(), first);
            assert_eq!(other.await, 1);
        }
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
