//! The server side and the client side of the pingora framework.
//!
//! * [`server`]: the [`server::Server`] that owns services, reads the
//!   configuration file and command line, and handles signals.
//! * [`services`]: long running units of work: listening services that accept
//!   connections and hand them to an app, and background services.
//! * [`listeners`]: TCP and Unix socket endpoints a listening service binds.
//! * [`apps`]: what a listening service runs for each connection
//!   ([`apps::ServerApp`], [`apps::HttpServerApp`], [`apps::http_app::ServeHttp`]).
//! * [`protocols`]: streams and the HTTP/1.1 server and client sessions.
//! * [`connectors`]: connecting to upstream peers, with a connection pool.
//! * [`upstreams`]: the description of an upstream peer ([`upstreams::peer::HttpPeer`]).
//! * `tls`: the TLS backend (OpenSSL or BoringSSL, by cargo feature), see docs/tls.md.
//! * [`utils`]: helpers such as [`utils::tls::CertKey`].
//!
//! The framework's error type is re-exported at the crate root, so
//! `pingora_core::{Error, ErrorType, Result}` work as well as the kinds
//! themselves (`pingora_core::ConnectRefused`).
#![warn(missing_docs)]

pub mod apps;
pub mod connectors;
pub mod listeners;
pub mod modules;
pub mod protocols;
pub mod server;
pub mod services;
#[cfg(any(feature = "openssl", feature = "boringssl"))]
pub mod tls;
pub mod upstreams;
pub mod utils;

pub use pingora_error::{ErrorType::*, *};

/// The names most programs need.
pub mod prelude {
    pub use crate::server::configuration::Opt;
    pub use crate::server::Server;
    pub use crate::services::background::background_service;
    pub use crate::upstreams::peer::HttpPeer;
    pub use pingora_error::{ErrorType::*, *};
}
