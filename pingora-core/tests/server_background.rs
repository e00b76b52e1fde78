//! Background services run beside the others and see the shutdown.

mod server_common;

use async_trait::async_trait;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::{Server, ShutdownSignal, ShutdownWatch};
use pingora_core::services::background::{background_service, BackgroundService};
use pingora_core::services::Service;
use server_common::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Ticker {
    ticks: AtomicUsize,
    saw_shutdown: AtomicBool,
}

#[async_trait]
impl BackgroundService for Ticker {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            tokio::select! {
                _ = shutdown.changed() => {
                    if *shutdown.borrow() {
                        self.saw_shutdown.store(true, Ordering::SeqCst);
                        return;
                    }
                }
                _ = tokio::time::sleep(Duration::from_millis(10)) => {
                    self.ticks.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    }
}

#[test]
fn background_service_runs_and_sees_shutdown() {
    let service = background_service("ticker", Ticker::default());
    assert_eq!(service.name(), "BG ticker");
    assert_eq!(service.threads(), Some(1));
    let task = service.task();

    let conf = ServerConf {
        // Runtimes drop their tasks when they stop: a background task only
        // sees the shutdown if it is polled during the grace period, so the
        // grace period must not be zero (a busy machine may not get to it).
        grace_period_seconds: Some(1),
        graceful_shutdown_timeout_seconds: Some(1),
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    server.add_services(vec![Box::new(service)]);
    let running = Running::start(server);

    let start = Instant::now();
    while task.ticks.load(Ordering::SeqCst) < 3 {
        assert!(start.elapsed() < WAIT, "background task not running");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!task.saw_shutdown.load(Ordering::SeqCst));
    running.send(ShutdownSignal::GracefulTerminate);
    running.wait_exit(WAIT);
    assert!(task.saw_shutdown.load(Ordering::SeqCst));
}
