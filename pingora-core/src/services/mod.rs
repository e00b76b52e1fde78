//! Services: long running units of work owned by a [`Server`](crate::server::Server).
//!
//! * [`listening::Service`] accepts connections on its endpoints and hands
//!   them to an app;
//! * [`background::GenBackgroundService`] runs a task beside the others
//!   (health checks, discovery, metrics push, ...).

use async_trait::async_trait;

use crate::server::{ListenFds, ShutdownWatch};

pub mod background;
pub mod listening;

/// Something the server runs until it shuts down.
#[async_trait]
pub trait Service: Sync + Send {
    /// Run the service; called once, on the service's own runtime.
    ///
    /// - `fds`: the process's table of listening sockets. A service reuses
    ///   the socket recorded for an address it listens on, and records the
    ///   ones it binds, so they can be handed to the next process on upgrade.
    /// - `shutdown`: turns `true` when the server starts to shut down.
    /// - `listeners_per_fd`: how many accept tasks to run per socket.
    async fn start_service(
        &mut self,
        fds: Option<ListenFds>,
        mut shutdown: ShutdownWatch,
        listeners_per_fd: usize,
    );

    /// The name, used in logs and to name the service's threads (only the
    /// first 15 characters appear in thread names).
    fn name(&self) -> &str;

    /// Threads this service wants; `None` follows the server's `threads`.
    fn threads(&self) -> Option<usize> {
        None
    }
}
