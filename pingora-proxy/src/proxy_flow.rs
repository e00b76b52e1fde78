//! The request flow around the upstream exchange: filters before it, upstream selection with
//! retries, error handling and the final logging phase.

use http::{header, StatusCode};
use log::{debug, error, warn};
use once_cell::sync::Lazy;
use pingora_core::apps::{HttpPersistentSettings, ReusedHttpStream};
use pingora_core::protocols::http::client::HttpSession as ClientSession;
use pingora_core::upstreams::peer::Peer;
use pingora_error::{Error, ErrorSource, ErrorType};
use pingora_http::ResponseHeader;
use std::sync::Arc;

use crate::{HttpProxy, ProxyHttp, Session};

/// Sent when [`ProxyHttp::proxy_upstream_filter`] declines to go upstream without answering.
static BAD_GATEWAY: Lazy<ResponseHeader> = Lazy::new(|| {
    let mut resp = ResponseHeader::build(StatusCode::BAD_GATEWAY, Some(2))
        .expect("a static status builds a response header");
    // These literal headers are valid; failing here would be a bug caught by every test.
    resp.insert_header(header::CONTENT_LENGTH, 0)
        .expect("valid content-length");
    resp.insert_header(header::CACHE_CONTROL, "private, no-store")
        .expect("valid cache-control");
    resp
});

impl<SV> HttpProxy<SV>
where
    SV: ProxyHttp + Send + Sync + 'static,
    <SV as ProxyHttp>::CTX: Send + Sync,
{
    /// Run every phase for one request whose header was read. Returns the client connection
    /// when it can serve another request.
    pub(crate) async fn process_request(
        self: &Arc<Self>,
        mut session: Session,
        mut ctx: SV::CTX,
    ) -> Option<ReusedHttpStream> {
        if let Err(e) = self
            .inner
            .early_request_filter(&mut session, &mut ctx)
            .await
        {
            return self
                .handle_error(session, &mut ctx, e, "Fail to early filter request:")
                .await;
        }

        // HTTP modules (ProxyHttp::init_downstream_modules) see the request header next.
        if !session.downstream_modules_ctx.is_empty() {
            let req = session.downstream_session.req_header_mut();
            if let Err(e) = session
                .downstream_modules_ctx
                .request_header_filter(req)
                .await
            {
                return self
                    .handle_error(session, &mut ctx, e, "Failed in downstream modules:")
                    .await;
            }
        }

        match self.inner.request_filter(&mut session, &mut ctx).await {
            Ok(true) => {
                // The filter answered the request itself.
                return self.finish(session, &mut ctx, true, None).await;
            }
            Ok(false) => {}
            Err(e) => {
                return self
                    .handle_error(session, &mut ctx, e, "Fail to filter request:")
                    .await;
            }
        }

        match self
            .inner
            .proxy_upstream_filter(&mut session, &mut ctx)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                if session.response_written().is_none() {
                    if let Err(e) = session.write_response_header_ref(&BAD_GATEWAY, true).await {
                        return self
                            .handle_error(
                                session,
                                &mut ctx,
                                e,
                                "Error responding with Bad Gateway:",
                            )
                            .await;
                    }
                }
                return self.finish(session, &mut ctx, true, None).await;
            }
            Err(e) => {
                return self
                    .handle_error(
                        session,
                        &mut ctx,
                        e,
                        "Error deciding if we should proxy to upstream:",
                    )
                    .await;
            }
        }

        let mut tries: usize = 0;
        let mut server_reuse = false;
        let mut proxy_error: Option<Box<Error>> = None;
        while tries < self.max_retries {
            tries += 1;
            let (reuse, err) = self.proxy_to_upstream(&mut session, &mut ctx).await;
            server_reuse = reuse;
            let Some(e) = err else {
                proxy_error = None;
                break;
            };
            // Never once the client got part of a response, nor when the body read so far can
            // no longer be replayed.
            let retry = e.retry()
                && session.response_written().is_none()
                && session.request_body_replayable();
            if retry && tries < self.max_retries {
                warn!(
                    "Fail to proxy: {e}, tries: {tries}, retry: true, {}",
                    self.inner.request_summary(&session, &ctx)
                );
            }
            proxy_error = Some(e);
            if !retry {
                break;
            }
        }

        if let Some(e) = proxy_error.as_deref() {
            let res = self.inner.fail_to_proxy(&mut session, e, &mut ctx).await;
            if !self.inner.suppress_error_log(&session, &ctx, e) {
                error!(
                    "Fail to proxy: {e}, status: {}, tries: {tries}, retry: false, {}",
                    res.error_code,
                    self.inner.request_summary(&session, &ctx)
                );
            }
            server_reuse = false;
        }
        self.finish(session, &mut ctx, server_reuse, proxy_error)
            .await
    }

    /// One attempt: pick a peer, connect (or reuse a pooled connection), exchange the request
    /// and response. Returns whether the client connection may be reused, and the error if any.
    async fn proxy_to_upstream(
        &self,
        session: &mut Session,
        ctx: &mut SV::CTX,
    ) -> (bool, Option<Box<Error>>) {
        let peer = match self.inner.upstream_peer(session, ctx).await {
            Ok(p) => p,
            Err(e) => return (false, Some(e)),
        };

        // The session (a large value) stays where the connector's answer landed: borrowed
        // for the exchange, and only moved out to be handed back.
        let mut got = self.client_upstream.get_http_session(&*peer).await;
        let (client_session, client_reused) = match &mut got {
            Ok((s, reused)) => (s, *reused),
            Err(e) => {
                let e = std::mem::replace(e, Error::new(ErrorType::InternalError));
                let e = self.inner.fail_to_connect(session, &peer, ctx, e.into_up());
                return (false, Some(e.into_up()));
            }
        };

        match client_session {
            ClientSession::H1(h1) => {
                let (server_reuse, client_reuse, error) = self
                    .proxy_to_h1_upstream(session, h1, client_reused, &peer, ctx)
                    .await;
                // Pooled right here when it is clean (the usual case), without moving the
                // session into a release future.
                let idle = peer.idle_timeout();
                let unclean = match got {
                    Ok((ClientSession::H1(h1), _)) if client_reuse && error.is_none() => self
                        .client_upstream
                        .release_reusable_h1_session(h1, &*peer, idle)
                        .map(ClientSession::H1),
                    // closed now, before the error is handled
                    got => {
                        drop(got);
                        None
                    }
                };
                if let Some(unclean) = unclean {
                    self.client_upstream
                        .release_http_session(unclean, &*peer, idle)
                        .await;
                }
                let error = error.map(|e| {
                    self.inner
                        .error_while_proxy(&peer, session, e, ctx, client_reused)
                });
                (server_reuse, error)
            }
            ClientSession::H2(h2) => {
                let (server_reuse, error) = self
                    .proxy_to_h2_upstream(session, h2, client_reused, &peer, ctx)
                    .await;
                match got {
                    Ok((client_session, _)) if error.is_none() => {
                        self.client_upstream
                            .release_http_session(client_session, &*peer, peer.idle_timeout())
                            .await;
                    }
                    // reset the stream (if still open) before handling the error
                    got => drop(got),
                }
                let error = error.map(|e| {
                    if e.etype() == &ErrorType::H2Downgrade {
                        // the upstream asked for HTTP/1.1: use it from now on (retried)
                        self.client_upstream.prefer_h1(&*peer);
                    }
                    self.inner
                        .error_while_proxy(&peer, session, e, ctx, client_reused)
                });
                (server_reuse, error)
            }
        }
    }

    /// Handle a failure before any upstream was involved: answer, log, run `logging`.
    async fn handle_error(
        &self,
        mut session: Session,
        ctx: &mut SV::CTX,
        e: Box<Error>,
        context: &str,
    ) -> Option<ReusedHttpStream> {
        let res = self.inner.fail_to_proxy(&mut session, &e, ctx).await;
        if !self.inner.suppress_error_log(&session, ctx, &e) {
            error!(
                "{context} {e}, status: {}, {}",
                res.error_code,
                self.inner.request_summary(&session, ctx)
            );
        }
        self.finish(session, ctx, res.can_reuse_downstream, Some(e))
            .await
    }

    /// The end of every request: the `logging` phase, then hand the client connection back
    /// for its next request when `reuse` allows and the session agrees.
    async fn finish(
        &self,
        mut session: Session,
        ctx: &mut SV::CTX,
        reuse: bool,
        error: Option<Box<Error>>,
    ) -> Option<ReusedHttpStream> {
        self.inner
            .logging(&mut session, error.as_deref(), ctx)
            .await;
        if !reuse {
            if let Some(e) = error.as_deref() {
                if *e.esource() != ErrorSource::Downstream {
                    debug!("closing client connection after error: {e}");
                }
            }
            // shut down (lingering while the client may still be sending) rather than
            // drop: a reset could destroy the response the client has not read yet
            session.downstream_session.shutdown().await;
            return None;
        }
        let settings = HttpPersistentSettings::for_session(&session.downstream_session);
        match session.downstream_session.finish().await {
            Ok(stream) => stream.map(|s| ReusedHttpStream::new(s, Some(settings))),
            Err(e) => {
                debug!("client connection not reusable: {e}");
                None
            }
        }
    }
}
