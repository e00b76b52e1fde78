//! The HTTP/1 upstream exchange: send the request header, then stream the request body up and
//! the response down at the same time.
//!
//! Two halves run concurrently and talk through small bounded channels of [`HttpTask`]s:
//! the downstream half owns the client session (reads request body, runs the filters, writes
//! the response) and the upstream half owns the upstream connection (writes request body,
//! reads the response). Each half only takes a new item from its socket once the previous one
//! was handed over, so memory per request stays bounded whatever the body sizes, and neither
//! half can block the other: an upstream that answers before the upload ended still gets its
//! response through. The downstream half here also serves HTTP/2 upstreams (`proxy_h2`).

use bytes::Bytes;
use http::{header, Method, StatusCode, Version};
use log::debug;
use pingora_core::protocols::http::v1::client::HttpSession as HttpSessionV1;
use pingora_core::protocols::http::HttpTask;
use pingora_core::protocols::UniqueID;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorType, Result, RetryType};
use pingora_http::{RequestHeader, ResponseHeader};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::proxy_common::{
    frame_response_for_client, prepare_upstream_request, request_body_tasks,
    strip_response_hop_by_hop,
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

/// How long an upgraded (e.g. WebSocket) connection may stay without a byte in either
/// direction when the peer sets no `read_timeout`.
pub(crate) const DEFAULT_TUNNEL_IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// What the downstream half needs to know about the client request.
pub(crate) struct ClientRequest {
    pub(crate) method: Method,
    pub(crate) version: Version,
    /// The client asked to switch protocols (and sent no body), so a `101` answer turns the
    /// exchange into a byte tunnel.
    pub(crate) upgrade: bool,
    /// The upgrade came as an HTTP/2 extended CONNECT: the client gets `200` for the
    /// upstream's `101`, and the tunnel runs over its stream.
    pub(crate) extended_connect: bool,
    /// How long a tunnel may stay idle in both directions before it is closed.
    pub(crate) tunnel_idle: Duration,
}

/// Wait until `at` (forever when `None`). An `async fn`, so that building it in every
/// `select!` round costs nothing until a tunnel actually polls it.
async fn idle_deadline(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Put back the `Upgrade` request header (and the `Connection: upgrade` option that makes it
/// mean something) that the hop-by-hop cleanup removed: an upgrade is negotiated hop by hop,
/// and a proxy that tunnels the result has to ask its upstream for the same switch.
fn restore_upgrade_request(client_req: &RequestHeader, upstream_req: &mut RequestHeader) {
    for value in client_req.headers.get_all(header::UPGRADE) {
        let _ = upstream_req.append_header(header::UPGRADE, value.clone());
    }
    let _ = upstream_req.insert_header(header::CONNECTION, "upgrade");
}

/// Turn an HTTP/2 extended CONNECT (RFC 8441) for `protocol` into the HTTP/1.1 upgrade
/// request an upstream understands: `GET` with `Upgrade: <protocol>`, and for WebSocket the
/// `Sec-WebSocket-Key` nonce HTTP/2 clients do not send (the version, subprotocols and
/// extensions headers are the same in both).
fn extended_connect_to_upgrade(protocol: &str, upstream_req: &mut RequestHeader) {
    upstream_req.set_method(Method::GET);
    // The CONNECT stream is not a request body: what follows the switch is tunnel bytes.
    upstream_req.remove_header(&header::TRANSFER_ENCODING);
    upstream_req.remove_header(&header::CONTENT_LENGTH);
    let _ = upstream_req.insert_header(header::UPGRADE, protocol);
    let _ = upstream_req.insert_header(header::CONNECTION, "upgrade");
    if protocol.eq_ignore_ascii_case("websocket")
        && !upstream_req.headers.contains_key(header::SEC_WEBSOCKET_KEY)
    {
        let _ = upstream_req.insert_header(header::SEC_WEBSOCKET_KEY, websocket_key());
    }
}

/// A fresh `Sec-WebSocket-Key`: 16 unpredictable bytes, base64-encoded. The key is a nonce
/// for the handshake, not a secret: the standard library's per-process random hash keys are
/// enough.
fn websocket_key() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut bytes = [0u8; 16];
    for (i, half) in bytes.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(i);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        h.write_u128(now.map_or(0, |d| d.as_nanos()));
        half.copy_from_slice(&h.finish().to_le_bytes());
    }
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut key = String::with_capacity(24);
    for group in bytes.chunks(3) {
        let n = group
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= group.len() {
                key.push(B64[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                key.push('=');
            }
        }
    }
    key
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
        // WebSocket and other HTTP/1.1 upgrades: only a bodiless request can become a tunnel
        // (the bytes after its head belong to the new protocol).
        let extended_connect = session
            .downstream_session
            .extended_connect_protocol()
            .map(str::to_string);
        let upgrade = extended_connect.is_some()
            || (session.is_upgrade_req() && session.downstream_session.is_body_empty());
        match extended_connect.as_deref() {
            Some(protocol) => extended_connect_to_upgrade(protocol, &mut req),
            None if upgrade => restore_upgrade_request(session.req_header(), &mut req),
            None => {}
        }
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
        crate::write_batching::before_send_for(&session.downstream_session).await;
        if let Err(e) = client.write_request_header(Box::new(req)).await {
            return (false, false, Some(retry_if_stale(e, reused)));
        }

        let client_req = ClientRequest {
            method: session.req_header().method.clone(),
            version: session.req_header().version,
            upgrade,
            extended_connect: extended_connect.is_some(),
            tunnel_idle: peer
                .options
                .read_timeout
                .unwrap_or(DEFAULT_TUNNEL_IDLE_TIMEOUT),
        };
        // Keep a bounded copy of the body read so that a failed attempt can be retried (not
        // for an upgrade: what it sends later are tunnel bytes, never replayed).
        if !upgrade {
            session.downstream_session.enable_retry_buffering();
            if client_req.method != Method::CONNECT
                && session.downstream_session.is_body_done()
                && session
                    .downstream_session
                    .get_retry_buffer()
                    .is_none_or(|b| b.is_empty())
            {
                return self
                    .exchange_without_body(session, client, &client_req, reused, ctx)
                    .await;
            }
        }
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

    /// The exchange of a request that has no body left to send (none at all, or one already
    /// read to its end without a byte of it to replay): no channels and no second half, the
    /// end of the request goes up and the response is relayed piece by piece, while the
    /// client is watched for going away whenever the upstream keeps us waiting. Returns the
    /// same triple as [`Self::proxy_to_h1_upstream`].
    async fn exchange_without_body(
        &self,
        session: &mut Session,
        client: &mut HttpSessionV1,
        client_req: &ClientRequest,
        reused: bool,
        ctx: &mut SV::CTX,
    ) -> (bool, bool, Option<Box<Error>>) {
        let mut body = None;
        if let Err(e) = self
            .request_body_filters(session, &mut body, true, ctx)
            .await
        {
            return (false, false, Some(e));
        }
        let mut can_reuse = true;
        let (first, second) = request_body_tasks(session, body, true);
        for task in [first, second].into_iter().flatten() {
            let sent = match task {
                HttpTask::Body(data, end) => send_body(client, data, end).await,
                // An HTTP/2 client's request trailers (dropped unless chunked).
                HttpTask::Trailer(Some(trailers)) => {
                    client.write_trailers(&trailers).await.map(|_| ())
                }
                _ => Ok(()),
            };
            if let Err(e) = sent {
                // The upstream may have answered already and closed: its response is still
                // read, but the connection is not reused.
                debug!("failed to end the request upstream: {e}");
                can_reuse = false;
                break;
            }
        }

        let mut header_seen = false;
        loop {
            // The upstream first: when its answer is ready the client is not looked at.
            let read = tokio::select! {
                biased;
                task = client.read_response_task_owned() => task,
                idle = session.downstream_session.read_body_or_idle(true) => match idle {
                    // It only ever returns errors (the client went away or broke).
                    Err(e) => return (false, false, Some(e.into_down())),
                    Ok(_) => continue,
                },
            };
            let task = match read {
                Ok(task) => task,
                Err(e) => {
                    let e = if header_seen {
                        e.into_up()
                    } else {
                        retry_if_stale(e, reused)
                    };
                    return (false, false, Some(e));
                }
            };
            if let HttpTask::Header(h, _) = &task {
                header_seen |= !is_interim(h);
            }
            match self
                .write_response_task(session, client_req, task, ctx)
                .await
            {
                Ok(true) => return (true, can_reuse, None),
                Ok(false) => {}
                Err(e) => return (false, false, Some(e)),
            }
        }
    }

    /// Read the request body from the client and pass it up; take response tasks from the
    /// upstream half, filter them and write them to the client. Returns whether the client
    /// connection is still usable for another request. Serves HTTP/1 and HTTP/2 upstreams
    /// alike (the HTTP/2 one never asks for an upgrade).
    pub(crate) async fn downstream_half(
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
        // The request trailers, sent once the last piece of body went.
        let mut queued: Option<HttpTask> = None;

        // On a retry, what was read of the body during earlier attempts goes first. A request
        // without body (or whose body was all read before) is ended right away.
        let replay = session.downstream_session.get_retry_buffer();
        let end = session.downstream_session.is_body_done();
        // An upgrade request keeps its upstream body open until the answer is known: a `101`
        // turns the rest of both streams into tunnel bytes, anything else ends it (below).
        let mut awaiting_upgrade = client_req.upgrade && replay.is_none();
        // Set once a `101` was relayed: the exchange is a byte tunnel from then on.
        let mut tunnel = false;
        // When an idle tunnel gets closed; pushed back by traffic either way.
        let mut tunnel_deadline: Option<Instant> = None;
        if awaiting_upgrade {
            // Nothing to read before the answer; just watch for the client going away.
            request_done = true;
            request_complete = true;
        } else if replay.is_some() || end {
            let mut body = replay;
            self.request_body_filters(session, &mut body, end, ctx)
                .await?;
            (pending, queued) = request_body_tasks(session, body, end);
            request_done = end;
            request_complete = end;
        }

        while !response_done || !request_done || pending.is_some() {
            if tunnel && response_done {
                // The upstream closed its side of the tunnel: the exchange is over, whatever
                // the client still sends.
                debug!("upstream ended the upgraded connection");
                return Ok(false);
            }
            tokio::select! {
                // Once the body is complete this only watches for the client going away, so
                // that an abandoned request stops waiting for its upstream.
                body = session.downstream_session.read_body_or_idle(request_done),
                    if pending.is_none() && (!request_done || (request_complete && !tunnel)) =>
                {
                    let mut body = body.map_err(|e| e.into_down())?;
                    if request_done {
                        // Only the idle watch can get here, and it only returns errors.
                        continue;
                    }
                    if tunnel {
                        tunnel_deadline = Some(Instant::now() + client_req.tunnel_idle);
                    }
                    let end = body.is_none() || session.downstream_session.is_body_done();
                    self.request_body_filters(session, &mut body, end, ctx)
                        .await?;
                    if end {
                        request_done = true;
                        request_complete = true;
                    }
                    (pending, queued) = request_body_tasks(session, body, end);
                }
                permit = tx_body.reserve(), if pending.is_some() => {
                    match permit {
                        Ok(permit) => {
                            if let Some(task) = pending.take() {
                                permit.send(task);
                            }
                            pending = queued.take();
                        }
                        Err(_) => {
                            // The upstream half stopped taking the body (its connection failed
                            // or ended): stop reading it.
                            pending = None;
                            queued = None;
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
                    if tunnel {
                        tunnel_deadline = Some(Instant::now() + client_req.tunnel_idle);
                    }
                    let final_header = match &task {
                        HttpTask::Header(h, _) if !is_interim(h) => Some(h.status),
                        _ => None,
                    };
                    response_done = self
                        .write_response_task(session, client_req, task, ctx)
                        .await?;
                    if awaiting_upgrade && final_header.is_some() {
                        awaiting_upgrade = false;
                        let switched = final_header == Some(StatusCode::SWITCHING_PROTOCOLS)
                            && (client_req.extended_connect
                                || session
                                    .response_written()
                                    .is_some_and(|r| r.headers.contains_key(header::UPGRADE)));
                        if switched {
                            // From now on the client's bytes are read until it closes and
                            // go up as they come.
                            tunnel = true;
                            tunnel_deadline = Some(Instant::now() + client_req.tunnel_idle);
                            request_done = false;
                            request_complete = false;
                        } else {
                            // Refused: a plain HTTP exchange whose (empty) body ends now.
                            pending = Some(HttpTask::Body(None, true));
                        }
                    }
                }
                _ = idle_deadline(tunnel_deadline), if tunnel => {
                    debug!(
                        "closing upgraded connection idle for {:?}",
                        client_req.tunnel_idle
                    );
                    return Ok(false);
                }
            }
        }
        // A tunnel never leaves the client connection reusable.
        Ok(request_complete && !tunnel)
    }

    /// Run the request body filters on one piece: the HTTP modules' first (they may decode
    /// it, e.g. gRPC-web-text), then [`ProxyHttp::request_body_filter`].
    pub(crate) async fn request_body_filters(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        end: bool,
        ctx: &mut SV::CTX,
    ) -> Result<()> {
        if !session.downstream_modules_ctx.is_empty() {
            session
                .downstream_modules_ctx
                .request_body_filter(body, end)
                .await?;
        }
        self.inner
            .request_body_filter(session, body, end, ctx)
            .await
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
                    // 1xx heads before the final one go out as they are, unfiltered.
                    session
                        .downstream_session
                        .write_response_header(header)
                        .await
                        .map_err(|e| e.into_down())?;
                    return Ok(false);
                }
                let switch = header.status == StatusCode::SWITCHING_PROTOCOLS && client_req.upgrade;
                // The hop-by-hop cleanup drops what makes a `101` a switch: keep it aside.
                let upgrade = if switch {
                    header.headers.get(header::UPGRADE).cloned()
                } else {
                    None
                };
                strip_response_hop_by_hop(&mut header);
                if switch && client_req.extended_connect {
                    // RFC 8441: success is a 2xx on the stream, without the handshake
                    // proof (the HTTP/2 client sent no key).
                    header.set_status(StatusCode::OK)?;
                    header.remove_header(&header::SEC_WEBSOCKET_ACCEPT);
                } else if let Some(upgrade) = upgrade {
                    let _ = header.insert_header(header::UPGRADE, upgrade);
                    let _ = header.insert_header(header::CONNECTION, "upgrade");
                }
                if header.version == Version::HTTP_2 && client_req.version != Version::HTTP_2 {
                    // from an HTTP/2 upstream: the filters see the version the client gets
                    header.set_version(Version::HTTP_11);
                }
                self.inner
                    .upstream_response_filter(session, &mut header, ctx)
                    .await?;
                self.inner
                    .response_filter(session, &mut header, ctx)
                    .await?;
                if !switch {
                    frame_response_for_client(&mut header, &client_req.method, client_req.version);
                }
                crate::write_batching::before_send_for(&session.downstream_session).await;
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
                    // Sent as chunked trailers (dropped when the body is not chunked),
                    // unless an HTTP module folds them into the body.
                    None => session.write_response_trailers(*trailers).await,
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
    // Set once the upstream switched protocols: the downstream half then times the tunnel out
    // and may finish without waiting for us.
    let mut tunnel = false;
    // A response task read from upstream, waiting for room in the channel.
    let mut pending: Option<HttpTask> = None;

    while !request_done || !response_done || pending.is_some() {
        tokio::select! {
            task = client.read_response_task_owned(), if !response_done && pending.is_none() => {
                match task {
                    Ok(task) => {
                        if let HttpTask::Header(h, _) = &task {
                            header_seen |= !is_interim(h);
                            if h.status == StatusCode::SWITCHING_PROTOCOLS && client.was_upgraded() {
                                // A quiet tunnel is not an error: its idle time is bounded as
                                // a whole by the downstream half.
                                tunnel = true;
                                client.read_timeout = None;
                            }
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
                    Some(HttpTask::Trailer(Some(trailers))) => {
                        // An HTTP/2 client's request trailers (dropped unless chunked).
                        if let Err(e) = client.write_trailers(&trailers).await {
                            debug!("failed to send request trailers upstream: {e}");
                            rx_body.close();
                            can_reuse = false;
                        }
                        request_done = true;
                    }
                    Some(_) => {}
                    None => {
                        // The downstream half stopped without ending the body.
                        request_done = true;
                        can_reuse = false;
                    }
                }
            }
            _ = tx_resp.closed(), if tunnel => {
                // The downstream half ended the tunnel (idle, or the upstream side is done).
                return Ok(false);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_keys_are_16_base64_bytes_and_differ() {
        let (a, b) = (websocket_key(), websocket_key());
        assert_eq!(a.len(), 24);
        assert!(a.ends_with("=="));
        assert!(a[..22]
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/'));
        assert_ne!(a, b);
    }

    #[test]
    fn extended_connect_becomes_an_upgrade_get() {
        let mut req = RequestHeader::build("CONNECT", b"/chat", None).expect("request");
        req.insert_header("sec-websocket-version", "13")
            .expect("header");
        req.insert_header("transfer-encoding", "chunked")
            .expect("header");
        extended_connect_to_upgrade("websocket", &mut req);
        assert_eq!(req.method, Method::GET);
        assert_eq!(req.headers["upgrade"], "websocket");
        assert_eq!(req.headers["connection"], "upgrade");
        assert_eq!(req.headers["sec-websocket-version"], "13");
        assert_eq!(req.headers["sec-websocket-key"].len(), 24);
        assert!(!req.headers.contains_key("transfer-encoding"));

        // a plain HTTP/1.1 upgrade keeps its headers when re-added after the hop-by-hop cleanup
        let mut client = RequestHeader::build("GET", b"/chat", None).expect("request");
        client
            .insert_header("upgrade", "websocket")
            .expect("header");
        let mut up = RequestHeader::build("GET", b"/chat", None).expect("request");
        restore_upgrade_request(&client, &mut up);
        assert_eq!(up.headers["upgrade"], "websocket");
        assert_eq!(up.headers["connection"], "upgrade");
    }
}
