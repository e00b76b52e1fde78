use super::*;
use crate::discovery::Static;
use async_trait::async_trait;
use pingora_error::{Error, ErrorType};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

fn b(addr: &str) -> Backend {
    Backend::new(addr).expect("valid address")
}

/// Fails for the backends listed in `down`; records flips.
#[derive(Default)]
struct Scripted {
    down: Mutex<BTreeSet<Backend>>,
    threshold: usize,
    checks: AtomicUsize,
    flips: Mutex<Vec<(Backend, bool)>>,
}

#[async_trait]
impl HealthCheck for Scripted {
    async fn check(&self, target: &Backend) -> Result<()> {
        self.checks.fetch_add(1, Ordering::SeqCst);
        let down = self.down.lock().expect("not poisoned").contains(target);
        if down {
            Error::e_explain(ErrorType::ConnectRefused, "scripted failure")
        } else {
            Ok(())
        }
    }

    async fn health_status_change(&self, target: &Backend, healthy: bool) {
        self.flips
            .lock()
            .expect("not poisoned")
            .push((target.clone(), healthy));
    }

    fn health_threshold(&self, _success: bool) -> usize {
        self.threshold
    }
}

/// Lets a test keep a handle on the check after boxing it into `Backends`.
struct Shared(Arc<Scripted>);

#[async_trait]
impl HealthCheck for Shared {
    async fn check(&self, target: &Backend) -> Result<()> {
        self.0.check(target).await
    }
    async fn health_status_change(&self, target: &Backend, healthy: bool) {
        self.0.health_status_change(target, healthy).await
    }
    fn health_threshold(&self, success: bool) -> usize {
        self.0.health_threshold(success)
    }
}

fn backends_with(addrs: &[&str], check: Option<Arc<Scripted>>) -> Backends {
    let set = addrs.iter().map(|a| b(a)).collect();
    let mut backends = Backends::new(Static::new(set));
    if let Some(check) = check {
        backends.set_health_check(Box::new(Shared(check)));
    }
    backends
}

#[tokio::test]
async fn update_calls_back_only_on_change() {
    let backends = Backends::new(Static::new(BTreeSet::from([b("10.0.0.1:80")])));
    let calls = AtomicUsize::new(0);
    let count = |_: Arc<BTreeSet<Backend>>| {
        calls.fetch_add(1, Ordering::SeqCst);
    };
    backends.update(count).await.expect("static");
    backends.update(count).await.expect("static");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(*backends.get_backend(), BTreeSet::from([b("10.0.0.1:80")]));
}

#[tokio::test]
async fn ready_without_health_check() {
    let backends = backends_with(&["10.0.0.1:80"], None);
    backends.update(|_| {}).await.expect("static");
    assert!(backends.ready(&b("10.0.0.1:80")));
    // unknown backends are ready when nothing checks health
    assert!(backends.ready(&b("10.9.9.9:80")));
    backends.set_enable(&b("10.0.0.1:80"), false);
    assert!(!backends.ready(&b("10.0.0.1:80")));
    backends.set_enable(&b("10.0.0.1:80"), true);
    assert!(backends.ready(&b("10.0.0.1:80")));
}

#[tokio::test]
async fn health_flips_after_threshold_and_reports() {
    for parallel in [false, true] {
        let check = Arc::new(Scripted {
            threshold: 2,
            ..Default::default()
        });
        let backends = backends_with(&["10.0.0.1:80", "10.0.0.2:80"], Some(check.clone()));
        backends.update(|_| {}).await.expect("static");
        assert!(
            !backends.ready(&b("10.9.9.9:80")),
            "unknown is not ready under checks"
        );

        check
            .down
            .lock()
            .expect("not poisoned")
            .insert(b("10.0.0.2:80"));
        backends.run_health_check(parallel).await;
        assert!(
            backends.ready(&b("10.0.0.2:80")),
            "one failure is below threshold"
        );
        backends.run_health_check(parallel).await;
        assert!(!backends.ready(&b("10.0.0.2:80")));
        assert!(backends.ready(&b("10.0.0.1:80")));
        assert_eq!(check.checks.load(Ordering::SeqCst), 4);
        assert_eq!(
            *check.flips.lock().expect("not poisoned"),
            vec![(b("10.0.0.2:80"), false)]
        );

        check.down.lock().expect("not poisoned").clear();
        backends.run_health_check(parallel).await;
        backends.run_health_check(parallel).await;
        assert!(backends.ready(&b("10.0.0.2:80")));
        assert_eq!(check.flips.lock().expect("not poisoned").len(), 2);
    }
}

#[tokio::test]
async fn health_survives_set_changes() {
    let check = Arc::new(Scripted {
        threshold: 1,
        ..Default::default()
    });
    let discovery = Static::new(BTreeSet::from([b("10.0.0.1:80"), b("10.0.0.2:80")]));
    let rebuilt = AtomicBool::new(false);
    let mut backends = Backends::new(discovery);
    backends.set_health_check(Box::new(Shared(check.clone())));
    backends.update(|_| {}).await.expect("static");
    check
        .down
        .lock()
        .expect("not poisoned")
        .insert(b("10.0.0.2:80"));
    backends.run_health_check(false).await;
    assert!(!backends.ready(&b("10.0.0.2:80")));

    // a new set that keeps 10.0.0.2 keeps its (bad) health
    backends.do_update(
        BTreeSet::from([b("10.0.0.2:80"), b("10.0.0.3:80")]),
        HashMap::new(),
        |_| rebuilt.store(true, Ordering::SeqCst),
    );
    assert!(rebuilt.load(Ordering::SeqCst));
    assert!(!backends.ready(&b("10.0.0.2:80")));
    assert!(
        backends.ready(&b("10.0.0.3:80")),
        "new backends start healthy"
    );
    assert!(
        !backends.ready(&b("10.0.0.1:80")),
        "removed backend is unknown"
    );
}

#[tokio::test]
async fn enablement_from_discovery() {
    let backends = backends_with(&["10.0.0.1:80"], None);
    let target = b("10.0.0.1:80");
    backends.do_update(
        BTreeSet::from([target.clone()]),
        HashMap::from([(target.hash_key(), false)]),
        |_| {},
    );
    assert!(!backends.ready(&target));
    // same set, enablement only
    backends.do_update(
        BTreeSet::from([target.clone()]),
        HashMap::from([(target.hash_key(), true)]),
        |_| panic!("the set did not change"),
    );
    assert!(backends.ready(&target));
}
