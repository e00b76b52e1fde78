//! The load balancer as a background service: periodic discovery and health
//! checks, and a prompt stop on shutdown.

use async_trait::async_trait;
use pingora_core::services::background::BackgroundService;
use pingora_error::{Error, ErrorType, Result};
use pingora_load_balancing::discovery::{ServiceDiscovery, Static};
use pingora_load_balancing::health_check::HealthCheck;
use pingora_load_balancing::selection::RoundRobin;
use pingora_load_balancing::{Backend, Backends, LoadBalancer};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{sleep, timeout};

/// Counts checks; fails every backend while `failing` is set.
#[derive(Default)]
struct Probe {
    checks: AtomicUsize,
    failing: AtomicBool,
}

struct SharedProbe(Arc<Probe>);

#[async_trait]
impl HealthCheck for SharedProbe {
    async fn check(&self, _target: &Backend) -> Result<()> {
        self.0.checks.fetch_add(1, Ordering::SeqCst);
        if self.0.failing.load(Ordering::SeqCst) {
            Error::e_explain(ErrorType::ConnectRefused, "probe failing")
        } else {
            Ok(())
        }
    }

    fn health_threshold(&self, _success: bool) -> usize {
        1
    }
}

/// A static discovery the test can still change after handing it over.
struct SharedStatic(Arc<Static>);

#[async_trait]
impl ServiceDiscovery for SharedStatic {
    async fn discover(&self) -> Result<(BTreeSet<Backend>, HashMap<u64, bool>)> {
        self.0.discover().await
    }
}

fn b(addr: &str) -> Backend {
    Backend::new(addr).expect("valid address")
}

/// Polls `cond` every 10ms for up to 5s.
async fn eventually(cond: impl Fn() -> bool) -> bool {
    for _ in 0..500 {
        if cond() {
            return true;
        }
        sleep(Duration::from_millis(10)).await;
    }
    cond()
}

#[tokio::test]
async fn health_checks_run_periodically_and_stop_on_shutdown() {
    let probe = Arc::new(Probe::default());
    let mut lb: LoadBalancer<RoundRobin> =
        LoadBalancer::try_from_iter(["127.0.0.1:9"]).expect("literal");
    lb.set_health_check(Box::new(SharedProbe(probe.clone())));
    lb.health_check_frequency = Some(Duration::from_millis(20));
    let lb = Arc::new(lb);

    let (tx, rx) = watch::channel(false);
    let service = lb.clone();
    let task = tokio::spawn(async move { service.start(rx).await });

    assert!(eventually(|| probe.checks.load(Ordering::SeqCst) >= 3).await);
    assert!(lb.select(b"", 8).is_some());

    probe.failing.store(true, Ordering::SeqCst);
    assert!(
        eventually(|| lb.select(b"", 8).is_none()).await,
        "marked unhealthy"
    );
    probe.failing.store(false, Ordering::SeqCst);
    assert!(
        eventually(|| lb.select(b"", 8).is_some()).await,
        "healthy again"
    );

    tx.send(true).expect("service is listening");
    timeout(Duration::from_secs(2), task)
        .await
        .expect("service stops promptly on shutdown")
        .expect("service task did not panic");
    let after_stop = probe.checks.load(Ordering::SeqCst);
    sleep(Duration::from_millis(100)).await;
    assert_eq!(
        probe.checks.load(Ordering::SeqCst),
        after_stop,
        "no checks after stop"
    );
}

#[tokio::test]
async fn discovery_updates_periodically() {
    let discovery = Arc::new(Static::default());
    let mut lb: LoadBalancer<RoundRobin> =
        LoadBalancer::from_backends(Backends::new(Box::new(SharedStatic(discovery.clone()))));
    lb.update_frequency = Some(Duration::from_millis(20));
    let lb = Arc::new(lb);

    let (tx, rx) = watch::channel(false);
    let service = lb.clone();
    let task = tokio::spawn(async move { service.start(rx).await });

    assert!(lb.select(b"", 8).is_none());
    discovery.add(b("127.0.0.1:9"));
    assert!(eventually(|| lb.select(b"", 8) == Some(b("127.0.0.1:9"))).await);
    discovery.remove(&b("127.0.0.1:9"));
    assert!(eventually(|| lb.select(b"", 8).is_none()).await);

    drop(tx); // a vanished server also stops the service
    timeout(Duration::from_secs(2), task)
        .await
        .expect("service stops when the shutdown sender is gone")
        .expect("service task did not panic");
}

#[tokio::test]
async fn runs_once_without_frequencies() {
    let probe = Arc::new(Probe::default());
    let mut lb: LoadBalancer<RoundRobin> =
        LoadBalancer::try_from_iter(["127.0.0.1:9", "127.0.0.1:10"]).expect("literal");
    lb.set_health_check(Box::new(SharedProbe(probe.clone())));
    let (_tx, rx) = watch::channel(false);
    timeout(Duration::from_secs(2), lb.start(rx))
        .await
        .expect("returns after one round");
    assert_eq!(probe.checks.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn already_shut_down_does_nothing() {
    let probe = Arc::new(Probe::default());
    let mut lb: LoadBalancer<RoundRobin> =
        LoadBalancer::try_from_iter(["127.0.0.1:9"]).expect("literal");
    lb.set_health_check(Box::new(SharedProbe(probe.clone())));
    lb.health_check_frequency = Some(Duration::from_millis(10));
    let (_tx, rx) = watch::channel(true);
    timeout(Duration::from_secs(2), lb.start(rx))
        .await
        .expect("returns at once");
    assert_eq!(probe.checks.load(Ordering::SeqCst), 0);
}

/// The shape of Pingora's load balancer example: a health-checked
/// `LoadBalancer` handed to `background_service`, its task shared with the
/// proxy, and the selected backend turned into an `HttpPeer`.
#[tokio::test]
async fn runs_as_a_pingora_service() {
    use pingora_core::services::background::background_service;
    use pingora_core::services::Service;
    use pingora_core::upstreams::peer::HttpPeer;
    use pingora_load_balancing::prelude::*;

    let probe = Arc::new(Probe::default());
    let mut upstreams: LoadBalancer<RoundRobin> =
        LoadBalancer::try_from_iter(["127.0.0.1:9", "127.0.0.1:10"]).expect("literal");
    let _default_check = TcpHealthCheck::new();
    upstreams.set_health_check(Box::new(SharedProbe(probe.clone())));
    upstreams.health_check_frequency = Some(Duration::from_millis(20));

    let mut background = background_service("health check", upstreams);
    let lb = background.task();
    let (tx, rx) = watch::channel(false);
    let service = tokio::spawn(async move { background.start_service(None, rx, 1).await });

    assert!(eventually(|| probe.checks.load(Ordering::SeqCst) >= 4).await);
    let upstream = lb.select(b"", 256).expect("healthy backends");
    let peer = HttpPeer::new(upstream.clone(), false, String::new());
    assert_eq!(peer._address, upstream.addr);

    tx.send(true).expect("service is listening");
    timeout(Duration::from_secs(2), service)
        .await
        .expect("service stops on shutdown")
        .expect("service task did not panic");
}
