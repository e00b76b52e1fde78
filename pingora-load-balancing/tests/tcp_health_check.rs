//! TCP health checks against real listeners on 127.0.0.1.

mod common;

use async_trait::async_trait;
use common::{backend, closed_port, silent_listener};
use pingora_error::ErrorType;
use pingora_load_balancing::health_check::{HealthCheck, HealthObserve, TcpHealthCheck};
use pingora_load_balancing::selection::RoundRobin;
use pingora_load_balancing::{Backend, LoadBalancer};
use std::sync::{Arc, Mutex};

#[tokio::test]
async fn tcp_check_live_and_closed() {
    let (live, accept_task) = silent_listener().await;
    let check = TcpHealthCheck::new();
    check
        .check(&backend(live))
        .await
        .expect("live port connects");
    let closed = closed_port();
    let err = check
        .check(&backend(closed.addr))
        .await
        .expect_err("closed port refuses");
    assert_eq!(*err.etype(), ErrorType::ConnectRefused, "{err}");
    accept_task.abort();
}

#[tokio::test]
async fn load_balancer_avoids_closed_backend() {
    let (live, accept_task) = silent_listener().await;
    let closed = closed_port();
    let dead = closed.addr;
    let mut lb: LoadBalancer<RoundRobin> =
        LoadBalancer::try_from_iter([live, dead]).expect("literal");
    lb.set_health_check(TcpHealthCheck::new());
    lb.backends().run_health_check(true).await;
    assert!(lb.backends().ready(&backend(live)));
    assert!(!lb.backends().ready(&backend(dead)));
    for _ in 0..10 {
        assert_eq!(lb.select(b"", 8), Some(backend(live)));
    }
    accept_task.abort();
}

/// Records health flips.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<(Backend, bool)>>>);

impl Recorder {
    fn flips(&self) -> Vec<(Backend, bool)> {
        self.0.lock().expect("not poisoned").clone()
    }
}

#[async_trait]
impl HealthObserve for Recorder {
    async fn observe(&self, target: &Backend, healthy: bool) {
        self.0
            .lock()
            .expect("not poisoned")
            .push((target.clone(), healthy));
    }
}

#[tokio::test]
async fn tcp_threshold_and_observer() {
    let closed = closed_port();
    let addr = closed.addr;

    let recorder = Recorder::default();
    let mut check = TcpHealthCheck::new();
    check.consecutive_failure = 2;
    check.consecutive_success = 2;
    check.health_changed_callback = Some(Box::new(recorder.clone()));
    let mut lb: LoadBalancer<RoundRobin> = LoadBalancer::try_from_iter([addr]).expect("literal");
    lb.set_health_check(check);
    let target = backend(addr);

    lb.backends().run_health_check(false).await;
    assert!(
        lb.backends().ready(&target),
        "one failure is below the threshold"
    );
    lb.backends().run_health_check(false).await;
    assert!(!lb.backends().ready(&target), "two failures flip it");
    assert_eq!(recorder.flips(), vec![(target.clone(), false)]);

    // bring the port back
    let listener = closed.listen();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    lb.backends().run_health_check(false).await;
    assert!(
        !lb.backends().ready(&target),
        "one pass is below the threshold"
    );
    lb.backends().run_health_check(false).await;
    assert!(lb.backends().ready(&target));
    assert_eq!(
        recorder.flips(),
        vec![(target.clone(), false), (target.clone(), true)]
    );
    task.abort();
}
