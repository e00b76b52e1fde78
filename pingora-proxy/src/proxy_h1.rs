//! The HTTP/1 upstream exchange: send the request header, then stream the request body up and
//! the response down at the same time.
//!
//! Two halves run concurrently and talk through small bounded channels of [`HttpTask`]s:
//! the downstream half owns the client session (reads request body, runs the filters, writes
//! the response) and the upstream half owns the upstream connection (writes request body,
//! reads the response). Each half only takes a new item from its socket once the previous one
//! was handed over, so memory per request stays bounded whatever the body sizes, and neither
//! half can block the other: an upstream that answers before the upload ended still gets its
//! response through.

use bytes::Bytes;
use http::{Method, StatusCode, Version};
use log::debug;
use pingora_core::protocols::http::v1::client::HttpSession as HttpSessionV1;
use pingora_core::protocols::http::HttpTask;
use pingora_core::protocols::UniqueID;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorType, Result, RetryType};
use pingora_http::ResponseHeader;
use tokio::sync::mpsc;

use crate::proxy_common::{
    frame_response_for_client, prepare_upstream_request, strip_response_hop_by_hop,
};
use crate::{HttpProxy, ProxyHttp, Session};

/// How many tasks may wait in each direction between the two halves.
const TASK_BUFFER_SIZE: usize = 4;

/// Mark an upstream failure that happened before any response byte arrived on a pooled
/// connection as retryable: the origin most likely closed the idle connection meanwhile.
fn retry_if_stale(mut e: Box<Error>, reused: bool) -> Box<Error> {
    let stale_kind = matches!(
        e.etype(),
        ErrorType::ConnectionClosed | ErrorType::ReadError | ErrorType::WriteError
    );
    if reused && stale_kind && !e.retry() {
        e.retry = RetryType::ReusedOnly;
    }
    e.into_up()
}

/// Whether a response header is an interim (1xx) one that a final response will follow.
fn is_interim(resp: &ResponseHeader) -> bool {
    resp.status.is_informational() && resp.status != StatusCode::SWITCHING_PROTOCOLS
}

/// What the downstream half needs to know about the client request.
struct ClientRequest {
    method: Method,
    version: Version,
}

impl<SV> HttpProxy<SV>
where
    SV: ProxyHttp + Send + Sync + 'static,
    <SV as ProxyHttp>::CTX: Send + Sync,
{
    /// Proxy the request over the HTTP/1 upstream connection `client`.
    /// Returns (client connection reusable, upstream connection reusable, error).
    pub(crate) async fn proxy_to_h1_upstream(
        &self,
        session: &mut Session,
        client: &mut HttpSessionV1,
        reused: bool,
        peer: &HttpPeer,
        ctx: &mut SV::CTX,
    ) -> (bool, bool, Option<Box<Error>>) {
        let fd = client.id();
        if let Err(e) = self
            .inner
            .connected_to_upstream(session, reused, peer, fd, Some(client.digest()), ctx)
            .await
        {
            return (false, false, Some(e));
        }

        client.read_timeout = peer.options.read_timeout;
        client.write_timeout = peer.options.write_timeout;

        let mut req = session.req_header().clone();
        prepare_upstream_request(&mut req);
        if let Err(e) = self
            .inner
            .upstream_request_filter(session, &mut req, ctx)
            .await
        {
            // Nothing was sent: the upstream connection is still clean.
            return (false, true, Some(e));
        }
        debug!(
            "sending request header upstream: {} {}",
            req.method, req.uri
        );
        if let Err(e) = client.write_request_header(Box::new(req)).await {
            return (false, false, Some(retry_if_stale(e, reused)));
        }

        let client_req = ClientRequest {
            method: session.req_header().method.clone(),
            version: session.req_header().version,
        };
        // Keep a bounded copy of the body read so that a failed attempt can be retried.
        session.downstream_session.enable_retry_buffering();
        let (tx_resp, rx_resp) = mpsc::channel::<HttpTask>(TASK_BUFFER_SIZE);
        let (tx_body, rx_body) = mpsc::channel::<HttpTask>(TASK_BUFFER_SIZE);
        let res = tokio::try_join!(
            self.downstream_half(session, &client_req, tx_body, rx_resp, ctx),
            upstream_half(client, tx_resp, rx_body, reused),
        );
        match res {
            Ok((downstream_reuse, upstream_reuse)) => (downstream_reuse, upstream_reuse, None),
            Err(e) => (false, false, Some(e)),
        }
    }

    /// Read the request body from the client and pass it up; take response tasks from the
    /// upstream half, filter them and write them to the client. Returns whether the client
    /// connection is still usable for another request.
    async fn downstream_half(
        &self,
        session: &mut Session,
        client_req: &ClientRequest,
        tx_body: mpsc::Sender<HttpTask>,
        mut rx_resp: mpsc::Receiver<HttpTask>,
        ctx: &mut SV::CTX,
    ) -> Result<bool> {
        // The request body was read to its end.
        let mut request_complete = false;
        // No more request body will be read (complete, or the upstream stopped taking it).
        let mut request_done = false;
        let mut response_done = false;
        // A body piece read from the client, waiting for room in the channel.
        let mut pending: Option<HttpTask> = None;

        // On a retry, what was read of the body during earlier attempts goes first. A request
        // without body (or whose body was all read before) is ended right away.
        let replay = session.downstream_session.get_retry_buffer();
        let end = session.downstream_session.is_body_done();
        if replay.is_some() || end {
            let mut body = replay;
            self.inner
                .request_body_filter(session, &mut body, end, ctx)
                .await?;
            pending = Some(HttpTask::Body(body, end));
            request_done = end;
            request_complete = end;
        }

        while !response_done || !request_done || pending.is_some() {
            tokio::select! {
                // Once the body is complete this only watches for the client going away, so
                // that an abandoned request stops waiting for its upstream.
                body = session.downstream_session.read_body_or_idle(request_done),
                    if pending.is_none() && (!request_done || request_complete) =>
                {
                    let mut body = body.map_err(|e| e.into_down())?;
                    if request_done {
                        // Only the idle watch can get here, and it only returns errors.
                        continue;
                    }
                    let end = body.is_none() || session.downstream_session.is_body_done();
                    self.inner
                        .request_body_filter(session, &mut body, end, ctx)
                        .await?;
                    if end {
                        request_done = true;
                        request_complete = true;
                    }
                    if body.is_some() || end {
                        pending = Some(HttpTask::Body(body, end));
                    }
                }
                permit = tx_body.reserve(), if pending.is_some() => {
                    match permit {
                        Ok(permit) => {
                            if let Some(task) = pending.take() {
                                permit.send(task);
                            }
                        }
                        Err(_) => {
                            // The upstream half stopped taking the body (its connection failed
                            // or ended): stop reading it.
                            pending = None;
                            request_done = true;
                        }
                    }
                }
                task = rx_resp.recv(), if !response_done => {
                    let Some(task) = task else {
                        return Error::e_explain(
                            ErrorType::ConnectionClosed,
                            "upstream ended before the response was complete",
                        )
                        .map_err(|e| e.into_up());
                    };
                    response_done = self
                        .write_response_task(session, client_req, task, ctx)
                        .await?;
                }
            }
        }
        Ok(request_complete)
    }

    /// Filter one response task and write it to the client. Returns whether the response is
    /// now complete.
    async fn write_response_task(
        &self,
        session: &mut Session,
        client_req: &ClientRequest,
        task: HttpTask,
        ctx: &mut SV::CTX,
    ) -> Result<bool> {
        match task {
            HttpTask::Header(mut header, end) => {
                if is_interim(&header) {
                    session
                        .downstream_session
                        .write_response_header(header)
                        .await
                        .map_err(|e| e.into_down())?;
                    return Ok(false);
                }
                strip_response_hop_by_hop(&mut header);
                self.inner
                    .upstream_response_filter(session, &mut header, ctx)
                    .await?;
                self.inner
                    .response_filter(session, &mut header, ctx)
                    .await?;
                frame_response_for_client(&mut header, &client_req.method, client_req.version);
                session
                    .write_response_header(header, end)
                    .await
                    .map_err(|e| e.into_down())?;
                Ok(end)
            }
            HttpTask::Body(mut body, end) => {
                if let Some(b) = body.as_ref() {
                    session.add_upstream_body_bytes_received(b.len());
                }
                let upstream_delay = self
                    .inner
                    .upstream_response_body_filter(session, &mut body, end, ctx)?;
                let delay = self
                    .inner
                    .response_body_filter(session, &mut body, end, ctx)?;
                session
                    .write_response_body(body, end)
                    .await
                    .map_err(|e| e.into_down())?;
                if let Some(d) = upstream_delay.into_iter().chain(delay).max() {
                    tokio::time::sleep(d).await;
                }
                Ok(end)
            }
            HttpTask::Trailer(trailers) => {
                let Some(mut trailers) = trailers else {
                    session
                        .write_response_body(None, true)
                        .await
                        .map_err(|e| e.into_down())?;
                    return Ok(true);
                };
                self.inner
                    .upstream_response_trailer_filter(session, &mut trailers, ctx)?;
                let tail = self
                    .inner
                    .response_trailer_filter(session, &mut trailers, ctx)
                    .await?;
                let written = match tail {
                    // The filter folded the trailers into a last piece of body.
                    Some(tail) => session.write_response_body(Some(tail), true).await,
                    // Sent as chunked trailers (dropped when the body is not chunked).
                    None => {
                        session
                            .downstream_session
                            .write_response_trailers(*trailers)
                            .await
                    }
                };
                written.map_err(|e| e.into_down())?;
                Ok(true)
            }
            HttpTask::Done => {
                session
                    .write_response_body(None, true)
                    .await
                    .map_err(|e| e.into_down())?;
                Ok(true)
            }
            HttpTask::Failed(e) => Err(e),
        }
    }
}

/// Write the request body pieces coming from the downstream half to the upstream and read the
/// response, handing it to the downstream half. Returns whether the upstream connection can go
/// back to the pool.
async fn upstream_half(
    client: &mut HttpSessionV1,
    tx_resp: mpsc::Sender<HttpTask>,
    mut rx_body: mpsc::Receiver<HttpTask>,
    reused: bool,
) -> Result<bool> {
    let mut request_done = false;
    let mut response_done = false;
    let mut can_reuse = true;
    let mut header_seen = false;
    // A response task read from upstream, waiting for room in the channel.
    let mut pending: Option<HttpTask> = None;

    while !request_done || !response_done || pending.is_some() {
        tokio::select! {
            task = client.read_response_task(), if !response_done && pending.is_none() => {
                match task {
                    Ok(task) => {
                        if let HttpTask::Header(h, _) = &task {
                            header_seen |= !is_interim(h);
                        }
                        response_done = task.is_end();
                        pending = Some(task);
                    }
                    Err(e) => {
                        let e = if header_seen { e.into_up() } else { retry_if_stale(e, reused) };
                        pending = Some(HttpTask::Failed(e));
                        rx_body.close();
                        response_done = true;
                        // Whatever is left of the request cannot go anywhere useful.
                        request_done = true;
                        can_reuse = false;
                    }
                }
            }
            permit = tx_resp.reserve(), if pending.is_some() => {
                let Ok(permit) = permit else {
                    // The downstream half is gone (it failed): leave the connection unused.
                    return Ok(false);
                };
                if let Some(task) = pending.take() {
                    let failed = matches!(task, HttpTask::Failed(_));
                    permit.send(task);
                    if failed {
                        return Ok(false);
                    }
                }
            }
            body = rx_body.recv(), if !request_done => {
                match body {
                    Some(HttpTask::Body(data, end)) => {
                        if let Err(e) = send_body(client, data, end).await {
                            // The upstream may have answered early and closed; keep reading
                            // its response, but the connection is not reusable.
                            debug!("failed to send request body upstream: {e}");
                            rx_body.close();
                            request_done = true;
                            can_reuse = false;
                        } else if end {
                            request_done = true;
                        }
                    }
                    Some(_) => {}
                    None => {
                        // The downstream half stopped without ending the body.
                        request_done = true;
                        can_reuse = false;
                    }
                }
            }
        }
    }
    Ok(can_reuse)
}

/// Write one request body piece upstream, finishing the body when `end` is set.
async fn send_body(client: &mut HttpSessionV1, data: Option<Bytes>, end: bool) -> Result<()> {
    if let Some(data) = data.filter(|d| !d.is_empty()) {
        client.write_body(&data).await?;
    }
    if end {
        client.finish_body().await?;
    }
    Ok(())
}
