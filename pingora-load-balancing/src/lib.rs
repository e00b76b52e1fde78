//! Load balancing for pingora proxies.
//!
//! The crate is built from three independent pieces that a [`LoadBalancer`]
//! ties together:
//!
//! * [`discovery`]: where the set of [`Backend`]s comes from (a static list,
//!   or anything that implements [`discovery::ServiceDiscovery`]).
//! * [`health_check`]: how a backend is probed (TCP connect, HTTP request, or a
//!   custom [`health_check::HealthCheck`]) and when its health flips.
//! * [`selection`]: which backend a request goes to (round robin, random,
//!   FNV hashing, consistent hashing), honouring backend weights.
//!
//! Selection never takes a lock: the backend set, its health table and the
//! built selector are each published through [`arc_swap::ArcSwap`], so a
//! discovery update or a health flip never blocks the request path.
//!
//! A [`LoadBalancer`] is also a
//! [`BackgroundService`](pingora_core::services::background::BackgroundService):
//! run it as one to refresh discovery and health checks periodically.
//!
//! ```
//! use pingora_load_balancing::{health_check::TcpHealthCheck, selection::RoundRobin, LoadBalancer};
//! use std::time::Duration;
//!
//! let mut lb: LoadBalancer<RoundRobin> =
//!     LoadBalancer::try_from_iter(["127.0.0.1:8000", "127.0.0.1:8001"])?;
//! lb.set_health_check(TcpHealthCheck::new());
//! lb.health_check_frequency = Some(Duration::from_secs(5));
//! // each call yields the next healthy backend
//! let first = lb.select(b"", 16).expect("two backends");
//! let second = lb.select(b"", 16).expect("two backends");
//! assert_ne!(first, second);
//! # Ok::<(), std::io::Error>(())
//! ```
#![warn(missing_docs)]

mod backend;
mod backends;
mod background;
pub mod discovery;
mod hashing;
mod health;
pub mod health_check;
mod load_balancer;
pub mod selection;

pub use backend::Backend;
pub use backends::Backends;
pub use http::Extensions;
pub use load_balancer::LoadBalancer;

/// The names most users of this crate need.
pub mod prelude {
    pub use crate::health_check::TcpHealthCheck;
    pub use crate::selection::RoundRobin;
    pub use crate::LoadBalancer;
}
