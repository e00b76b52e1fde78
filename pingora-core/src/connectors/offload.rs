//! Dedicated runtimes for connection establishment, so CPU-heavy connects
//! (TLS handshakes) cannot starve request processing.

use once_cell::sync::OnceCell;
use tokio::runtime::{Builder, Handle, Runtime};

/// A set of lazily started multi-threaded runtimes; a peer is always handed
/// the same one (by its hash) so its connects share warm state.
pub(crate) struct OffloadRuntime {
    threads_per_pool: usize,
    pools: Box<[OnceCell<Runtime>]>,
}

impl OffloadRuntime {
    /// `pools` runtimes of `threads_per_pool` threads each (both at least 1).
    pub fn new(pools: usize, threads_per_pool: usize) -> Self {
        OffloadRuntime {
            threads_per_pool: threads_per_pool.max(1),
            pools: (0..pools.max(1)).map(|_| OnceCell::new()).collect(),
        }
    }

    /// The runtime serving `hash`, started on first use.
    pub fn get_runtime(&self, hash: u64) -> std::io::Result<Handle> {
        let cell = &self.pools[(hash % self.pools.len() as u64) as usize];
        let rt = cell.get_or_try_init(|| {
            Builder::new_multi_thread()
                .worker_threads(self.threads_per_pool)
                .thread_name("pingora-connect-offload")
                .enable_all()
                .build()
        })?;
        Ok(rt.handle().clone())
    }
}

impl Drop for OffloadRuntime {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside async code; let the
        // threads wind down in the background instead.
        for cell in self.pools.iter_mut() {
            if let Some(rt) = cell.take() {
                rt.shutdown_background();
            }
        }
    }
}
