//! Service discovery: where the set of [`Backend`]s comes from.

use crate::Backend;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use http::Extensions;
use pingora_core::protocols::l4::socket::SocketAddr;
use pingora_error::Result;
use std::collections::{BTreeSet, HashMap};
use std::io::Result as IoResult;
use std::net::ToSocketAddrs;
use std::sync::Arc;

/// A source of backends, polled by [`crate::Backends::update`].
#[async_trait]
pub trait ServiceDiscovery {
    /// The current set of backends, plus an optional per-backend switch keyed
    /// by [`Backend::hash_key`]: `false` takes a backend out of rotation
    /// without removing it, `true` puts it back. Backends absent from the map
    /// keep their current enablement.
    async fn discover(&self) -> Result<(BTreeSet<Backend>, HashMap<u64, bool>)>;
}

/// A fixed set of backends that can be changed at run time with
/// [`Static::set`], [`Static::add`] and [`Static::remove`].
///
/// Concurrent changes never lose each other: each is applied as a
/// read-copy-update of the whole set.
#[derive(Default)]
pub struct Static {
    backends: ArcSwap<BTreeSet<Backend>>,
}

impl Static {
    /// A boxed discovery serving exactly `backends`, ready to pass to
    /// [`crate::Backends::new`].
    pub fn new(backends: BTreeSet<Backend>) -> Box<Self> {
        Box::new(Static {
            backends: ArcSwap::new(Arc::new(backends)),
        })
    }

    /// Resolve every item (`"127.0.0.1:80"`, `"localhost:8080"`,
    /// `("10.0.0.1", 443)`, a [`std::net::SocketAddr`], ...) and serve each
    /// resulting address as a backend of weight 1.
    ///
    /// Name resolution here is blocking DNS: call it at start-up, not on a
    /// runtime thread serving traffic.
    pub fn try_from_iter<A, T: IntoIterator<Item = A>>(iter: T) -> IoResult<Box<Self>>
    where
        A: ToSocketAddrs,
    {
        let mut backends = BTreeSet::new();
        for item in iter {
            for addr in item.to_socket_addrs()? {
                backends.insert(Backend {
                    addr: SocketAddr::Inet(addr),
                    weight: 1,
                    ext: Extensions::new(),
                });
            }
        }
        Ok(Self::new(backends))
    }

    /// A copy of the current set.
    pub fn get(&self) -> BTreeSet<Backend> {
        BTreeSet::clone(&self.backends.load())
    }

    /// Replace the whole set.
    pub fn set(&self, backends: BTreeSet<Backend>) {
        self.backends.store(Arc::new(backends));
    }

    /// Add one backend (a no-op if an equal one is already present).
    pub fn add(&self, backend: Backend) {
        self.backends.rcu(|current| {
            let mut next = BTreeSet::clone(current);
            next.insert(backend.clone());
            next
        });
    }

    /// Remove one backend (a no-op if it is absent).
    pub fn remove(&self, backend: &Backend) {
        self.backends.rcu(|current| {
            let mut next = BTreeSet::clone(current);
            next.remove(backend);
            next
        });
    }
}

#[async_trait]
impl ServiceDiscovery for Static {
    async fn discover(&self) -> Result<(BTreeSet<Backend>, HashMap<u64, bool>)> {
        Ok((self.get(), HashMap::new()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    fn b(addr: &str) -> Backend {
        Backend::new(addr).expect("valid address")
    }

    #[test]
    fn from_iter_resolves_and_dedups() {
        let s = Static::try_from_iter(["127.0.0.1:80", "127.0.0.1:81", "127.0.0.1:80"])
            .expect("literal addresses");
        assert_eq!(
            s.get(),
            BTreeSet::from([b("127.0.0.1:80"), b("127.0.0.1:81")])
        );
        let s = Static::try_from_iter([("127.0.0.1", 443)]).expect("tuple");
        assert_eq!(s.get(), BTreeSet::from([b("127.0.0.1:443")]));
        assert!(Static::try_from_iter(["no port here"]).is_err());
    }

    #[test]
    fn set_add_remove() {
        let s = Static::new(BTreeSet::from([b("10.0.0.1:80")]));
        s.add(b("10.0.0.2:80"));
        s.add(b("10.0.0.2:80"));
        assert_eq!(s.get().len(), 2);
        s.remove(&b("10.0.0.1:80"));
        s.remove(&b("10.9.9.9:80"));
        assert_eq!(s.get(), BTreeSet::from([b("10.0.0.2:80")]));
        s.set(BTreeSet::new());
        assert!(s.get().is_empty());
    }

    #[test]
    fn discover_returns_current_set() {
        let s = Static::new(BTreeSet::from([b("10.0.0.1:80")]));
        let (found, enablement) = s
            .discover()
            .now_or_never()
            .expect("static discovery never waits")
            .expect("static discovery never fails");
        assert_eq!(found, s.get());
        assert!(enablement.is_empty());
    }
}
