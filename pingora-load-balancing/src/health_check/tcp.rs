//! [`TcpHealthCheck`]: a backend is healthy if a connection can be made.

use super::{threshold, HealthCheck, HealthObserveCallback};
use crate::Backend;
use async_trait::async_trait;
use pingora_core::connectors::TransportConnector;
use pingora_core::upstreams::peer::BasicPeer;
use pingora_error::Result;
use std::time::Duration;

/// Passes when a TCP connection (plus a TLS handshake when
/// `peer_template.sni` is set) to the backend succeeds. The connection is
/// closed right away; nothing is sent.
pub struct TcpHealthCheck {
    /// Consecutive passes needed to turn an unhealthy backend healthy.
    pub consecutive_success: usize,
    /// Consecutive failures needed to turn a healthy backend unhealthy.
    pub consecutive_failure: usize,
    /// Connection settings (timeouts, bind address, SNI). Its address is a
    /// placeholder replaced by each backend's address.
    pub peer_template: BasicPeer,
    /// Told whenever a backend's health flips.
    pub health_changed_callback: Option<HealthObserveCallback>,
    connector: TransportConnector,
}

impl Default for TcpHealthCheck {
    fn default() -> Self {
        let mut peer_template = BasicPeer::new("0.0.0.0:1");
        peer_template.options.connection_timeout = Some(Duration::from_secs(1));
        TcpHealthCheck {
            consecutive_success: 1,
            consecutive_failure: 1,
            peer_template,
            health_changed_callback: None,
            connector: TransportConnector::new(None),
        }
    }
}

impl TcpHealthCheck {
    /// A TCP check with a 1 second connect timeout that flips health after a
    /// single pass or failure.
    pub fn new() -> Box<Self> {
        Box::default()
    }

    /// Like [`TcpHealthCheck::new`], but also completes a TLS handshake using
    /// `sni` as the server name.
    pub fn new_tls(sni: &str) -> Box<Self> {
        let mut check = Self::default();
        check.peer_template.sni = sni.to_string();
        Box::new(check)
    }

    /// Connect through `connector` instead of a default one.
    pub fn set_connector(&mut self, connector: TransportConnector) {
        self.connector = connector;
    }
}

#[async_trait]
impl HealthCheck for TcpHealthCheck {
    async fn check(&self, target: &Backend) -> Result<()> {
        let mut peer = self.peer_template.clone();
        peer._address = target.addr.clone();
        // a fresh connection every time: a pooled one would hide an outage
        self.connector.new_stream(&peer).await.map(|_stream| ())
    }

    async fn health_status_change(&self, target: &Backend, healthy: bool) {
        if let Some(callback) = &self.health_changed_callback {
            callback.observe(target, healthy).await;
        }
    }

    fn health_threshold(&self, success: bool) -> usize {
        threshold(success, self.consecutive_success, self.consecutive_failure)
    }
}
