//! A reverse proxy that can be replaced by a new binary without dropping a
//! request: the zero downtime upgrade of `docs/upgrades.md`.
//!
//! Every response carries `x-served-by: <pid>`, so you can watch the new
//! process take over. The two operator commands are step 3:
//!
//! ```text
//! # 1. an origin, and the first generation of the proxy
//! python3 -m http.server 8000 --bind 127.0.0.1 &
//! cargo build -p pingora-examples --example graceful_upgrade
//! cp target/debug/examples/graceful_upgrade /tmp/proxy-v1
//! UPSTREAMS=127.0.0.1:8000 /tmp/proxy-v1 -c examples/graceful_upgrade.yaml &
//!
//! # 2. keep a client busy in another terminal
//! while true; do curl -s -o /dev/null -w '%{http_code} ' -D - http://127.0.0.1:6190/ \
//!     | grep -i x-served-by; done
//!
//! # 3. the upgrade: start the new binary with -u and the same configuration
//! #    (it waits for the sockets), then tell the old one to hand them over
//! UPSTREAMS=127.0.0.1:8000 target/debug/examples/graceful_upgrade -c examples/graceful_upgrade.yaml -u &
//! kill -QUIT "$(pgrep -f /tmp/proxy-v1)"
//! ```
//!
//! The old process exits once its in-flight requests are done (at most
//! `graceful_shutdown_timeout_seconds` later); the client never sees an
//! error. `kill -TERM` stops the proxy gracefully instead, `kill -INT` at
//! once.

use async_trait::async_trait;
use pingora::prelude::*;
use pingora_examples::{listen_addr, upstreams};

/// Proxies everything to the first upstream and says which process served.
pub struct Upgradable {
    upstream: String,
}

#[async_trait]
impl ProxyHttp for Upgradable {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _s: &mut Session, _c: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(
            self.upstream.as_str(),
            false,
            String::new(),
        )))
    }

    async fn response_filter(
        &self,
        _s: &mut Session,
        upstream_response: &mut ResponseHeader,
        _c: &mut (),
    ) -> Result<()> {
        // asked each time: daemon mode forks after this proxy was built
        upstream_response.insert_header("x-served-by", std::process::id().to_string())?;
        Ok(())
    }
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    // -c <file> -u -d -t, as for every pingora server
    let mut server = Server::new(Some(Opt::parse_args())).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    // with -u this waits (in `run_forever`) for the old process's sockets
    server.bootstrap();
    let upstream = upstreams("127.0.0.1:8000")
        .into_iter()
        .next()
        .unwrap_or_else(|| "127.0.0.1:8000".to_string());
    let mut proxy = http_proxy_service(&server.configuration, Upgradable { upstream });
    // the new process finds these addresses in what the old one handed over
    proxy.add_tcp(&listen_addr("127.0.0.1:6190"));
    server.add_service(proxy);
    server.run_forever();
}
