//! [`HttpHealthCheck`]: a backend is healthy if it answers a request as
//! expected.

use super::{threshold, BackendSummary, HealthCheck, HealthObserveCallback};
use crate::Backend;
use async_trait::async_trait;
use log::warn;
use pingora_core::connectors::http::Connector as HttpConnector;
use pingora_core::protocols::l4::socket::SocketAddr;
use pingora_core::upstreams::peer::{HttpPeer, Peer};
use pingora_error::{Error, ErrorType, OkOrErr, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use std::future::Future;
use std::time::Duration;

/// Decides whether a response passes the check.
pub type Validator = Box<dyn Fn(&ResponseHeader) -> Result<()> + Send + Sync>;

/// At most this much response body is read per check; a longer body fails
/// nothing but keeps the connection from being reused.
const MAX_DRAINED_BODY: usize = 64 * 1024;

/// Passes when the backend answers [`HttpHealthCheck::req`] with a `200`
/// (or with whatever [`HttpHealthCheck::validator`] accepts).
pub struct HttpHealthCheck {
    /// Consecutive passes needed to turn an unhealthy backend healthy.
    pub consecutive_success: usize,
    /// Consecutive failures needed to turn a healthy backend unhealthy.
    pub consecutive_failure: usize,
    /// Connection settings (timeouts, TLS, SNI). Its address is a placeholder
    /// replaced by each backend's address.
    pub peer_template: HttpPeer,
    /// Keep the connection for the next check. `false` (the default) makes
    /// every check go through a fresh TCP (and TLS) handshake, which catches
    /// failures an established connection would hide.
    pub reuse_connection: bool,
    /// The request sent to the backend.
    pub req: RequestHeader,
    /// Custom acceptance of the response header; `None` accepts exactly
    /// status 200.
    pub validator: Option<Validator>,
    /// Check this port of the backend's IP instead of the backend's own port,
    /// for services whose health endpoint listens elsewhere.
    pub port_override: Option<u16>,
    /// Told whenever a backend's health flips.
    pub health_changed_callback: Option<HealthObserveCallback>,
    /// Custom naming of backends in health logs.
    pub backend_summary_callback: Option<BackendSummary>,
    connector: HttpConnector,
}

impl HttpHealthCheck {
    /// A check sending `GET /` with `Host: host`, over TLS with `host` as
    /// SNI when `tls`, with 1 second connect and read timeouts, flipping
    /// health after a single pass or failure, and accepting only a 200.
    pub fn new(host: &str, tls: bool) -> Self {
        let mut req =
            RequestHeader::build("GET", b"/", None).expect("a GET of / is a valid request line");
        if req.append_header("Host", host).is_err() {
            // leave the request without Host rather than fail construction:
            // the check will then report what the backend thinks of it
            warn!("health check host {host:?} is not a valid Host header value");
        }
        let sni = if tls { host.to_string() } else { String::new() };
        let mut peer_template = HttpPeer::new("0.0.0.0:1", tls, sni);
        peer_template.options.connection_timeout = Some(Duration::from_secs(1));
        peer_template.options.read_timeout = Some(Duration::from_secs(1));
        HttpHealthCheck {
            consecutive_success: 1,
            consecutive_failure: 1,
            peer_template,
            reuse_connection: false,
            req,
            validator: None,
            port_override: None,
            health_changed_callback: None,
            backend_summary_callback: None,
            connector: HttpConnector::new(None),
        }
    }

    /// Connect through `connector` instead of a default one.
    pub fn set_connector(&mut self, connector: HttpConnector) {
        self.connector = connector;
    }

    fn validate(&self, resp: &ResponseHeader) -> Result<()> {
        match &self.validator {
            Some(validator) => validator(resp),
            None if resp.status == 200 => Ok(()),
            None => Error::e_explain(
                ErrorType::CustomCode("non 200 code", resp.status.as_u16()),
                "during http healthcheck",
            ),
        }
    }
}

/// `fut`, failing with `ReadTimedout` if it takes longer than `limit`.
async fn within<T>(limit: Option<Duration>, fut: impl Future<Output = Result<T>>) -> Result<T> {
    match limit {
        Some(limit) => match tokio::time::timeout(limit, fut).await {
            Ok(result) => result,
            Err(_) => Error::e_explain(ErrorType::ReadTimedout, "during http healthcheck"),
        },
        None => fut.await,
    }
}

#[async_trait]
impl HealthCheck for HttpHealthCheck {
    async fn check(&self, target: &Backend) -> Result<()> {
        let mut peer = self.peer_template.clone();
        peer._address = target.addr.clone();
        if let (Some(port), SocketAddr::Inet(addr)) = (self.port_override, &mut peer._address) {
            addr.set_port(port);
        }
        let read_timeout = peer.options.read_timeout;

        let (mut session, _reused) = self.connector.get_http_session(&peer).await?;
        session
            .write_request_header(Box::new(self.req.clone()))
            .await?;
        within(read_timeout, session.read_response_header()).await?;
        let resp = session.response_header().or_err(
            ErrorType::InternalError,
            "no response header after reading it",
        )?;
        self.validate(resp)?;

        // read the body so the connection is clean for reuse
        let mut drained = 0;
        let mut complete = true;
        while let Some(chunk) = within(read_timeout, session.read_response_body()).await? {
            drained += chunk.len();
            if drained > MAX_DRAINED_BODY {
                complete = false;
                break;
            }
        }
        if self.reuse_connection && complete {
            let idle_timeout = peer.idle_timeout();
            self.connector
                .release_http_session(session, &peer, idle_timeout)
                .await;
        }
        Ok(())
    }

    async fn health_status_change(&self, target: &Backend, healthy: bool) {
        if let Some(callback) = &self.health_changed_callback {
            callback.observe(target, healthy).await;
        }
    }

    fn backend_summary(&self, target: &Backend) -> String {
        match &self.backend_summary_callback {
            Some(summary) => summary(target),
            None => format!("{target:?}"),
        }
    }

    fn health_threshold(&self, success: bool) -> usize {
        threshold(success, self.consecutive_success, self.consecutive_failure)
    }
}
