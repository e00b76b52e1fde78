use super::*;
use crate::discovery::Static;
use crate::selection::consistent::KetamaConfig;
use crate::selection::{Consistent, FNVHash, Random, RoundRobin};
use async_trait::async_trait;
use pingora_error::{Error, ErrorType};

fn b(addr: &str) -> Backend {
    Backend::new(addr).expect("valid address")
}

/// Fails for one fixed backend.
struct FailOne(Backend);

#[async_trait]
impl HealthCheck for FailOne {
    async fn check(&self, target: &Backend) -> Result<()> {
        if *target == self.0 {
            Error::e_explain(ErrorType::ConnectRefused, "down")
        } else {
            Ok(())
        }
    }
    fn health_threshold(&self, _success: bool) -> usize {
        1
    }
}

#[test]
fn try_from_iter_is_ready_to_select() {
    let lb: LoadBalancer<RoundRobin> =
        LoadBalancer::try_from_iter(["127.0.0.1:8000", "127.0.0.1:8001"]).expect("literal");
    assert_eq!(lb.backends().get_backend().len(), 2);
    let first = lb.select(b"", 8).expect("a backend");
    let second = lb.select(b"", 8).expect("a backend");
    assert_ne!(first, second);
    assert!(LoadBalancer::<RoundRobin>::try_from_iter(["nonsense"]).is_err());
}

#[tokio::test]
async fn select_skips_unhealthy() {
    let down = b("127.0.0.1:8001");
    let mut lb: LoadBalancer<RoundRobin> =
        LoadBalancer::try_from_iter(["127.0.0.1:8000", "127.0.0.1:8001", "127.0.0.1:8002"])
            .expect("literal");
    lb.set_health_check(Box::new(FailOne(down.clone())));
    lb.backends().run_health_check(false).await;
    for _ in 0..30 {
        let picked = lb.select(b"", 8).expect("two healthy backends");
        assert_ne!(picked, down);
    }
    // with every backend rejected there is no pick
    assert!(lb.select_with(b"", 8, |_, _| false).is_none());
}

#[tokio::test]
async fn select_with_can_override_health() {
    let down = b("127.0.0.1:8001");
    let mut lb: LoadBalancer<FNVHash> =
        LoadBalancer::try_from_iter(["127.0.0.1:8001"]).expect("literal");
    lb.set_health_check(Box::new(FailOne(down.clone())));
    lb.backends().run_health_check(false).await;
    assert!(lb.select(b"k", 8).is_none());
    let seen = std::sync::Mutex::new(Vec::new());
    let picked = lb.select_with(b"k", 8, |backend, ready| {
        seen.lock().expect("not poisoned").push(ready);
        backend.addr == down.addr
    });
    assert_eq!(picked, Some(down));
    assert_eq!(*seen.lock().expect("not poisoned"), vec![false]);
}

#[test]
fn select_with_skips_a_failed_backend() {
    let lb: LoadBalancer<Consistent> =
        LoadBalancer::try_from_iter(["127.0.0.1:8000", "127.0.0.1:8001", "127.0.0.1:8002"])
            .expect("literal");
    let first = lb.select(b"user-42", 256).expect("a backend");
    assert_eq!(lb.select(b"user-42", 256), Some(first.clone()), "sticky");
    let retry = lb
        .select_with(b"user-42", 256, |b, ready| ready && *b != first)
        .expect("another backend");
    assert_ne!(retry, first);
}

#[test]
fn max_iterations_bounds_search() {
    let lb: LoadBalancer<Random> =
        LoadBalancer::try_from_iter(["127.0.0.1:8000", "127.0.0.1:8001"]).expect("literal");
    assert!(lb.select(b"", 0).is_none());
    assert!(lb.select(b"", 1).is_some());
}

#[tokio::test]
async fn update_rebuilds_selector_with_config() {
    let discovery = Static::new(BTreeSet::from([b("127.0.0.1:8000")]));
    let lb: LoadBalancer<Consistent> = LoadBalancer::from_backends_with_config(
        Backends::new(discovery),
        Some(KetamaConfig {
            point_multiple: Some(4),
        }),
    );
    assert!(lb.select(b"k", 8).is_none(), "nothing discovered yet");
    lb.update().await.expect("static");
    assert_eq!(lb.select(b"k", 8), Some(b("127.0.0.1:8000")));
}

#[test]
fn empty_balancer_selects_nothing() {
    let lb: LoadBalancer<RoundRobin> =
        LoadBalancer::try_from_iter(Vec::<&str>::new()).expect("empty");
    assert!(lb.select(b"", 8).is_none());
}
