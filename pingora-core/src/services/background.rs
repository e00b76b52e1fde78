//! Background services: work that runs beside the request path, such as
//! service discovery, health checks or pushing metrics.

use async_trait::async_trait;
use std::sync::Arc;

use super::Service;
use crate::server::{ListenFds, ShutdownWatch};

/// A task the server runs in the background.
#[async_trait]
pub trait BackgroundService {
    /// Run the task. It may return at any time, or run until `shutdown`
    /// turns `true`.
    async fn start(&self, mut shutdown: ShutdownWatch);
}

/// A [`Service`] that runs a [`BackgroundService`] task.
///
/// The task is kept behind an [`Arc`] so the rest of the program can share
/// it (e.g. a load balancer updated by its own health check).
pub struct GenBackgroundService<A> {
    name: String,
    task: Arc<A>,
    /// Threads of the service's runtime; 1 by default.
    pub threads: Option<usize>,
}

impl<A> GenBackgroundService<A> {
    /// A background service named `name` running `task`, on one thread.
    pub fn new(name: String, task: Arc<A>) -> Self {
        GenBackgroundService {
            name,
            task,
            threads: Some(1),
        }
    }

    /// The task, to share it with other parts of the program.
    pub fn task(&self) -> Arc<A> {
        self.task.clone()
    }
}

#[async_trait]
impl<A> Service for GenBackgroundService<A>
where
    A: BackgroundService + Send + Sync + 'static,
{
    async fn start_service(
        &mut self,
        _fds: Option<ListenFds>,
        shutdown: ShutdownWatch,
        _listeners_per_fd: usize,
    ) {
        self.task.start(shutdown).await;
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn threads(&self) -> Option<usize> {
        self.threads
    }
}

/// Wrap `task` in a [`GenBackgroundService`] named `BG <name>`.
pub fn background_service<SV>(name: &str, task: SV) -> GenBackgroundService<SV> {
    GenBackgroundService::new(format!("BG {name}"), Arc::new(task))
}
