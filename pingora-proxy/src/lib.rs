//! A programmable HTTP proxy on top of [`pingora_core`].
//!
//! Implement [`ProxyHttp`] (at least [`ProxyHttp::new_ctx`] and [`ProxyHttp::upstream_peer`]),
//! turn it into a service with [`http_proxy_service`] and add that service to a
//! `pingora_core::server::Server`. For each request the engine runs the trait's phases in order:
//!
//! 1. [`ProxyHttp::early_request_filter`], [`ProxyHttp::request_filter`]
//! 2. [`ProxyHttp::proxy_upstream_filter`]
//! 3. [`ProxyHttp::upstream_peer`], then connect; on failure [`ProxyHttp::fail_to_connect`] and,
//!    if the error is retryable, back to `upstream_peer` (up to `max_retries` attempts)
//! 4. [`ProxyHttp::connected_to_upstream`], [`ProxyHttp::upstream_request_filter`]
//! 5. request body through [`ProxyHttp::request_body_filter`] while the response comes back
//!    through [`ProxyHttp::upstream_response_filter`], [`ProxyHttp::response_filter`],
//!    [`ProxyHttp::upstream_response_body_filter`] and [`ProxyHttp::response_body_filter`]
//! 6. on failure [`ProxyHttp::error_while_proxy`] / [`ProxyHttp::fail_to_proxy`]
//! 7. [`ProxyHttp::logging`], exactly once per request.
//!
//! Connections are kept alive on both sides: the client's for its next request, the upstream's
//! in the connector's pool.
//!
//! ```no_run
//! use async_trait::async_trait;
//! use pingora_core::server::configuration::ServerConf;
//! use pingora_core::upstreams::peer::HttpPeer;
//! use pingora_error::Result;
//! use pingora_proxy::{http_proxy_service, ProxyHttp, Session};
//! use std::sync::Arc;
//!
//! struct ToOrigin;
//!
//! #[async_trait]
//! impl ProxyHttp for ToOrigin {
//!     type CTX = ();
//!     fn new_ctx(&self) {}
//!
//!     async fn upstream_peer(&self, _s: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
//!         Ok(Box::new(HttpPeer::new("127.0.0.1:8080", false, String::new())))
//!     }
//! }
//!
//! let conf = Arc::new(ServerConf::default());
//! let mut service = http_proxy_service(&conf, ToOrigin);
//! service.add_tcp("127.0.0.1:6188");
//! // then: server.add_service(service); server.run_forever();
//! ```
#![warn(missing_docs)]

mod proxy_common;
mod proxy_flow;
mod proxy_h1;
mod proxy_h2;
mod proxy_trait;
mod service;
mod session;
mod write_batching;

pub use proxy_trait::{FailToProxy, ProxyHttp};
pub use service::{http_proxy, http_proxy_service, http_proxy_service_with_name, HttpProxy};
pub use session::Session;

/// The names a proxy implementation needs.
pub mod prelude {
    pub use crate::{http_proxy, http_proxy_service, ProxyHttp, Session};
}
