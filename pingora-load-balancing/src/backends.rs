//! [`Backends`]: the discovered backend set and the health of each member.

use crate::discovery::ServiceDiscovery;
use crate::health::Health;
use crate::health_check::HealthCheck;
use crate::Backend;
use arc_swap::ArcSwap;
use log::{error, info, warn};
use pingora_error::Result;
use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

/// Hasher for maps keyed by [`Backend::hash_key`]: the key is already a
/// well-mixed 64-bit hash, so hashing it again would only cost time on the
/// selection path.
#[derive(Default)]
struct PrehashedKey(u64);

impl Hasher for PrehashedKey {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // only reached if something other than a u64 is hashed: fold it in
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ b as u64;
        }
    }

    fn write_u64(&mut self, key: u64) {
        self.0 = key;
    }
}

type HealthTable = HashMap<u64, Arc<Health>, BuildHasherDefault<PrehashedKey>>;

/// One consistent view: a backend set and the health of exactly those
/// backends, published together so readers never see one without the other.
#[derive(Default)]
struct Snapshot {
    backends: Arc<BTreeSet<Backend>>,
    /// Keyed by [`Backend::hash_key`]. Entries are shared with the previous
    /// snapshot for backends that stay, so health survives set changes and a
    /// check finishing during an update still lands.
    health: HealthTable,
}

/// A set of backends found by a [`ServiceDiscovery`], with an optional
/// [`HealthCheck`] that decides which of them are fit for traffic.
pub struct Backends {
    discovery: Box<dyn ServiceDiscovery + Send + Sync + 'static>,
    health_check: Option<Arc<dyn HealthCheck + Send + Sync + 'static>>,
    snapshot: ArcSwap<Snapshot>,
}

impl Backends {
    /// An empty set fed by `discovery`; call [`Backends::update`] to fill it.
    /// No health check is configured.
    pub fn new(discovery: Box<dyn ServiceDiscovery + Send + Sync + 'static>) -> Self {
        Backends {
            discovery,
            health_check: None,
            snapshot: ArcSwap::default(),
        }
    }

    /// Probe backends with `hc` from now on (see [`crate::health_check`]).
    pub fn set_health_check(&mut self, hc: Box<dyn HealthCheck + Send + Sync + 'static>) {
        self.health_check = Some(hc.into());
    }

    /// Install `new_backends` if it differs from the current set, calling
    /// `callback` with it first so that whatever is derived from the set (a
    /// selector) is ready by the time the set is visible. Then apply
    /// `enablement`.
    pub(crate) fn do_update<F>(
        &self,
        new_backends: BTreeSet<Backend>,
        enablement: HashMap<u64, bool>,
        callback: F,
    ) where
        F: Fn(Arc<BTreeSet<Backend>>),
    {
        let current = self.snapshot.load();
        if *current.backends == new_backends {
            apply_enablement(&current.health, &enablement);
            return;
        }
        let mut health =
            HealthTable::with_capacity_and_hasher(new_backends.len(), Default::default());
        for backend in &new_backends {
            let key = backend.hash_key();
            let entry = current.health.get(&key).cloned().unwrap_or_default();
            health.insert(key, entry);
        }
        apply_enablement(&health, &enablement);
        let backends = Arc::new(new_backends);
        callback(backends.clone());
        self.snapshot.store(Arc::new(Snapshot { backends, health }));
    }

    /// Ask the discovery for the current set and install it. `callback` runs
    /// with the new set only when it differs from the previous one, before
    /// the new set becomes visible: use it to rebuild expensive derived state
    /// such as a hash ring.
    pub async fn update<F>(&self, callback: F) -> Result<()>
    where
        F: Fn(Arc<BTreeSet<Backend>>),
    {
        let (backends, enablement) = self.discovery.discover().await?;
        self.do_update(backends, enablement, callback);
        Ok(())
    }

    /// Whether `backend` may receive traffic: it is enabled and, if a health
    /// check is set, last judged healthy. A backend this set does not know is
    /// ready only when no health check is set.
    pub fn ready(&self, backend: &Backend) -> bool {
        self.ready_by_key(backend.hash_key())
    }

    /// [`Backends::ready`] for a backend whose [`Backend::hash_key`] is known.
    pub(crate) fn ready_by_key(&self, key: u64) -> bool {
        self.snapshot
            .load()
            .health
            .get(&key)
            .map_or(self.health_check.is_none(), |h| h.ready())
    }

    /// Take `backend` out of rotation (`false`) or put it back (`true`)
    /// without touching its health, e.g. to drain it. A no-op for a backend
    /// this set does not know.
    pub fn set_enable(&self, backend: &Backend, enabled: bool) {
        if let Some(h) = self.snapshot.load().health.get(&backend.hash_key()) {
            h.enable(enabled);
        }
    }

    /// The current backend set.
    pub fn get_backend(&self) -> Arc<BTreeSet<Backend>> {
        self.snapshot.load().backends.clone()
    }

    /// Check every backend once with the configured health check (a no-op
    /// without one) and record the results. With `parallel`, backends are
    /// checked concurrently on the tokio runtime instead of one after another.
    pub async fn run_health_check(&self, parallel: bool) {
        let Some(check) = self.health_check.as_ref() else {
            return;
        };
        let snapshot = self.snapshot.load_full();
        let targets = snapshot.backends.iter().filter_map(|backend| {
            let health = snapshot.health.get(&backend.hash_key())?;
            Some((backend, health))
        });

        match tokio::runtime::Handle::try_current() {
            Ok(runtime) if parallel => {
                let jobs: Vec<_> = targets
                    .map(|(backend, health)| {
                        let (check, backend, health) =
                            (check.clone(), backend.clone(), health.clone());
                        runtime.spawn(async move { check_one(&*check, &backend, &health).await })
                    })
                    .collect();
                for job in futures::future::join_all(jobs).await {
                    if let Err(e) = job {
                        error!("health check task failed: {e}");
                    }
                }
            }
            _ if parallel => {
                let jobs = targets.map(|(backend, health)| check_one(&**check, backend, health));
                futures::future::join_all(jobs).await;
            }
            _ => {
                for (backend, health) in targets {
                    check_one(&**check, backend, health).await;
                }
            }
        }
    }
}

fn apply_enablement(health: &HealthTable, enablement: &HashMap<u64, bool>) {
    for (key, enabled) in enablement {
        if let Some(h) = health.get(key) {
            h.enable(*enabled);
        }
    }
}

/// Run one check against `backend` and fold the result into `health`,
/// reporting a flip to the log and to the check's observer.
async fn check_one(check: &(dyn HealthCheck + Send + Sync), backend: &Backend, health: &Health) {
    let result = check.check(backend).await;
    let success = result.is_ok();
    if !health.observe(success, check.health_threshold(success)) {
        return;
    }
    match result {
        Ok(()) => info!("{} becomes healthy", check.backend_summary(backend)),
        Err(e) => warn!("{} becomes unhealthy, {e}", check.backend_summary(backend)),
    }
    check.health_status_change(backend, success).await;
}

#[cfg(test)]
#[path = "backends_tests.rs"]
mod tests;
