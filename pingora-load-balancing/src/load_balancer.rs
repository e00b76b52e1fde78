//! [`LoadBalancer`]: discovery, health checks and selection together.

use crate::discovery::Static;
use crate::health_check::HealthCheck;
use crate::selection::{BackendIter, BackendSelection, UniqueIterator};
use crate::{Backend, Backends};
use arc_swap::ArcSwap;
use pingora_error::Result;
use std::collections::{BTreeSet, HashMap};
use std::io::Result as IoResult;
use std::net::ToSocketAddrs;
use std::sync::Arc;
use std::time::Duration;

/// Picks a healthy backend for each request with the selection algorithm `S`
/// (e.g. [`crate::selection::RoundRobin`]).
///
/// Selection is lock-free: the selector is rebuilt only when discovery
/// reports a different backend set, and swapped in atomically.
///
/// Run it as a
/// [`BackgroundService`](pingora_core::services::background::BackgroundService)
/// to refresh discovery every [`LoadBalancer::update_frequency`] and health
/// every [`LoadBalancer::health_check_frequency`].
pub struct LoadBalancer<S>
where
    S: BackendSelection,
{
    backends: Backends,
    selector: ArcSwap<S>,
    config: Option<S::Config>,
    /// How often the background service runs health checks. `None`: once,
    /// at start.
    pub health_check_frequency: Option<Duration>,
    /// How often the background service asks discovery for the backend set.
    /// `None`: once, at start.
    pub update_frequency: Option<Duration>,
    /// Whether the background service checks all backends concurrently
    /// rather than one after another. Default: false.
    pub parallel_health_check: bool,
}

impl<S> LoadBalancer<S>
where
    S: BackendSelection + 'static,
    S::Iter: BackendIter,
{
    /// A load balancer over a static list of addresses (anything
    /// [`ToSocketAddrs`]: `"127.0.0.1:80"`, `("example.com", 443)`, ...),
    /// each a backend of weight 1, ready to select from immediately.
    ///
    /// Names are resolved with blocking DNS: call this at start-up.
    pub fn try_from_iter<A, T: IntoIterator<Item = A>>(iter: T) -> IoResult<Self>
    where
        A: ToSocketAddrs,
    {
        let discovery = Static::try_from_iter(iter)?;
        let initial = discovery.get();
        let backends = Backends::new(discovery);
        // The discovery is static: install its set synchronously so the
        // selector built below already contains it.
        backends.do_update(initial, HashMap::new(), |_| {});
        Ok(Self::from_backends(backends))
    }

    /// A load balancer over `backends` with the default selection tunables.
    pub fn from_backends(backends: Backends) -> Self {
        Self::from_backends_with_config(backends, None)
    }

    /// A load balancer over `backends`; `config`, when given, is used every
    /// time the selector is (re)built.
    pub fn from_backends_with_config(backends: Backends, config: Option<S::Config>) -> Self {
        let selector = build_selector::<S>(&backends.get_backend(), config.as_ref());
        LoadBalancer {
            backends,
            selector: ArcSwap::new(Arc::new(selector)),
            config,
            health_check_frequency: None,
            update_frequency: None,
            parallel_health_check: false,
        }
    }

    /// Refresh the backend set from discovery, rebuilding the selector if
    /// the set changed. The background service calls this periodically.
    pub async fn update(&self) -> Result<()> {
        self.backends
            .update(|backends| {
                let selector = build_selector::<S>(&backends, self.config.as_ref());
                self.selector.store(Arc::new(selector));
            })
            .await
    }

    /// The first ready backend among the candidates the algorithm yields for
    /// `key` (ignored by keyless algorithms), or `None` if none is ready
    /// within `max_iterations` candidate steps.
    pub fn select(&self, key: &[u8], max_iterations: usize) -> Option<Backend> {
        self.select_with(key, max_iterations, |_, ready| ready)
    }

    /// Like [`LoadBalancer::select`], but `accept(backend, ready)` decides:
    /// it sees each distinct candidate with its readiness and returns true to
    /// take it. Use it to ignore health, or to skip a backend that just
    /// failed for this request.
    pub fn select_with<F>(&self, key: &[u8], max_iterations: usize, accept: F) -> Option<Backend>
    where
        F: Fn(&Backend, bool) -> bool,
    {
        let selector = self.selector.load();
        // only the accepted candidate is cloned
        UniqueIterator::new(selector.iter(key), max_iterations).find_map(|backend, key| {
            accept(backend, self.backends.ready_by_key(key)).then(|| backend.clone())
        })
    }

    /// Probe backends with `hc` (see [`crate::health_check`]).
    pub fn set_health_check(&mut self, hc: Box<dyn HealthCheck + Send + Sync + 'static>) {
        self.backends.set_health_check(hc);
    }

    /// The backend set and its health.
    pub fn backends(&self) -> &Backends {
        &self.backends
    }
}

fn build_selector<S: BackendSelection>(
    backends: &BTreeSet<Backend>,
    config: Option<&S::Config>,
) -> S {
    match config {
        Some(config) => S::build_with_config(backends, config),
        None => S::build(backends),
    }
}

#[cfg(test)]
#[path = "load_balancer_tests.rs"]
mod tests;
