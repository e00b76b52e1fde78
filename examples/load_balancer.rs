//! Round-robin load balancer with TCP health checks, the program from the Pingora
//! announcement, pointed at local origins.
//!
//! Run two origins and the balancer, then send requests:
//!
//! ```text
//! python3 -m http.server 8000 & python3 -m http.server 8001 &
//! UPSTREAMS=127.0.0.1:8000,127.0.0.1:8001 LISTEN=127.0.0.1:6188 \
//!     RUST_LOG=info cargo run -p pingora-examples --example load_balancer -- -c conf.yaml
//! curl -i http://127.0.0.1:6188/
//! ```
//!
//! With `TLS_LISTEN=127.0.0.1:6443 TLS_CERT=cert.pem TLS_KEY=key.pem` it also
//! listens with TLS there, offering HTTP/2 and HTTP/1.1 through ALPN.
//!
//! With `H2C_LISTEN=127.0.0.1:6189` a second listener there accepts HTTP/2 with prior knowledge
//! (h2c) as well as HTTP/1.1 (kept apart so that the main listener does not sniff for the h2
//! preface on every new connection).
//!
//! With `STATS_LISTEN=127.0.0.1:6190` it also serves, on that address, how many upstream
//! connections were reused vs newly opened (`reused N` / `new N` lines; the benchmark suite
//! reads them).
//!
//! `-c/--conf`, `-d/--daemon`, `-t/--test` and `-u/--upgrade` are parsed by `Opt::parse_args()`.

use async_trait::async_trait;
use log::debug;
use pingora::apps::http_app::ServeHttp;
use pingora::apps::HttpServerOptions;
use pingora::listeners::TlsSettings;
use pingora::prelude::*;
use pingora::protocols::http::ServerSession;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::services::listening::Service;
use pingora_examples::{listen_addr, upstreams};
use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;
use std::sync::Arc;
use std::time::Duration;

/// A proxy allocates and frees small objects on every request; mimalloc serves them
/// with about a third of glibc malloc's instructions (17% fewer instructions per proxied
/// request in benches/profile/callgrind.sh). The allocator is the binary's choice, not
/// the library's: this is where a user's own proxy would pick one too.
#[global_allocator]
static GLOBAL: Mimalloc = Mimalloc;

// From mimalloc's C API (libmimalloc-sys, linked through the `mimalloc` crate, declares
// `mi_collect` only behind a feature that pulls in another crate).
extern "C" {
    fn mi_collect(force: bool);
    fn mi_malloc(size: usize) -> *mut c_void;
    fn mi_zalloc(size: usize) -> *mut c_void;
    fn mi_realloc(p: *mut c_void, new_size: usize) -> *mut c_void;
}

/// `mimalloc::MiMalloc`, except that allocations needing no more than word alignment go
/// through the plain `mi_malloc` family. `MiMalloc` always asks for an aligned block, and
/// mimalloc serves an aligned request above 1 KiB whose size is not a power of two by
/// over-allocating and adjusting the pointer (the 1-4 KiB buffers a proxy allocates per
/// request), although every mimalloc block is already word aligned: its block sizes are
/// multiples of 8 and its pages start 16-aligned.
struct Mimalloc;

/// Alignment every mimalloc block has, whatever its size.
const MI_WORD_ALIGN: usize = 8;

// SAFETY: each method forwards to an allocator that upholds `GlobalAlloc`'s contract for the
// layout: `mi_*` for alignments every mimalloc block meets (see `MI_WORD_ALIGN`), `MiMalloc`
// (mimalloc's aligned entry points) for the rest. Blocks from both are freed by `mi_free`,
// which `MiMalloc::dealloc` calls for any block.
unsafe impl GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= MI_WORD_ALIGN {
            mi_malloc(layout.size()).cast()
        } else {
            mimalloc::MiMalloc.alloc(layout)
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= MI_WORD_ALIGN {
            mi_zalloc(layout.size()).cast()
        } else {
            mimalloc::MiMalloc.alloc_zeroed(layout)
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        mimalloc::MiMalloc.dealloc(ptr, layout)
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= MI_WORD_ALIGN {
            mi_realloc(ptr.cast(), new_size).cast()
        } else {
            mimalloc::MiMalloc.realloc(ptr, layout, new_size)
        }
    }
}

/// How soon after the last upstream request [`AllocatorPurge`] first gives freed memory back.
const PURGE_FIRST: Duration = Duration::from_millis(100);
/// The longest wait between two collections of an idle proxy. Also how late, at most, the purge
/// notices that requests have started again: with 5 s, a burst of new connections could open,
/// go idle and park inside one wait, and their memory stayed for up to 5 s more.
const PURGE_IDLE_MAX: Duration = Duration::from_secs(1);

/// Gives the memory freed by connections that went idle back to the system. mimalloc returns
/// freed memory only 10 s after the free (1 s, times 10 for its arenas), and only from inside
/// its own calls: a proxy whose connections all went idle (parked, see `pingora_core::apps`)
/// makes none, and would keep the memory of their last requests for good. A forced collection
/// from this task returns whatever is free, at a cost bounded by its period rather than by the
/// request rate (a purge delay of 0 instead would cost one `madvise` every ~20 requests, each
/// followed by page faults). It runs only after a period without upstream requests: while the
/// proxy is busy the memory is about to be reused, and a forced collection on the worker's core
/// would only delay requests and make their buffers fault in again. While the proxy stays
/// idle the wait doubles after each collection (up to [`PURGE_IDLE_MAX`]): the memory freed
/// as connections park (half a second after their last request) is returned within a second,
/// and an idle proxy is not woken ten times a second for nothing.
struct AllocatorPurge;

/// Upstream requests made so far (reused and new connections): a cheap sign of activity.
fn upstream_requests() -> u64 {
    let stats = pingora::connectors::upstream_reuse_stats();
    stats.reused + stats.new
}

/// The wait after a check that found `busy` (requests since the previous one) or not.
fn next_purge_wait(wait: Duration, busy: bool) -> Duration {
    if busy {
        PURGE_FIRST
    } else {
        (wait * 2).min(PURGE_IDLE_MAX)
    }
}

#[async_trait]
impl BackgroundService for AllocatorPurge {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut wait = PURGE_FIRST;
        let mut seen = upstream_requests();
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(wait) => {
                    let now = upstream_requests();
                    let busy = now != seen;
                    if !busy {
                        // SAFETY: mimalloc's public API, callable from any thread at any time
                        unsafe { mi_collect(true) }
                    }
                    wait = next_purge_wait(wait, busy);
                    seen = now;
                }
            }
        }
    }
}

/// The Host header sent upstream (`UPSTREAM_HOST`, default `localhost`).
fn upstream_host() -> String {
    std::env::var("UPSTREAM_HOST").unwrap_or_else(|_| "localhost".to_string())
}

/// Answers every request with the process-wide upstream connection reuse counters.
struct ReuseStats;

#[async_trait]
impl ServeHttp for ReuseStats {
    async fn response(&self, _session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let stats = pingora::connectors::upstream_reuse_stats();
        let body = format!("reused {}\nnew {}\n", stats.reused, stats.new);
        http::Response::new(body.into_bytes())
    }
}

/// The proxy logic: pick the next healthy backend, rewrite Host.
pub struct LB {
    backends: Arc<LoadBalancer<RoundRobin>>,
    host: String,
}

#[async_trait]
impl ProxyHttp for LB {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        // round robin ignores the key; try up to 256 backends to find a healthy one
        let backend = self
            .backends
            .select(b"", 256)
            .ok_or_else(|| Error::explain(HTTPStatus(503), "no healthy upstream"))?;
        debug!("upstream peer is {backend:?}");
        Ok(Box::new(HttpPeer::new(backend, false, self.host.clone())))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        _ctx: &mut (),
    ) -> Result<()> {
        upstream_request.insert_header("Host", self.host.as_str())?;
        Ok(())
    }
}

fn main() {
    env_logger::init();

    let mut server = Server::new(Some(Opt::parse_args())).expect("server setup");
    server.bootstrap();

    let addrs = upstreams("127.0.0.1:8000,127.0.0.1:8001");
    let mut backends = LoadBalancer::try_from_iter(addrs.iter().map(String::as_str))
        .expect("UPSTREAMS must be ip:port values");
    backends.set_health_check(TcpHealthCheck::new());
    backends.health_check_frequency = Some(Duration::from_secs(1));

    // the health checker runs as a background service; the proxy shares its LoadBalancer
    let health = background_service("health check", backends);
    let lb = LB {
        backends: health.task(),
        host: upstream_host(),
    };

    let mut proxy = http_proxy_service(&server.configuration, lb);
    proxy.add_tcp(&listen_addr("0.0.0.0:6188"));
    // TLS with HTTP/2 through ALPN, when TLS_LISTEN, TLS_CERT and TLS_KEY are set
    if let (Ok(addr), Ok(cert), Ok(key)) = (
        std::env::var("TLS_LISTEN"),
        std::env::var("TLS_CERT"),
        std::env::var("TLS_KEY"),
    ) {
        let mut tls = TlsSettings::intermediate(&cert, &key).expect("TLS_CERT and TLS_KEY");
        tls.enable_h2();
        proxy.add_tls_with_settings(&addr, None, tls);
    }

    let h2c = std::env::var("H2C_LISTEN").ok().map(|addr| {
        let lb = LB {
            backends: health.task(),
            host: upstream_host(),
        };
        let mut h2c = http_proxy_service(&server.configuration, lb);
        let mut options = HttpServerOptions::default();
        options.h2c = true;
        if let Some(logic) = h2c.app_logic_mut() {
            logic.server_options = Some(options);
        }
        h2c.add_tcp(&addr);
        h2c
    });

    server.add_service(proxy);
    if let Some(h2c) = h2c {
        server.add_service(h2c);
    }
    server.add_service(health);
    server.add_service(background_service("allocator purge", AllocatorPurge));
    if let Ok(addr) = std::env::var("STATS_LISTEN") {
        let mut stats = Service::new("reuse stats".to_string(), ReuseStats);
        stats.add_tcp(&addr);
        server.add_service(stats);
    }
    server.run_forever();
}
