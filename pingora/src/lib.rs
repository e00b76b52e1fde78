//! # pingora
//!
//! A framework for building fast, memory-safe programmable network services:
//! HTTP proxies, load balancers, gateways, clients and servers.
//!
//! This crate gathers the framework's crates behind one dependency:
//!
//! | module | crate | cargo feature |
//! |---|---|---|
//! | (root) | `pingora-core`: server, services, protocols, connectors | always |
//! | [`http`] | `pingora-http`: request and response headers | always |
//! | [`proxy`] | `pingora-proxy`: the `ProxyHttp` phases | `proxy` |
//! | [`lb`] | `pingora-load-balancing`: backends, selection, health checks | `lb` (implies `proxy`) |
//! | [`time`] | `pingora-timeout`: fast timeouts | always |
//!
//! TLS comes from the `openssl` feature (default) or `boringssl` (with
//! `default-features = false`); exactly one of them. [`tls`] is the backend
//! library under one name, [`listeners::TlsSettings`] configures TLS
//! listeners; see docs/tls.md.
//!
//! Most programs start with `use pingora::prelude::*;`.
#![warn(missing_docs)]

pub use pingora_core::*;

/// HTTP headers that keep the case and order of header names.
pub mod http {
    pub use pingora_http::*;
}

/// Timeouts built for the hot path.
pub mod time {
    pub use pingora_timeout::*;
}

/// Reverse proxying: the `ProxyHttp` trait and its service.
#[cfg(feature = "proxy")]
pub mod proxy {
    pub use pingora_proxy::*;
}

/// Load balancing: backends, selection, discovery and health checks.
#[cfg(feature = "lb")]
pub mod lb {
    pub use pingora_load_balancing::*;
}

/// The names most programs need, from every enabled crate.
pub mod prelude {
    pub use pingora_core::prelude::*;
    pub use pingora_http::prelude::*;
    pub use pingora_timeout::*;

    #[cfg(feature = "lb")]
    pub use pingora_load_balancing::prelude::*;

    #[cfg(feature = "proxy")]
    pub use pingora_proxy::prelude::*;
}
