//! The upstream exchange over a stream of a shared HTTP/2 connection, for HTTP/1 and HTTP/2
//! clients alike.
//!
//! As for HTTP/1 upstreams, two halves run concurrently and hand each other [`HttpTask`]s
//! through small bounded channels: the downstream half reads the request body and writes the
//! (filtered) response; the upstream half sends the body up and reads the response. A half
//! only takes the next piece once the previous one was handed on, and the HTTP/2 session
//! releases flow-control window only as pieces are taken, so a slow client slows the upstream
//! down instead of filling memory.

use bytes::Bytes;
use http::{header, HeaderMap, Method, Version};
use log::debug;
use pingora_core::protocols::http::v2::client::Http2Session;
use pingora_core::protocols::http::HttpTask;
use pingora_core::protocols::UniqueID;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorType, Result};
use pingora_http::RequestHeader;
use tokio::sync::mpsc;

use crate::proxy_common::{
    frame_response_for_client, strip_request_hop_by_hop, strip_response_hop_by_hop,
};
use crate::{HttpProxy, ProxyHttp, Session};

/// How many tasks may wait in each direction between the two halves.
const TASK_BUFFER_SIZE: usize = 4;

/// Turn a copy of the client's request into the request for an HTTP/2 upstream: hop-by-hop
/// headers go (`te: trailers` stays), and the body is sent as DATA frames, never chunked.
/// `Host` becomes `:authority` when the request is sent.
pub(crate) fn prepare_h2_upstream_request(req: &mut RequestHeader) {
    let te_trailers = req
        .headers
        .get(header::TE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    strip_request_hop_by_hop(req);
    req.remove_header(&header::TRANSFER_ENCODING);
    if te_trailers {
        let _ = req.insert_header(header::TE, "trailers");
    }
    req.set_version(Version::HTTP_2);
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
    /// Proxy the request over the upstream HTTP/2 stream `client`.
    /// Returns (client connection reusable, error).
    pub(crate) async fn proxy_to_h2_upstream(
        &self,
        session: &mut Session,
        client: &mut Http2Session,
        reused: bool,
        peer: &HttpPeer,
        ctx: &mut SV::CTX,
    ) -> (bool, Option<Box<Error>>) {
        let fd = client.id();
        if let Err(e) = self
            .inner
            .connected_to_upstream(session, reused, peer, fd, client.digest(), ctx)
            .await
        {
            return (false, Some(e));
        }
        client.read_timeout = peer.options.read_timeout;
        client.write_timeout = peer.options.write_timeout;

        let mut req = session.req_header().clone();
        prepare_h2_upstream_request(&mut req);
        if let Err(e) = self
            .inner
            .upstream_request_filter(session, &mut req, ctx)
            .await
        {
            return (false, Some(e));
        }
        session.downstream_session.enable_retry_buffering();
        // A request without body (and nothing to replay) is complete with its header.
        let replay = session.downstream_session.get_retry_buffer();
        let headers_only = replay.is_none() && session.downstream_session.is_body_done();
        debug!(
            "sending request upstream over h2: {} {}",
            req.method, req.uri
        );
        if let Err(e) = client.write_request_header(Box::new(req), headers_only) {
            return (false, Some(e.into_up()));
        }

        let client_req = ClientRequest {
            method: session.req_header().method.clone(),
            version: session.req_header().version,
        };
        let (tx_resp, rx_resp) = mpsc::channel::<HttpTask>(TASK_BUFFER_SIZE);
        let (tx_body, rx_body) = mpsc::channel::<HttpTask>(TASK_BUFFER_SIZE);
        let res = tokio::try_join!(
            self.h2_downstream_half(session, &client_req, headers_only, tx_body, rx_resp, ctx),
            h2_upstream_half(client, tx_resp, rx_body, headers_only),
        );
        match res {
            Ok((downstream_reuse, ())) => (downstream_reuse, None),
            Err(e) => (false, Some(e)),
        }
    }

    /// Read the request body from the client and pass it up; take response tasks from the
    /// upstream half, filter them and write them to the client. Returns whether the client
    /// connection can serve another request.
    async fn h2_downstream_half(
        &self,
        session: &mut Session,
        client_req: &ClientRequest,
        headers_only: bool,
        tx_body: mpsc::Sender<HttpTask>,
        mut rx_resp: mpsc::Receiver<HttpTask>,
        ctx: &mut SV::CTX,
    ) -> Result<bool> {
        let mut request_done = headers_only;
        let mut response_done = false;
        let mut pending: Option<HttpTask> = None;
        if headers_only {
            let mut body = None;
            self.request_body_filters(session, &mut body, true, ctx)
                .await?;
        } else {
            // A retry replays what earlier attempts read of the body.
            let replay = session.downstream_session.get_retry_buffer();
            let end = session.downstream_session.is_body_done();
            if replay.is_some() || end {
                let mut body = replay;
                self.request_body_filters(session, &mut body, end, ctx)
                    .await?;
                pending = Some(HttpTask::Body(body, end));
                request_done = end;
            }
        }
        let mut request_complete = request_done;

        while !response_done || !request_done || pending.is_some() {
            tokio::select! {
                // Once the body is complete this only watches for the client going away.
                body = session.downstream_session.read_body_or_idle(request_done),
                    if pending.is_none() && (!request_done || request_complete) =>
                {
                    let mut body = body.map_err(|e| e.into_down())?;
                    if request_done {
                        continue;
                    }
                    let end = body.is_none() || session.downstream_session.is_body_done();
                    self.request_body_filters(session, &mut body, end, ctx)
                        .await?;
                    if end {
                        request_done = true;
                        request_complete = true;
                    }
                    if body.is_some() || end {
                        pending = Some(match request_trailers(session, &body, end) {
                            // an HTTP/2 client's trailers go on to the HTTP/2 upstream
                            Some(t) => HttpTask::Trailer(Some(Box::new(t))),
                            None => HttpTask::Body(body, end),
                        });
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
                        .h2_write_response_task(session, client_req, task, ctx)
                        .await?;
                }
            }
        }
        Ok(request_complete)
    }

    /// Filter one response task and write it to the client. Returns whether the response is
    /// complete.
    async fn h2_write_response_task(
        &self,
        session: &mut Session,
        client_req: &ClientRequest,
        task: HttpTask,
        ctx: &mut SV::CTX,
    ) -> Result<bool> {
        match task {
            HttpTask::Header(mut header, end) => {
                strip_response_hop_by_hop(&mut header);
                if client_req.version != Version::HTTP_2 {
                    header.set_version(Version::HTTP_11);
                }
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
            HttpTask::Trailer(Some(mut trailers)) => {
                self.inner
                    .upstream_response_trailer_filter(session, &mut trailers, ctx)?;
                let tail = self
                    .inner
                    .response_trailer_filter(session, &mut trailers, ctx)
                    .await?;
                let written = match tail {
                    Some(tail) => session.write_response_body(Some(tail), true).await,
                    // HTTP modules (e.g. gRPC-web) may fold the trailers into the body.
                    None => session.write_response_trailers(*trailers).await,
                };
                written.map_err(|e| e.into_down())?;
                Ok(true)
            }
            HttpTask::Trailer(None) | HttpTask::Done => {
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

/// The trailers of an HTTP/2 client's request, once its body ended without a last piece.
fn request_trailers(session: &Session, body: &Option<Bytes>, end: bool) -> Option<HeaderMap> {
    if !end || body.is_some() {
        return None;
    }
    session
        .downstream_session
        .as_http2()
        .and_then(|s| s.request_trailers())
        .cloned()
}

/// The next response task from the upstream stream.
async fn read_response_task(client: &mut Http2Session) -> Result<HttpTask> {
    if client.response_header().is_none() {
        client.read_response_header().await?;
        let header = client
            .response_header()
            .cloned()
            .ok_or_else(|| Error::explain(ErrorType::H2Error, "no response header"))?;
        return Ok(HttpTask::Header(
            Box::new(header),
            client.response_finished(),
        ));
    }
    match client.read_response_body().await? {
        Some(data) => Ok(HttpTask::Body(Some(data), false)),
        None => Ok(match client.read_trailers().await? {
            Some(t) => HttpTask::Trailer(Some(Box::new(t))),
            None => HttpTask::Done,
        }),
    }
}

/// Send the request body pieces coming from the downstream half up the stream and read the
/// response, handing it to the downstream half.
async fn h2_upstream_half(
    client: &mut Http2Session,
    tx_resp: mpsc::Sender<HttpTask>,
    mut rx_body: mpsc::Receiver<HttpTask>,
    request_ended: bool,
) -> Result<()> {
    let mut request_done = request_ended;
    let mut response_done = false;
    let mut pending: Option<HttpTask> = None;
    while !request_done || !response_done || pending.is_some() {
        tokio::select! {
            task = read_response_task(client), if !response_done && pending.is_none() => {
                match task {
                    Ok(task) => {
                        response_done = task.is_end();
                        pending = Some(task);
                    }
                    Err(e) => {
                        pending = Some(HttpTask::Failed(e.into_up()));
                        response_done = true;
                        request_done = true;
                        rx_body.close();
                    }
                }
            }
            permit = tx_resp.reserve(), if pending.is_some() => {
                let Ok(permit) = permit else {
                    // the downstream half failed; the stream is reset on drop
                    return Ok(());
                };
                if let Some(task) = pending.take() {
                    let failed = matches!(task, HttpTask::Failed(_));
                    permit.send(task);
                    if failed {
                        return Ok(());
                    }
                }
            }
            body = rx_body.recv(), if !request_done => {
                match body {
                    Some(HttpTask::Trailer(Some(trailers))) => {
                        if let Err(e) = client.write_request_trailers(*trailers) {
                            debug!("failed to send request trailers upstream over h2: {e}");
                            rx_body.close();
                        }
                        request_done = true;
                    }
                    Some(HttpTask::Body(data, end)) => {
                        let data = data.unwrap_or_else(Bytes::new);
                        if let Err(e) = client.write_request_body(data, end).await {
                            // the upstream may have answered early; keep reading it
                            debug!("failed to send request body upstream over h2: {e}");
                            rx_body.close();
                            request_done = true;
                        } else if end {
                            request_done = true;
                        }
                    }
                    Some(_) => {}
                    None => request_done = true,
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h2_request_has_no_hop_by_hop() {
        let mut req = RequestHeader::build("POST", b"/x", None).expect("request");
        req.insert_header("Host", "a.test").expect("header");
        req.insert_header("Connection", "keep-alive, x-private")
            .expect("header");
        req.insert_header("X-Private", "1").expect("header");
        req.insert_header("Transfer-Encoding", "chunked")
            .expect("header");
        req.insert_header("TE", "trailers").expect("header");
        req.insert_header("Upgrade", "foo").expect("header");
        prepare_h2_upstream_request(&mut req);
        for gone in ["connection", "x-private", "transfer-encoding", "upgrade"] {
            assert!(!req.headers.contains_key(gone), "{gone}");
        }
        assert_eq!(
            req.headers.get("te").map(|v| v.as_bytes()),
            Some(&b"trailers"[..])
        );
        assert_eq!(req.version, Version::HTTP_2);
        let mut req = RequestHeader::build("GET", b"/", None).expect("request");
        req.insert_header("TE", "gzip").expect("header");
        prepare_h2_upstream_request(&mut req);
        assert!(!req.headers.contains_key("te"));
    }
}
