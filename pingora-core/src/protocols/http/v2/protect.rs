//! Per-connection protections of the HTTP/2 server: its limits (applied by
//! our codec, or handed to the `h2` crate), and a rapid-reset detector
//! (CVE-2023-44487).

use super::server::H2Options;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Limits of a downstream HTTP/2 connection. The defaults suit a public
/// reverse proxy; every field can be changed through
/// [`HttpServerOptions::h2_limits`](crate::apps::HttpServerOptions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct H2Limits {
    /// Streams a client may have open at once (`SETTINGS_MAX_CONCURRENT_STREAMS`).
    pub max_concurrent_streams: u32,
    /// Largest decoded header list accepted (`SETTINGS_MAX_HEADER_LIST_SIZE`).
    /// It also bounds CONTINUATION frames: a header block that keeps growing
    /// past it is refused as it arrives, whatever the number of frames.
    pub max_header_list_size: u32,
    /// Per-stream receive window: request body bytes a client may send
    /// before the proxy forwarded them.
    pub initial_window_size: u32,
    /// Receive window of the whole connection.
    pub initial_connection_window_size: u32,
    /// Response bytes queued for the socket, across the connection's
    /// streams, before a write waits (the `h2` crate, when an app configures
    /// it, applies this per stream).
    pub max_send_buffer_size: usize,
    /// For the `h2` crate: streams reset by the client before they were
    /// accepted that may be queued; more ends the connection with
    /// `ENHANCE_YOUR_CALM`. Our codec queues no such streams: their resets
    /// count towards [`Self::max_resets_per_window`].
    pub max_pending_accept_reset_streams: usize,
    /// Client resets tolerated per [`Self::reset_window`]; one more gets the
    /// connection a GOAWAY (`ENHANCE_YOUR_CALM`). 0 turns the check off.
    pub max_resets_per_window: u32,
    /// The window over which client resets are counted.
    pub reset_window: Duration,
}

impl Default for H2Limits {
    fn default() -> Self {
        H2Limits {
            max_concurrent_streams: 128,
            max_header_list_size: 64 * 1024,
            initial_window_size: 256 * 1024,
            initial_connection_window_size: 1024 * 1024,
            max_send_buffer_size: 256 * 1024,
            max_pending_accept_reset_streams: 32,
            max_resets_per_window: 200,
            reset_window: Duration::from_secs(1),
        }
    }
}

impl H2Limits {
    /// The `h2` server settings that enforce these limits.
    pub fn h2_options(&self) -> H2Options {
        let mut b = H2Options::new();
        b.max_concurrent_streams(self.max_concurrent_streams)
            .max_header_list_size(self.max_header_list_size)
            .initial_window_size(self.initial_window_size)
            .initial_connection_window_size(self.initial_connection_window_size)
            .max_send_buffer_size(self.max_send_buffer_size)
            .max_pending_accept_reset_streams(self.max_pending_accept_reset_streams);
        // RFC 8441: let clients open WebSockets with extended CONNECT (`:protocol`)
        b.enable_connect_protocol();
        b
    }
}

/// Counts the streams a client cancelled, in fixed windows. Shared by the
/// connection's accept loop and its stream sessions.
#[derive(Debug)]
pub struct ResetTracker {
    limit: u32,
    window: Duration,
    state: Mutex<(Instant, u32)>,
    /// Whether the last count was over the limit: the accept loop asks after
    /// every stream, and the answer is almost always "no" without the lock.
    over: AtomicBool,
}

impl ResetTracker {
    /// At most `limit` resets per `window` (`limit` 0: unlimited).
    pub fn new(limit: u32, window: Duration) -> Self {
        ResetTracker {
            limit,
            window,
            state: Mutex::new((Instant::now(), 0)),
            over: AtomicBool::new(false),
        }
    }

    /// Record one client reset; returns whether the limit is now exceeded.
    pub fn record(&self) -> bool {
        let mut state = self.state.lock();
        let now = Instant::now();
        if now.duration_since(state.0) > self.window {
            *state = (now, 0);
        }
        state.1 = state.1.saturating_add(1);
        let over = self.limit != 0 && state.1 > self.limit;
        self.over.store(over, Ordering::Relaxed);
        over
    }

    /// Whether the limit is exceeded in the current window.
    pub fn exceeded(&self) -> bool {
        // set under the lock by `record`, the only place the count grows
        if !self.over.load(Ordering::Relaxed) {
            return false;
        }
        let state = self.state.lock();
        self.limit != 0
            && state.1 > self.limit
            && Instant::now().duration_since(state.0) <= self.window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracker_counts_per_window() {
        let t = ResetTracker::new(3, Duration::from_secs(60));
        assert!(!t.record() && !t.record() && !t.record());
        assert!(!t.exceeded());
        assert!(t.record());
        assert!(t.exceeded());
        let off = ResetTracker::new(0, Duration::from_secs(60));
        assert!((0..1000).all(|_| !off.record()));
    }

    #[test]
    fn tracker_window_expires() {
        let t = ResetTracker::new(1, Duration::from_millis(1));
        t.record();
        std::thread::sleep(Duration::from_millis(5));
        assert!(!t.record());
    }
}
